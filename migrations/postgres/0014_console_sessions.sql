-- Sessions of the web console. The cookie holds an opaque random value;
-- the database holds only its SHA-256, so a reader of the database cannot
-- sign in as anyone. Any replica serves a session. A session ends at the
-- first of: its idle deadline (moved forward on use, never past the
-- absolute one), its absolute deadline, sign-out, revocation.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    -- The identity as authenticated at sign-in (JSON: roles, groups, issuer).
    identity TEXT NOT NULL,
    -- How the person signed in: 'oidc', 'link' or 'token'.
    method TEXT NOT NULL CHECK (method IN ('oidc', 'link', 'token')),
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    idle_until BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    -- Who ended it: the person (sign-out) or an admin (revocation).
    ended_by TEXT,
    CHECK (idle_until <= expires_at)
);
CREATE INDEX console_sessions_subject ON console_sessions (subject);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
