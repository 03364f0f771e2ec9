//! A new security key for a custodian who had keys and has none left: no
//! key can confirm it, so the quorum does, as it approves a policy change.
//!
//! The custodian (or an admin) proposes the reset; the quorum of the
//! strictest policy the custodian approves under (the one that needs the
//! most approvals) decides, with TOTP codes, the custodian never counting;
//! once it is met, the custodian may register one key (with their own TOTP
//! code) within `GRANT_MS`, and the reset is then used up.

use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::quorum::{approvers_of, groups_of};
use super::views::DecisionView;
use super::{refuse, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::domain::states::Decision;
use crate::domain::{Action, Code, Policy, Role};
use crate::store::{DecisionRow, KeyResetRow, StoreError, Tx};

/// How long an approved reset lets its custodian register a key.
pub const GRANT_MS: i64 = 3600 * 1000;

fn target(id: &str) -> String {
    format!("key-reset:{id}")
}

/// A key reset, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyResetView {
    pub id: String,
    pub custodian: String,
    pub proposer: String,
    /// The policy whose quorum decides, and what it needs.
    pub policy: String,
    pub quorum: String,
    pub reason: String,
    /// `pending`, `approved` (a key may be registered), `denied`, `used`,
    /// or `expired`.
    pub state: String,
    pub approvals: usize,
    pub approvals_needed: u32,
    pub decisions: Vec<DecisionView>,
    pub created_at: String,
    pub expires_at: String,
    /// Until when the custodian may register a key (approved resets).
    pub register_until: Option<String>,
}

/// Propose a reset.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyResetBody {
    pub reason: String,
}

/// A decision on a reset.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyResetDecision {
    #[schema(value_type = String, example = "123456")]
    pub code: SecretString,
    /// Needed to deny.
    #[serde(default)]
    pub reason: Option<String>,
}

fn quorum_of(r: &KeyResetRow) -> AppResult<Policy> {
    serde_json::from_str(&r.quorum)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored quorum snapshot: {e}")))
}

/// The state as of `now` (a pending reset past its deadline has expired,
/// and so has an approved one past its grant).
fn state_at(r: &KeyResetRow, now: i64) -> &str {
    match r.state.as_str() {
        "pending" if now >= r.expires_at => "expired",
        "approved" if r.approved_at.is_some_and(|a| now >= a + GRANT_MS) => "expired",
        s => s,
    }
}

impl App {
    fn reset_view(
        &self,
        r: &KeyResetRow,
        decisions: &[DecisionRow],
        now: i64,
    ) -> AppResult<KeyResetView> {
        let quorum = quorum_of(r)?;
        Ok(KeyResetView {
            id: r.id.clone(),
            custodian: r.custodian.clone(),
            proposer: r.proposer.clone(),
            policy: r.policy.clone(),
            quorum: quorum.describe(),
            reason: r.reason.clone(),
            state: state_at(r, now).to_owned(),
            approvals: approvers_of(decisions, Some(&r.custodian)).len(),
            approvals_needed: quorum.approvals_needed(),
            decisions: decisions.iter().map(DecisionView::from).collect(),
            created_at: crate::clock::rfc3339(r.created_at),
            expires_at: crate::clock::rfc3339(r.expires_at),
            register_until: r.approved_at.map(|a| crate::clock::rfc3339(a + GRANT_MS)),
        })
    }

    /// Propose a new key for custodian `name` (the custodian, or an admin).
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn propose_key_reset(
        &self,
        who: &Identity,
        name: &str,
        body: KeyResetBody,
    ) -> AppResult<KeyResetView> {
        let mut tx = self.store.begin().await?;
        let res = self.propose_reset_tx(tx.as_mut(), who, name, body).await;
        let t = match &res {
            Ok(d) => target(&d.value.id),
            Err(_) => format!("custodian:{name}"),
        };
        self.finish(tx, Some(who), Action::KeyResetPropose, &t, res)
            .await
    }

