-- Decimail schema, version 1. See DESIGN.md "Data model".
--
-- Invariants kept by server/store (all in one transaction per operation):
--  * a mailbox's UIDs are strictly ascending and never reused: they come from
--    mailboxes.uidnext, which only grows; a message entering a query mailbox
--    late gets a fresh UID;
--  * every change a session must see bumps a modseq from modseq_seq: membership
--    rows carry the modseq of their last change, removals leave a tombstone in
--    mailbox_expunges; sessions catch up with "modseq > my cursor";
--  * triggers pg_notify('decimail', '<mailbox id>') for every membership
--    change, delivered at COMMIT (a notification is only a hint).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SEQUENCE modseq_seq;
-- UIDVALIDITY values: unique across all mailboxes and all time, 32-bit.
CREATE SEQUENCE uidvalidity_seq MINVALUE 1 MAXVALUE 4294967295;
SELECT setval('uidvalidity_seq', extract(epoch FROM now())::bigint);

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Exact addresses ("alice@example.com") and per-domain catch-alls ("@example.com").
CREATE TABLE addresses (
    address text PRIMARY KEY CHECK (address = lower(address) AND address LIKE '%@%'),
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE
);
CREATE INDEX addresses_user ON addresses (user_id);

CREATE TABLE messages (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    internal_date timestamptz NOT NULL,
    internal_tz   integer NOT NULL DEFAULT 0,      -- zone offset (seconds east) the date was given in
    internal_day  date NOT NULL,                   -- date part in that zone (SEARCH SINCE/BEFORE/ON)
    size          integer NOT NULL,
    header        bytea NOT NULL,                  -- header section incl. the blank line
    body          bytea NOT NULL,                  -- everything after it
    envelope      bytea NOT NULL,                  -- precomputed IMAP ENVELOPE
    bodystructure bytea NOT NULL,                  -- precomputed extended BODYSTRUCTURE
    body_simple   bytea NOT NULL,                  -- precomputed non-extended BODY
    sent_date     timestamptz,
    sent_day      date,                            -- date of Date: in its own zone (SENT*)
    subject       text NOT NULL DEFAULT '',
    from_addr     text NOT NULL DEFAULT '',
    to_addr       text NOT NULL DEFAULT '',
    cc_addr       text NOT NULL DEFAULT '',
    bcc_addr      text NOT NULL DEFAULT '',
    reply_to      text NOT NULL DEFAULT '',
    from_key      text NOT NULL DEFAULT '',        -- first From addr-spec, lowercased
    message_id    text NOT NULL DEFAULT '',
    in_reply_to   text NOT NULL DEFAULT '',
    refs          text[] NOT NULL DEFAULT '{}',
    thread_id     bigint NOT NULL,
    header_text   text NOT NULL DEFAULT '',        -- decoded, unfolded, one field a line
    body_text     text NOT NULL DEFAULT '',        -- decoded text parts
    broken        boolean NOT NULL DEFAULT false,  -- stored byte-exact although malformed
    delivered_to  text NOT NULL DEFAULT '',        -- envelope recipient at delivery
    spool_path    text NOT NULL DEFAULT ''
);
-- lz4 compresses the TOASTed text several times faster than the default
-- pglz (delivery is CPU-bound); a server built without lz4 keeps pglz.
DO $$ BEGIN
    ALTER TABLE messages ALTER COLUMN header SET COMPRESSION lz4, ALTER COLUMN body SET COMPRESSION lz4,
        ALTER COLUMN header_text SET COMPRESSION lz4, ALTER COLUMN body_text SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
