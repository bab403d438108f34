-- QUOTA (RFC 9208): a user's usage, kept on the users row by statement
-- triggers on message_flags (one row per stored message, with its size),
-- so GETQUOTA and the limit check read one row instead of summing. A
-- message shown in several mailboxes (folders and views share rows) is
-- counted once; a COPY that really copies (into a folder that already
-- holds the message) stores a new message and counts.
--
-- Limits are per-user settings in the configuration table
-- (quota_storage:<user> in units of 1024 octets, quota_messages:<user>;
-- server/store/settings.go). The insert trigger refuses a statement
-- that leaves the user over a limit with SQLSTATE DQ001 (server/store:
-- ErrOverQuota): every path that stores a message (delivery, APPEND, a
-- COPY that duplicates) is checked where its rows are written, under the
-- user's lock. Usage exactly at the limit is allowed; removals are never
-- refused, so a user over a lowered limit can always delete.
ALTER TABLE users ADD COLUMN used_bytes bigint NOT NULL DEFAULT 0,
    ADD COLUMN used_messages bigint NOT NULL DEFAULT 0;
UPDATE users u SET used_bytes = c.b, used_messages = c.n
    FROM (SELECT user_id, sum(size) AS b, count(*) AS n FROM message_flags GROUP BY user_id) c
    WHERE u.id = c.user_id;

CREATE FUNCTION quota_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN
        WITH d AS (SELECT user_id, sum(size) AS b, count(*) AS n FROM newrows GROUP BY user_id)
        UPDATE users u SET used_bytes = u.used_bytes + d.b, used_messages = u.used_messages + d.n
        FROM d WHERE u.id = d.user_id
        RETURNING u.name, u.used_bytes, u.used_messages
    LOOP
        IF r.used_bytes > 1024 * coalesce((SELECT value::bigint FROM configuration WHERE key = 'quota_storage:' || r.name), r.used_bytes)
           OR r.used_messages > coalesce((SELECT value::bigint FROM configuration WHERE key = 'quota_messages:' || r.name), r.used_messages) THEN
            RAISE EXCEPTION 'over quota' USING ERRCODE = 'DQ001';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION quota_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users u SET used_bytes = u.used_bytes - d.b, used_messages = u.used_messages - d.n
    FROM (SELECT user_id, sum(size) AS b, count(*) AS n FROM oldrows GROUP BY user_id) d
    WHERE u.id = d.user_id;
    RETURN NULL;
END $$;

CREATE TRIGGER quota_insert AFTER INSERT ON message_flags
    REFERENCING NEW TABLE AS newrows FOR EACH STATEMENT EXECUTE FUNCTION quota_added();
CREATE TRIGGER quota_delete AFTER DELETE ON message_flags
    REFERENCING OLD TABLE AS oldrows FOR EACH STATEMENT EXECUTE FUNCTION quota_removed();

-- PREVIEW (RFC 8970): the preview text of a message, computed at delivery
-- (message.Parsed.Preview); '' when the message has no text to preview.
-- NULL for messages stored before this migration: a FETCH PREVIEW makes
-- theirs from the message (and PREVIEW (LAZY) answers NIL for them).
ALTER TABLE messages ADD COLUMN preview text;
