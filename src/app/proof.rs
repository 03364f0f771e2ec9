//! A release re-proves its quorum from what the database does not hold.
//!
//! The stored state (`approved`) and the decision rows are what a database
//! writer can change at will. Before a credential leaves the service, the
//! request and each of its decisions are proved again:
//!
//! - **By the audit chain.** The request's `request.create` event and each
//!   decision's `request.approve` / `request.deny` event must lie in a part
//!   of the chain that verifies from the request's creation to the head,
//!   agrees with the witness, and is covered by a checkpoint signed with the
//!   audit key (each of those events is checkpointed in its own
//!   transaction, so a legitimate one always is). The stored request
//!   (requester, credential, policy snapshot, expiry) and the stored
//!   decisions (custodian, decision, groups, TOTP step) must be exactly what
//!   those events record: none added, none removed, none changed.
//! - **By the custodian's TOTP seed**, opened through the key service: the
//!   code kept with each counted approval must be the seed's code at its
//!   recorded step; that step must lie inside the request's lifetime and be
//!   later than every step the custodian decided with before.
//!
//! Whatever fails is refused with `quorum_unproven`, naming what, and the
//! refusal is audited. What a database writer can and cannot do is in
//! `docs/threat-model.md`.

use crate::domain::states::Decision;
use crate::domain::{Action, Code};
use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::webauthn::Assertion;
use super::{refuse, App, AppResult};
use crate::crypto::chain::Verifier;
use crate::domain::request::request_target;
use crate::store::{
    AuditFilter, CredentialRow, CustodianRow, DecisionRow, RequestRow, Tx, WebauthnKeyRow,
};

use super::custodians::custodian_target;

/// Each counted decision made with a key, with the key as stored and the
/// sequence number of its registration event (the proof's chain starts
/// there if that is before the request).
async fn registrations_of(
    tx: &mut dyn Tx,
    r: &RequestRow,
    decisions: &[DecisionRow],
) -> AppResult<Vec<(DecisionRow, WebauthnKeyRow, i64)>> {
    let mut out = Vec::new();
    for d in counted(r, decisions) {
        let Some(raw) = &d.webauthn else { continue };
        let Some(a) = Assertion::from_json(raw) else {
            return unproven(
                r,
                format!(
                    "the security-key approval by {} keeps a malformed assertion",
                    d.custodian
                ),
            );
        };
        let key = match tx.webauthn_key(&a.credential_id).await? {
            Some(k) if k.custodian == d.custodian => k,
            _ => {
                return unproven(
                    r,
                    format!(
                        "the key {} approved with is not registered to them",
                        d.custodian
                    ),
                )
            }
        };
        let events = tx
            .audit_search(
                &AuditFilter {
                    action: Some(Action::WebauthnRegister.as_str().into()),
                    target: Some(custodian_target(&d.custodian)),
                    outcome: Some("success".into()),
                    ..Default::default()
                },
                0,
                1000,
            )
            .await?;
        let Some(reg) = events
            .iter()
            .find(|e| e.details["credential_id"].as_str() == Some(&a.credential_id))
        else {
            return unproven(
                r,
                format!(
                    "the key {} approved with has no registration event",
                    d.custodian
                ),
            );
        };
        out.push((d.clone(), key, reg.seq));
    }
    Ok(out)
}

const STEP_MS: i64 = crate::crypto::totp::STEP_SECS as i64 * 1000;

/// What a seal signs: the canonical JSON of `fields` with `"type":
/// "breakglass-seal"`, `"kind"` and `"v": 1`.
fn seal_bytes(kind: &str, mut fields: serde_json::Value) -> Vec<u8> {
    fields["type"] = "breakglass-seal".into();
    fields["kind"] = kind.into();
    fields["v"] = 1.into();
    let mut out = String::new();
    crate::crypto::chain::canonical_json(&fields, &mut out)
        .expect("seals hold strings and integers only");
    out.into_bytes()
}

fn seal(key: &crate::crypto::signing::SigningKey, kind: &str, fields: serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.sign(&seal_bytes(kind, fields)))
}

fn seal_valid(
    key: &crate::crypto::chain::AuditKey,
    kind: &str,
    fields: serde_json::Value,
    seal: Option<&str>,
) -> bool {
    use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
    use base64::Engine;
    let (Some(raw), Some(sig)) = (
        key.raw(),
        seal.and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok()),
    ) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, raw)
        .verify(&seal_bytes(kind, fields), &sig)
        .is_ok()
}

