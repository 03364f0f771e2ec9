//! `keys rewrap`: move every data key to another key service or KMS key.
//!
//! Only data keys move: each envelope's data key is unwrapped by the key
//! that wrapped it and wrapped again by the target, in memory; the payload
//! ciphertext is untouched and no credential or seed is ever decrypted, let
//! alone written to disk. Each envelope is its own step, committed with its
//! audit event, and envelopes already under the target are skipped, so an
//! interrupted run is resumed by running it again. The service's own
//! signing keys, when the database keeps them sealed, move the same way.

use crate::domain::Action;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::json;

use super::{App, Event};
use crate::crypto::envelope::Envelope;
use crate::keys::{EncryptionContext, KeyService};
use crate::secrets::{SecretLocation, SecretRef};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RewrapReport {
    pub target_key: String,
    pub credential_versions_rewrapped: usize,
    pub seeds_rewrapped: usize,
    /// The token and audit checkpoint keys, when the database keeps them.
    pub service_keys_rewrapped: usize,
    pub already_under_target: usize,
}

pub struct Rewrap<'a> {
    /// The store, the secret store and the audit path.
    pub app: &'a App,
    /// Unwraps: every key service the envelopes may name.
    pub source: &'a dyn KeyService,
    /// Wraps: the key service and key to move to.
    pub target: &'a dyn KeyService,
    /// The id the target records in envelopes (a KMS key's ARN).
    pub target_key_id: String,
    pub actor: String,
}

/// Re-wrap one envelope's data key under the target.
async fn rewrapped(
    r: &Rewrap<'_>,
    env: &Envelope,
    ctx: &EncryptionContext,
) -> anyhow::Result<Envelope> {
    let wrapped = B64
        .decode(&env.wk)
        .map_err(|_| anyhow::anyhow!("an envelope's wrapped key is not base64"))?;
    let key = r.source.decrypt_data_key(&env.kid, &wrapped, ctx).await?;
    let (wk, kid) = r.target.wrap_data_key(&key, ctx).await?;
    Ok(Envelope {
        kid,
        wk: B64.encode(wk),
        ..env.clone()
    })
}

