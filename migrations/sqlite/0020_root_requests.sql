-- no-transaction
-- Root-session requests: a request names either a credential or a member
-- account's root task, so requests.credential_id may be NULL. SQLite cannot
-- drop NOT NULL in place: the table is rebuilt with foreign keys off (they
-- cannot be turned off inside a transaction, hence no-transaction above),
-- in one transaction; the rows are copied as they are, so every reference
-- still holds. Every statement is safe to run twice, should the process
-- stop between the commit and the migration's bookkeeping.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE requests_rebuilt (
    id               TEXT PRIMARY KEY,
    credential_id    TEXT REFERENCES credentials (id),
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
INSERT INTO requests_rebuilt SELECT id, credential_id, credential_name, requester, reason, ticket,
    policy, state, created_at, expires_at, approved_at, release_deadline, released_at,
    released_version, denied_at, denied_by FROM requests;
DROP TABLE requests;
ALTER TABLE requests_rebuilt RENAME TO requests;
CREATE INDEX requests_by_created ON requests (created_at);

-- What a root-session request asks for, exactly as approved (its hash is in
-- the signed request.create event), and how its execution went.
CREATE TABLE IF NOT EXISTS root_requests (
    request_id    TEXT PRIMARY KEY REFERENCES requests (id),
    -- The policy that governs it (its snapshot is the request's).
    policy        TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    task          TEXT NOT NULL,
    duration_secs INTEGER NOT NULL CHECK (duration_secs BETWEEN 1 AND 900),
    -- The bucket or queue URL of an unlock task.
    resource      TEXT,
    delivery      TEXT NOT NULL CHECK (delivery IN ('execute', 'hand_over')),
    tuple_sha256  TEXT NOT NULL,
    -- A release executing the task holds the request until then.
    claimed_until INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    -- JSON: the last attempt's steps, and its result once done.
    progress      TEXT,
    outcome       TEXT
);
COMMIT;
PRAGMA foreign_keys = ON;