fn policy_of_fields(credential_id: &str, policy: &str) -> serde_json::Value {
    serde_json::json!({ "credential_id": credential_id, "policy": policy })
}

fn version_fields(name: &str, version: i64, body: &str) -> serde_json::Value {
    serde_json::json!({ "policy": name, "version": version, "body_sha256": snapshot_digest(body) })
}

/// The audit key's seal of "credential `id` is under `policy`".
pub(crate) fn seal_policy_of(
    key: &crate::crypto::signing::SigningKey,
    id: &str,
    policy: &str,
) -> String {
    seal(key, "credential-policy", policy_of_fields(id, policy))
}

/// The audit key's seal of a policy version.
pub(crate) fn seal_version(
    key: &crate::crypto::signing::SigningKey,
    name: &str,
    version: i64,
    body: &str,
) -> String {
    seal(key, "policy-version", version_fields(name, version, body))
}

/// Whether a credential's policy assignment carries the audit key's seal.
pub(crate) fn policy_of_sealed(key: &crate::crypto::chain::AuditKey, c: &CredentialRow) -> bool {
    seal_valid(
        key,
        "credential-policy",
        policy_of_fields(&c.id, &c.policy),
        c.policy_seal.as_deref(),
    )
}

/// Whether a policy version carries the audit key's seal.
pub(crate) fn version_sealed(
    key: &crate::crypto::chain::AuditKey,
    name: &str,
    version: i64,
    body: &str,
    seal: Option<&str>,
) -> bool {
    seal_valid(
        key,
        "policy-version",
        version_fields(name, version, body),
        seal,
    )
}

/// The refusal of a credential assignment or policy version written around
/// the service.
pub(crate) fn policy_unproven<T>(what: String) -> AppResult<T> {
    tracing::error!(what = %what, "a policy binding does not carry the audit key's seal");
    refuse(
        Code::PolicyUnproven,
        format!(
            "{what} does not carry the audit key's seal: it was written around the service (or before seals existed); nothing is decided under it until it is restored or changed through the service"
        ),
    )
}

/// SHA-256 (hex) of a stored policy snapshot, as `request.create` records it.
pub(crate) fn snapshot_digest(policy_json: &str) -> String {
    hex::encode(Sha256::digest(policy_json.as_bytes()))
}

/// SHA-256 (hex) of what a root-session request's quorum approves: the
/// account, the task, the duration, the resource and the delivery.
pub(crate) fn tuple_digest(r: &crate::store::RootRequestRow) -> String {
    let v = serde_json::json!([
        r.account_id,
        r.task,
        r.duration_secs,
        r.resource,
        r.delivery
    ]);
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// A digest of a request and its decisions as proved: the release's own
/// transaction compares it, so nothing changed between the proof and the
/// release.
pub(crate) fn state_digest(r: &RequestRow, decisions: &[DecisionRow]) -> String {
    let decisions: Vec<_> = decisions
        .iter()
        .map(|d| {
            serde_json::json!([
                d.custodian,
                d.decision,
                d.groups,
                d.totp_step,
                d.at,
                d.totp_code
                    .as_ref()
                    .map(|c| hex::encode(Sha256::digest(c.expose().as_bytes()))),
                d.webauthn
                    .as_ref()
                    .map(|a| hex::encode(Sha256::digest(a.as_bytes()))),
            ])
        })
        .collect();
    let v = serde_json::json!([
        r.id,
        r.credential_id,
        r.requester,
        r.policy,
        r.state,
        r.created_at,
        r.expires_at,
        r.approved_at,
        r.release_deadline,
        decisions,
    ]);
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// The approvals that count toward the quorum (never the requester's).
pub(crate) fn counted<'a>(r: &RequestRow, decisions: &'a [DecisionRow]) -> Vec<&'a DecisionRow> {
    decisions
        .iter()
        .filter(|d| d.decision == Decision::Approve && d.custodian != r.requester)
        .collect()
}

fn unproven<T>(r: &RequestRow, why: impl Into<String>) -> AppResult<T> {
    let why = why.into();
    tracing::error!(request = %r.id, reason = %why, "a release could not prove its quorum");
    refuse(
        Code::QuorumUnproven,
        format!(
            "the release is refused: {why}. The stored approvals disagree with what the database cannot forge; investigate before anything is released"
        ),
    )
}

