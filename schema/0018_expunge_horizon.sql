-- QRESYNC (RFC 7162 §3.2) answers "which of these UIDs were expunged since
-- mod-sequence n" from the tombstones in mailbox_expunges. They were kept
-- for ever; now they are kept for the setting expunge_horizon (the delete
-- daemon prunes older ones: store.PruneExpunges), so each row carries the
-- time it was written, and each mailbox remembers the highest modseq of a
-- tombstone pruned from it: a client resynchronising from below that value
-- is answered from the mailbox's membership instead (every UID below
-- UIDNEXT that is not a member is gone; UIDs are never reused), which
-- rfc7162.txt:1718-1721 and 2250-2259 allow.
ALTER TABLE mailbox_expunges ADD COLUMN at timestamptz NOT NULL DEFAULT now();
CREATE INDEX mailbox_expunges_at ON mailbox_expunges (at);
ALTER TABLE mailboxes ADD COLUMN expunges_pruned bigint NOT NULL DEFAULT 0;
