//! Four-eyes on the rules themselves: a policy change at runtime (a new
//! quorum, release window or condition for a policy, or a credential moved
//! to another policy) is a proposal that takes effect only once the quorum
//! of the policy it changes has approved it with TOTP codes, exactly as a
//! release would need. The proposer never counts, so no one person can
//! lower a quorum. Every step is audited, with the change in words.
//!
//! The files in `policies/` are version 0 of each policy; every applied
//! change adds a version in the database, and the latest version is the
//! one in force on every replica.

use crate::domain::states::{Decision, PolicyChangeKind, PolicyChangeState};
use crate::domain::Action;
use crate::domain::Code;
use std::collections::BTreeMap;

use secrecy::SecretString;
use serde_json::json;

use super::quorum::approvers_of;
use super::views::{PolicyChangeView, ProposeBody};
use super::{refuse, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::domain::policy::{parse_file, Policy};
use crate::domain::Role;
use crate::store::{DecisionRow, PolicyChangeRow, StoreError, Tx};

fn target(id: &str) -> String {
    format!("policy-change:{id}")
}

/// What changes between two versions of a policy, in words.
pub fn diff(old: &Policy, new: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a} → {b}"));
        }
    };
    field("quorum", old.describe(), new.describe());
    field(
        "deny_vetoes",
        old.deny_vetoes.to_string(),
        new.deny_vetoes.to_string(),
    );
    field(
        "request_ttl",
        humantime::format_duration(std::time::Duration::from_secs(old.request_ttl_secs))
            .to_string(),
        humantime::format_duration(std::time::Duration::from_secs(new.request_ttl_secs))
            .to_string(),
    );
    field(
        "release_window",
        humantime::format_duration(std::time::Duration::from_secs(old.release_window_secs))
            .to_string(),
        humantime::format_duration(std::time::Duration::from_secs(new.release_window_secs))
            .to_string(),
    );
    field(
        "ticket_pattern",
        format!("{:?}", old.ticket_pattern),
        format!("{:?}", new.ticket_pattern),
    );
    field(
        "release_hours",
        format!("{:?}", old.release_hours),
        format!("{:?}", new.release_hours),
    );
    field(
        "max_open_releases",
        format!("{:?}", old.max_open_releases),
        format!("{:?}", new.max_open_releases),
    );
    field(
        "description",
        format!("{:?}", old.description),
        format!("{:?}", new.description),
    );
    field(
        "max_age",
        format!("{:?}", old.max_age_secs),
        format!("{:?}", new.max_age_secs),
    );
    field(
        "presence",
        old.presence.to_string(),
        new.presence.to_string(),
    );
    let root = |p: &Policy| match &p.root_sessions {
        None => "none".to_string(),
        Some(r) => format!(
            "{} in {}{}",
            r.tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            r.accounts.join(", "),
            if r.hand_over {
                ", may be handed over"
            } else {
                ""
            }
        ),
    };
    field("root_sessions", root(old), root(new));
    out
}

