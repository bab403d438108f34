-- Issue 13: the relay no longer holds a transaction (and a row lock) open
-- across its SMTP session with the smart host. A worker claims a row with a
-- lease (locked_until, lease) in one short statement, talks SMTP with no
-- transaction open, and records the result in a second short statement
-- that checks it still holds the lease (server/store/outbound.go). A
-- crashed worker's lease expires and another worker takes the row
-- (at-least-once, as before).
ALTER TABLE outbound_queue ADD COLUMN locked_until timestamptz,
    ADD COLUMN lease bigint;