impl Rewrap<'_> {
    #[tracing::instrument(skip_all)]
    pub async fn run(
        &self,
        progress: &mut (dyn FnMut(String) + Send),
    ) -> anyhow::Result<RewrapReport> {
        let mut report = RewrapReport {
            target_key: self.target_key_id.clone(),
            ..Default::default()
        };
        let (credentials, custodians, service_keys) = {
            let mut tx = self.app.store.begin_read().await?;
            let mut creds = Vec::new();
            for c in tx.credentials().await? {
                let versions = tx.versions(&c.id).await?;
                creds.push((c, versions));
            }
            let custodians = tx.custodians().await?;
            let service_keys = tx.service_keys().await?;
            tx.rollback().await?;
            (creds, custodians, service_keys)
        };
        let total = credentials.iter().map(|(_, v)| v.len()).sum::<usize>()
            + custodians
                .iter()
                .filter(|c| c.totp_envelope.is_some())
                .count()
            + service_keys.len();
        let mut done = 0;

        for (c, versions) in &credentials {
            for v in versions {
                done += 1;
                let loc = SecretLocation {
                    credential_id: c.id.clone(),
                    credential_name: c.name.clone(),
                    account_id: c.account_id.clone(),
                    policy: c.policy.clone(),
                    version: v.version,
                };
                let label = format!("credential {} v{}", c.name, v.version);
                let old_ref = SecretRef(v.secret_ref.clone());
                let old_bytes = self.app.secrets.get(&loc, &old_ref).await?;
                let env = Envelope::from_bytes(&old_bytes)?;
                let (new_ref, from) = if env.kid == self.target_key_id {
                    if v.key_id == self.target_key_id {
                        report.already_under_target += 1;
                        progress(format!(
                            "[{done}/{total}] {label}: already under the target key"
                        ));
                        continue;
                    }
                    // Re-wrapped by an interrupted run; only the row is behind.
                    (old_ref.clone(), v.key_id.clone())
                } else {
                    let ctx = EncryptionContext::credential(&c.id, v.version);
                    let new_env = rewrapped(self, &env, &ctx).await?;
                    let current = v.version == c.current_version;
                    let new_ref = self
                        .app
                        .secrets
                        .replace(&loc, &old_ref, &old_bytes, &new_env.to_bytes(), current)
                        .await?;
                    (new_ref, env.kid.clone())
                };
                let mut tx = self.app.store.begin().await?;
                if !tx
                    .set_version_location(
                        &c.id,
                        v.version,
                        &old_ref.0,
                        &new_ref.0,
                        &self.target_key_id,
                    )
                    .await?
                {
                    tx.rollback().await?;
                    anyhow::bail!("{label} changed during the re-wrap; run `keys rewrap` again");
                }
                let ev = Event::new(
                    Action::KeysRewrap,
                    format!("credential:{}", c.name),
                    json!({ "version": v.version, "from_key": from, "to_key": self.target_key_id }),
                );
                self.app
                    .append(tx.as_mut(), &self.actor, "success", None, ev)
                    .await?;
                tx.commit().await?;
                report.credential_versions_rewrapped += 1;
                progress(format!("[{done}/{total}] {label}: re-wrapped"));
            }
        }

        for cu in &custodians {
            let (Some(bytes), Some(enrollment)) = (&cu.totp_envelope, &cu.enrollment_id) else {
                continue;
            };
            done += 1;
            let label = format!("TOTP seed of {}", cu.name);
            let env = Envelope::from_bytes(bytes)?;
            if env.kid == self.target_key_id {
                report.already_under_target += 1;
                progress(format!(
                    "[{done}/{total}] {label}: already under the target key"
                ));
                continue;
            }
            let ctx = EncryptionContext::totp_seed(&cu.name, enrollment);
            let new_env = rewrapped(self, &env, &ctx).await?;
            let mut tx = self.app.store.begin().await?;
            if !tx
                .replace_totp_envelope(&cu.name, bytes, &new_env.to_bytes())
                .await?
            {
                tx.rollback().await?;
                anyhow::bail!(
                    "{label} changed during the re-wrap (re-enrolled?); run `keys rewrap` again"
                );
            }
            let ev = Event::new(
                Action::KeysRewrap,
                format!("custodian:{}", cu.name),
                json!({ "seed": true, "from_key": env.kid, "to_key": self.target_key_id }),
            );
            self.app
                .append(tx.as_mut(), &self.actor, "success", None, ev)
                .await?;
            tx.commit().await?;
            report.seeds_rewrapped += 1;
            progress(format!("[{done}/{total}] {label}: re-wrapped"));
        }

        for k in &service_keys {
            done += 1;
            let label = format!("the {} key", k.name);
            let env = Envelope::from_bytes(k.envelope.as_bytes())?;
            if env.kid == self.target_key_id {
                report.already_under_target += 1;
                progress(format!(
                    "[{done}/{total}] {label}: already under the target key"
                ));
                continue;
            }
            let ctx = EncryptionContext::service_key(&k.name);
            let new_env = rewrapped(self, &env, &ctx).await?;
            let new = String::from_utf8(new_env.to_bytes())?;
            let mut tx = self.app.store.begin().await?;
            if !tx
                .replace_service_key_envelope(&k.name, &k.envelope, &new)
                .await?
            {
                tx.rollback().await?;
                anyhow::bail!("{label} changed during the re-wrap; run `keys rewrap` again");
            }
            let ev = Event::new(
                Action::KeysRewrap,
                format!("service_key:{}", k.name),
                json!({ "from_key": env.kid, "to_key": self.target_key_id }),
            );
            self.app
                .append(tx.as_mut(), &self.actor, "success", None, ev)
                .await?;
            tx.commit().await?;
            report.service_keys_rewrapped += 1;
            progress(format!("[{done}/{total}] {label}: re-wrapped"));
        }
        Ok(report)
    }
}
