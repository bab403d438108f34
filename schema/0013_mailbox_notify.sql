-- Issue 15: sessions skip reading the store when their mailbox was not
-- signalled, and STATUS answers from a cache while its mailbox was not
-- (server/store/notify.go, statuscache.go). Membership changes notify
-- already (mm_inserted, mm_updated, mm_expunged, flags_changed); a mailbox
-- that is deleted, renamed or whose UIDVALIDITY changes (a view redefined)
-- while it holds no message changes no membership, so it notifies here,
-- for the other processes (their sessions answer BYE; their cached STATUS
-- of the old name goes).
-- Row triggers: a statement trigger with a column list cannot have
-- transition tables; both are rare statements of few rows.
CREATE FUNCTION mailbox_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('decimail', OLD.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_delete_notify AFTER DELETE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION mailbox_gone();
CREATE TRIGGER mailbox_uidvalidity_notify AFTER UPDATE OF uidvalidity, name ON mailboxes
    FOR EACH ROW WHEN (OLD.uidvalidity IS DISTINCT FROM NEW.uidvalidity OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION mailbox_gone();
