//! The recovery key ceremony and share checks.
//!
//! `init` makes a recovery key (an age X25519 identity: 256 random bits),
//! splits it with Shamir into one share per custodian, encrypts each share
//! to that custodian's age recipient and writes it to a file, records only
//! the public parts (the recovery recipient, per-share commitments, a key
//! check value), and forgets the key. Every data key deposited afterwards is
//! also wrapped to the recovery recipient, so k custodians can recover a
//! credential without the key service.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::audit::append_with;
use super::views::{ShareCheckBody, ShareCheckView};
use super::{refuse, App, AppResult, Done, Event};
use crate::auth::Identity;
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

const WRAP_FORMAT: &str = "breakglass-recovery-wrap-v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct WrapPlain {
    format: String,
    credential_id: String,
    version: i64,
    data_key: String,
}

impl Drop for WrapPlain {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data_key);
    }
}

/// The JSON of `plain`, encrypted to the recovery recipient; `what` names
/// it in errors.
fn seal_to_recovery(
    recipient: &str,
    plain: &impl serde::Serialize,
    what: &str,
) -> anyhow::Result<Vec<u8>> {
    let r = age::x25519::Recipient::from_str(recipient)
        .map_err(|e| anyhow::anyhow!("recovery recipient: {e}"))?;
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(plain)?);
    age::encrypt(&r, &bytes).map_err(|e| anyhow::anyhow!("while wrapping {what} for recovery: {e}"))
}

/// Decrypt a wrap with the rebuilt recovery identity and parse its JSON.
fn open_from_recovery<T: serde::de::DeserializeOwned>(
    identity: &age::x25519::Identity,
    wrap: &[u8],
    what: &str,
) -> anyhow::Result<T> {
    let bytes =
        zeroize::Zeroizing::new(age::decrypt(identity, wrap).map_err(|_| {
            anyhow::anyhow!("the {what} wrap does not open with this recovery key")
        })?);
    Ok(serde_json::from_slice(&bytes)?)
}

/// Wrap a data key to the recovery recipient, bound to its credential
/// version (a wrap moved to another version is refused at recovery).
pub fn wrap_for_recovery(
    recipient: &str,
    credential_id: &str,
    version: i64,
    key: &[u8; 32],
) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let plain = WrapPlain {
        format: WRAP_FORMAT.into(),
        credential_id: credential_id.into(),
        version,
        data_key: base64::engine::general_purpose::STANDARD.encode(key),
    };
    seal_to_recovery(recipient, &plain, "a data key")
}

/// Unwrap with the rebuilt recovery identity and check the binding.
pub fn unwrap_for_recovery(
    identity: &age::x25519::Identity,
    wrap: &[u8],
    credential_id: &str,
    version: i64,
) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    use base64::Engine;
    let plain: WrapPlain = open_from_recovery(identity, wrap, "recovery")?;
    anyhow::ensure!(
        plain.format == WRAP_FORMAT
            && plain.credential_id == credential_id
            && plain.version == version,
        "the recovery wrap is bound to another credential version"
    );
    let raw =
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(&plain.data_key)?);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    anyhow::ensure!(raw.len() == 32, "the recovered data key is not 256 bits");
    key.copy_from_slice(&raw);
    Ok(key)
}

const SEED_WRAP_FORMAT: &str = "breakglass-recovery-totp-v1";

#[derive(serde::Serialize, serde::Deserialize)]
struct SeedPlain {
    format: String,
    custodian: String,
    enrollment: String,
    seed: String,
}

impl Drop for SeedPlain {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

/// Wrap a custodian's TOTP seed to the recovery recipient, bound to the
/// custodian and enrolment, so the rebuilt recovery key can check their
/// codes while the key service is down.
pub fn wrap_seed_for_recovery(
    recipient: &str,
    custodian: &str,
    enrollment: &str,
    seed: &crate::crypto::totp::Seed,
) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let plain = SeedPlain {
        format: SEED_WRAP_FORMAT.into(),
        custodian: custodian.into(),
        enrollment: enrollment.into(),
        seed: base64::engine::general_purpose::STANDARD.encode(seed.expose_bytes()),
    };
    seal_to_recovery(recipient, &plain, "a seed")
}

