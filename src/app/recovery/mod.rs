//! Recovery without the key service: the ceremony and share checks here;
//! `session.rs`, a recovery through the server with the custodians' shares
//! and TOTP codes; `offline.rs`, on the host with the database; `backup.rs`,
//! from a signed backup file with no database at all.
//!
//! `init` makes a recovery key (an age X25519 identity: 256 random bits),
//! splits it with Shamir into one share per custodian, encrypts each share
//! to that custodian's age recipient and writes it to a file, records only
//! the public parts (the recovery recipient, per-share commitments, a key
//! check value), and forgets the key. Every data key deposited afterwards is
//! also wrapped to the recovery recipient, so k custodians can recover a
//! credential without the key service.

pub mod backup;
pub mod offline;
pub mod session;

use crate::domain::states::{CustodianStatus, RecoverySetState};
use crate::domain::Action;
use crate::domain::Code;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::views::{ShareCheckBody, ShareCheckView};
use super::{refuse, App, AppResult, Done, Event};
use crate::auth::Identity;
use crate::crypto::recovery_wrap::{
    unwrap_for_recovery, unwrap_seed_for_recovery, wrap_for_recovery, wrap_seed_for_recovery,
};
use crate::crypto::shamir;
use crate::domain::Role;
use crate::store::{RecoverySetRow, RecoveryShareRow, Store};

/// What a credential version keeps for recovery: the data key wrapped to
/// the recovery key, and a copy of the envelope.
pub struct RecoveryCopy {
    pub set_id: String,
    pub wrap: Vec<u8>,
    pub envelope: Vec<u8>,
}

/// Wrap every enrolled custodian's TOTP seed to a new recovery recipient,
/// opening each with the key service (at the ceremony, while it answers).
async fn wrap_seeds_with_keys(
    tx: &mut dyn crate::store::Tx,
    keys: &dyn crate::keys::KeyService,
    set_id: &str,
    recipient: &str,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for c in tx.custodians().await? {
        let (Some(env), Some(enrollment)) = (&c.totp_envelope, &c.enrollment_id) else {
            continue;
        };
        if c.status != CustodianStatus::Active {
            continue;
        }
        let seed = super::custodians::open_seed(keys, &c, env, enrollment)
            .await
            .map_err(|e| anyhow::anyhow!("custodian {}'s TOTP seed: {e}", c.name))?;
        let wrap = wrap_seed_for_recovery(recipient, &c.name, enrollment, &seed)?;
        tx.set_totp_recovery_wrap(&c.name, set_id, &wrap).await?;
        n += 1;
    }
    Ok(n)
}

/// Move every custodian's TOTP seed wrap from the old recovery key to the
/// new one (at a rekey, with no key service needed).
async fn rewrap_seeds(
    tx: &mut dyn crate::store::Tx,
    old_identity: &age::x25519::Identity,
    old_set: &str,
    set_id: &str,
    recipient: &str,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for c in tx.custodians().await? {
        let (Some(wrap), Some(enrollment)) = (&c.totp_recovery_wrap, &c.enrollment_id) else {
            continue;
        };
        if c.totp_recovery_set.as_deref() != Some(old_set) {
            continue;
        }
        let seed = unwrap_seed_for_recovery(old_identity, wrap, &c.name, enrollment)?;
        let wrap = wrap_seed_for_recovery(recipient, &c.name, enrollment, &seed)?;
        tx.set_totp_recovery_wrap(&c.name, set_id, &wrap).await?;
        n += 1;
    }
    Ok(n)
}

#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub set_id: String,
    pub threshold: u8,
    pub recipient: String,
    pub files: Vec<(String, PathBuf)>,
}

/// The authentication data of a recorded set.
pub(crate) fn set_info(set: &RecoverySetRow, rows: &[RecoveryShareRow]) -> shamir::SetInfo {
    shamir::SetInfo {
        set_id: set.set_id.clone(),
        threshold: u8::try_from(set.threshold).unwrap_or(u8::MAX),
        commitments: rows
            .iter()
            .map(|r| (r.idx as u8, r.commitment.clone()))
            .collect(),
        key_check: set.key_check.clone(),
    }
}