/// A decision as the chain records it and as the store holds it (with
/// its assertion, when made with a key).
type DecisionKey = (String, Decision, Vec<String>, i64, Option<String>);

fn key_of(d: &DecisionRow) -> DecisionKey {
    let mut groups = d.groups.clone();
    groups.sort();
    let assertion = d.webauthn.as_ref().map(|a| {
        Assertion::from_json(a).map_or_else(|| format!("malformed: {a}"), |a| a.to_json())
    });
    (
        d.custodian.clone(),
        d.decision,
        groups,
        d.totp_step,
        assertion,
    )
}

impl App {
    /// The chain's part of the proof, read in `tx` (no key service): see
    /// the module's documentation.
    pub(crate) async fn prove_by_chain(
        &self,
        tx: &mut dyn Tx,
        r: &RequestRow,
        decisions: &[DecisionRow],
    ) -> AppResult<()> {
        let keys = registrations_of(tx, r, decisions).await?;
        let earliest = keys.iter().map(|(_, _, seq)| *seq).min();
        let targets = keys
            .iter()
            .map(|(d, _, _)| custodian_target(&d.custodian))
            .collect();
        let covered = self.signed_events_of(tx, r, earliest, &targets).await?;
        let root = match r.credential_id {
            None => tx.root_request(&r.id).await?,
            Some(_) => None,
        };
        created_as_stored(r, root.as_ref(), &covered)?;
        decisions_as_recorded(r, decisions, &covered)?;
        approvals_in_order(tx, r, decisions).await?;
        for (d, key, _) in &keys {
            self.key_decision_proved(r, d, key, &covered)?;
        }
        Ok(())
    }

    /// A decision made with a key: the key is the one its signed
    /// registration event describes, was not removed before the decision,
    /// and its assertion verifies against it over the challenge that the
    /// request, the decision and the custodian give.
    fn key_decision_proved(
        &self,
        r: &RequestRow,
        d: &DecisionRow,
        key: &WebauthnKeyRow,
        covered: &[crate::crypto::chain::AuditEvent],
    ) -> AppResult<()> {
        let a = d
            .webauthn
            .as_deref()
            .and_then(Assertion::from_json)
            .expect("registrations_of kept only parsable assertions");
        let target = custodian_target(&d.custodian);
        let of_key = |e: &&crate::crypto::chain::AuditEvent| {
            e.target == target && e.details["credential_id"].as_str() == Some(&a.credential_id)
        };
        let Some(registered) = covered
            .iter()
            .filter(of_key)
            .find(|e| e.action == Action::WebauthnRegister.as_str())
        else {
            return unproven(
                r,
                format!(
                    "the key {} approved with has no registration event covered by a signed checkpoint",
                    d.custodian
                ),
            );
        };
        if registered.details["passkey_sha256"].as_str()
            != Some(super::webauthn::passkey_digest(&key.passkey).as_str())
        {
            return unproven(
                r,
                format!(
                    "the stored key of {} is not the key its signed registration event describes (event {})",
                    d.custodian, registered.seq
                ),
            );
        }
        let decided = covered.iter().find(|e| {
            e.actor == d.custodian
                && matches!(
                    Action::of(&e.action),
                    Some(Action::RequestApprove | Action::RequestDeny)
                )
        });
        let removed = covered
            .iter()
            .filter(of_key)
            .find(|e| e.action == Action::WebauthnRemove.as_str());
        if let (Some(rm), Some(dec)) = (removed, decided) {
            if rm.seq < dec.seq {
                return unproven(
                    r,
                    format!(
                        "the key {} approved with was removed (event {}) before the approval (event {})",
                        d.custodian, rm.seq, dec.seq
                    ),
                );
            }
        }
        let purpose = super::webauthn::decision_purpose(&r.id, d.decision, &d.custodian, &a.nonce);
        if let Err(why) = self.reverify(&key.passkey, &a, &purpose) {
            return unproven(
                r,
                format!("the security-key approval by {}: {why}", d.custodian),
            );
        }
        Ok(())
    }

