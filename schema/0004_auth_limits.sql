-- Issue 13: the failed-login limiter shared by the SMTP and IMAP daemons and
-- by every server process on this database (server/store/authlimit.go).
-- One row per key: 'addr:<address or IPv6 /64>' and 'user:<name>'.
-- Unlogged: the counters are not worth WAL, and a crash only forgets them.
CREATE UNLOGGED TABLE auth_limits (
    key           text PRIMARY KEY,
    failures      integer NOT NULL DEFAULT 0,  -- attempts charged minus successes refunded, within the window
    blocked_until timestamptz,                 -- an address is refused until then
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- auth_charge counts one attempt against key (a key untouched for win
-- starts again from zero) and returns its count.
CREATE FUNCTION auth_charge(k text, win interval) RETURNS integer LANGUAGE sql AS $$
    INSERT INTO auth_limits AS a (key, failures, updated_at) VALUES (k, 1, now())
    ON CONFLICT (key) DO UPDATE SET
        failures = CASE WHEN a.updated_at < now() - win THEN 1 ELSE a.failures + 1 END,
        updated_at = now()
    RETURNING failures
$$;

-- auth_begin is one login attempt from addr_key for user_key, before the
-- password is checked. While the address is blocked the attempt is refused
-- (refused: how much longer) and nothing is charged. Otherwise both keys are
-- charged (auth_success refunds a success):
--   * the address's addr_free-th unrefunded attempt blocks it for base, each
--     further one for twice as long as the one before, up to addr_cap;
--   * the account's attempts beyond user_free wait (user_wait, slept by the
--     caller before checking) base, 2*base, ... up to user_cap: an account
--     under attack from many addresses is slowed, never locked.
-- The address row is created first and locked, so parallel attempts from
-- one address are decided one after the other.
CREATE FUNCTION auth_begin(addr_key text, user_key text, addr_free integer, user_free integer,
    base interval, addr_cap interval, user_cap interval, win interval,
    OUT refused interval, OUT user_wait interval) LANGUAGE plpgsql AS $$
DECLARE b timestamptz; f integer;
BEGIN
    INSERT INTO auth_limits (key) VALUES (addr_key) ON CONFLICT (key) DO NOTHING;
    SELECT blocked_until INTO b FROM auth_limits WHERE key = addr_key FOR UPDATE;
    IF b > now() THEN
        refused := b - now();
        RETURN;
    END IF;
    f := auth_charge(addr_key, win);
    UPDATE auth_limits SET blocked_until = CASE WHEN f >= addr_free
        THEN now() + least(addr_cap, base * power(2, least(f - addr_free, 40))) END
    WHERE key = addr_key;
    f := auth_charge(user_key, win);
    IF f > user_free THEN
        user_wait := least(user_cap, base * power(2, least(f - user_free - 1, 40)));
    END IF;
END $$;

-- auth_success refunds a successful attempt's charge. A success does not
-- erase earlier failures (an attacker with an account of his own cannot
-- launder his guesses with his own logins); an address back below its
-- allowance is unblocked.
CREATE FUNCTION auth_success(addr_key text, user_key text, addr_free integer) RETURNS void
LANGUAGE sql AS $$
    UPDATE auth_limits SET failures = greatest(failures - 1, 0),
        blocked_until = CASE WHEN key = addr_key AND failures - 1 < addr_free THEN NULL ELSE blocked_until END
    WHERE key IN (addr_key, user_key)
$$;
