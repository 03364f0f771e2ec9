-- Continuous shipping of the audit log to a SIEM: the log is its own
-- outbox; a cursor per sink records what was delivered, and a lease lets
-- one server process at a time deliver (no lock is held across the call).
CREATE TABLE audit_sink_cursor (
    sink                TEXT PRIMARY KEY,
    events_through      INTEGER NOT NULL DEFAULT 0,
    checkpoints_through INTEGER NOT NULL DEFAULT 0,
    lease_owner         TEXT,
    lease_until         INTEGER,
    attempts            INTEGER NOT NULL DEFAULT 0,     -- failed attempts since the last delivery
    next_attempt_at     INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    last_attempt_at     INTEGER,
    delivered_at        INTEGER
);

-- Retention: events up to `seq` were archived and pruned; the first event
-- kept links to `hash`, which a signed checkpoint vouches for.
CREATE TABLE audit_base (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    seq             INTEGER NOT NULL,
    hash            TEXT NOT NULL
);