    /// The request's own successful events that a signed checkpoint covers,
    /// after verifying the chain from its creation to the head (every
    /// checkpoint on the way, and the witness).
    async fn signed_events_of(
        &self,
        tx: &mut dyn Tx,
        r: &RequestRow,
        earliest: Option<i64>,
        also: &BTreeSet<String>,
    ) -> AppResult<Vec<crate::crypto::chain::AuditEvent>> {
        let target = request_target(&r.id);
        let creates = tx
            .audit_search(
                &AuditFilter {
                    action: Some(Action::RequestCreate.as_str().into()),
                    target: Some(target.clone()),
                    outcome: Some("success".into()),
                    ..Default::default()
                },
                0,
                2,
            )
            .await?;
        let create = match creates.as_slice() {
            [one] => one,
            [] => return unproven(r, "the audit log holds no request.create event for it"),
            _ => return unproven(r, "the audit log holds two request.create events for it"),
        };
        // From the request's creation, or from the registration of a key
        // that decided on it, if earlier.
        let start = earliest.map_or(create.seq, |e| e.min(create.seq));
        let Some(start_hash) = tx.audit_hash_at(start - 1).await? else {
            return unproven(
                r,
                format!(
                    "event {} before the events it rests on is missing",
                    start - 1
                ),
            );
        };
        // Verify from the creation to the head, every checkpoint on the way.
        let head = tx.audit_head_peek().await?;
        let mut v =
            Verifier::starting_at(start, &start_hash).with_keys(vec![self.audit_public_key()]);
        for c in tx
            .checkpoints(start - 1, super::audit::CHECKPOINTS_MAX)
            .await?
        {
            v.checkpoint(c);
        }
        let mut mine = Vec::new();
        let mut after = start - 1;
        loop {
            let batch = tx.audit_events(after, 5000).await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for e in batch {
                v.push(&e);
                if (e.target == target || also.contains(&e.target)) && e.outcome == "success" {
                    mine.push(e);
                }
            }
        }
        let verdict = v.finish(Some(head.clone()));
        if let Some(b) = verdict.first_break {
            return unproven(
                r,
                format!(
                    "the audit chain does not verify from event {start}: broken at {}: {}",
                    b.seq, b.reason
                ),
            );
        }
        if let Some(w) = self.witness.current() {
            if let Some(b) = super::audit::witness_break(tx, &w, head.0).await? {
                return unproven(
                    r,
                    format!(
                        "the audit chain disagrees with its witness: broken at {}: {}",
                        b.seq, b.reason
                    ),
                );
            }
        }
        let signed = verdict.signed_through.unwrap_or(0);
        Ok(mine.into_iter().filter(|e| e.seq <= signed).collect())
    }

    /// The seeds' part of the proof: each counted approval's kept code is
    /// the custodian's code at its recorded step. Opens the seeds with the
    /// key service: call it outside any write transaction.
    pub(crate) async fn prove_by_codes(
        &self,
        r: &RequestRow,
        decisions: &[DecisionRow],
        custodians: &[CustodianRow],
    ) -> AppResult<()> {
        for d in counted(r, decisions) {
            if d.webauthn.is_some() {
                // Proved by its assertion (`prove_by_chain`).
                continue;
            }
            let Some(code) = &d.totp_code else {
                return unproven(
                    r,
                    format!(
                        "the approval by {} kept no TOTP code (made before decisions were proved): file a new request",
                        d.custodian
                    ),
                );
            };
            let Some(c) = custodians.iter().find(|c| c.name == d.custodian) else {
                return unproven(r, format!("custodian {} no longer exists", d.custodian));
            };
            let (Some(env), Some(enrollment)) = (&c.totp_envelope, &c.enrollment_id) else {
                return unproven(r, format!("custodian {} has no TOTP seed", d.custodian));
            };
            let seed = super::custodians::open_seed(self.keys.as_ref(), c, env, enrollment).await?;
            let verifies = u64::try_from(d.totp_step)
                .is_ok_and(|step| seed.verifies_at_step(code.expose(), step));
            if !verifies {
                return unproven(
                    r,
                    format!(
                        "the code kept with the approval by {} is not {}'s TOTP code at its recorded step",
                        d.custodian, d.custodian
                    ),
                );
            }
        }
        Ok(())
    }
}
/// The request as created: its stored row matches its signed
/// `request.create` event.
fn created_as_stored(
    r: &RequestRow,
    root: Option<&crate::store::RootRequestRow>,
    covered: &[crate::crypto::chain::AuditEvent],
) -> AppResult<()> {
    let Some(e0) = covered
        .iter()
        .find(|e| e.action == Action::RequestCreate.as_str())
    else {
        return unproven(
            r,
            "its request.create event is not covered by a signed checkpoint",
        );
    };
    let d0 = &e0.details;
    let same = e0.actor == r.requester
        && d0["credential_id"].as_str() == r.credential_id.as_deref()
        && d0["credential"].as_str() == Some(r.credential_name.as_str())
        && d0["policy_sha256"].as_str() == Some(snapshot_digest(&r.policy).as_str())
        && d0["expires_at"].as_str() == Some(crate::clock::rfc3339(r.expires_at).as_str())
        // A root session's tuple, recomputed from its stored columns.
        && d0["tuple_sha256"].as_str() == root.map(tuple_digest).as_deref();
    if !same {
        return unproven(
            r,
            format!(
                "the stored request does not match its signed request.create event (event {}): its requester, credential, policy or expiry was changed, or its root-session tuple",
                e0.seq
            ),
        );
    }
    Ok(())
}

