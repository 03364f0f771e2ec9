//! No key service: what a host command has when the data directory's local
//! key file is gone (offline recovery needs no key service). Every call is
//! refused as unavailable, naming why, so a use case that needs keys fails
//! closed with a message instead of starting.

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::{DataKey, EncryptionContext, KeyError, KeyService};

#[derive(Debug)]
pub struct AbsentKeyService {
    why: String,
}

impl AbsentKeyService {
    pub fn new(why: impl Into<String>) -> Self {
        AbsentKeyService { why: why.into() }
    }

    fn refused<T>(&self) -> Result<T, KeyError> {
        Err(KeyError::Unavailable(self.why.clone()))
    }
}

#[async_trait]
impl KeyService for AbsentKeyService {
    fn kind(&self) -> &'static str {
        "absent"
    }

    fn key_id(&self) -> &str {
        ""
    }

    fn owns(&self, _key_id: &str) -> bool {
        false
    }

    async fn generate_data_key(&self, _ctx: &EncryptionContext) -> Result<DataKey, KeyError> {
        self.refused()
    }

    async fn wrap_data_key(
        &self,
        _key: &[u8; 32],
        _ctx: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError> {
        self.refused()
    }

    async fn decrypt_data_key(
        &self,
        _key_id: &str,
        _wrapped: &[u8],
        _ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        self.refused()
    }

    async fn health(&self) -> Result<(), KeyError> {
        self.refused()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_is_refused_as_unavailable_naming_why() {
        let k = AbsentKeyService::new("the data directory holds no local key file");
        let ctx = EncryptionContext::credential("c", 1);
        let e = k.generate_data_key(&ctx).await.err().unwrap();
        assert!(matches!(&e, KeyError::Unavailable(w) if w.contains("no local key file")));
        assert!(k.decrypt_data_key("k", b"x", &ctx).await.is_err());
        assert!(k.wrap_data_key(&[0; 32], &ctx).await.is_err());
        assert!(k.health().await.is_err());
        assert!(!k.owns(""));
    }
}
