-- A message the submission server filed in the sender's Sent folder
-- records when (messages.submitted; NULL for every other message). A
-- client that then APPENDs its own copy of it to the \Sent mailbox within
-- a short window (imapd: Config.SentDedupWindow, configuration key
-- imapd_sent_dedup_window) is answered with the filed copy's UID and
-- nothing is stored (store.DeliverOptions.SentWindow); the first such
-- APPEND clears submitted, so a deliberate second APPEND stores a copy.
-- Found through messages_user_msgid (user_id, message_id). Adding a
-- nullable column without a default rewrites nothing.
ALTER TABLE messages ADD COLUMN submitted timestamptz;
