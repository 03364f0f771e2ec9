-- Shamir recovery: the share set (public parts only) and which custodian
-- holds which share. The recovery key itself is never stored.

CREATE TABLE recovery_sets (
    set_id          TEXT PRIMARY KEY,
    threshold       BIGINT NOT NULL,
    share_count     BIGINT NOT NULL,
    recipient       TEXT NOT NULL,                 -- age X25519 recipient of the recovery key
    key_check       TEXT NOT NULL,                 -- SHA-256 check value of the combined key
    state           TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL
);

-- At most one active set.
CREATE UNIQUE INDEX recovery_sets_one_active ON recovery_sets (state) WHERE state = 'active';

CREATE TABLE recovery_shares (
    set_id          TEXT NOT NULL REFERENCES recovery_sets (set_id),
    idx             BIGINT NOT NULL,
    custodian       TEXT NOT NULL,
    age_recipient   TEXT NOT NULL,                 -- the custodian's key the share file is encrypted to
    commitment      TEXT NOT NULL,                 -- SHA-256 commitment to the share
    checked_at      BIGINT,
    PRIMARY KEY (set_id, idx)
);

-- Each data key is also wrapped to the recovery key at deposit (an age
-- ciphertext binding credential id, version and data key), beside a copy of
-- the envelope, so recovery needs neither the key service nor the secret
-- store.
ALTER TABLE credential_versions ADD COLUMN recovery_set TEXT;
ALTER TABLE credential_versions ADD COLUMN recovery_wrap BYTEA;
ALTER TABLE credential_versions ADD COLUMN recovery_envelope BYTEA;
