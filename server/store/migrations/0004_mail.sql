-- Mail waits here until the MTA has taken it: an operation that causes mail
-- only queues it, so an MTA that is down never fails or loses it.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,        -- plain text; signed and encrypted when sent, wiped once sent
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    sent_at         timestamptz
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Links that let an organization's contact register an OpenPGP key: only
-- a hash of each link's secret is kept; a link works once, until it expires.
CREATE TABLE contact_links (
    token_hash text PRIMARY KEY,
    org_uuid   text NOT NULL REFERENCES organizations(uuid),
    contact    text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- Contacts' registered OpenPGP keys: mail to them is encrypted to these.
CREATE TABLE contact_keys (
    org_uuid      text NOT NULL REFERENCES organizations(uuid),
    contact       text NOT NULL,
    fingerprint   text NOT NULL,
    public_key    bytea NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_uuid, contact)
);