/// The recovery key from its combined bytes (consumed and zeroized).
pub(crate) fn identity_from(
    secret: zeroize::Zeroizing<Vec<u8>>,
) -> anyhow::Result<age::x25519::Identity> {
    std::str::from_utf8(&secret)
        .ok()
        .and_then(|s| age::x25519::Identity::from_str(s).ok())
        .ok_or_else(|| anyhow::anyhow!("the rebuilt recovery key is not an age identity"))
}

/// A decrypted credential payload.
#[derive(serde::Deserialize)]
pub(crate) struct Payload {
    pub(crate) fields: std::collections::BTreeMap<String, secrecy::SecretString>,
    /// TOTP seeds released only as codes (by the server; an offline
    /// recovery, the last resort, shows the seed).
    #[serde(default)]
    pub(crate) code_only: Vec<String>,
}

/// Open one credential version with the rebuilt recovery key: unwrap its
/// data key from the recovery wrap (checking the binding), then open the
/// copy of its envelope. The data key is zeroized on return.
pub(crate) fn open_recovered(
    identity: &age::x25519::Identity,
    wrap: &[u8],
    envelope: &[u8],
    credential_id: &str,
    version: i64,
) -> anyhow::Result<Payload> {
    use crate::crypto::envelope::{credential_aad, Envelope};
    let key = unwrap_for_recovery(identity, wrap, credential_id, version)?;
    let env = Envelope::from_bytes(envelope)?;
    let plaintext = env.open_with_data_key(&key, &credential_aad(credential_id, version))?;
    Ok(serde_json::from_slice(&plaintext)?)
}

/// Parse and check the new custodian set: age recipients, no repeats, and
/// every name an existing custodian.
async fn parse_custodians(
    store: &dyn Store,
    custodians: &[(String, String)],
) -> anyhow::Result<Vec<(String, String, age::x25519::Recipient)>> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, r) in custodians {
        let rec = age::x25519::Recipient::from_str(r).map_err(|e| {
            anyhow::anyhow!("custodian {name}: {r:?} is not an age X25519 recipient (age1…): {e}")
        })?;
        anyhow::ensure!(seen.insert(name.clone()), "custodian {name} is named twice");
        out.push((name.clone(), r.clone(), rec));
    }
    let mut tx = store.begin_read().await?;
    for (name, _, _) in &out {
        let known = tx.custodian(name).await?.is_some();
        if !known {
            tx.rollback().await?;
            anyhow::bail!("{name} is not a custodian: add custodians before the ceremony");
        }
    }
    tx.rollback().await?;
    Ok(out)
}

/// A new recovery key, split and written to one file per custodian; the key
/// itself is gone by the time this exists (only its recipient remains).
struct NewSet {
    info: shamir::SetInfo,
    shares: Vec<shamir::ShareData>,
    recipient: String,
    files: Vec<(String, PathBuf)>,
}

fn make_set(
    threshold: u8,
    recipients: &[(String, String, age::x25519::Recipient)],
    out: &Path,
) -> anyhow::Result<NewSet> {
    std::fs::create_dir_all(out)?;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let names: Vec<String> = recipients.iter().map(|(n, _, _)| n.clone()).collect();
    let (info, shares) = {
        let secret = identity.to_string();
        shamir::split(secret.expose_secret().as_bytes(), threshold, &names)
            .map_err(|e| anyhow::anyhow!(e))?
    };
    drop(identity);
    // Files first: a set is recorded only once every share is written.
    let mut files = Vec::new();
    for (share, (name, _, rec)) in shares.iter().zip(recipients) {
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(share)?);
        let sealed = age::encrypt(rec, &plaintext)
            .map_err(|e| anyhow::anyhow!("while encrypting {name}'s share: {e}"))?;
        let path = out.join(format!("{name}.share.age"));
        let mut f = crate::crypto::private_file::create_private_file(&path)?;
        f.write_all(&sealed)?;
        f.sync_all()?;
        files.push((name.clone(), path));
    }
    Ok(NewSet {
        info,
        shares,
        recipient,
        files,
    })
}