    async fn propose_reset_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        name: &str,
        body: KeyResetBody,
    ) -> AppResult<Done<KeyResetView>> {
        if who.subject == name {
            self.require(who, Role::Custodian)?;
        } else {
            self.require(who, Role::Admin)?;
        }
        let reason = super::requests::reason_of(&body.reason)?;
        let Some(c) = tx.custodian(name).await? else {
            return refuse(
                Code::CustodianNotFound,
                format!("no custodian named {name}"),
            );
        };
        let keys = tx.webauthn_keys_of(&c.name).await?;
        if keys.iter().any(|k| k.removed_at.is_none()) {
            return refuse(
                Code::NoChange,
                format!(
                    "custodian {} still has a registered key: a new one is confirmed with it (or remove the lost ones first)",
                    c.name
                ),
            );
        }
        if keys.is_empty() {
            return refuse(
                Code::NoChange,
                format!(
                    "custodian {} never had a key: the first one needs only their TOTP code",
                    c.name
                ),
            );
        }
        // The strictest policy the custodian approves under decides.
        let groups = groups_of(&c.groups);
        let mut quorum: Option<Policy> = None;
        for (p, _) in self.effective_policies(tx).await?.into_values() {
            if p.is_eligible(&groups)
                && quorum
                    .as_ref()
                    .is_none_or(|q| p.approvals_needed() > q.approvals_needed())
            {
                quorum = Some(p);
            }
        }
        let Some(quorum) = quorum else {
            return refuse(
                Code::NotEligible,
                format!(
                    "custodian {} approves under no policy: there is no quorum to ask",
                    c.name
                ),
            );
        };
        let now = self.now_ms();
        let row = KeyResetRow {
            id: uuid::Uuid::new_v4().to_string(),
            custodian: c.name.clone(),
            proposer: who.subject.clone(),
            policy: quorum.name.to_string(),
            quorum: serde_json::to_string(&quorum).expect("a policy serialises"),
            reason,
            state: "pending".into(),
            created_at: now,
            expires_at: now + quorum.request_ttl_secs as i64 * 1000,
            approved_at: None,
            closed_at: None,
        };
        tx.insert_key_reset(&row).await?;
        let ev = Event::new(
            Action::KeyResetPropose,
            target(&row.id),
            json!({ "custodian": c.name, "policy": row.policy, "quorum": quorum.describe(), "reason": row.reason }),
        );
        Ok(Done::new(self.reset_view(&row, &[], now)?, ev).checkpointed())
    }

    /// Key resets, newest first (admin, custodian, auditor).
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_key_resets(&self, who: &Identity) -> AppResult<Vec<KeyResetView>> {
        let mut tx = self.store.begin_read().await?;
        let res = async {
            self.require_any(who, &[Role::Admin, Role::Custodian, Role::Auditor])?;
            let now = self.now_ms();
            let mut out = Vec::new();
            for r in tx.key_resets(200).await? {
                let d = tx.key_reset_decisions(&r.id).await?;
                out.push(self.reset_view(&r, &d, now)?);
            }
            Ok(out)
        }
        .await;
        self.finish_read(tx, who, Action::KeyResetList, "key-resets", res)
            .await
    }

    /// Approve (`deny_reason` None) or deny a reset with a TOTP code.
    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn decide_key_reset(
        &self,
        who: &Identity,
        id: &str,
        code: &SecretString,
        deny_reason: Option<&str>,
    ) -> AppResult<KeyResetView> {
        let action = match deny_reason {
            Some(_) => Action::KeyResetDeny,
            None => Action::KeyResetApprove,
        };
        let opened = self.open_presence(&who.subject, code).await;
        let mut tx = self.store.begin().await?;
        let res = match opened {
            Ok(o) => {
                self.decide_reset_tx(tx.as_mut(), who, id, code, deny_reason, o.as_ref())
                    .await
            }
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), action, &target(id), res).await
    }

    async fn decide_reset_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
        code: &SecretString,
        deny_reason: Option<&str>,
        opened: Option<&super::custodians::OpenedSeed>,
    ) -> AppResult<Done<KeyResetView>> {
        self.require(who, Role::Custodian)?;
        let deny_reason = deny_reason.map(super::requests::reason_of).transpose()?;
        let found = match uuid::Uuid::parse_str(id) {
            Ok(_) => tx.key_reset(id).await?,
            Err(_) => None,
        };
        let Some(r) = found else {
            return refuse(Code::KeyResetNotFound, format!("no key reset {id:?}"));
        };
        let now = self.now_ms();
        match state_at(&r, now) {
            "pending" => {}
            "expired" => {
                return refuse(
                    Code::KeyResetClosed,
                    "the key reset expired before its quorum was met: propose it again",
                )
            }
            s => return refuse(Code::KeyResetClosed, format!("the key reset is {s}")),
        }
        let quorum = quorum_of(&r)?;
        let decisions = tx.key_reset_decisions(id).await?;
        let pending = super::quorum::Pending {
            id,
            what: "key reset",
            excluded: &r.custodian,
            excluded_message: "a custodian cannot decide on their own key reset",
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
        let (step, groups, by) = (d.totp_step, d.groups.clone(), d.custodian.clone());
        match tx.insert_key_reset_decision(id, &d).await {
            Err(StoreError::Conflict(_)) => {
                return refuse(
                    Code::AlreadyDecided,
                    format!("custodian {by} has already decided on this key reset"),
                )
            }
            other => other?,
        }
        let mut all = decisions;
        all.push(d);
        let mut events = Vec::new();
        match &deny_reason {
            Some(reason) => {
                events.push(Event::new(
                    Action::KeyResetDeny,
                    target(id),
                    json!({ "custodian": r.custodian, "reason": reason, "veto": quorum.deny_vetoes, "step": step, "groups": groups }),
                ));
                if quorum.deny_vetoes && tx.move_key_reset(id, "pending", "denied", now).await? {
                    events.push(Event::new(
                        Action::KeyResetDenied,
                        target(id),
                        json!({ "custodian": r.custodian, "by": by }),
                    ));
                }
            }
            None => {
                let approvers = approvers_of(&all, Some(&r.custodian));
                events.push(Event::new(
                    Action::KeyResetApprove,
                    target(id),
                    json!({ "custodian": r.custodian, "approvals": approvers.len(), "needed": quorum.approvals_needed(), "step": step, "groups": groups }),
                ));
                if quorum.is_met(&approvers)
                    && tx.move_key_reset(id, "pending", "approved", now).await?
                {
                    events.push(Event::new(
                        Action::KeyResetApproved,
                        target(id),
                        json!({
                            "custodian": r.custodian,
                            "approvers": all.iter().filter(|d| d.decision == Decision::Approve).map(|d| d.custodian.clone()).collect::<Vec<_>>(),
                            "register_until": crate::clock::rfc3339(now + GRANT_MS),
                        }),
                    ));
                }
            }
        }
        let r = tx.key_reset(id).await?.unwrap_or(r);
        let view = self.reset_view(&r, &all, now)?;
        Ok(Done::with_events(view, events).checkpointed())
    }

    /// The approved, unused reset that lets `custodian` register a key now.
    pub(crate) async fn granted_reset(
        &self,
        tx: &mut dyn Tx,
        custodian: &str,
    ) -> AppResult<Option<KeyResetRow>> {
        let now = self.now_ms();
        Ok(tx
            .approved_key_resets_of(custodian)
            .await?
            .into_iter()
            .find(|r| state_at(r, now) == "approved"))
    }

    /// Use up the reset a registration was allowed by.
    pub(crate) async fn use_reset(&self, tx: &mut dyn Tx, id: &str) -> AppResult<()> {
        if !tx
            .move_key_reset(id, "approved", "used", self.now_ms())
            .await?
        {
            return refuse(
                Code::KeyResetRequired,
                "the key reset that allowed this registration was used or closed meanwhile: a new one needs the quorum's approval",
            );
        }
        Ok(())
    }
}
