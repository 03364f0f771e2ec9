-- breakglass schema, SQLite. Times are milliseconds since the Unix epoch.

CREATE TABLE custodians (
    name            TEXT PRIMARY KEY,
    groups          TEXT NOT NULL,                 -- JSON array of group names
    status          TEXT NOT NULL CHECK (status IN ('new', 'pending', 'active')),
    enrollment_id   TEXT,
    totp_envelope   BLOB,                          -- envelope of the TOTP seed
    last_totp_step  INTEGER,                       -- replay guard: only moves forward
    locked_until    INTEGER,
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    enrolled_at     INTEGER
);

CREATE TABLE totp_failures (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    custodian       TEXT NOT NULL REFERENCES custodians (name),
    at              INTEGER NOT NULL
);
CREATE INDEX totp_failures_by_custodian ON totp_failures (custodian, at);

CREATE TABLE credentials (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    policy           TEXT NOT NULL,
    current_version  INTEGER NOT NULL,
    exposed          BOOLEAN NOT NULL DEFAULT FALSE,
    exposed_at       INTEGER,
    last_released_at INTEGER,
    created_at       INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE credential_versions (
    credential_id   TEXT NOT NULL REFERENCES credentials (id),
    version         INTEGER NOT NULL,
    secret_store    TEXT NOT NULL,
    secret_ref      TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    field_names     TEXT NOT NULL,                 -- JSON array; names only, never values
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    PRIMARY KEY (credential_id, version)
);

CREATE TABLE secret_envelopes (
    id              TEXT PRIMARY KEY,
    credential_id   TEXT NOT NULL,
    version         INTEGER NOT NULL,
    envelope        BLOB NOT NULL
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
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    approved_at      INTEGER,
    release_deadline INTEGER,
    released_at      INTEGER,
    released_version INTEGER,
    denied_at        INTEGER,
    denied_by        TEXT
);
CREATE INDEX requests_by_created ON requests (created_at);

CREATE TABLE decisions (
    request_id      TEXT NOT NULL REFERENCES requests (id),
    custodian       TEXT NOT NULL REFERENCES custodians (name),
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason          TEXT,
    groups          TEXT NOT NULL,
    totp_step       INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    PRIMARY KEY (request_id, custodian)            -- a custodian decides once
);

CREATE TABLE audit_events (
    seq             INTEGER PRIMARY KEY,
    ts_ms           INTEGER NOT NULL,
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
    seq             INTEGER NOT NULL,
    hash            TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE revoked_tokens (
    jti             TEXT PRIMARY KEY,
    revoked_at      INTEGER NOT NULL,
    revoked_by      TEXT NOT NULL
);
