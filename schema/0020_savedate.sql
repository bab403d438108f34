-- SAVEDATE (RFC 8514): when a message entered a mailbox, kept on the
-- membership row. "the current date and time at which the message is
-- delivered to a mailbox MUST be used" (rfc8514.txt:142-150), and it
-- "MUST NOT change as long as the message is contained within the same
-- mailbox" (rfc8514.txt:151-152): every INSERT INTO mailbox_messages takes
-- the default (the transaction's start), no UPDATE sets it. A view's row
-- is inserted when the message comes to match the view, so a view's save
-- date is when the message entered the view (a message leaving and
-- re-entering gets a fresh UID and a fresh save date, like a COPY).
--
-- Rows stored before this migration: when they entered is not known; the
-- message's internal date is the best the store has (for a delivered
-- message, its arrival), so they are backfilled with it. The backfill
-- changes no counter, modseq or notification: the update trigger is off
-- meanwhile (one transaction, under the table's exclusive lock).
ALTER TABLE mailbox_messages ADD COLUMN saved_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE mailbox_messages DISABLE TRIGGER mm_update;
UPDATE mailbox_messages mm SET saved_at = m.internal_date FROM messages m WHERE m.id = mm.message_id;
ALTER TABLE mailbox_messages ENABLE TRIGGER mm_update;
