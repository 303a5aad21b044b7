-- Organizations, their clients, the clients' deposits, and the nonces of
-- signed requests seen recently (replay protection).
CREATE TABLE organizations (
    uuid        text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    contacts    text[] NOT NULL DEFAULT '{}',
    auth_hash   text NOT NULL,            -- '' = no code required; else argon2id hash
    creation    timestamptz NOT NULL DEFAULT now(),
    expiration  timestamptz NOT NULL DEFAULT '9999-12-31T23:59:59Z',
    key_info    jsonb,
    state       integer NOT NULL DEFAULT 0
);

CREATE TABLE clients (
    fingerprint   text PRIMARY KEY CHECK (fingerprint ~ '^[0-9A-F]{40}$'),
    org_uuid      text NOT NULL REFERENCES organizations(uuid),
    key_id        text NOT NULL,          -- e.g. 4096R/<fingerprint>
    public_key    bytea NOT NULL,         -- armored OpenPGP public key
    state         text NOT NULL CHECK (state IN ('pending', 'active', 'disabled')),
    registered_at timestamptz NOT NULL DEFAULT now(),
    source_addr   text NOT NULL DEFAULT ''
);
CREATE INDEX clients_org_idx ON clients(org_uuid);

CREATE TABLE deposits (
    owner       text NOT NULL REFERENCES clients(fingerprint),
    name        text NOT NULL,
    kek_id      text NOT NULL,
    wrapped_key bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    size        integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);

CREATE TABLE used_nonces (
    fingerprint text NOT NULL,
    nonce       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (fingerprint, nonce)
);
CREATE INDEX used_nonces_expiry_idx ON used_nonces(expires_at);