CREATE INDEX messages_user_internal ON messages (user_id, internal_day);
CREATE INDEX messages_user_sent ON messages (user_id, sent_day);
CREATE INDEX messages_user_size ON messages (user_id, size);
CREATE INDEX messages_user_msgid ON messages (user_id, message_id);
CREATE INDEX messages_subject_trgm ON messages USING gin (subject gin_trgm_ops);
CREATE INDEX messages_from_trgm ON messages USING gin (from_addr gin_trgm_ops);
CREATE INDEX messages_to_trgm ON messages USING gin (to_addr gin_trgm_ops);
CREATE INDEX messages_cc_trgm ON messages USING gin (cc_addr gin_trgm_ops);
-- The planner costs ILIKE and ~* at one operator per row, whatever the text:
-- on body_text (TOASTed, kilobytes) a seq scan then looks cheaper than the
-- trigram indexes, and SEARCH TEXT took 1.2 s instead of 28 ms on a freshly
-- analysed 10k mailbox. Their real cost is a detoast and a scan of the text;
-- tell the planner (needs superuser: without it, some searches seq-scan).
DO $$ BEGIN
    ALTER FUNCTION texticlike(text, text) COST 1000;
    ALTER FUNCTION texticregexeq(text, text) COST 1000;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'decimail: not superuser, ILIKE keeps its default planner cost';
END $$;
-- The trigram indexes keep the default pending list (4 MB): a 32 MB list
-- made a burst of deliveries 25% faster but every TEXT search scan the
-- unmerged entries (SEARCH TEXT after loading 10k messages: 10 ms -> 890 ms).
CREATE INDEX messages_header_trgm ON messages USING gin (header_text gin_trgm_ops);
CREATE INDEX messages_body_trgm ON messages USING gin (body_text gin_trgm_ops);

