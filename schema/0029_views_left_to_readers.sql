-- Issue 15: a large flag change leaves the query mailboxes it would move
-- messages in or out of to their first reader (store/pending.go). NULL:
-- the view's membership is exact. Otherwise every flag change of the user
-- with a modseq above flags_pending may not be applied to it yet; whoever
-- reads the view (its changes, snapshot, STATUS counters, HIGHESTMODSEQ,
-- tombstones) first applies them under the user's lock.
ALTER TABLE mailboxes ADD COLUMN flags_pending bigint;
