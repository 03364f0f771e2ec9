-- breakglass schema, PostgreSQL. Times are milliseconds since the Unix epoch.

CREATE TABLE custodians (
    name            TEXT PRIMARY KEY,
    groups          TEXT NOT NULL,                 -- JSON array of group names
    status          TEXT NOT NULL CHECK (status IN ('new', 'pending', 'active')),
    enrollment_id   TEXT,
    totp_envelope   BYTEA,                          -- envelope of the TOTP seed
    last_totp_step  BIGINT,                       -- replay guard: only moves forward
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    enrolled_at     BIGINT
);

CREATE TABLE totp_failures (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    custodian       TEXT NOT NULL REFERENCES custodians (name),
    at              BIGINT NOT NULL
);
CREATE INDEX totp_failures_by_custodian ON totp_failures (custodian, at);

CREATE TABLE credentials (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    policy           TEXT NOT NULL,
    current_version  BIGINT NOT NULL,
    exposed          BOOLEAN NOT NULL DEFAULT FALSE,
    exposed_at       BIGINT,
    last_released_at BIGINT,
    created_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE credential_versions (
    credential_id   TEXT NOT NULL REFERENCES credentials (id),
    version         BIGINT NOT NULL,
    secret_store    TEXT NOT NULL,
    secret_ref      TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    field_names     TEXT NOT NULL,                 -- JSON array; names only, never values
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    PRIMARY KEY (credential_id, version)
);

CREATE TABLE secret_envelopes (
    id              TEXT PRIMARY KEY,
    credential_id   TEXT NOT NULL,
    version         BIGINT NOT NULL,
    envelope        BYTEA NOT NULL
);

CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    credential_id    TEXT NOT NULL REFERENCES credentials (id),
    credential_name  TEXT NOT NULL,
    requester        TEXT NOT NULL,
    reason           TEXT NOT NULL,
    ticket           TEXT,
    policy           TEXT NOT NULL,                -- JSON snapshot of the policy at request time
    state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'released')),
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    approved_at      BIGINT,
    release_deadline BIGINT,
    released_at      BIGINT,
    released_version BIGINT,
    denied_at        BIGINT,
    denied_by        TEXT
);
CREATE INDEX requests_by_created ON requests (created_at);

CREATE TABLE decisions (
    request_id      TEXT NOT NULL REFERENCES requests (id),
    custodian       TEXT NOT NULL REFERENCES custodians (name),
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason          TEXT,
    groups          TEXT NOT NULL,
    totp_step       BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    PRIMARY KEY (request_id, custodian)            -- a custodian decides once
);

CREATE TABLE audit_events (
    seq             BIGINT PRIMARY KEY,
    ts_ms           BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    code            TEXT,
    details         TEXT NOT NULL,
    prev_hash       TEXT NOT NULL UNIQUE,          -- one linear chain: no two events share a parent
    hash            TEXT NOT NULL UNIQUE
);

CREATE TABLE audit_head (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    seq             BIGINT NOT NULL,
    hash            TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE revoked_tokens (
    jti             TEXT PRIMARY KEY,
    revoked_at      BIGINT NOT NULL,
    revoked_by      TEXT NOT NULL
);
