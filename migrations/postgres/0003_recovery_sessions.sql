-- Online recovery: sessions in which custodians submit their shares to the
-- server, and the TOTP seeds wrapped to the recovery key so that presence
-- can be checked while the key service is down.

-- Each custodian's TOTP seed, also wrapped to the active recovery key (an
-- age ciphertext binding the custodian and enrolment), and that set's id.
ALTER TABLE custodians ADD COLUMN totp_recovery_set TEXT;
ALTER TABLE custodians ADD COLUMN totp_recovery_wrap BYTEA;

CREATE TABLE recovery_sessions (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL REFERENCES requests (id),
    set_id          TEXT NOT NULL REFERENCES recovery_sets (set_id),
    recipient       TEXT NOT NULL,                 -- the session's ephemeral age recipient
    replica         TEXT NOT NULL,                 -- the server process holding its identity
    opened_by       TEXT NOT NULL,
    opened_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('open', 'released', 'superseded')),
    closed_at       BIGINT
);

CREATE INDEX recovery_sessions_request ON recovery_sessions (request_id);

-- Who submitted which share (never the share itself, which lives only in
-- the opening process's memory).
CREATE TABLE recovery_submissions (
    session_id      TEXT NOT NULL REFERENCES recovery_sessions (id),
    idx             BIGINT NOT NULL,
    custodian       TEXT NOT NULL,
    submitted_at    BIGINT NOT NULL,
    -- The custodian's replay guard before this submission: the code must
    -- match a later step.
    prior_step      BIGINT,
    PRIMARY KEY (session_id, idx),
    UNIQUE (session_id, custodian)
);
