//! The key service port: data keys are generated and unwrapped here, never
//! stored in plaintext. Implementations: a local key file (the embedded
//! default) and, later, AWS KMS.

use std::collections::BTreeMap;

use async_trait::async_trait;
use zeroize::Zeroizing;

pub mod absent;
pub mod kms;
pub mod local;

/// Names what a data key protects; bound to the wrapped key (KMS encryption
/// context, or associated data for the local key file), so a key unwrapped
/// under another context fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncryptionContext(pub BTreeMap<String, String>);

impl EncryptionContext {
    pub fn credential(credential_id: &str, version: i64) -> Self {
        Self::from_pairs([
            ("purpose", "credential".to_string()),
            ("credential_id", credential_id.to_string()),
            ("credential_version", version.to_string()),
        ])
    }

    pub fn totp_seed(custodian: &str, enrollment_id: &str) -> Self {
        Self::from_pairs([
            ("purpose", "totp-seed".to_string()),
            ("custodian", custodian.to_string()),
            ("enrollment_id", enrollment_id.to_string()),
        ])
    }

    /// One of the service's own signing keys, kept in the database.
    pub fn service_key(name: &str) -> Self {
        Self::from_pairs([
            ("purpose", "service-key".to_string()),
            ("service_key", name.to_string()),
        ])
    }

    fn from_pairs<const N: usize>(pairs: [(&str, String); N]) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// An unambiguous byte encoding: JSON of the sorted map.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("a string map always serialises")
    }
}

/// A fresh data key: the plaintext (zeroized on drop, no `Debug`) and the
/// same key wrapped by the key service.
pub struct DataKey {
    pub plaintext: Zeroizing<[u8; 32]>,
    pub wrapped: Vec<u8>,
    pub key_id: String,
}

/// Why the key service did not answer. Outages and refusals are distinct so
/// the API can answer 503 for one and keep the other for operators.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// Unreachable, timed out or throttled: try again later.
    #[error("the key service is unavailable: {0}")]
    Unavailable(String),
    /// The key service refused (access denied, key disabled or deleted).
    #[error("the key service refused: {0}")]
    Refused(String),
    /// The wrapped key is corrupted or was bound to another context.
    #[error("the wrapped data key cannot be unwrapped under this context")]
    InvalidCiphertext,
    /// The wrapped key names a key this service does not hold.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
}

#[async_trait]
pub trait KeyService: Send + Sync {
    /// A short name for logs and `/readyz`, e.g. `local` or `aws-kms`.
    fn kind(&self) -> &'static str;
    /// The id of the key new data keys are wrapped with.
    fn key_id(&self) -> &str;
    /// Whether data keys wrapped under `key_id` are this service's to unwrap.
    fn owns(&self, key_id: &str) -> bool {
        key_id == self.key_id()
    }
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, KeyError>;
    /// Wrap an existing data key under this service (for `keys rewrap`);
    /// returns the wrapped key and the id of the key that wrapped it.
    async fn wrap_data_key(
        &self,
        key: &[u8; 32],
        ctx: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError>;
    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError>;
    /// Cheap reachability check for `/readyz`.
    async fn health(&self) -> Result<(), KeyError>;
    /// Whether the key rotates automatically (`None`: not applicable).
    async fn rotation_enabled(&self) -> Result<Option<bool>, KeyError> {
        Ok(None)
    }
}

/// The configured key service for new data keys, plus the others this
/// installation has used, so envelopes wrapped before a move (say, from the
/// local key file to KMS) still open until `keys rewrap` has moved them.
pub struct KeyRing {
    primary: std::sync::Arc<dyn KeyService>,
    others: Vec<std::sync::Arc<dyn KeyService>>,
}

impl KeyRing {
    pub fn new(
        primary: std::sync::Arc<dyn KeyService>,
        others: Vec<std::sync::Arc<dyn KeyService>>,
    ) -> Self {
        Self { primary, others }
    }

    fn for_key(&self, key_id: &str) -> Option<&std::sync::Arc<dyn KeyService>> {
        std::iter::once(&self.primary)
            .chain(self.others.iter())
            .find(|k| k.owns(key_id))
    }
}

#[async_trait]
impl KeyService for KeyRing {
    fn kind(&self) -> &'static str {
        self.primary.kind()
    }

    fn key_id(&self) -> &str {
        self.primary.key_id()
    }

    fn owns(&self, key_id: &str) -> bool {
        self.for_key(key_id).is_some()
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, KeyError> {
        self.primary.generate_data_key(ctx).await
    }

    async fn wrap_data_key(
        &self,
        key: &[u8; 32],
        ctx: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError> {
        self.primary.wrap_data_key(key, ctx).await
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        match self.for_key(key_id) {
            Some(k) => k.decrypt_data_key(key_id, wrapped, ctx).await,
            None => Err(KeyError::UnknownKey(key_id.to_owned())),
        }
    }

    async fn health(&self) -> Result<(), KeyError> {
        self.primary.health().await
    }

    async fn rotation_enabled(&self) -> Result<Option<bool>, KeyError> {
        self.primary.rotation_enabled().await
    }
}
