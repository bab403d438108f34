-- EXPUNGE finds the \Deleted members of a mailbox. It read every member
-- with its flags: 2 ms for a mailbox of 3,000 messages, under the user's
-- lock, which 50 sessions of one account then queued behind (the
-- many-sessions benchmark, bench/ANALYSIS.md). Messages flagged \Deleted
-- are few and short-lived (until the next EXPUNGE): indexed by user, they
-- are found directly.
CREATE INDEX message_flags_deleted ON message_flags (user_id) WHERE deleted;
