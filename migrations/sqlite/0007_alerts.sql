-- Alerts: one outbox row per (channel, audit event), written in the same
-- transaction as the event; a lease per channel lets one server process
-- deliver a channel's rows, in order, at a time.
CREATE TABLE alert_outbox (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,               -- the audit event it announces
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('slack', 'pagerduty', 'webhook')),
    payload         TEXT NOT NULL,                 -- JSON, without any secret
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (channel, seq)
);

CREATE INDEX alert_outbox_due ON alert_outbox (channel, state, seq);

CREATE TABLE alert_channels (
    name            TEXT PRIMARY KEY,
    lease_owner     TEXT,
    lease_until     INTEGER
);
