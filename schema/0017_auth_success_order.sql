-- auth_success updated the address's and the user's rows in one statement,
-- locking them in whatever order the scan met them, while auth_begin locks
-- the address's row and then the user's: concurrent logins from one
-- address deadlocked (2,000 IDLE connections opened 32 at a time: "ERROR:
-- deadlock detected" answered as NO [SERVERBUG]). Now the same order as
-- auth_begin: the address's row first.
CREATE OR REPLACE FUNCTION auth_success(addr_key text, user_key text, addr_free integer) RETURNS void
LANGUAGE sql AS $$
    UPDATE auth_limits SET failures = greatest(failures - 1, 0),
        blocked_until = CASE WHEN failures - 1 < addr_free THEN NULL ELSE blocked_until END
    WHERE key = addr_key;
    UPDATE auth_limits SET failures = greatest(failures - 1, 0) WHERE key = user_key AND user_key <> addr_key;
$$;