/// Record a set (in the caller's transaction) and its audit event.
async fn record_set(
    tx: &mut dyn crate::store::Tx,
    set: &NewSet,
    recipients: &[(String, String, age::x25519::Recipient)],
    now_ms: i64,
    actor: &str,
) -> anyhow::Result<()> {
    tx.insert_recovery_set(&RecoverySetRow {
        set_id: set.info.set_id.clone(),
        threshold: i64::from(set.info.threshold),
        share_count: set.shares.len() as i64,
        recipient: set.recipient.clone(),
        key_check: set.info.key_check.clone(),
        state: RecoverySetState::Active,
        created_at: now_ms,
        created_by: actor.into(),
    })
    .await?;
    for (share, (name, r, _)) in set.shares.iter().zip(recipients) {
        tx.insert_recovery_share(&RecoveryShareRow {
            set_id: set.info.set_id.clone(),
            idx: i64::from(share.index),
            custodian: name.clone(),
            age_recipient: r.clone(),
            commitment: set.info.commitments[&share.index].clone(),
            checked_at: None,
        })
        .await?;
    }
    Ok(())
}

fn set_details(set: &NewSet) -> serde_json::Value {
    json!({
        "set_id": set.info.set_id,
        "threshold": set.info.threshold,
        "shares": set.shares.iter().map(|s| json!({ "index": s.index, "custodian": s.custodian })).collect::<Vec<_>>(),
        "recipient": set.recipient,
    })
}

impl App {
    /// Commit a new share set with its audit event: what `init` and `rekey`
    /// report.
    async fn commit_set(
        &self,
        mut tx: Box<dyn crate::store::Tx>,
        actor: &str,
        action: Action,
        set: NewSet,
        details: serde_json::Value,
        threshold: u8,
    ) -> anyhow::Result<InitReport> {
        let ev = Event::new(action, format!("recovery-set:{}", set.info.set_id), details);
        self.append(tx.as_mut(), actor, "success", None, ev).await?;
        tx.commit().await?;
        Ok(InitReport {
            set_id: set.info.set_id,
            threshold,
            recipient: set.recipient,
            files: set.files,
        })
    }

    /// The ceremony, run on the host by the operator (`breakglass init`).
    #[tracing::instrument(skip_all)]
    pub async fn recovery_init(
        &self,
        actor: &str,
        threshold: u8,
        custodians: &[(String, String)],
        out: &Path,
    ) -> anyhow::Result<InitReport> {
        let (store, now_ms) = (self.store.as_ref(), self.now_ms());
        let recipients = parse_custodians(store, custodians).await?;
        {
            let mut tx = store.begin_read().await?;
            let active = tx.active_recovery_set().await?;
            tx.rollback().await?;
            if let Some(s) = active {
                anyhow::bail!("a recovery share set ({}) is already active: use `breakglass rekey` to re-split it", s.set_id);
            }
        }
        let set = make_set(threshold, &recipients, out)?;
        let mut tx = store.begin().await?;
        record_set(tx.as_mut(), &set, &recipients, now_ms, actor).await?;
        let seeds = wrap_seeds_with_keys(
            tx.as_mut(),
            self.keys.as_ref(),
            &set.info.set_id,
            &set.recipient,
        )
        .await?;
        let mut details = set_details(&set);
        details["totp_seeds_wrapped"] = json!(seeds);
        self.commit_set(tx, actor, Action::RecoveryInit, set, details, threshold)
            .await
    }

