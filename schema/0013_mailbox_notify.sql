-- Issue 15: sessions skip reading the store when their mailbox was not
-- signalled (server/store/notify.go). Membership changes notify already
-- (mm_inserted, mm_updated, mm_expunged, flags_changed); a mailbox that is
-- deleted or whose UIDVALIDITY changes (a view redefined) while it holds no
-- message changes no membership, so it notifies here, for the sessions of
-- other processes that have it selected (they answer BYE).
-- Row triggers: a statement trigger with a column list cannot have
-- transition tables; both are rare statements of few rows.
CREATE FUNCTION mailbox_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('decimail', OLD.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_delete_notify AFTER DELETE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION mailbox_gone();
CREATE TRIGGER mailbox_uidvalidity_notify AFTER UPDATE OF uidvalidity ON mailboxes
    FOR EACH ROW WHEN (OLD.uidvalidity IS DISTINCT FROM NEW.uidvalidity) EXECUTE FUNCTION mailbox_gone();
