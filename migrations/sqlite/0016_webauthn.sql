-- Security keys and passkeys (WebAuthn).
--
-- A custodian's registered keys. The public key (and the counter at
-- registration) is in `passkey` as the WebAuthn library keeps it; the
-- key's registration event in the audit chain records its SHA-256 and the
-- authenticator's attestation object, so a release (and an auditor,
-- offline) checks every approval's signature against the key as it was
-- registered, not as the table now says. A removed key stays, marked: it
-- never signs again, and it shows that the custodian once had a key.
CREATE TABLE webauthn_keys (
    -- The credential id, base64url without padding.
    credential_id TEXT PRIMARY KEY,
    custodian TEXT NOT NULL REFERENCES custodians (name),
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    -- The highest signature counter seen (0: the authenticator keeps none).
    counter INTEGER NOT NULL,
    aaguid TEXT,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    removed_at INTEGER
);
CREATE UNIQUE INDEX webauthn_keys_live_name ON webauthn_keys (custodian, name)
    WHERE removed_at IS NULL;

-- A ceremony in progress: what it is for (a registration, the confirmation
-- of one with an existing key, an approval or a denial of one request),
-- whose, from which session, and the library's state. It lasts a few
-- minutes and is taken once (a conditional UPDATE ... RETURNING), by any
-- replica; a taken one stays until it expires, so a replay is named as one.
CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('confirm', 'register', 'approve', 'deny')),
    custodian TEXT NOT NULL,
    session TEXT NOT NULL,
    request_id TEXT,
    key_name TEXT,
    -- The random part of the challenge of an approval or a confirmation
    -- (the challenge is the SHA-256 of what it binds, with this).
    nonce TEXT,
    -- What let a registration go ahead: "first" (the custodian's first
    -- key, with a TOTP code), or "key:<credential id>" (an existing key).
    authorized_by TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);

-- A decision made with a key keeps its assertion (credential id,
-- clientDataJSON, authenticatorData, signature and the challenge's nonce),
-- as JSON: the release re-verifies it.
ALTER TABLE decisions ADD COLUMN webauthn TEXT;
ALTER TABLE policy_change_decisions ADD COLUMN webauthn TEXT;
