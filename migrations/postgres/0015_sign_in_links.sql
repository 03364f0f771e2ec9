-- One-time sign-in links for the web console, minted on the host
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
