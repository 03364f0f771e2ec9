-- AWS Organizations: the organisation as the last sync saw it (one row),
-- and its accounts with their root posture. (The service keys of 0018 are
-- also re-sealed by `keys rewrap` since this version: same keys, the
-- envelope's data key wrapped again.)
CREATE TABLE org_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    organization_id TEXT NOT NULL,
    management_account_id TEXT NOT NULL,
    feature_set TEXT NOT NULL,
    trusted_access BOOLEAN NOT NULL DEFAULT FALSE,
    root_credentials_management BOOLEAN NOT NULL DEFAULT FALSE,
    root_sessions BOOLEAN NOT NULL DEFAULT FALSE,
    synced_at INTEGER NOT NULL,
    -- A replica running the scheduled sync holds it until then.
    sync_claimed_until INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE org_accounts (
    account_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    -- ACTIVE, SUSPENDED, PENDING_CLOSURE as Organizations says; GONE once a
    -- sync no longer lists it.
    status TEXT NOT NULL,
    is_management BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    -- The root user's credentials (JSON: password, access key ids, MFA
    -- serials, certificate ids) as the last audit session read them.
    posture TEXT,
    posture_at INTEGER,
    -- Why the last posture audit failed, if it did.
    posture_error TEXT
);
