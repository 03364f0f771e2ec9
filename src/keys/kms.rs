//! AWS KMS as the key service: `GenerateDataKey` (AES_256) and `Decrypt`,
//! both with the encryption context that names what the key protects, so
//! KMS itself (and CloudTrail, and IAM conditions) see which credential
//! version, or which custodian's TOTP seed, a key is for.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::{Zeroize, Zeroizing};

use super::{DataKey, EncryptionContext, KeyError, KeyService};
use crate::aws::{classify, Failure};

pub struct KmsKeyService {
    client: aws_sdk_kms::Client,
    /// Key id, ARN or alias from configuration; new data keys use it.
    key_id: String,
}

fn context(ctx: &EncryptionContext) -> HashMap<String, String> {
    ctx.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn key_error<E>(e: &aws_sdk_kms::error::SdkError<E>) -> KeyError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata,
{
    match classify(e) {
        Failure::Unavailable(m) => KeyError::Unavailable(m),
        Failure::Service { code, .. }
            if code == "InvalidCiphertextException" || code == "IncorrectKeyException" =>
        {
            KeyError::InvalidCiphertext
        }
        Failure::Service { code, message } => KeyError::Refused(format!("{code}: {message}")),
    }
}

/// Copy a 32-byte plaintext key out of an SDK blob, wiping the copy we own.
fn take_key(blob: Option<&Blob>) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let b = blob.ok_or_else(|| KeyError::Refused("KMS returned no plaintext".into()))?;
    let mut bytes = b.as_ref().to_vec();
    let out = if bytes.len() == 32 {
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&bytes);
        Ok(k)
    } else {
        Err(KeyError::Refused(
            "KMS returned a data key that is not 256 bits".into(),
        ))
    };
    bytes.zeroize();
    out
}

impl KmsKeyService {
    pub fn new(config: &aws_config::SdkConfig, key_id: &str) -> Self {
        Self {
            client: aws_sdk_kms::Client::new(config),
            key_id: key_id.to_string(),
        }
    }

    /// The configured key's ARN (an alias resolves to its current key).
    pub async fn arn(&self) -> Result<String, KeyError> {
        let out = self
            .client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| key_error(&e))?;
        out.key_metadata()
            .and_then(|m| m.arn())
            .map(str::to_owned)
            .ok_or_else(|| KeyError::Refused("DescribeKey returned no ARN".into()))
    }
}

#[async_trait]
impl KeyService for KmsKeyService {
    fn kind(&self) -> &'static str {
        "aws-kms"
    }

    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn owns(&self, key_id: &str) -> bool {
        key_id.starts_with("arn:aws:kms:") || key_id == self.key_id
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, KeyError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context(ctx)))
            .send()
            .await
            .map_err(|e| key_error(&e))?;
        let plaintext = take_key(out.plaintext())?;
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| KeyError::Refused("KMS returned no ciphertext".into()))?;
        // Store the key's ARN, not the alias: an alias can be moved.
        let key_id = out.key_id().unwrap_or(&self.key_id).to_string();
        Ok(DataKey {
            plaintext,
            wrapped,
            key_id,
        })
    }

    async fn wrap_data_key(
        &self,
        key: &[u8; 32],
        ctx: &EncryptionContext,
    ) -> Result<(Vec<u8>, String), KeyError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(key.to_vec()))
            .set_encryption_context(Some(context(ctx)))
            .send()
            .await
            .map_err(|e| key_error(&e))?;
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| KeyError::Refused("KMS returned no ciphertext".into()))?;
        Ok((wrapped, out.key_id().unwrap_or(&self.key_id).to_string()))
    }

    async fn decrypt_data_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(context(ctx)))
            .send()
            .await
            .map_err(|e| key_error(&e))?;
        take_key(out.plaintext())
    }

    async fn health(&self) -> Result<(), KeyError> {
        self.client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| key_error(&e))?;
        Ok(())
    }

    async fn rotation_enabled(&self) -> Result<Option<bool>, KeyError> {
        let r = self
            .client
            .get_key_rotation_status()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| key_error(&e))?;
        Ok(Some(r.key_rotation_enabled()))
    }
}