/// Unwrap a TOTP seed with the rebuilt recovery key and check its binding.
pub fn unwrap_seed_for_recovery(
    identity: &age::x25519::Identity,
    wrap: &[u8],
    custodian: &str,
    enrollment: &str,
) -> anyhow::Result<crate::crypto::totp::Seed> {
    use base64::Engine;
    let plain: SeedPlain = open_from_recovery(identity, wrap, "TOTP seed")?;
    anyhow::ensure!(
        plain.format == SEED_WRAP_FORMAT
            && plain.custodian == custodian
            && plain.enrollment == enrollment,
        "the TOTP seed wrap is bound to another custodian or enrolment"
    );
    let raw =
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(&plain.seed)?);
    crate::crypto::totp::Seed::from_bytes(&raw)
        .ok_or_else(|| anyhow::anyhow!("the recovered TOTP seed has the wrong length"))
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
        if c.status != "active" {
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
        let mut f = crate::datadir::create_private_file(&path)?;
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
        state: "active".into(),
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

/// The ceremony, run on the host by the operator (`breakglass init`).
pub async fn init(
    store: &dyn Store,
    keys: &dyn crate::keys::KeyService,
    now_ms: i64,
    actor: &str,
    threshold: u8,
    custodians: &[(String, String)],
    out: &Path,
) -> anyhow::Result<InitReport> {
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
    let seeds = wrap_seeds_with_keys(tx.as_mut(), keys, &set.info.set_id, &set.recipient).await?;
    let mut details = set_details(&set);
    details["totp_seeds_wrapped"] = json!(seeds);
    let ev = Event::new(
        "recovery.init",
        format!("recovery-set:{}", set.info.set_id),
        details,
    );
    append_with(tx.as_mut(), now_ms, actor, ev).await?;
    tx.commit().await?;
    Ok(InitReport {
        set_id: set.info.set_id,
        threshold,
        recipient: set.recipient,
        files: set.files,
    })
}

/// Re-split for a new custodian set or threshold (`breakglass rekey`):
/// needs k shares of the current set; writes the new share files first;
/// then, in one transaction, re-wraps every data key to the new recovery
/// key, records the new set and retires the old one. An interruption before
/// that commit leaves the old set valid and the new files useless.
pub async fn rekey(
    store: &dyn Store,
    now_ms: i64,
    actor: &str,
    old_shares: &[shamir::ShareData],
    threshold: u8,
    custodians: &[(String, String)],
    out: &Path,
) -> anyhow::Result<InitReport> {
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
    let ev = Event::new(
        "recovery.rekey",
        format!("recovery-set:{}", set.info.set_id),
        details,
    );
    append_with(tx.as_mut(), now_ms, actor, ev).await?;
    tx.commit().await?;
    Ok(InitReport {
        set_id: set.info.set_id,
        threshold,
        recipient: set.recipient,
        files: set.files,
    })
}

impl App {
    /// A custodian confirms their share against the recorded commitment;
    /// only the commitment travels, never the share.
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
                return refuse(409, "no_recovery_set", "no recovery share set is active: run the `init` ceremony");
            };
            if set.set_id != body.set_id {
                return refuse(
                    409,
                    "share_set_retired",
                    format!("this share belongs to set {}, not to the active set {}", body.set_id, set.set_id),
                );
            }
            let shares = tx.recovery_shares(&set.set_id).await?;
            let Some(row) = shares.iter().find(|s| s.idx == i64::from(body.index)) else {
                return refuse(422, "share_invalid", format!("share {} is not part of this set", body.index));
            };
            if row.custodian != who.subject {
                return refuse(403, "not_your_share", format!("share {} was made for {}", body.index, row.custodian));
            }
            if !bool::from(row.commitment.as_bytes().ct_eq(body.commitment.as_bytes())) {
                return refuse(
                    422,
                    "share_invalid",
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
            Ok(Done::new(view, Event::new("recovery.share_check", target.clone(), json!({ "index": body.index }))))
        }
        .await;
        self.finish(tx, Some(who), "recovery.share_check", &target, res)
            .await
    }
}

