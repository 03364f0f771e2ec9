//! `backup export` and `recover --backup`: everything recovery needs in one
//! signed file, opened with k shares and no database.

use serde_json::json;

use super::offline::Recovered;
use super::{identity_from, open_recovered};
use crate::app::App;
use crate::app::Event;
use crate::crypto::shamir;
use crate::domain::Action;

/// Format of `backup export`.
pub const BACKUP_FORMAT: &str = "breakglass-backup-v1";

/// One credential's current version, as recovery needs it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupCredential {
    pub credential_id: String,
    pub name: String,
    pub account_id: String,
    pub policy: String,
    pub version: i64,
    /// base64 of the age recovery wrap.
    pub recovery_wrap: String,
    /// base64 of the envelope.
    pub envelope: String,
}

/// The signed body of a backup file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupBody {
    pub format: String,
    pub created_at: String,
    pub set: shamir::SetInfo,
    pub recovery_recipient: String,
    pub custodians: Vec<String>,
    pub audit_head: (i64, String),
    pub credentials: Vec<BackupCredential>,
    /// Current versions without a recovery wrap (deposited before the
    /// ceremony): not recoverable from this backup.
    pub not_recoverable: Vec<String>,
}

/// A backup file: the body and an Ed25519 signature over its canonical
/// JSON by the service's signing key (whose public key is included, and
/// whose fingerprint `recover --backup` prints for comparison).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupFile {
    pub body: BackupBody,
    pub signer_kid: String,
    pub signer_public_key: String,
    pub signature: String,
}

fn backup_bytes(body: &BackupBody) -> anyhow::Result<Vec<u8>> {
    let mut s = String::new();
    crate::crypto::chain::canonical_json(&serde_json::to_value(body)?, &mut s)
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(s.into_bytes())
}

impl App {
    /// `backup export`: everything recovery needs, without the database.
    #[tracing::instrument(skip_all)]
    pub async fn export_backup(
        &self,
        signer: &crate::crypto::signing::SigningKey,
        actor: &str,
    ) -> anyhow::Result<BackupFile> {
        let (store, now_ms) = (self.store.as_ref(), self.now_ms());
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        // One consistent read; on PostgreSQL the set row is read FOR UPDATE
        // (released at once by the rollback below).
        let mut tx = store.begin_read().await?;
        let set = tx.active_recovery_set().await?;
        let Some(set) = set else {
            tx.rollback().await?;
            anyhow::bail!("no recovery share set is active: run `breakglass init` first");
        };
        let rows = tx.recovery_shares(&set.set_id).await?;
        let custodians = tx.custodians().await?.into_iter().map(|c| c.name).collect();
        let head = tx.audit_head_peek().await?;
        let mut credentials = Vec::new();
        let mut not_recoverable = Vec::new();
        for c in tx.credentials().await? {
            let Some(v) = tx.version(&c.id, c.current_version).await? else {
                continue;
            };
            match (
                &v.recovery_wrap,
                &v.recovery_envelope,
                v.recovery_set.as_deref() == Some(set.set_id.as_str()),
            ) {
                (Some(w), Some(e), true) => credentials.push(BackupCredential {
                    credential_id: c.id.clone(),
                    name: c.name.clone(),
                    account_id: c.account_id.clone(),
                    policy: c.policy.clone(),
                    version: v.version,
                    recovery_wrap: b64.encode(w),
                    envelope: b64.encode(e),
                }),
                _ => not_recoverable.push(c.name.clone()),
            }
        }
        tx.rollback().await?;
        let body = BackupBody {
            format: BACKUP_FORMAT.into(),
            created_at: crate::clock::rfc3339(now_ms),
            set: super::set_info(&set, &rows),
            recovery_recipient: set.recipient.clone(),
            custodians,
            audit_head: head,
            credentials,
            not_recoverable,
        };
        let signature = signer.sign(&backup_bytes(&body)?);
        let file = BackupFile {
            signer_kid: signer.kid(),
            signer_public_key: b64.encode(signer.public_key()),
            signature: b64.encode(signature),
            body,
        };
        let mut tx = store.begin().await?;
        let ev = Event::new(
            Action::BackupExport,
            format!("recovery-set:{}", set.set_id),
            json!({
                "credentials": file.body.credentials.iter().map(|c| json!({ "name": c.name, "version": c.version })).collect::<Vec<_>>(),
                "not_recoverable": file.body.not_recoverable,
                "audit_head_seq": file.body.audit_head.0,
            }),
        );
        self.append(tx.as_mut(), actor, "success", None, ev).await?;
        tx.commit().await?;
        Ok(file)
    }
}

/// `recover --backup`: no database, no server, no network.
pub fn recover_from_backup(
    file: &BackupFile,
    credential: &str,
    shares: &[shamir::ShareData],
) -> anyhow::Result<Recovered> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    anyhow::ensure!(
        file.body.format == BACKUP_FORMAT,
        "not a breakglass backup (format {:?})",
        file.body.format
    );
    let public = b64.decode(&file.signer_public_key)?;
    // The key id is what the operator compares with the service's; it
    // must name the key that signed, or a file re-signed with any key
    // could show the service's id.
    anyhow::ensure!(
        crate::crypto::chain::kid_of(&public) == file.signer_kid,
        "the backup names signing key id {:?}, but its key has another id: it was altered",
        file.signer_kid
    );
    let signature = b64.decode(&file.signature)?;
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &public)
        .verify(&backup_bytes(&file.body)?, &signature)
        .map_err(|_| anyhow::anyhow!("the backup's signature does not verify: it was altered"))?;
    let Some(c) = file.body.credentials.iter().find(|c| c.name == credential) else {
        if file.body.not_recoverable.iter().any(|n| n == credential) {
            anyhow::bail!("{credential} was deposited before the recovery set and is not in this backup: rotate it");
        }
        anyhow::bail!("no credential named {credential} in this backup");
    };
    let secret = shamir::combine(&file.body.set, shares)?;
    let identity = identity_from(secret)?;
    let p = open_recovered(
        &identity,
        &b64.decode(&c.recovery_wrap)?,
        &b64.decode(&c.envelope)?,
        &c.credential_id,
        c.version,
    )?;
    drop(identity);
    Ok(Recovered {
        credential: c.name.clone(),
        account_id: c.account_id.clone(),
        version: c.version,
        fields: p.fields,
    })
}
