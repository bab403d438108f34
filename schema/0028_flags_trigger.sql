-- Issue 15: the flags trigger joined the changed rows' new and old versions
-- to each other only after joining them with their memberships, so Postgres
-- sorted both sides for a merge join and walked the whole message index of
-- mailbox_messages: 25-27 ms of a 50-55 ms UPDATE of 6,943 flags rows
-- (`UID STORE 1:* -FLAGS (\Seen)` on the benchmark's 10,000 messages,
-- auto_explain). Reducing old and new to one row per message first (one
-- hashed aggregate, no join) and joining that with the memberships took the
-- UPDATE to 40-44 ms (bench/ANALYSIS.md). The planner still chooses how to
-- reach the memberships: by hashing them on this small table, by probing
-- mailbox_messages_message per message on a large one.
CREATE OR REPLACE FUNCTION flags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint;
BEGIN
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
