-- The console's sign-in. One-time sign-in links, minted on the host
-- (`token issue --link`) for when the identity provider is down. The link
-- holds an opaque random value; the database holds only its SHA-256. A link
-- signs in once: taking it sets used_at, and a used or expired link never
-- signs anyone in again.
CREATE TABLE sign_in_links (
    id_hash TEXT PRIMARY KEY,
    -- The identity the link signs in as: token id, subject, roles (JSON list).
    jti TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    CHECK (created_at < expires_at)
);
CREATE INDEX sign_in_links_expires ON sign_in_links (expires_at);

-- Returns from an OpenID Connect provider (authorization code with PKCE)
-- that have been used. The sign-in itself keeps nothing here until the
-- provider sends the browser back: its state is authenticated by a secret
-- the browser holds in a cookie, from which the PKCE verifier and the nonce
-- are derived too. A return is used once: its row's primary key is the
-- SHA-256 of its state, and a second insert of it fails.
CREATE TABLE oidc_returns (
    state_hash TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    used_at BIGINT NOT NULL,
    -- After this the state is refused anyway; the row may be purged.
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_returns_expires ON oidc_returns (expires_at);
