-- Issue 15: a flag change rewrote each changed message_flags row with new
-- entries in every index, because modseq, which changes with the flags, was
-- indexed ((user_id, modseq): how a poll finds the flag changes of a user
-- after its cursor). An UPDATE that changes no indexed column is a HOT
-- update (the new row version goes on the same page, no index entry; the
-- table keeps fillfactor 70 for it): `UID STORE 1:* -FLAGS (\Seen)` on
-- 10,000 messages, 6,943 of them changing, took 37 ms instead of 57
-- (+FLAGS: 22 instead of 29; the UPDATE as AddRemoveFlags sends it, with
-- its trigger, psql on a durable cluster, bench/ANALYSIS.md).
--
-- The changes are found through flag_changes instead: one row per UPDATE
-- statement and user, written by the statement's trigger, with the
-- statement's highest modseq and the messages it changed. A reader takes
-- the rows above its cursor and keeps the messages whose flags still have
-- a modseq above it (store/view.go: flagsSinceSQL). The rows are pruned
-- with the tombstones (expunge_horizon, store.PruneExpunges); each user
-- remembers the highest modseq pruned, and a reader from below it scans
-- the user's flags rows (message_flags_user).
CREATE TABLE flag_changes (
    user_id     bigint NOT NULL,
    modseq      bigint NOT NULL,                 -- the statement's highest
    lo          bigint NOT NULL,                 -- and lowest: a session's own
                                                 -- change is passed over whole
    message_ids bigint[] NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
-- Not compressed: compressing the ids of a large change (55 kB for 6,943)
-- took 3-4 ms of the 40 ms UPDATE, for a row pruned within the horizon.
ALTER TABLE flag_changes ALTER message_ids SET STORAGE EXTERNAL;
CREATE INDEX flag_changes_user_modseq ON flag_changes (user_id, modseq);
CREATE INDEX flag_changes_at ON flag_changes (at);

-- Every change before this migration is older than the log: readers from
-- below scan.
ALTER TABLE users ADD COLUMN flag_changes_pruned bigint NOT NULL DEFAULT 0;
UPDATE users u SET flag_changes_pruned = coalesce((SELECT max(modseq) FROM message_flags f WHERE f.user_id = u.id), 0);

CREATE INDEX message_flags_user ON message_flags (user_id);
DROP INDEX message_flags_user_modseq;

CREATE OR REPLACE FUNCTION flags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint; logged tid[];
BEGIN
    WITH l AS (INSERT INTO flag_changes (user_id, modseq, lo, message_ids)
                   SELECT user_id, max(modseq), min(modseq), array_agg(message_id) FROM newrows GROUP BY user_id
                   RETURNING ctid)
    SELECT array_agg(ctid) INTO logged FROM l;
    -- Where the statement's rows of the log are, for the statements after
    -- it in the transaction that need the messages it changed
    -- (store/flags.go: changedSQL): a TID scan, whatever the log's
    -- statistics say (a log that grew since its last ANALYZE was scanned
    -- whole by the generic plan of an index condition).
    PERFORM set_config('decimail.flag_log', coalesce(logged, '{}')::text, true);
    WITH c AS MATERIALIZED (SELECT message_id, sum(du) AS du, max(hm) AS hm
               FROM (SELECT message_id, -seen::int AS du, modseq AS hm FROM newrows
                     UNION ALL
                     SELECT message_id, seen::int, 0 FROM oldrows) x
               GROUP BY message_id),
         d AS (SELECT mm.mailbox_id, sum(c.du) AS du, max(c.hm) AS hm
               FROM c JOIN mailbox_messages mm ON mm.message_id = c.message_id
               GROUP BY mm.mailbox_id),
         up AS (UPDATE mailboxes b SET unseen = b.unseen + d.du, highest_modseq = greatest(b.highest_modseq, d.hm)
                FROM d WHERE b.id = d.mailbox_id RETURNING b.id)
    SELECT count(decimail_notify(id)) INTO k FROM up;
    RETURN NULL;
END $$;
