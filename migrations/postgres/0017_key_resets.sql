-- A custodian who had security keys and has none left gets a new one only
-- with the quorum's approval, given like a policy change's: the quorum of
-- the strictest policy the custodian approves under, snapshotted when the
-- reset is proposed. An approved reset lets that custodian register one key
-- (with their TOTP code), once, within an hour.
CREATE TABLE key_resets (
    id TEXT PRIMARY KEY,
    custodian TEXT NOT NULL REFERENCES custodians (name),
    proposer TEXT NOT NULL,
    policy TEXT NOT NULL,
    quorum TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'used')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    approved_at BIGINT,
    closed_at BIGINT
);
CREATE INDEX key_resets_custodian ON key_resets (custodian, state);

CREATE TABLE key_reset_decisions (
    reset_id TEXT NOT NULL REFERENCES key_resets (id),
    custodian TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason TEXT,
    groups TEXT NOT NULL,
    totp_step BIGINT NOT NULL,
    at BIGINT NOT NULL,
    totp_code TEXT,
    webauthn TEXT,
    PRIMARY KEY (reset_id, custodian)
);
