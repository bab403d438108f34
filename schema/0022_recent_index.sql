-- A SELECT that continues from the process's last snapshot of a mailbox
-- (server/store/snapcache.go) reads the mailbox's unclaimed \Recent
-- members by themselves: few rows of many, claimed soon after they come.
CREATE INDEX mailbox_messages_recent ON mailbox_messages (mailbox_id) WHERE recent;
