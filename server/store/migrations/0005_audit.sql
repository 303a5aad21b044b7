-- The database's audit chain: every change to this database is recorded
-- here in the transaction that makes it (see package audit). Each record
-- carries the hash of the one before it; audit_head is the chain's end,
-- whose row lock orders the transactions that extend it.
CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    source    text NOT NULL,
    action    text NOT NULL,
    object    text NOT NULL,
    outcome   text NOT NULL,
    details   text NOT NULL,             -- a JSON object, stored as it was hashed
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL
);

CREATE TABLE audit_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

ALTER TABLE audit_log SET (vacuum_truncate = off);
ALTER TABLE audit_head SET (vacuum_truncate = off);

