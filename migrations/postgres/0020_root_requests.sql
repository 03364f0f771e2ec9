-- Root-session requests: a request names either a credential or a member
-- account's root task, so requests.credential_id may be NULL.
ALTER TABLE requests ALTER COLUMN credential_id DROP NOT NULL;

-- What a root-session request asks for, exactly as approved (its hash is in
-- the signed request.create event), and how its execution went.
CREATE TABLE root_requests (
    request_id    TEXT PRIMARY KEY REFERENCES requests (id),
    -- The policy that governs it (its snapshot is the request's).
    policy        TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    task          TEXT NOT NULL,
    duration_secs BIGINT NOT NULL CHECK (duration_secs BETWEEN 1 AND 900),
    -- The bucket or queue URL of an unlock task.
    resource      TEXT,
    delivery      TEXT NOT NULL CHECK (delivery IN ('execute', 'hand_over')),
    tuple_sha256  TEXT NOT NULL,
    -- A release executing the task holds the request until then.
    claimed_until BIGINT NOT NULL DEFAULT 0,
    attempts      BIGINT NOT NULL DEFAULT 0,
    -- JSON: the last attempt's steps, and its result once done.
    progress      TEXT,
    outcome       TEXT
);