/// A credential recovered with k shares.
pub struct Recovered {
    pub credential: String,
    pub account_id: String,
    pub version: i64,
    pub fields: std::collections::BTreeMap<String, secrecy::SecretString>,
}

/// The HTTP status and refusal code of a share that cannot be combined.
pub(crate) fn refusal_for(e: &shamir::CombineError) -> (u16, &'static str) {
    use shamir::CombineError::*;
    match e {
        Malformed { .. } => (422, "share_malformed"),
        Foreign { .. } => (422, "share_foreign"),
        UnknownIndex { .. } | Corrupted { .. } => (422, "share_corrupted"),
        Duplicate { .. } => (409, "share_duplicate"),
        NotEnough { .. } => (409, "shares_not_enough"),
        KeyCheck => (422, "share_key_check"),
    }
}

/// Offline recovery on the host: k custodians' decrypted shares rebuild the
/// recovery key in memory, which unwraps the credential's current data key
/// and opens the copy of its envelope. Needs neither the key service nor
/// the secret store. The recovery key is dropped (zeroized) before this
/// returns; the credential is marked exposed; every attempt is audited.
pub async fn recover_offline(
    store: &dyn Store,
    now_ms: i64,
    actor: &str,
    credential: &str,
    shares: &[shamir::ShareData],
) -> anyhow::Result<Recovered> {
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
            let ev = Event::new("recovery.recover", target, json!({ "message": message }));
            super::audit::append_refusal(tx.as_mut(), now_ms, actor, code, ev).await?;
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
        Err(e) => return refuse(refusal_for(&e).1, e.to_string()).await,
    };
    let identity = match identity_from(secret) {
        Ok(i) => i,
        Err(e) => return refuse("recovery_key_invalid", format!("{e:#}")).await,
    };
    let (Some(wrap), Some(env_bytes)) = (&version.recovery_wrap, &version.recovery_envelope) else {
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
        "recovery.recover",
        target.clone(),
        json!({
            "version": version.version,
            "set_id": set.set_id,
            "shares": shares.iter().map(|s| s.index).collect::<Vec<_>>(),
            "fields": p.fields.keys().collect::<Vec<_>>(),
        }),
    );
    append_with(tx.as_mut(), now_ms, actor, ev).await?;
    tx.commit().await?;
    Ok(Recovered {
        credential: cred.name,
        account_id: cred.account_id,
        version: version.version,
        fields: p.fields,
    })
}

/// Audit a refused offline recovery that failed before the shares were
/// even read (a file that is no share, an identity that does not open it).
pub async fn refuse_offline(
    store: &dyn Store,
    now_ms: i64,
    actor: &str,
    credential: &str,
    code: &str,
    message: &str,
) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    let ev = Event::new(
        "recovery.recover",
        format!("credential:{}", crate::domain::text::escape(credential)),
        json!({ "message": crate::domain::text::escape(message) }),
    );
    super::audit::append_refusal(tx.as_mut(), now_ms, actor, code, ev).await?;
    tx.commit().await?;
    Ok(())
}

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

/// `backup export`: everything recovery needs, without the database.
pub async fn export_backup(
    store: &dyn Store,
    signer: &crate::auth::SigningKey,
    now_ms: i64,
    actor: &str,
) -> anyhow::Result<BackupFile> {
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
        set: shamir::SetInfo {
            set_id: set.set_id.clone(),
            threshold: u8::try_from(set.threshold).unwrap_or(u8::MAX),
            commitments: rows
                .iter()
                .map(|r| (r.idx as u8, r.commitment.clone()))
                .collect(),
            key_check: set.key_check.clone(),
        },
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
        "backup.export",
        format!("recovery-set:{}", set.set_id),
        json!({
            "credentials": file.body.credentials.iter().map(|c| json!({ "name": c.name, "version": c.version })).collect::<Vec<_>>(),
            "not_recoverable": file.body.not_recoverable,
            "audit_head_seq": file.body.audit_head.0,
        }),
    );
    append_with(tx.as_mut(), now_ms, actor, ev).await?;
    tx.commit().await?;
    Ok(file)
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
