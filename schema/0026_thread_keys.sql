-- Issue 17: THREADID (RFC 8474) agrees with THREAD=REFERENCES (RFC 5256).
--
-- A message's thread keys are its normalized msg-ids (message.ThreadKeys:
-- rfc5256.txt:399-411): its own Message-ID, In-Reply-To and References.
-- Two messages are linked when their keys meet; a delivery gives a new
-- message the least thread of the messages it is linked to (store:
-- thread.go). thread_keys holds, per user and key, the least thread_id of
-- the messages that carried the key: a delivery probes it once per key
-- and writes its own keys, under the user's lock. Rows stay when the
-- messages go (mail linked to expunged mail joins its thread), until the
-- user is deleted: a few dozen bytes a msg-id.
--
-- thread_id is NOT rewritten here: a THREADID once reported must not
-- change ("The server MUST NOT change the THREADID of a message once
-- reported", rfc8474.txt:332), and the stored messages' THREADIDs may have
-- been fetched. The Go step (schema/threadkeys.go) fills thread_keys from
-- the messages stored before, from their stored Message-ID, In-Reply-To
-- and References columns, so that new mail links to them.
CREATE TABLE thread_keys (
    user_id   bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    key       text NOT NULL,
    thread_id bigint NOT NULL,
    PRIMARY KEY (user_id, key)
);
