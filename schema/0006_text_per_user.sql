-- Text search scoped to the user inside the index (issue 13).
--
-- The trigram indexes held every user's text in one posting list per
-- trigram, so how long a search took depended on how common its string was
-- in other users' mail (14.5 ms against 1.3 ms for a string with 5,000 hits
-- elsewhere): a timing channel into other mailboxes. Each trigram index now
-- leads with the user (btree_gin), and every search names its user, so the
-- scan starts from the user's own entries (GIN skips through the longer
-- posting lists of common trigrams) and its cost follows the user's mail.
CREATE EXTENSION IF NOT EXISTS btree_gin;

ALTER TABLE message_texts ADD COLUMN user_id bigint;
UPDATE message_texts t SET user_id = m.user_id FROM messages m WHERE m.id = t.message_id;
ALTER TABLE message_texts ALTER COLUMN user_id SET NOT NULL;

-- Rows are inserted by several paths (delivery, its copies, COPY/MOVE):
-- the owner is taken from the message, so none of them can get it wrong.
CREATE FUNCTION message_texts_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS NULL THEN
        SELECT user_id INTO NEW.user_id FROM messages WHERE id = NEW.message_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER message_texts_owner BEFORE INSERT ON message_texts
    FOR EACH ROW EXECUTE FUNCTION message_texts_owner();

DROP INDEX message_texts_header_trgm;
DROP INDEX message_texts_body_trgm;
CREATE INDEX message_texts_header_trgm ON message_texts USING gin (user_id, header_text gin_trgm_ops) WHERE indexed;
CREATE INDEX message_texts_body_trgm ON message_texts USING gin (user_id, body_text gin_trgm_ops) WHERE indexed;

DROP INDEX messages_subject_trgm;
DROP INDEX messages_from_trgm;
DROP INDEX messages_to_trgm;
DROP INDEX messages_cc_trgm;
CREATE INDEX messages_subject_trgm ON messages USING gin (user_id, subject gin_trgm_ops);
CREATE INDEX messages_from_trgm ON messages USING gin (user_id, from_addr gin_trgm_ops);
CREATE INDEX messages_to_trgm ON messages USING gin (user_id, to_addr gin_trgm_ops);
CREATE INDEX messages_cc_trgm ON messages USING gin (user_id, cc_addr gin_trgm_ops);
