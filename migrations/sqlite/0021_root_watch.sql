-- The root watch: CloudTrail log files read from S3, the root activity
-- found in them, each matched to a release or a session this service
-- brokered, or left open as a finding until someone acknowledges it.

-- The root sessions this service opened (AssumeRoot), by their key id:
-- CloudTrail names a session's calls by that key.
CREATE TABLE brokered_sessions (
    key_id     TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    -- `release` (a root-session request's) or `posture` (an org sync's).
    purpose    TEXT NOT NULL,
    request_id TEXT,
    opened_by  TEXT NOT NULL,
    opened_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- One row per log prefix (AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/): the
-- last file read there.
CREATE TABLE trail_cursors (
    prefix     TEXT PRIMARY KEY,
    last_key   TEXT NOT NULL,
    -- The delivery time the last file's name carries (ms).
    last_file_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Every file handled, once: a file read again (a lost cursor, a second
-- replica, a repeated notification) is found here and skipped.
CREATE TABLE trail_files (
    file_key   TEXT PRIMARY KEY,
    prefix     TEXT NOT NULL,
    -- `read`, or `rejected` (malformed or foreign; `error` says why).
    status     TEXT NOT NULL CHECK (status IN ('read', 'rejected')),
    events     INTEGER NOT NULL DEFAULT 0,
    root_events INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    file_at    INTEGER,
    read_at    INTEGER NOT NULL
);
CREATE INDEX trail_files_by_prefix ON trail_files (prefix, file_key);

-- One replica reads at a time; the lease ends by itself if it stops.
CREATE TABLE trail_lease (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    holder       TEXT NOT NULL,
    held_until   INTEGER NOT NULL
);

-- Root activity, one row per CloudTrail event (its eventID).
CREATE TABLE root_activity (
    event_id   TEXT PRIMARY KEY,
    file_key   TEXT NOT NULL,
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    event_name TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    -- The release (request id) or brokered session it belongs to.
    request_id TEXT,
    session_key_id TEXT,
    -- The open or acknowledged finding of unmatched activity.
    finding_id TEXT
);

-- Unmatched root activity: one finding per episode (a sign-in, a key, a
-- session, a change), open until acknowledged; a new use of the same key
-- after an acknowledgement opens a new one.
CREATE TABLE root_findings (
    id         TEXT PRIMARY KEY,
    episode    TEXT NOT NULL,
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    -- JSON: what the first event said (principal, source address, MFA…).
    summary    TEXT NOT NULL,
    first_at   INTEGER NOT NULL,
    last_at    INTEGER NOT NULL,
    events     INTEGER NOT NULL DEFAULT 1,
    opened_at  INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    acknowledgement TEXT
);
CREATE UNIQUE INDEX root_findings_open_episode ON root_findings (episode)
    WHERE acknowledged_at IS NULL;
