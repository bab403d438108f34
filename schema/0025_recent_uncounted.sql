-- Issue 13: a \Recent claim (store/view.go: claimRecent) is the only UPDATE
-- of mailbox_messages, and its trigger kept mailboxes.recent, so it
-- updated the mailbox's row, which every change of the mailbox's members
-- updates too (messages, unseen, size, highest_modseq): with 50 sessions
-- of one account the claim after each APPEND waited for whichever change
-- held that row, up to its COMMIT and WAL flush (3 ms on average, 114 ms at
-- worst, under a command that only read). STATUS and SELECT now count the
-- unclaimed members through the partial index of schema 0022 (few rows:
-- new messages are claimed by the first session that sees them), and the
-- claim's trigger only notifies other processes (their STATUS caches).
CREATE OR REPLACE FUNCTION mailbox_recount(ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE mailboxes b SET messages = c.n, unseen = c.u, size = c.sz,
        highest_modseq = greatest(b.highest_modseq, c.hm)
    FROM (SELECT x.id, count(mm.uid) AS n,
                 count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                 coalesce(max(greatest(mm.modseq, f.modseq)), 0) AS hm
          FROM unnest(ids) x(id)
          LEFT JOIN mailbox_messages mm ON mm.mailbox_id = x.id
          LEFT JOIN message_flags f ON f.message_id = mm.message_id
          GROUP BY x.id) c
    WHERE b.id = c.id
$$;

CREATE OR REPLACE FUNCTION mm_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE miss bigint[];
BEGIN
    WITH d AS (SELECT n.mailbox_id, count(*) AS n, count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                      max(greatest(n.modseq, f.modseq)) AS hm,
                      count(*) FILTER (WHERE f.message_id IS NULL) AS missing
               FROM newrows n LEFT JOIN message_flags f ON f.message_id = n.message_id
               GROUP BY n.mailbox_id),
         up AS (UPDATE mailboxes b SET messages = b.messages + d.n,
                    unseen = b.unseen + d.u, size = b.size + d.sz, highest_modseq = greatest(b.highest_modseq, d.hm)
                FROM d WHERE b.id = d.mailbox_id RETURNING b.id, d.missing)
    SELECT array_agg(id) FILTER (WHERE missing > 0) INTO miss FROM up;
    IF miss IS NOT NULL THEN PERFORM mailbox_recount(miss); END IF;
    PERFORM decimail_notify(d.mailbox_id) FROM (SELECT DISTINCT mailbox_id FROM newrows) d;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mm_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
         d AS (SELECT o.mailbox_id, count(*) AS n, count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                      count(*) FILTER (WHERE f.message_id IS NULL) AS missing
               FROM oldrows o LEFT JOIN message_flags f ON f.message_id = o.message_id
               GROUP BY o.mailbox_id),
         up AS (UPDATE mailboxes b SET messages = b.messages - d.n,
                    unseen = b.unseen - d.u, size = b.size - d.sz,
                    highest_modseq = greatest(b.highest_modseq, coalesce(tm.hm, 0))
                FROM d LEFT JOIN tm ON tm.mailbox_id = d.mailbox_id
                WHERE b.id = d.mailbox_id RETURNING b.id, d.missing)
    SELECT array_agg(id) FILTER (WHERE missing > 0) INTO miss FROM up;
    IF miss IS NOT NULL THEN PERFORM mailbox_recount(miss); END IF;
    PERFORM decimail_notify(d.mailbox_id) FROM (SELECT DISTINCT mailbox_id FROM oldrows) d;
    RETURN NULL;
END $$;

ALTER TABLE mailboxes DROP COLUMN recent;
