-- Issue 18: a running server takes up changed settings without restart.
-- Every change of the configuration table notifies 'decimail_config' with
-- the key (store.ConfigChannel), delivered at COMMIT; each process's one
-- listening connection (store.Notifier) passes it on, and the daemons
-- re-read the settings marked live in store.Settings.
CREATE FUNCTION configuration_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('decimail_config', OLD.key);
    ELSE
        PERFORM pg_notify('decimail_config', NEW.key);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER configuration_notify AFTER INSERT OR UPDATE OR DELETE ON configuration
    FOR EACH ROW EXECUTE FUNCTION configuration_notify();
