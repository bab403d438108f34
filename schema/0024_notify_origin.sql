-- Issue 13: a change made through a process's store signals that process's
-- sessions when it leaves the user's gate (server/store/notify.go: Touch),
-- after COMMIT; its NOTIFY came back through the process's LISTEN about a
-- millisecond later and signalled every session again, so each wrote twice
-- the reads of 50 sessions of one account, and ended the window in which
-- sessions share one read of the changes (sharedpoll.go). A change now
-- names the process it came from (decimail.origin, set local to the
-- transaction by the writers that Touch: the user's lock statement, and
-- \Recent claims), and a listener skips its own: the payload is
-- '<mailbox id>' or '<mailbox id>/<origin>'.
CREATE FUNCTION decimail_notify(mailbox_id bigint) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('decimail', mailbox_id::text || coalesce('/' || nullif(current_setting('decimail.origin', true), ''), ''));
    RETURN 1;
END $$;

CREATE OR REPLACE FUNCTION mm_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE miss bigint[];
BEGIN
    WITH d AS (SELECT n.mailbox_id, count(*) AS n, count(*) FILTER (WHERE n.recent) AS r,
                      count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                      max(greatest(n.modseq, f.modseq)) AS hm,
                      count(*) FILTER (WHERE f.message_id IS NULL) AS missing
               FROM newrows n LEFT JOIN message_flags f ON f.message_id = n.message_id
               GROUP BY n.mailbox_id),
         up AS (UPDATE mailboxes b SET messages = b.messages + d.n, recent = b.recent + d.r,
                    unseen = b.unseen + d.u, size = b.size + d.sz, highest_modseq = greatest(b.highest_modseq, d.hm)
                FROM d WHERE b.id = d.mailbox_id RETURNING b.id, d.missing)
    SELECT array_agg(id) FILTER (WHERE missing > 0) INTO miss FROM up;
    IF miss IS NOT NULL THEN PERFORM mailbox_recount(miss); END IF;
    PERFORM decimail_notify(d.mailbox_id) FROM (SELECT DISTINCT mailbox_id FROM newrows) d;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mm_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes b SET recent = b.recent + d.dr, highest_modseq = greatest(b.highest_modseq, d.hm)
    FROM (SELECT mailbox_id, sum(dr) AS dr, max(hm) AS hm FROM (
              SELECT mailbox_id, recent::int AS dr, modseq AS hm FROM newrows
              UNION ALL SELECT mailbox_id, -(recent::int), 0 FROM oldrows) x
          GROUP BY mailbox_id) d
    WHERE b.id = d.mailbox_id;
    PERFORM decimail_notify(d.mailbox_id) FROM (SELECT DISTINCT mailbox_id FROM newrows) d;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mm_expunged() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE miss bigint[];
BEGIN
    WITH tm AS (INSERT INTO mailbox_expunges (mailbox_id, modseq, uids)
                    SELECT o.mailbox_id, nextval('modseq_seq'), array_agg(o.uid ORDER BY o.uid) FROM oldrows o
                    WHERE EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = o.mailbox_id)
                    GROUP BY o.mailbox_id
                    RETURNING mailbox_id, modseq AS hm),
         d AS (SELECT o.mailbox_id, count(*) AS n, count(*) FILTER (WHERE o.recent) AS r,
                      count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                      count(*) FILTER (WHERE f.message_id IS NULL) AS missing
               FROM oldrows o LEFT JOIN message_flags f ON f.message_id = o.message_id
               GROUP BY o.mailbox_id),
         up AS (UPDATE mailboxes b SET messages = b.messages - d.n, recent = b.recent - d.r,
                    unseen = b.unseen - d.u, size = b.size - d.sz,
                    highest_modseq = greatest(b.highest_modseq, coalesce(tm.hm, 0))
                FROM d LEFT JOIN tm ON tm.mailbox_id = d.mailbox_id
                WHERE b.id = d.mailbox_id RETURNING b.id, d.missing)
    SELECT array_agg(id) FILTER (WHERE missing > 0) INTO miss FROM up;
    IF miss IS NOT NULL THEN PERFORM mailbox_recount(miss); END IF;
    PERFORM decimail_notify(d.mailbox_id) FROM (SELECT DISTINCT mailbox_id FROM oldrows) d;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION flags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint;
BEGIN
    WITH d AS (SELECT mm.mailbox_id, sum(o.seen::int - n.seen::int) AS du, max(n.modseq) AS hm
               FROM newrows n JOIN oldrows o ON o.message_id = n.message_id
               JOIN mailbox_messages mm ON mm.message_id = n.message_id
               GROUP BY mm.mailbox_id),
         up AS (UPDATE mailboxes b SET unseen = b.unseen + d.du, highest_modseq = greatest(b.highest_modseq, d.hm)
                FROM d WHERE b.id = d.mailbox_id RETURNING b.id)
    SELECT count(decimail_notify(id)) INTO k FROM up;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mailbox_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM decimail_notify(OLD.id);
    RETURN NULL;
END $$;
