-- Searchable text moves out of messages into message_texts, and its trigram
-- indexing moves off the delivery path.
--
-- Extracting and merging the trigrams of header_text and body_text was about
-- 4 ms of the 7.7 ms of Postgres CPU per delivered message (inserting 1,000
-- stored messages into a copy of messages: 4.0 s with those two indexes,
-- 0.19 s without), which held 8 SMTP senders on 2 cores near 200 msgs/s.
--
-- A delivery now inserts its text with indexed = false: the GIN indexes are
-- partial (WHERE indexed), so nothing is extracted then. The store's indexer
-- (server/store/indexer.go) sets indexed = true in batches once deliveries
-- pause, or at once when a backlog builds up; only that narrow row is
-- rewritten (the TOASTed text is kept by pointer). A search reads both
-- halves: the indexed rows through the trigram indexes, the not-yet-indexed
-- ones (a few hundred at most during a burst) through their own small index
-- (server/query: textCond). So a search never misses a message, indexed or not.
CREATE TABLE message_texts (
    message_id  bigint PRIMARY KEY,                -- messages.id; removed by messages_deleted
    indexed     boolean NOT NULL DEFAULT false,
    header_text text NOT NULL DEFAULT '',          -- decoded, unfolded, one field a line
    body_text   text NOT NULL DEFAULT ''           -- decoded text parts
) WITH (fillfactor = 80);
DO $$ BEGIN
    ALTER TABLE message_texts ALTER COLUMN header_text SET COMPRESSION lz4, ALTER COLUMN body_text SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;

-- Existing messages keep their text, indexed.
INSERT INTO message_texts (message_id, indexed, header_text, body_text)
    SELECT id, true, header_text, body_text FROM messages;
DROP INDEX messages_header_trgm;
DROP INDEX messages_body_trgm;
ALTER TABLE messages DROP COLUMN header_text, DROP COLUMN body_text;

-- The default pending list (4 MB) stays, for the reason in 0001.
CREATE INDEX message_texts_header_trgm ON message_texts USING gin (header_text gin_trgm_ops) WHERE indexed;
CREATE INDEX message_texts_body_trgm ON message_texts USING gin (body_text gin_trgm_ops) WHERE indexed;
CREATE INDEX message_texts_unindexed ON message_texts (message_id) WHERE NOT indexed;

CREATE OR REPLACE FUNCTION messages_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mailbox_messages WHERE message_id IN (SELECT id FROM oldrows);
    DELETE FROM message_texts WHERE message_id IN (SELECT id FROM oldrows);
    INSERT INTO delete_log (message_id, user_id, spool_path)
        SELECT id, user_id, spool_path FROM oldrows;
    PERFORM pg_notify('decimail_delete', '');
    RETURN NULL;
END $$;
