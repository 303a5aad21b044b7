-- The key-encryption keys deposits are wrapped with, when they live in an
-- HSM. One is current (new deposits are wrapped with it); a retiring one
-- still wraps deposits that a rotation has not re-wrapped yet; a retired one
-- wraps none. With no row, the file keyring's own current key wraps.
CREATE TABLE kek_versions (
    kek_id     text PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('current', 'retiring', 'retired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
CREATE UNIQUE INDEX kek_versions_one_current ON kek_versions ((true)) WHERE state = 'current';
CREATE INDEX deposits_kek_idx ON deposits (kek_id);
