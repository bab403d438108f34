-- SCRAM-SHA-256 (RFC 5802, RFC 7677) verifiers next to the bcrypt hash
-- (server/store/scram.go). Never the password: the salt, the iteration
-- count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
-- HMAC(SaltedPassword, "Server Key") (RFC 5802 §3). NULL for an account
-- whose password was set before this migration: its next successful PLAIN
-- or LOGIN adds the verifier, the cleartext being known then.
ALTER TABLE users
    ADD COLUMN scram_salt       bytea,
    ADD COLUMN scram_iters      integer,
    ADD COLUMN scram_stored_key bytea,
    ADD COLUMN scram_server_key bytea,
    ADD CONSTRAINT users_scram_check CHECK (
        (scram_salt IS NULL AND scram_iters IS NULL AND scram_stored_key IS NULL AND scram_server_key IS NULL)
        OR (length(scram_salt) >= 16 AND scram_iters >= 4096
            AND length(scram_stored_key) = 32 AND length(scram_server_key) = 32));

-- The secret from which the store derives the fake salt it answers for an
-- unknown user or one without a verifier (RFC 5802 §5.1: a server may
-- "generate a salt and iteration count ... deterministically" so that
-- SCRAM does not tell which users exist). One per database, so that every
-- server process, and a restarted one, answers the same fake salt.
CREATE TABLE scram_secret (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret bytea NOT NULL
);
INSERT INTO scram_secret (secret)
    VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
