//! The secret store port: where envelopes rest. Implementations: the
//! database (embedded default) and, later, AWS Secrets Manager (one secret
//! per credential, one secret version per credential version).

use async_trait::async_trait;

pub mod aws;
pub mod database;

/// Which credential version an envelope belongs to; enough for a remote
/// store to name and tag the secret.
#[derive(Debug, Clone)]
pub struct SecretLocation {
    pub credential_id: String,
    pub credential_name: String,
    pub account_id: String,
    pub policy: String,
    pub version: i64,
}

/// Where the store put an envelope (row id, or secret version id); kept in
/// the credential version's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef(pub String);

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// Unreachable, timed out or throttled: try again later.
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused (access denied, secret scheduled for deletion).
    #[error("the secret store refused: {0}")]
    Refused(String),
    #[error("the envelope is not in the secret store")]
    NotFound,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Store a new envelope; never overwrites an existing one.
    async fn put(
        &self,
        loc: &SecretLocation,
        envelope: &[u8],
    ) -> Result<SecretRef, SecretStoreError>;
    async fn get(&self, loc: &SecretLocation, at: &SecretRef) -> Result<Vec<u8>, SecretStoreError>;
    /// Store a re-wrapped envelope in place of the one at `old` (same
    /// payload ciphertext, new wrapped data key); returns where it now is.
    /// `current` says whether this is the credential's current version.
    async fn replace(
        &self,
        loc: &SecretLocation,
        old: &SecretRef,
        old_envelope: &[u8],
        envelope: &[u8],
        current: bool,
    ) -> Result<SecretRef, SecretStoreError>;
    async fn health(&self) -> Result<(), SecretStoreError>;
}