-- Flags live apart from the (wide, trigram-indexed) message row: a STORE
-- updates only this narrow table, whose single index lets updates be HOT.
-- Updating flags in messages re-inserted every trigram of the message into
-- the GIN indexes (3x slower STORE, measured).
--
-- A flag change does not touch mailbox_messages (re-indexing those rows
-- dominated STORE): sessions find changed flags through message_flags'
-- own modseq, by user, and a trigger notifies every mailbox showing them.
CREATE TABLE message_flags (
    message_id bigint PRIMARY KEY REFERENCES messages ON DELETE CASCADE,
    user_id    bigint NOT NULL,
    size       integer NOT NULL,                  -- = messages.size, for STATUS without the wide rows
    internal_day date NOT NULL,                   -- = messages.internal_day: SEARCH UNSEEN SINCE d LARGER n
                                                  -- reads only this narrow table (measured 8.8 ms with the wide rows)
    seen       boolean NOT NULL DEFAULT false,
    answered   boolean NOT NULL DEFAULT false,
    flagged    boolean NOT NULL DEFAULT false,
    deleted    boolean NOT NULL DEFAULT false,
    draft      boolean NOT NULL DEFAULT false,
    keywords   text[] NOT NULL DEFAULT '{}',
    modseq     bigint NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX message_flags_user_modseq ON message_flags (user_id, modseq);

CREATE TABLE mailboxes (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name        text NOT NULL,                     -- UTF-8, hierarchy delimiter '/'
    definition  text,                              -- NULL: folder; else a SEARCH program
    uses_flags  boolean NOT NULL DEFAULT false,    -- definition depends on flags
    uidvalidity bigint NOT NULL DEFAULT nextval('uidvalidity_seq'),
    uidnext     bigint NOT NULL DEFAULT 1,
    special_use text,                              -- RFC 6154 attribute, e.g. '\Sent'
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- STATUS counters, kept by the statement triggers below from the
    -- transition tables (one grouped UPDATE per statement, never per row),
    -- so STATUS and LIST-STATUS read one row instead of counting members.
    messages       integer NOT NULL DEFAULT 0,
    recent         integer NOT NULL DEFAULT 0,
    unseen         integer NOT NULL DEFAULT 0,
    size           bigint  NOT NULL DEFAULT 0,
    highest_modseq bigint  NOT NULL DEFAULT 0,     -- memberships, their flags, tombstones
    UNIQUE (user_id, name)
);

-- Subscriptions are by name (RFC 3501 §6.3.6: a name may be subscribed whether
-- or not a mailbox of that name exists), hence not a mailboxes column.
CREATE TABLE subscriptions (
    user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    name    text NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- Memberships and tombstones have no foreign keys: an RI check per inserted
-- row takes a FOR KEY SHARE lock on the referenced (wide) message row and the
-- mailbox row, which doubled the cost of filling a view and of removals'
-- tombstones (measured). The parents' delete triggers (mailboxes_deleted,
-- messages_deleted) remove what pointed at them, and only server/store inserts.
CREATE TABLE mailbox_messages (
    mailbox_id bigint NOT NULL,
    uid        bigint NOT NULL,
    message_id bigint NOT NULL,
    modseq     bigint NOT NULL,
    recent     boolean NOT NULL DEFAULT true,     -- not yet claimed by a session (\Recent)
    PRIMARY KEY (mailbox_id, uid),
    UNIQUE (mailbox_id, message_id)
);
CREATE INDEX mailbox_messages_message ON mailbox_messages (message_id);
CREATE INDEX mailbox_messages_modseq ON mailbox_messages (mailbox_id, modseq);

-- Tombstones of removed memberships, so sessions learn of EXPUNGEs by modseq.
-- One row per mailbox per removing statement, its UIDs in an array: a +\Seen
-- on 3,000 messages takes them out of Unread (and of every "UNSEEN ..."
-- view) with a handful of rows instead of a row and two index entries per
-- UID. A (mailbox, uid) is removed at most once: UIDs are never reused, and a
-- redefinition (UIDs restart) deletes the mailbox's tombstones.
CREATE TABLE mailbox_expunges (
    mailbox_id bigint NOT NULL,
    modseq     bigint NOT NULL,
    uids       bigint[] NOT NULL                  -- ascending
);
CREATE INDEX mailbox_expunges_modseq ON mailbox_expunges (mailbox_id, modseq);

CREATE TABLE configuration (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Written when a message row is deleted; the delete daemon removes its spool file.
CREATE TABLE delete_log (
    id         bigserial PRIMARY KEY,
    message_id bigint NOT NULL,
    user_id    bigint NOT NULL,
    spool_path text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    done_at    timestamptz
);
CREATE INDEX delete_log_pending ON delete_log (deleted_at) WHERE done_at IS NULL;

-- Outgoing per-correspondent addresses (the original's auto@domain feature).
CREATE TABLE auto_users (
    address  text PRIMARY KEY CHECK (address = lower(address)),  -- e.g. auto@example.com
    user_id  bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    template text NOT NULL                                         -- e.g. '%s@example.com', %s = random token
);
CREATE TABLE explicit_addrs (
    auto_address  text NOT NULL REFERENCES auto_users ON DELETE CASCADE,
    correspondent text NOT NULL CHECK (correspondent = lower(correspondent)),
    address       text NOT NULL,
    PRIMARY KEY (auto_address, correspondent)
);
CREATE TABLE random_addrs (
    auto_address  text NOT NULL REFERENCES auto_users ON DELETE CASCADE,
    correspondent text NOT NULL CHECK (correspondent = lower(correspondent)),
    address       text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (auto_address, correspondent)
);
CREATE VIEW custom_addrs AS
    SELECT auto_address, correspondent, address, true AS explicit FROM explicit_addrs
    UNION ALL
    SELECT r.auto_address, r.correspondent, r.address, false FROM random_addrs r
    WHERE NOT EXISTS (SELECT 1 FROM explicit_addrs e
                      WHERE e.auto_address = r.auto_address AND e.correspondent = r.correspondent);

CREATE TABLE outbound_queue (
    id           bigserial PRIMARY KEY,
    user_id      bigint REFERENCES users ON DELETE SET NULL,
    mail_from    text NOT NULL,
    rcpt_to      text[] NOT NULL,
    data         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    next_attempt timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text NOT NULL DEFAULT ''
);
CREATE INDEX outbound_queue_next ON outbound_queue (next_attempt);

-- decimail_check(ok, msg) is true, or raises serialization_failure: a
-- statement's precondition (checked under the user's lock) failed, and the
-- caller starts over (server/store retries 40001).
CREATE FUNCTION decimail_check(ok boolean, msg text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION '%', msg USING ERRCODE = '40001';
    END IF;
    RETURN true;
END $$;

-- Notification, tombstone and counter triggers (statement level: one pass
-- per statement over its transition table).
--
-- Counters need the flags row of each member. Our code removes memberships
-- before the messages they point to; if a removal finds the flags row gone
-- (an ON DELETE CASCADE from messages, where message_flags may go first), the
-- mailbox is recounted from scratch instead.
CREATE FUNCTION mailbox_recount(ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE mailboxes b SET messages = c.n, recent = c.r, unseen = c.u, size = c.sz,
        highest_modseq = greatest(b.highest_modseq, c.hm)
    FROM (SELECT x.id, count(mm.uid) AS n, count(*) FILTER (WHERE mm.recent) AS r,
                 count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                 coalesce(max(greatest(mm.modseq, f.modseq)), 0) AS hm
          FROM unnest(ids) x(id)
          LEFT JOIN mailbox_messages mm ON mm.mailbox_id = x.id
          LEFT JOIN message_flags f ON f.message_id = mm.message_id
          GROUP BY x.id) c
    WHERE b.id = c.id
$$;

CREATE FUNCTION mm_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE miss bigint[];
BEGIN
    WITH d AS (SELECT n.mailbox_id, count(*) AS n, count(*) FILTER (WHERE n.recent) AS r,
                      count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                      max(greatest(n.modseq, f.modseq)) AS hm,
                      count(*) FILTER (WHERE f.message_id IS NULL) AS missing
               FROM newrows n LEFT JOIN message_flags f ON f.message_id = n.message_id
               GROUP BY n.mailbox_id),
         up AS (UPDATE mailboxes b SET messages = b.messages + d.n, recent = b.recent + d.r,
                    unseen = b.unseen + d.u, size = b.size + d.sz, highest_modseq = greatest(b.highest_modseq, d.hm)
                FROM d WHERE b.id = d.mailbox_id RETURNING b.id, d.missing)
    SELECT array_agg(id) FILTER (WHERE missing > 0) INTO miss FROM up;
    IF miss IS NOT NULL THEN PERFORM mailbox_recount(miss); END IF;
    PERFORM pg_notify('decimail', d.mailbox_id::text) FROM (SELECT DISTINCT mailbox_id FROM newrows) d;
    RETURN NULL;
END $$;

-- Only recent (and modseq) change in place.
CREATE FUNCTION mm_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes b SET recent = b.recent + d.dr, highest_modseq = greatest(b.highest_modseq, d.hm)
    FROM (SELECT mailbox_id, sum(dr) AS dr, max(hm) AS hm FROM (
              SELECT mailbox_id, recent::int AS dr, modseq AS hm FROM newrows
              UNION ALL SELECT mailbox_id, -(recent::int), 0 FROM oldrows) x
          GROUP BY mailbox_id) d
    WHERE b.id = d.mailbox_id;
    PERFORM pg_notify('decimail', d.mailbox_id::text) FROM (SELECT DISTINCT mailbox_id FROM newrows) d;
    RETURN NULL;
END $$;

CREATE FUNCTION mm_expunged() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE miss bigint[];
BEGIN
    WITH tm AS (INSERT INTO mailbox_expunges (mailbox_id, modseq, uids)
                    SELECT o.mailbox_id, nextval('modseq_seq'), array_agg(o.uid ORDER BY o.uid) FROM oldrows o
                    WHERE EXISTS (SELECT 1 FROM mailboxes b WHERE b.id = o.mailbox_id)
                    GROUP BY o.mailbox_id
                    RETURNING mailbox_id, modseq AS hm),
         d AS (SELECT o.mailbox_id, count(*) AS n, count(*) FILTER (WHERE o.recent) AS r,
                      count(*) FILTER (WHERE NOT f.seen) AS u, coalesce(sum(f.size), 0) AS sz,
                      count(*) FILTER (WHERE f.message_id IS NULL) AS missing
               FROM oldrows o LEFT JOIN message_flags f ON f.message_id = o.message_id
               GROUP BY o.mailbox_id),
         up AS (UPDATE mailboxes b SET messages = b.messages - d.n, recent = b.recent - d.r,
                    unseen = b.unseen - d.u, size = b.size - d.sz,
                    highest_modseq = greatest(b.highest_modseq, coalesce(tm.hm, 0))
                FROM d LEFT JOIN tm ON tm.mailbox_id = d.mailbox_id
                WHERE b.id = d.mailbox_id RETURNING b.id, d.missing)
    SELECT array_agg(id) FILTER (WHERE missing > 0) INTO miss FROM up;
    IF miss IS NOT NULL THEN PERFORM mailbox_recount(miss); END IF;
    PERFORM pg_notify('decimail', d.mailbox_id::text) FROM (SELECT DISTINCT mailbox_id FROM oldrows) d;
    RETURN NULL;
END $$;

CREATE TRIGGER mm_insert AFTER INSERT ON mailbox_messages
    REFERENCING NEW TABLE AS newrows FOR EACH STATEMENT EXECUTE FUNCTION mm_inserted();
CREATE TRIGGER mm_update AFTER UPDATE ON mailbox_messages
    REFERENCING NEW TABLE AS newrows OLD TABLE AS oldrows FOR EACH STATEMENT EXECUTE FUNCTION mm_updated();
CREATE TRIGGER mm_delete AFTER DELETE ON mailbox_messages
    REFERENCING OLD TABLE AS oldrows FOR EACH STATEMENT EXECUTE FUNCTION mm_expunged();

-- A flag change: \Seen moves the unseen counter of every mailbox showing the
-- message, the new modseq raises HIGHESTMODSEQ, and those mailboxes are notified.
CREATE FUNCTION flags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint;
BEGIN
    WITH d AS (SELECT mm.mailbox_id, sum(o.seen::int - n.seen::int) AS du, max(n.modseq) AS hm
               FROM newrows n JOIN oldrows o ON o.message_id = n.message_id
               JOIN mailbox_messages mm ON mm.message_id = n.message_id
               GROUP BY mm.mailbox_id),
         up AS (UPDATE mailboxes b SET unseen = b.unseen + d.du, highest_modseq = greatest(b.highest_modseq, d.hm)
                FROM d WHERE b.id = d.mailbox_id RETURNING b.id)
    SELECT count(pg_notify('decimail', id::text)) INTO k FROM up;
    RETURN NULL;
END $$;
CREATE TRIGGER flags_update AFTER UPDATE ON message_flags
    REFERENCING NEW TABLE AS newrows OLD TABLE AS oldrows FOR EACH STATEMENT EXECUTE FUNCTION flags_changed();

CREATE FUNCTION messages_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mailbox_messages WHERE message_id IN (SELECT id FROM oldrows);
    INSERT INTO delete_log (message_id, user_id, spool_path)
        SELECT id, user_id, spool_path FROM oldrows;
    PERFORM pg_notify('decimail_delete', '');
    RETURN NULL;
END $$;
CREATE TRIGGER messages_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS oldrows FOR EACH STATEMENT EXECUTE FUNCTION messages_deleted();

CREATE FUNCTION mailboxes_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mailbox_messages WHERE mailbox_id IN (SELECT id FROM oldrows);
    DELETE FROM mailbox_expunges WHERE mailbox_id IN (SELECT id FROM oldrows);
    RETURN NULL;
END $$;
CREATE TRIGGER mailboxes_delete AFTER DELETE ON mailboxes
    REFERENCING OLD TABLE AS oldrows FOR EACH STATEMENT EXECUTE FUNCTION mailboxes_deleted();