/// The decisions, exactly as recorded: the stored ones and the signed
/// events name the same custodians, decisions, groups and steps.
fn decisions_as_recorded(
    r: &RequestRow,
    decisions: &[DecisionRow],
    covered: &[crate::crypto::chain::AuditEvent],
) -> AppResult<()> {
    let mut recorded = BTreeSet::new();
    for e in covered {
        let decision = match Action::of(&e.action) {
            Some(Action::RequestApprove) => Decision::Approve,
            Some(Action::RequestDeny) => Decision::Deny,
            _ => continue,
        };
        let (Some(step), Some(groups)) =
            (e.details["step"].as_i64(), e.details["groups"].as_array())
        else {
            return unproven(
                r,
                format!(
                    "event {} records a decision without its TOTP step and groups (made before decisions were proved): file a new request",
                    e.seq
                ),
            );
        };
        let mut groups: Vec<String> = groups
            .iter()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect();
        groups.sort();
        let assertion = match &e.details["webauthn"] {
            serde_json::Value::Null => None,
            v => Some(
                serde_json::from_value::<Assertion>(v.clone())
                    .map_or_else(|_| format!("malformed: {v}"), |a| a.to_json()),
            ),
        };
        recorded.insert((e.actor.clone(), decision, groups, step, assertion));
    }
    let stored: BTreeSet<DecisionKey> = decisions.iter().map(key_of).collect();
    if let Some((who, what, _, step, _)) = stored.difference(&recorded).next() {
        return unproven(
            r,
            format!(
                "the {what} by {who} (TOTP step {step}) has no event in the signed audit chain, or differs from it"
            ),
        );
    }
    if let Some((who, what, _, _, _)) = recorded.difference(&stored).next() {
        return unproven(
            r,
            format!(
                "the signed audit chain records a {what} by {who} that the database no longer holds as recorded"
            ),
        );
    }
    Ok(())
}

/// Each counted approval: inside the request's lifetime, and later than
/// every step its custodian decided with before.
async fn approvals_in_order(
    tx: &mut dyn Tx,
    r: &RequestRow,
    decisions: &[DecisionRow],
) -> AppResult<()> {
    for d in counted(r, decisions) {
        if d.webauthn.is_some() {
            // No TOTP step: its challenge binds the request instead.
            if !(r.created_at..=r.expires_at).contains(&d.at) {
                return unproven(
                    r,
                    format!(
                        "the security-key approval by {} lies outside the request's lifetime",
                        d.custodian
                    ),
                );
            }
            continue;
        }
        let inside = (r.created_at..=r.expires_at).contains(&d.at)
            && d.totp_step >= r.created_at.div_euclid(STEP_MS) - 1
            && d.totp_step <= d.at.div_euclid(STEP_MS) + 1;
        if !inside {
            return unproven(
                r,
                format!(
                    "the approval by {} (TOTP step {}) lies outside the request's lifetime",
                    d.custodian, d.totp_step
                ),
            );
        }
        let steps = tx.decision_steps(&d.custodian).await?;
        let reused = steps.iter().filter(|(s, _)| *s == d.totp_step).count() > 1;
        let backwards = steps.iter().any(|(s, at)| *at < d.at && *s >= d.totp_step);
        let guard = tx
            .custodian(&d.custodian)
            .await?
            .and_then(|c| c.last_totp_step);
        if reused || backwards || guard.is_none_or(|g| g < d.totp_step) {
            return unproven(
                r,
                format!(
                    "the approval by {} (TOTP step {}) is not later than every step {} decided with before",
                    d.custodian, d.totp_step, d.custodian
                ),
            );
        }
    }
    Ok(())
}
