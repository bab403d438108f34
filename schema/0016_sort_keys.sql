-- SORT and THREAD keys (RFC 5256), computed once at delivery so that a
-- SORT reads short columns instead of parsing headers:
--   base_subject  the base subject (rfc5256.txt:94-132) of Subject,
--                 folded by query.Fold: compared as i;unicode-casemap
--                 (rfc5256.txt:858-861); a sort key, never displayed
--   subject_reply the extraction removed a reply or forward marker
--                 (rfc5256.txt:433-436; THREAD=REFERENCES step 5)
--   from_mbox, to_mbox, cc_mbox
--                 addr-mailbox of the first From, To, Cc address
--                 (rfc5256.txt:256-263, 293-294), folded likewise
-- The extraction is Go code (message.BaseSubject): schema.sortKeys, run in
-- the same transaction right after this SQL, fills the rows stored before
-- from their header (schema.go: steps). Columns with a constant default
-- are added without a table rewrite.
ALTER TABLE messages
    ADD COLUMN base_subject  text NOT NULL DEFAULT '',
    ADD COLUMN subject_reply boolean NOT NULL DEFAULT false,
    ADD COLUMN from_mbox     text NOT NULL DEFAULT '',
    ADD COLUMN to_mbox       text NOT NULL DEFAULT '',
    ADD COLUMN cc_mbox       text NOT NULL DEFAULT '';
