-- The searched text columns hold their text folded by query.Fold (Unicode
-- full case folding and NFKD, server/query/fold.go), so that SEARCH and
-- view definitions match beyond ASCII ("MÜNCHEN" finds "München", "SS"
-- finds "ß") on the same trigram indexes: the compiler folds the value the
-- same way and compares with ILIKE. The folding is Go code, not SQL (the
-- cluster is C locale and need not have ICU), so this migration's SQL only
-- documents the columns; schema.foldTexts, run in the same transaction
-- right after it, folds the rows stored before (schema.go: steps).
COMMENT ON COLUMN messages.subject IS 'decoded Subject, folded (query.Fold); searched, never displayed';
COMMENT ON COLUMN messages.from_addr IS 'decoded From, folded (query.Fold); searched, never displayed';
COMMENT ON COLUMN messages.to_addr IS 'decoded To, folded (query.Fold); searched, never displayed';
COMMENT ON COLUMN messages.cc_addr IS 'decoded Cc, folded (query.Fold); searched, never displayed';
COMMENT ON COLUMN messages.bcc_addr IS 'decoded Bcc, folded (query.Fold); searched, never displayed';
COMMENT ON COLUMN message_texts.header_text IS 'decoded header, one field a line, folded (query.Fold)';
COMMENT ON COLUMN message_texts.body_text IS 'decoded text parts, folded (query.Fold)';
