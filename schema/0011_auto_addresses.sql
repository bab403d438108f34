-- Issue 18: the addresses auto@ hands out are addresses of the user. An
-- auto address (auto_users) and the per-correspondent addresses made for
-- it (random_addrs, explicit_addrs) used to be known only to the sending
-- side, so a reply to one was refused (550 No such user) unless the domain
-- had a catch-all. From now on the store records each as a row of
-- addresses when it is made (server/store/autoaddr.go); this adds the
-- ones made before. An address that is already a row (of this user or
-- another) keeps its row.
INSERT INTO addresses (address, user_id)
SELECT a.address, a.user_id FROM (
        SELECT address, user_id FROM auto_users
        UNION ALL
        SELECT r.address, u.user_id FROM random_addrs r JOIN auto_users u ON u.address = r.auto_address
        UNION ALL
        SELECT e.address, u.user_id FROM explicit_addrs e JOIN auto_users u ON u.address = e.auto_address
    ) a
WHERE a.address = lower(a.address) AND a.address LIKE '%_@_%'
ON CONFLICT (address) DO NOTHING;
