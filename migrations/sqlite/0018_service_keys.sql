-- The token signing key and the audit checkpoint key, when the service
-- keeps them in the database (keys.signing_keys = "database"): generated
-- once by the first replica to start, sealed in an envelope whose data key
-- the key service wraps (context purpose = service-key), read by every
-- replica. Written once; never updated.
CREATE TABLE service_keys (
    name TEXT PRIMARY KEY CHECK (name IN ('token-signing', 'audit-checkpoint')),
    envelope TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
