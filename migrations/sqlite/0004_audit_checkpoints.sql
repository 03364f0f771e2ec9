-- Signed checkpoints of the audit chain: the service's audit key (Ed25519,
-- kept outside the database) signs (seq, hash, time) of the chain head, so
-- a rewrite of the whole chain or a truncated tail is caught by anyone who
-- holds the public key.
CREATE TABLE audit_checkpoints (
    seq             INTEGER PRIMARY KEY,
    hash            TEXT NOT NULL,
    ts_ms           INTEGER NOT NULL,
    kid             TEXT NOT NULL,
    signature       TEXT NOT NULL                  -- base64 Ed25519 signature
);

CREATE INDEX audit_events_ts ON audit_events (ts_ms);
