//! Offline recovery on the host: k custodians' decrypted shares and the
//! database, without the key service or the secret store.

use serde_json::json;

use super::{identity_from, open_recovered, set_info};
use crate::app::App;
use crate::app::Event;
use crate::crypto::shamir;
use crate::domain::{Action, Code};

/// A credential recovered with k shares.
pub struct Recovered {
    pub credential: String,
    pub account_id: String,
    pub version: i64,
    pub fields: std::collections::BTreeMap<String, secrecy::SecretString>,
}

/// The refusal code of a share that cannot be combined.
pub(crate) fn refusal_for(e: &shamir::CombineError) -> Code {
    use shamir::CombineError::*;
    match e {
        Malformed { .. } => Code::ShareMalformed,
        Foreign { .. } => Code::ShareForeign,
        UnknownIndex { .. } | Corrupted { .. } => Code::ShareCorrupted,
        Duplicate { .. } => Code::ShareDuplicate,
        NotEnough { .. } => Code::SharesNotEnough,
        KeyCheck => Code::ShareKeyCheck,
    }
}

impl App {
    /// Offline recovery on the host: k custodians' decrypted shares rebuild the
    /// recovery key in memory, which unwraps the credential's current data key
    /// and opens the copy of its envelope. Needs neither the key service nor
    /// the secret store. The recovery key is dropped (zeroized) before this
    /// returns; the credential is marked exposed; every attempt is audited.
    #[tracing::instrument(skip_all)]
    pub async fn recover_offline(
        &self,
        actor: &str,
        credential: &str,
        shares: &[shamir::ShareData],
    ) -> anyhow::Result<Recovered> {
        let (store, now_ms) = (self.store.as_ref(), self.now_ms());
        let target = format!("credential:{credential}");
        let (set, rows, cred, version) = {
            let mut tx = store.begin_read().await?;
            let set = tx.active_recovery_set().await?;
            let rows = match &set {
                Some(s) => tx.recovery_shares(&s.set_id).await?,
                None => vec![],
            };
            let cred = tx.credential_by_name(credential).await?;
            let version = match &cred {
                Some(c) => tx.version(&c.id, c.current_version).await?,
                None => None,
            };
            tx.rollback().await?;
            (set, rows, cred, version)
        };
        let refused_target = target.clone();
        let refuse = |code: &'static str, message: String| {
            let target = refused_target.clone();
            async move {
                let mut tx = store.begin().await?;
                let ev = Event::new(
                    Action::RecoveryRecover,
                    target,
                    json!({ "message": message }),
                );
                self.append(tx.as_mut(), actor, "refused", Some(code), ev)
                    .await?;
                tx.commit().await?;
                Err::<Recovered, anyhow::Error>(anyhow::anyhow!("{code}: {message}"))
            }
        };
        let Some(set) = set else {
            return refuse("no_recovery_set", "no recovery share set is active".into()).await;
        };
        let (Some(cred), Some(version)) = (cred, version) else {
            return refuse(
                "credential_not_found",
                format!("no credential named {credential}"),
            )
            .await;
        };
        let info = set_info(&set, &rows);
        let secret = match shamir::combine(&info, shares) {
            Ok(s) => s,
            Err(e) => return refuse(refusal_for(&e).as_str(), e.to_string()).await,
        };
        let identity = match identity_from(secret) {
            Ok(i) => i,
            Err(e) => return refuse("recovery_key_invalid", format!("{e:#}")).await,
        };
        let (Some(wrap), Some(env_bytes)) = (&version.recovery_wrap, &version.recovery_envelope)
        else {
            return refuse(
                "not_recoverable",
                format!(
                    "version {} of {credential} was deposited before the recovery set: rotate it",
                    version.version
                ),
            )
            .await;
        };
        if version.recovery_set.as_deref() != Some(set.set_id.as_str()) {
            return refuse(
                "not_recoverable",
                format!(
                    "version {} is wrapped to another recovery set",
                    version.version
                ),
            )
            .await;
        }
        let p = match open_recovered(&identity, wrap, env_bytes, &cred.id, version.version) {
            Ok(p) => p,
            // The shares authenticate against the set, so this is the stored
            // wrap or envelope: changed, or bound to another credential.
            Err(_) => {
                return refuse(
                    "recovery_wrap_invalid",
                    format!(
                        "version {} of {credential} does not open with the rebuilt recovery key: its recovery wrap or envelope was altered or belongs to another credential",
                        version.version
                    ),
                )
                .await
            }
        };
        drop(identity);
        let mut tx = store.begin().await?;
        tx.mark_exposed(&cred.id, now_ms).await?;
        let ev = Event::new(
            Action::RecoveryRecover,
            target.clone(),
            json!({
                "version": version.version,
                "set_id": set.set_id,
                "shares": shares.iter().map(|s| s.index).collect::<Vec<_>>(),
                "fields": p.fields.keys().collect::<Vec<_>>(),
            }),
        );
        self.append(tx.as_mut(), actor, "success", None, ev).await?;
        tx.commit().await?;
        Ok(Recovered {
            credential: cred.name,
            account_id: cred.account_id,
            version: version.version,
            fields: p.fields,
        })
    }
}

impl App {
    /// Audit a refused offline recovery that failed before the shares were
    /// even read (a file that is no share, an identity that does not open it).
    pub async fn refuse_offline(
        &self,
        actor: &str,
        credential: &str,
        code: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        let store = self.store.as_ref();
        let mut tx = store.begin().await?;
        let ev = Event::new(
            Action::RecoveryRecover,
            format!("credential:{}", crate::domain::text::escape(credential)),
            json!({ "message": crate::domain::text::escape(message) }),
        );
        self.append(tx.as_mut(), actor, "refused", Some(code), ev)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
