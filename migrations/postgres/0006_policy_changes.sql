-- Policies changed at runtime, each change approved by the quorum of the
-- policy it changes. The files in policies/ are version 0; every approved
-- change adds a version, and the latest version is the one in force.
CREATE TABLE policy_versions (
    name            TEXT NOT NULL,
    version         BIGINT NOT NULL,
    body            TEXT NOT NULL,                 -- JSON of the policy
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    change_id       TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE policy_changes (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('update', 'move')),
    policy          TEXT NOT NULL,                 -- whose quorum decides
    base_version    BIGINT NOT NULL,               -- version in force when proposed
    quorum          TEXT NOT NULL,                 -- JSON snapshot of that policy
    proposed        TEXT,                          -- JSON of the new policy (update)
    credential_id   TEXT REFERENCES credentials (id),  -- (move)
    to_policy       TEXT,                          -- (move)
    diff            TEXT NOT NULL,                 -- JSON list of changes, in words
    reason          TEXT NOT NULL,
    proposer        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'denied', 'superseded')),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    decided_at      BIGINT
);

CREATE TABLE policy_change_decisions (
    change_id       TEXT NOT NULL REFERENCES policy_changes (id),
    custodian       TEXT NOT NULL,
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason          TEXT,
    groups          TEXT NOT NULL,
    totp_step       BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    PRIMARY KEY (change_id, custodian)
);