    /// Re-split for a new custodian set or threshold (`breakglass rekey`):
    /// needs k shares of the current set; writes the new share files first;
    /// then, in one transaction, re-wraps every data key to the new recovery
    /// key, records the new set and retires the old one. An interruption before
    /// that commit leaves the old set valid and the new files useless.
    #[tracing::instrument(skip_all)]
    pub async fn recovery_rekey(
        &self,
        actor: &str,
        old_shares: &[shamir::ShareData],
        threshold: u8,
        custodians: &[(String, String)],
        out: &Path,
    ) -> anyhow::Result<InitReport> {
        let (store, now_ms) = (self.store.as_ref(), self.now_ms());
        let recipients = parse_custodians(store, custodians).await?;
        let (old, rows, versions) = {
            let mut tx = store.begin_read().await?;
            let Some(old) = tx.active_recovery_set().await? else {
                tx.rollback().await?;
                anyhow::bail!("no recovery share set is active: run `breakglass init`");
            };
            let rows = tx.recovery_shares(&old.set_id).await?;
            let mut versions = Vec::new();
            for c in tx.credentials().await? {
                for v in tx.versions(&c.id).await? {
                    if v.recovery_set.as_deref() == Some(old.set_id.as_str()) {
                        versions.push(v);
                    }
                }
            }
            tx.rollback().await?;
            (old, rows, versions)
        };
        let info = set_info(&old, &rows);
        let secret = shamir::combine(&info, old_shares)
            .map_err(|e| anyhow::anyhow!("the current set's shares: {e}"))?;
        let old_identity = identity_from(secret)?;

        let set = make_set(threshold, &recipients, out)?;
        let mut rewrapped = Vec::new();
        for v in &versions {
            let Some(wrap) = &v.recovery_wrap else {
                continue;
            };
            let key = unwrap_for_recovery(&old_identity, wrap, &v.credential_id, v.version)?;
            rewrapped.push((
                v.credential_id.clone(),
                v.version,
                wrap_for_recovery(&set.recipient, &v.credential_id, v.version, &key)?,
            ));
        }

        let mut tx = store.begin().await?;
        if !tx.retire_recovery_set(&old.set_id).await? {
            tx.rollback().await?;
            anyhow::bail!("the recovery set changed during the rekey; nothing was changed");
        }
        record_set(tx.as_mut(), &set, &recipients, now_ms, actor).await?;
        let seeds = rewrap_seeds(
            tx.as_mut(),
            &old_identity,
            &old.set_id,
            &set.info.set_id,
            &set.recipient,
        )
        .await?;
        drop(old_identity);
        for (credential_id, version, wrap) in &rewrapped {
            if !tx
                .set_recovery_wrap(credential_id, *version, &old.set_id, &set.info.set_id, wrap)
                .await?
            {
                tx.rollback().await?;
                anyhow::bail!("a credential version changed during the rekey; nothing was changed");
            }
        }
        let mut details = set_details(&set);
        details["retired_set"] = json!(old.set_id);
        details["rewrapped_versions"] = json!(rewrapped.len());
        details["totp_seeds_wrapped"] = json!(seeds);
        details["old_shares_used"] = json!(old_shares.iter().map(|s| s.index).collect::<Vec<_>>());
        self.commit_set(tx, actor, Action::RecoveryRekey, set, details, threshold)
            .await
    }
}

impl App {
    /// A custodian confirms their share against the recorded commitment;
    /// only the commitment travels, never the share.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn share_check(
        &self,
        who: &Identity,
        body: ShareCheckBody,
    ) -> AppResult<ShareCheckView> {
        let target = format!("recovery-set:{}", body.set_id);
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Custodian)?;
            let Some(set) = tx.active_recovery_set().await? else {
                return refuse(Code::NoRecoverySet, "no recovery share set is active: run the `init` ceremony");
            };
            if set.set_id != body.set_id {
                return refuse(
                    Code::ShareSetRetired,
                    format!("this share belongs to set {}, not to the active set {}", body.set_id, set.set_id),
                );
            }
            let shares = tx.recovery_shares(&set.set_id).await?;
            let Some(row) = shares.iter().find(|s| s.idx == i64::from(body.index)) else {
                return refuse(Code::ShareInvalid, format!("share {} is not part of this set", body.index));
            };
            if row.custodian != who.subject {
                return refuse(Code::NotYourShare, format!("share {} was made for {}", body.index, row.custodian));
            }
            if !bool::from(row.commitment.as_bytes().ct_eq(body.commitment.as_bytes())) {
                return refuse(
                    Code::ShareInvalid,
                    format!("share {} does not match its recorded commitment: it is corrupted or not the one issued", body.index),
                );
            }
            let now = self.now_ms();
            tx.mark_share_checked(&set.set_id, row.idx, now).await?;
            let view = ShareCheckView {
                set_id: set.set_id.clone(),
                index: body.index,
                custodian: row.custodian.clone(),
                threshold: set.threshold,
                share_count: set.share_count,
                checked_at: crate::clock::rfc3339(now),
            };
            Ok(Done::new(view, Event::new(Action::RecoveryShareCheck, target.clone(), json!({ "index": body.index }))))
        }
        .await;
        self.finish(tx, Some(who), Action::RecoveryShareCheck, &target, res)
            .await
    }
}
