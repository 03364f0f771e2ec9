//! AWS Secrets Manager as the secret store: one secret per credential
//! (`{prefix}{credential name}`), tagged; the envelope in `SecretBinary`;
//! each credential version a secret version, read back by the exact
//! `VersionId` the database recorded (never "whatever is current").

use async_trait::async_trait;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;

use super::{SecretLocation, SecretRef, SecretStore, SecretStoreError};
use crate::aws::{classify, Failure};

pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    recovery_window_days: i64,
}

fn store_error<E>(e: &aws_sdk_secretsmanager::error::SdkError<E>) -> SecretStoreError
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata,
{
    match classify(e) {
        Failure::Unavailable(m) => SecretStoreError::Unavailable(m),
        Failure::Service { code, .. } if code == "ResourceNotFoundException" => {
            SecretStoreError::NotFound
        }
        Failure::Service { code, message } => {
            SecretStoreError::Refused(format!("{code}: {message}"))
        }
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

impl SecretsManagerStore {
    pub fn new(config: &aws_config::SdkConfig, prefix: &str, recovery_window_days: i64) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(config),
            prefix: prefix.to_string(),
            recovery_window_days,
        }
    }

    pub fn secret_name(&self, loc: &SecretLocation) -> String {
        format!("{}{}", self.prefix, loc.credential_name)
    }

    /// Schedule the credential's secret for deletion after the recovery
    /// window (7–30 days), during which it can be restored.
    pub async fn remove(&self, loc: &SecretLocation) -> Result<(), SecretStoreError> {
        self.client
            .delete_secret()
            .secret_id(self.secret_name(loc))
            .recovery_window_in_days(self.recovery_window_days)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    fn kind(&self) -> &'static str {
        "aws-secretsmanager"
    }

    async fn put(
        &self,
        loc: &SecretLocation,
        envelope: &[u8],
    ) -> Result<SecretRef, SecretStoreError> {
        let name = self.secret_name(loc);
        // The request token makes a retried call idempotent.
        let token = uuid::Uuid::new_v4().to_string();
        if loc.version == 1 {
            let created = self
                .client
                .create_secret()
                .name(&name)
                .description(format!(
                    "breakglass envelope of {} (account {})",
                    loc.credential_name, loc.account_id
                ))
                .secret_binary(Blob::new(envelope.to_vec()))
                .client_request_token(&token)
                .tags(tag("managed-by", "breakglass"))
                .tags(tag("breakglass:credential-id", &loc.credential_id))
                .tags(tag("breakglass:account-id", &loc.account_id))
                .tags(tag("breakglass:policy", &loc.policy))
                .send()
                .await;
            match created {
                Ok(out) => {
                    return out
                        .version_id()
                        .map(|v| SecretRef(v.to_string()))
                        .ok_or_else(|| {
                            SecretStoreError::Refused("CreateSecret returned no version id".into())
                        })
                }
                // Left by a deposit that failed after this call: add a version.
                Err(e) if matches!(classify(&e), Failure::Service { ref code, .. } if code == "ResourceExistsException") =>
                    {}
                Err(e) => return Err(store_error(&e)),
            }
        }
        let out = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_binary(Blob::new(envelope.to_vec()))
            .client_request_token(&token)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.version_id()
            .map(|v| SecretRef(v.to_string()))
            .ok_or_else(|| {
                SecretStoreError::Refused("PutSecretValue returned no version id".into())
            })
    }

    async fn get(&self, loc: &SecretLocation, at: &SecretRef) -> Result<Vec<u8>, SecretStoreError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(loc))
            .version_id(&at.0)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.secret_binary()
            .map(|b| b.as_ref().to_vec())
            .ok_or(SecretStoreError::NotFound)
    }

    async fn replace(
        &self,
        loc: &SecretLocation,
        _old: &SecretRef,
        _old_envelope: &[u8],
        envelope: &[u8],
        current: bool,
    ) -> Result<SecretRef, SecretStoreError> {
        // A new secret version. Only the current credential version takes
        // AWSCURRENT; an older one gets a label of its own, so the stages
        // keep meaning what they say.
        let stage = if current {
            "AWSCURRENT".to_string()
        } else {
            format!("breakglass-v{}", loc.version)
        };
        let out = self
            .client
            .put_secret_value()
            .secret_id(self.secret_name(loc))
            .secret_binary(Blob::new(envelope.to_vec()))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .version_stages(stage)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        out.version_id()
            .map(|v| SecretRef(v.to_string()))
            .ok_or_else(|| {
                SecretStoreError::Refused("PutSecretValue returned no version id".into())
            })
    }

    async fn health(&self) -> Result<(), SecretStoreError> {
        // A cheap authenticated call: a missing secret proves reachability.
        match self
            .client
            .describe_secret()
            .secret_id(format!("{}.health", self.prefix))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match store_error(&e) {
                SecretStoreError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }
}
