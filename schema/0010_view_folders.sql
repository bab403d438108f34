-- Issue 14: a view leaves out the messages that only Trash and Junk hold
-- (RFC 6154 lets \All omit them), unless its definition has a folder term
-- (FOLDER, ONLYFOLDER: server/query/folder.go), which says for itself.
-- uses_folders marks those definitions (as uses_flags marks the ones that
-- read flags); none existed before this migration.
ALTER TABLE mailboxes ADD COLUMN uses_folders boolean NOT NULL DEFAULT false;

-- Existing views (All Mail, Unread, ...) follow the rule from now on: the
-- messages only Trash and Junk hold leave them, with tombstones, so open
-- sessions get EXPUNGE.
DELETE FROM mailbox_messages mm USING mailboxes b
WHERE b.id = mm.mailbox_id AND b.definition IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM mailbox_messages km JOIN mailboxes kb ON kb.id = km.mailbox_id
                  WHERE km.message_id = mm.message_id AND kb.definition IS NULL
                    AND kb.name <> ALL('{Trash,Junk}'::text[]));
