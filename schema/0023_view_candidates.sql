-- Issue 15: a flag change decides the views from flags alone.
--
-- A view whose definition is a conjunction of terms that read only flags
-- and terms that read no flag and no folder ("UNSEEN HEADER List-Id x":
-- query.SplitFlags) keeps here the user's messages the flag-free part
-- matches, its candidates. Messages are immutable, so a message's
-- candidacy never changes: it is written when the view is defined (or
-- redefined) and when the message row is created (delivery, APPEND, COPY
-- of a message a folder already holds), and goes with the message or the
-- view. A flag change then puts a message into such a view from the
-- candidates and its flags, without evaluating the header condition again
-- (3,087 messages back into 25 "UNSEEN HEADER List-Id x" views: ~12 ms a
-- view before). Views of flags only (Unread, Flagged) need no rows: every
-- message is their candidate. The Go step for this migration
-- (schema/candidates.go) fills the rows of the views that exist.
--
-- No foreign keys, as for memberships: the delete triggers below remove
-- the rows of a deleted message or mailbox.
CREATE TABLE view_candidates (
    message_id bigint NOT NULL,
    mailbox_id bigint NOT NULL,
    PRIMARY KEY (message_id, mailbox_id)
);
CREATE INDEX view_candidates_mailbox ON view_candidates (mailbox_id);

CREATE OR REPLACE FUNCTION messages_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mailbox_messages WHERE message_id IN (SELECT id FROM oldrows);
    DELETE FROM message_texts WHERE message_id IN (SELECT id FROM oldrows);
    DELETE FROM view_candidates WHERE message_id IN (SELECT id FROM oldrows);
    INSERT INTO delete_log (message_id, user_id, spool_path)
        SELECT id, user_id, spool_path FROM oldrows;
    PERFORM pg_notify('decimail_delete', '');
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mailboxes_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mailbox_messages WHERE mailbox_id IN (SELECT id FROM oldrows);
    DELETE FROM mailbox_expunges WHERE mailbox_id IN (SELECT id FROM oldrows);
    DELETE FROM view_candidates WHERE mailbox_id IN (SELECT id FROM oldrows);
    RETURN NULL;
END $$;
