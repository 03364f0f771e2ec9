//! Envelopes in the service's own database, each under a fresh id, so a
//! failed or concurrent deposit can never overwrite another's envelope.

use std::sync::Arc;

use async_trait::async_trait;

use super::{SecretLocation, SecretRef, SecretStore, SecretStoreError};
use crate::store::Store;

pub struct DatabaseSecretStore {
    store: Arc<dyn Store>,
}

impl DatabaseSecretStore {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

fn unavailable(e: impl std::fmt::Display) -> SecretStoreError {
    SecretStoreError::Unavailable(e.to_string())
}

#[async_trait]
impl SecretStore for DatabaseSecretStore {
    fn kind(&self) -> &'static str {
        "database"
    }

    async fn put(
        &self,
        loc: &SecretLocation,
        envelope: &[u8],
    ) -> Result<SecretRef, SecretStoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.store
            .put_envelope(&id, &loc.credential_id, loc.version, envelope)
            .await
            .map_err(unavailable)?;
        Ok(SecretRef(id))
    }

    async fn get(&self, loc: &SecretLocation, at: &SecretRef) -> Result<Vec<u8>, SecretStoreError> {
        match self
            .store
            .get_envelope(&at.0, &loc.credential_id)
            .await
            .map_err(unavailable)?
        {
            Some(b) => Ok(b),
            None => Err(SecretStoreError::NotFound),
        }
    }

    async fn replace(
        &self,
        loc: &SecretLocation,
        old: &SecretRef,
        old_envelope: &[u8],
        envelope: &[u8],
        _current: bool,
    ) -> Result<SecretRef, SecretStoreError> {
        // Compare-and-swap on the old bytes: a concurrent change is refused.
        if self
            .store
            .replace_envelope(&old.0, &loc.credential_id, old_envelope, envelope)
            .await
            .map_err(unavailable)?
        {
            Ok(old.clone())
        } else {
            Err(SecretStoreError::Refused(
                "the envelope changed while it was being re-wrapped".into(),
            ))
        }
    }

    async fn health(&self) -> Result<(), SecretStoreError> {
        self.store.ping().await.map_err(unavailable)
    }
}
