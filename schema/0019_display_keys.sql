-- SORT=DISPLAY keys (RFC 5957), computed once at delivery as schema 0016's
-- SORT keys are: the first From and To address's display-name (RFC 2047
-- decoded) or, without one, its addr-spec, folded by query.Fold. The rows
-- stored before are filled from their header by a Go step
-- (schema.displayKeys). Constant defaults: no table rewrite.
ALTER TABLE messages
    ADD COLUMN from_display text NOT NULL DEFAULT '',
    ADD COLUMN to_display   text NOT NULL DEFAULT '';