impl App {
    /// The policies in force: the files, overridden by the latest version
    /// of every policy changed at runtime. Name → (policy, version).
    pub(crate) async fn effective_policies(
        &self,
        tx: &mut dyn Tx,
    ) -> AppResult<BTreeMap<String, (Policy, i64)>> {
        let mut m: BTreeMap<String, (Policy, i64)> = self
            .policies
            .iter()
            .map(|p| (p.name.to_string(), (p.clone(), 0)))
            .collect();
        let key = self.audit_public_key();
        for (name, version, body, seal) in tx.policy_versions().await? {
            // A version written around the service decides nothing: every
            // use of the policies refuses until it is restored.
            if !super::proof::version_sealed(&key, &name, version, &body, seal.as_deref()) {
                return super::proof::policy_unproven(format!(
                    "version {version} of policy {name}"
                ));
            }
            let p: Policy = serde_json::from_str(&body).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("stored policy {name} v{version}: {e}"))
            })?;
            m.insert(name, (p, version));
        }
        Ok(m)
    }

    pub(crate) async fn effective_policy(
        &self,
        tx: &mut dyn Tx,
        name: &str,
    ) -> AppResult<Option<(Policy, i64)>> {
        Ok(self.effective_policies(tx).await?.remove(name))
    }

    async fn change_view(
        &self,
        tx: &mut dyn Tx,
        c: &PolicyChangeRow,
    ) -> AppResult<PolicyChangeView> {
        let quorum: Policy = serde_json::from_str(&c.quorum)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored quorum snapshot: {e}")))?;
        let decisions = tx.policy_change_decisions(&c.id).await?;
        let approvers = approvers_of(&decisions, Some(&c.proposer));
        let credential = match &c.credential_id {
            Some(id) => tx.credential_by_id(id).await?.map(|c| c.name),
            None => None,
        };
        Ok(PolicyChangeView {
            id: c.id.clone(),
            kind: c.kind.to_string(),
            policy: c.policy.clone(),
            base_version: c.base_version,
            quorum: quorum.describe(),
            changes: serde_json::from_str(&c.diff).unwrap_or_default(),
            credential,
            to_policy: c.to_policy.clone(),
            reason: c.reason.clone(),
            proposer: c.proposer.clone(),
            state: if c.state == PolicyChangeState::Pending && self.now_ms() >= c.expires_at {
                "expired".into()
            } else {
                c.state.to_string()
            },
            approvals: decisions
                .iter()
                .filter(|d| d.decision == Decision::Approve)
                .map(|d| d.custodian.clone())
                .collect(),
            waiting_for: if c.state == PolicyChangeState::Pending {
                Some(quorum.missing(&approvers))
            } else {
                None
            },
            created_at: crate::clock::rfc3339(c.created_at),
            expires_at: crate::clock::rfc3339(c.expires_at),
        })
    }

    /// An admin proposes a change; it waits for the quorum of the policy it
    /// changes.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn propose_policy_change(
        &self,
        who: &Identity,
        body: ProposeBody,
    ) -> AppResult<PolicyChangeView> {
        let mut tx = self.store.begin().await?;
        let res = self.propose_tx(tx.as_mut(), who, body).await;
        self.finish(tx, Some(who), Action::PolicyPropose, "policies", res)
            .await
    }

    async fn propose_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        body: ProposeBody,
    ) -> AppResult<Done<PolicyChangeView>> {
        self.require(who, Role::Admin)?;
        let reason = super::requests::reason_of(&body.reason)?;
        let policies = self.effective_policies(tx).await?;
        let now = self.now_ms();
        let (kind, name, proposed, credential_id, to_policy, changes) = match (
            &body.policy_toml,
            &body.credential,
            &body.to_policy,
        ) {
            (Some(src), None, None) => {
                if src.len() > 64 * 1024 {
                    return refuse(Code::InvalidPolicy, "the policy text is larger than 64 KiB");
                }
                let parsed = parse_file(std::path::Path::new("proposal"), src).map_err(|e| {
                    AppError::Refused(super::Refusal {
                        status: 422,
                        code: Code::InvalidPolicy,
                        message: format!("line {}: {}", e.line, e.reason),
                        totp_failure_of: None,
                    })
                })?;
                let [(new, _)] = <[_; 1]>::try_from(parsed).map_err(|_| {
                    AppError::Refused(super::Refusal {
                        status: 422,
                        code: Code::InvalidPolicy,
                        message: "propose exactly one [[policy]]".into(),
                        totp_failure_of: None,
                    })
                })?;
                let name = new.name.to_string();
                let Some((old, _)) = policies.get(&name) else {
                    return refuse(
                        Code::UnknownPolicy,
                        format!("no policy named {name}: new policies come from the policy files"),
                    );
                };
                let changes = diff(old, &new);
                if changes.is_empty() {
                    return refuse(
                        Code::NoChange,
                        format!("the proposal is policy {name} as it is"),
                    );
                }
                let others = policies
                    .iter()
                    .filter(|(n, _)| **n != name)
                    .map(|(_, (p, _))| p);
                if let Some(why) =
                    crate::domain::policy::root_overlap(others.chain(std::iter::once(&new)))
                {
                    return refuse(Code::InvalidPolicy, why);
                }
                let json = serde_json::to_string(&new).expect("a policy serialises");
                (
                    PolicyChangeKind::Update,
                    name,
                    Some(json),
                    None,
                    None,
                    changes,
                )
            }
            (None, Some(cred), Some(to)) => {
                let Some(c) = tx.credential_by_name(cred).await? else {
                    return refuse(
                        Code::CredentialNotFound,
                        format!("no credential named {cred}"),
                    );
                };
                // The quorum that decides the move is that of the policy the
                // credential is under, which must be the service's doing.
                if !super::proof::policy_of_sealed(&self.audit_public_key(), &c) {
                    return super::proof::policy_unproven(format!(
                        "the assignment of credential {} to policy {}",
                        c.name, c.policy
                    ));
                }
                let Some((new, _)) = policies.get(to) else {
                    return refuse(Code::UnknownPolicy, format!("no policy named {to}"));
                };
                if &c.policy == to {
                    return refuse(
                        Code::NoChange,
                        format!("{cred} is already under policy {to}"),
                    );
                }
                let old_desc = policies
                    .get(&c.policy)
                    .map(|(p, _)| p.describe())
                    .unwrap_or_else(|| "(a policy no longer loaded)".into());
                let changes = vec![format!(
                    "credential {cred}: policy {} ({old_desc}) → {to} ({})",
                    c.policy,
                    new.describe()
                )];
                (
                    PolicyChangeKind::Move,
                    c.policy.clone(),
                    None,
                    Some(c.id.clone()),
                    Some(to.clone()),
                    changes,
                )
            }
            _ => return refuse(
                Code::InvalidBody,
                "give either policy_toml (a changed policy), or credential and to_policy (a move)",
            ),
        };
        let Some((quorum, base_version)) = policies.get(&name).cloned() else {
            return refuse(
                Code::PolicyMissing,
                format!("policy {name} is not loaded: the change has no quorum to ask"),
            );
        };
        let row = PolicyChangeRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            policy: name.clone(),
            base_version,
            quorum: serde_json::to_string(&quorum).expect("a policy serialises"),
            proposed,
            credential_id,
            to_policy,
            diff: serde_json::to_string(&changes).expect("strings serialise"),
            reason,
            proposer: who.subject.clone(),
            state: PolicyChangeState::Pending,
            created_at: now,
            expires_at: now + quorum.request_ttl_secs as i64 * 1000,
            decided_at: None,
        };
        tx.insert_policy_change(&row).await?;
        let view = self.change_view(tx, &row).await?;
        let ev = Event::new(
            Action::PolicyPropose,
            target(&row.id),
            json!({ "kind": kind, "policy": name, "base_version": base_version, "changes": changes, "reason": row.reason, "quorum": quorum.describe() }),
        );
        Ok(Done::new(view, ev))
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_policy_changes(&self, who: &Identity) -> AppResult<Vec<PolicyChangeView>> {
        self.require_any(who, &[Role::Admin, Role::Custodian, Role::Auditor])?;
        let mut tx = self.store.begin_read().await?;
        let res = async {
            let mut out = Vec::new();
            for c in tx.policy_changes(200).await? {
                out.push(self.change_view(tx.as_mut(), &c).await?);
            }
            Ok(out)
        }
        .await;
        tx.rollback().await?;
        res
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn decide_policy_change(
        &self,
        who: &Identity,
        id: &str,
        code: &SecretString,
        deny_reason: Option<&str>,
    ) -> AppResult<PolicyChangeView> {
        let action = if deny_reason.is_some() {
            Action::PolicyDeny
        } else {
            Action::PolicyApprove
        };
        let opened = self.open_presence(&who.subject, code).await;
        let mut tx = self.store.begin().await?;
        let res = match opened {
            Ok(o) => {
                self.decide_change_tx(tx.as_mut(), who, id, code, deny_reason, o.as_ref())
                    .await
            }
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), action, &target(id), res).await
    }

    async fn decide_change_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
        code: &SecretString,
        deny_reason: Option<&str>,
        opened: Option<&super::custodians::OpenedSeed>,
    ) -> AppResult<Done<PolicyChangeView>> {
        self.require(who, Role::Custodian)?;
        let deny_reason = deny_reason.map(super::requests::reason_of).transpose()?;
        let Some(change) = tx.policy_change(id).await? else {
            return refuse(
                Code::PolicyChangeNotFound,
                format!("no policy change with id {id}"),
            );
        };
        let now = self.now_ms();
        if change.state != PolicyChangeState::Pending {
            return refuse(
                Code::PolicyChangeClosed,
                format!("the change is already {}", change.state),
            );
        }
        if now >= change.expires_at {
            return refuse(
                Code::PolicyChangeExpired,
                "the change expired before its quorum was met: propose it again",
            );
        }
        let quorum: Policy = serde_json::from_str(&change.quorum)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored quorum snapshot: {e}")))?;
        let decisions = tx.policy_change_decisions(id).await?;
        let pending = super::quorum::Pending {
            id,
            what: "change",
            excluded: &change.proposer,
            excluded_message: "the proposer cannot approve or deny their own change",
        };
        let d = self
            .quorum_decision(
                tx,
                who,
                pending,
                &quorum,
                &decisions,
                code,
                opened,
                deny_reason.clone(),
            )
            .await?;
        let c_name = d.custodian.clone();
        match tx.insert_policy_change_decision(id, &d).await {
            Err(StoreError::Conflict(_)) => {
                return refuse(
                    Code::AlreadyDecided,
                    format!("custodian {} has already decided on this change", c_name),
                )
            }
            other => other?,
        }
        let mut events = Vec::new();
        match &deny_reason {
            Some(reason) => {
                events.push(Event::new(
                    Action::PolicyDeny,
                    target(id),
                    json!({ "reason": reason, "veto": quorum.deny_vetoes }),
                ));
                if quorum.deny_vetoes {
                    tx.close_policy_change(id, PolicyChangeState::Denied, now)
                        .await?;
                    events.push(Event::new(
                        Action::PolicyDenied,
                        target(id),
                        json!({ "by": c_name }),
                    ));
                }
            }
            None => {
                let mut all = decisions.clone();
                all.push(d);
                let approvers = approvers_of(&all, Some(&change.proposer));
                events.push(Event::new(
                    Action::PolicyApprove,
                    target(id),
                    json!({ "approvals": approvers.len(), "needed": quorum.approvals_needed() }),
                ));
                if quorum.is_met(&approvers) {
                    events.push(self.apply_change(tx, &change, &all, now).await?);
                }
            }
        }
        let change = tx.policy_change(id).await?.unwrap_or(change);
        let view = self.change_view(tx, &change).await?;
        Ok(Done::with_events(view, events).checkpointed())
    }

    /// The quorum is met: the change takes effect, in the approving
    /// transaction, if nothing changed the policy meanwhile.
    async fn apply_change(
        &self,
        tx: &mut dyn Tx,
        change: &PolicyChangeRow,
        decisions: &[DecisionRow],
        now: i64,
    ) -> AppResult<Event> {
        let current = self.effective_policy(tx, &change.policy).await?;
        let superseded = || {
            refuse::<Event>(
                Code::PolicyChangedMeanwhile,
                "the policy changed after this proposal was made: propose again against the policy in force",
            )
        };
        match change.kind {
            PolicyChangeKind::Update => {
                if current.as_ref().map(|(_, v)| *v) != Some(change.base_version) {
                    return superseded();
                }
                let body = change.proposed.as_deref().unwrap_or_default();
                let seal = super::proof::seal_version(
                    &self.audit_key,
                    &change.policy,
                    change.base_version + 1,
                    body,
                );
                let row = crate::store::PolicyVersionRow {
                    name: change.policy.clone(),
                    version: change.base_version + 1,
                    body: body.to_owned(),
                    at: now,
                    by: change.proposer.clone(),
                    change_id: change.id.clone(),
                    seal,
                };
                match tx.insert_policy_version(&row).await {
                    Err(StoreError::Conflict(_)) => return superseded(),
                    other => other?,
                }
            }
            PolicyChangeKind::Move => {
                let (Some(cred), Some(to)) = (&change.credential_id, &change.to_policy) else {
                    return Err(AppError::Internal(anyhow::anyhow!(
                        "a move without its credential"
                    )));
                };
                let seal = super::proof::seal_policy_of(&self.audit_key, cred, to);
                if !tx
                    .set_credential_policy(cred, &change.policy, to, now, &seal)
                    .await?
                {
                    return superseded();
                }
            }
        }
        tx.close_policy_change(&change.id, PolicyChangeState::Applied, now)
            .await?;
        Ok(Event::new(
            Action::PolicyChangeApplied,
            target(&change.id),
            json!({
                "kind": change.kind,
                "policy": change.policy,
                "version": change.base_version + 1,
                "changes": serde_json::from_str::<serde_json::Value>(&change.diff).unwrap_or_default(),
                "proposer": change.proposer,
                "approvers": decisions.iter().filter(|d| d.decision == Decision::Approve).map(|d| d.custodian.clone()).collect::<Vec<_>>(),
            }),
        ))
    }
}
