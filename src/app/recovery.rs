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

#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub set_id: String,
    pub threshold: u8,
    pub recipient: String,
    pub files: Vec<(String, PathBuf)>,
}

/// The ceremony, run on the host by the operator (`breakglass init`).
pub async fn init(
    store: &dyn Store,
    now_ms: i64,
    actor: &str,
    threshold: u8,
    custodians: &[(String, String)],
    out: &Path,
) -> anyhow::Result<InitReport> {
    let mut recipients = Vec::new();
    for (name, r) in custodians {
        let rec = age::x25519::Recipient::from_str(r).map_err(|e| {
            anyhow::anyhow!("custodian {name}: {r:?} is not an age X25519 recipient (age1…): {e}")
        })?;
        recipients.push((name.clone(), r.clone(), rec));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, _, _) in &recipients {
        anyhow::ensure!(seen.insert(name.clone()), "custodian {name} is named twice");
    }
    {
        let mut tx = store.begin_read().await?;
        if let Some(s) = tx.active_recovery_set().await? {
            tx.rollback().await?;
            anyhow::bail!("a recovery share set ({}) is already active: use `breakglass rekey` to re-split it", s.set_id);
        }
        for (name, _, _) in &recipients {
            anyhow::ensure!(
                tx.custodian(name).await?.is_some(),
                "{name} is not a custodian: add custodians before the ceremony"
            );
        }
        tx.rollback().await?;
    }
    std::fs::create_dir_all(out)?;

    // The recovery key exists only inside this block.
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
    for (share, (name, _, rec)) in shares.iter().zip(&recipients) {
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(share)?);
        let sealed = age::encrypt(rec, &plaintext)
            .map_err(|e| anyhow::anyhow!("while encrypting {name}'s share: {e}"))?;
        let path = out.join(format!("{name}.share.age"));
        let mut f = crate::datadir::create_private_file(&path)?;
        f.write_all(&sealed)?;
        f.sync_all()?;
        files.push((name.clone(), path));
    }

    let mut tx = store.begin().await?;
    tx.insert_recovery_set(&RecoverySetRow {
        set_id: info.set_id.clone(),
        threshold: i64::from(threshold),
        share_count: shares.len() as i64,
        recipient: recipient.clone(),
        key_check: info.key_check.clone(),
        state: "active".into(),
        created_at: now_ms,
        created_by: actor.into(),
    })
    .await?;
    for (share, (name, r, _)) in shares.iter().zip(&recipients) {
        tx.insert_recovery_share(&RecoveryShareRow {
            set_id: info.set_id.clone(),
            idx: i64::from(share.index),
            custodian: name.clone(),
            age_recipient: r.clone(),
            commitment: info.commitments[&share.index].clone(),
            checked_at: None,
        })
        .await?;
    }
    let ev = Event::new(
        "recovery.init",
        format!("recovery-set:{}", info.set_id),
        json!({
            "threshold": threshold,
            "shares": shares.iter().map(|s| json!({ "index": s.index, "custodian": s.custodian })).collect::<Vec<_>>(),
            "recipient": recipient,
        }),
    );
    append_with(tx.as_mut(), now_ms, actor, ev).await?;
    tx.commit().await?;
    Ok(InitReport {
        set_id: info.set_id,
        threshold,
        recipient,
        files,
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
