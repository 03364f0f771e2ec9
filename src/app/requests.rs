//! Break glass: request → approvals with TOTP (or a veto) → one release.

pub(crate) use crate::domain::request::request_target;
use crate::domain::states::{Decision, StoredRequestState};
use crate::domain::Action;
use crate::domain::Code;
use std::collections::BTreeMap;

use secrecy::SecretString;
use serde_json::json;

use super::quorum::{counting_approvers, enrolled_groups, groups_of};
use super::views::{CreateRequestBody, ReleaseView, RequestView};
use super::webauthn::{CeremonyKind, CeremonyResponse, CeremonyView};
use super::{refuse, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::crypto::envelope::{credential_aad, Envelope};
use crate::crypto::totp::SpentCode;
use crate::domain::request::StoredState;
use crate::domain::{Factor, Policy, RequestState, Role};
use crate::keys::EncryptionContext;
use crate::secrets::{SecretLocation, SecretRef};
use crate::store::{
    CeremonyRow, CredentialRow, CustodianRow, DecisionRow, RequestFilter, RequestRow, StoreError,
    Tx, VersionRow,
};

/// What a decision's rules read (`App::decision_checks`), for the
/// decision itself.
pub(crate) struct Checked {
    pub r: RequestRow,
    pub c: CustodianRow,
    /// The denial's reason as checked; `None` to approve.
    pub deny_reason: Option<String>,
    pub policy: Policy,
    /// The groups the custodian decides with.
    pub groups: Vec<String>,
    /// The decisions made so far.
    pub decisions: Vec<DecisionRow>,
}

/// The proof of presence a decision is made with.
pub(crate) enum Proof<'a> {
    /// A TOTP code, with the seed opened before the transaction.
    Totp {
        code: &'a SecretString,
        opened: Option<&'a super::custodians::OpenedSeed>,
    },
    /// A security key's response to a ceremony already taken.
    Key {
        ceremony: Box<CeremonyRow>,
        credential: &'a serde_json::Value,
    },
}

impl Proof<'_> {
    pub(crate) fn factor(&self) -> Factor {
        match self {
            Proof::Totp { .. } => Factor::Totp,
            Proof::Key { .. } => Factor::Webauthn,
        }
    }
}

fn decision_factor(a: &Option<super::webauthn::Assertion>) -> Factor {
    match a {
        Some(_) => Factor::Webauthn,
        None => Factor::Totp,
    }
}

pub const MAX_REASON: usize = 2000;
pub const MAX_TICKET: usize = 200;

pub(crate) fn snapshot(r: &RequestRow) -> AppResult<Policy> {
    serde_json::from_str(&r.policy)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("corrupt policy snapshot: {e}")))
}

pub(crate) fn state_of(r: &RequestRow, now: i64) -> RequestState {
    RequestState::effective(
        StoredState {
            state: r.state,
            expires_at: r.expires_at,
            release_deadline: r.release_deadline,
        },
        now,
    )
}

/// A reason as given: trimmed, 1 to `MAX_REASON` characters, none of them
/// a control or bidirectional character (a reason is shown to custodians,
/// in terminals and pages, beside the credential it names).
pub(crate) fn reason_of(raw: &str) -> AppResult<String> {
    let r = raw.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON {
        return refuse(
            Code::InvalidReason,
            format!("give a reason of 1 to {MAX_REASON} characters"),
        );
    }
    if let Some(why) = crate::domain::text::check("the reason", r, false) {
        return refuse(Code::InvalidCharacters, why);
    }
    Ok(r.to_owned())
}

/// A new request, pending under `policy` (its snapshot) from `now`: of a
/// credential (its id and name) or of a root session (no id, a name).
pub(crate) fn pending_request(
    id: String,
    (credential_id, credential_name): (Option<String>, String),
    who: &Identity,
    (reason, ticket): (String, Option<String>),
    policy: &Policy,
    now: i64,
) -> RequestRow {
    RequestRow {
        id,
        credential_id,
        credential_name,
        requester: who.subject.clone(),
        reason,
        ticket,
        policy: serde_json::to_string(policy).expect("a policy always serialises"),
        state: StoredRequestState::Pending,
        created_at: now,
        expires_at: now + policy.request_ttl_secs as i64 * 1000,
        approved_at: None,
        release_deadline: None,
        released_at: None,
        released_version: None,
        denied_at: None,
        denied_by: None,
    }
}

/// A ticket reference as given: trimmed, empty as none, at most
/// `MAX_TICKET` characters of text.
pub(crate) fn ticket_of(raw: Option<String>) -> AppResult<Option<String>> {
    let ticket = raw.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    if let Some(t) = &ticket {
        if t.chars().count() > MAX_TICKET {
            return refuse(
                Code::InvalidTicket,
                format!("a ticket reference is at most {MAX_TICKET} characters"),
            );
        }
        if let Some(why) = crate::domain::text::check("the ticket", t, false) {
            return refuse(Code::InvalidCharacters, why);
        }
    }
    Ok(ticket)
}

/// The refusal for deciding on a request that is no longer pending.
pub(crate) fn not_pending<T>(state: RequestState) -> AppResult<T> {
    match state {
        RequestState::Expired => refuse(
            Code::RequestExpired,
            "the request expired before its quorum was met",
        ),
        RequestState::Denied => refuse(Code::RequestDenied, "the request was denied"),
        RequestState::Released => refuse(Code::RequestReleased, "the request was already released"),
        RequestState::Approved => refuse(
            Code::RequestAlreadyApproved,
            "the request already has its quorum",
        ),
        RequestState::ReleaseWindowClosed => refuse(
            Code::ReleaseWindowClosed,
            "the request was approved but its release window has closed",
        ),
        RequestState::Pending => {
            unreachable!("not_pending is only called for requests that are not pending")
        }
    }
}

impl App {
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn create_request(
        &self,
        who: &Identity,
        body: CreateRequestBody,
    ) -> AppResult<RequestView> {
        let target = format!("credential:{}", body.credential);
        let mut tx = self.store.begin().await?;
        let res = self.create_request_tx(tx.as_mut(), who, body).await;
        self.finish(tx, Some(who), Action::RequestCreate, &target, res)
            .await
    }

    async fn create_request_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        body: CreateRequestBody,
    ) -> AppResult<Done<RequestView>> {
        self.require(who, Role::Requester)?;
        let reason = reason_of(&body.reason)?;
        let ticket = ticket_of(body.ticket)?;
        let Some(c) = tx.credential_by_name(&body.credential).await? else {
            return refuse(
                Code::CredentialNotFound,
                format!("no credential named {}", body.credential),
            );
        };
        if !super::proof::policy_of_sealed(&self.audit_public_key(), &c) {
            return super::proof::policy_unproven(format!(
                "the assignment of credential {} to policy {}",
                c.name, c.policy
            ));
        }
        let Some((policy, _)) = self.effective_policy(tx, &c.policy).await? else {
            return refuse(
                Code::PolicyMissing,
                format!(
                    "the credential's policy {:?} is not loaded: fix policies/ first",
                    c.policy
                ),
            );
        };
        self.admit(tx, who, &policy, ticket.as_deref()).await?;
        let now = self.now_ms();
        let row = pending_request(
            uuid::Uuid::new_v4().to_string(),
            (Some(c.id.clone()), c.name.clone()),
            who,
            (reason, ticket),
            &policy,
            now,
        );
        tx.insert_request(&row).await?;
        let ev = Event::new(
            Action::RequestCreate,
            request_target(&row.id),
            json!({
                "credential": c.name,
                "credential_id": c.id,
                "account_id": c.account_id,
                "policy": policy.name,
                "quorum": policy.describe(),
                "reason": row.reason,
                "ticket": row.ticket,
                "expires_at": crate::clock::rfc3339(row.expires_at),
                // Binds the stored snapshot: a release checks it.
                "policy_sha256": super::proof::snapshot_digest(&row.policy),
            }),
        );
        // Signed at once, so a database writer cannot put a weaker policy
        // snapshot or another requester in the row.
        Ok(Done::new(RequestView::new(&row, &policy, &[], now), ev).checkpointed())
    }

    /// A new request's policy conditions: the ticket its pattern asks
    /// for, room under its open-request limit, and a quorum the enrolled
    /// custodians (not counting the requester) can meet.
    pub(crate) async fn admit(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        policy: &Policy,
        ticket: Option<&str>,
    ) -> AppResult<()> {
        if !policy.ticket_allowed(ticket) {
            return refuse(
                Code::TicketRequired,
                format!(
                    "policy {} releases only during a declared incident: give a ticket matching {}",
                    policy.name,
                    policy.ticket_pattern.as_deref().unwrap_or_default()
                ),
            );
        }
        if let Some(max) = policy.max_open_releases {
            let open = tx
                .count_open_requests(policy.name.as_str(), self.now_ms())
                .await?;
            if open >= i64::from(max) {
                return refuse(
                    Code::TooManyOpenRequests,
                    format!(
                        "policy {} allows {max} open request(s) at once and {open} are open: wait for one to be released, denied or to expire",
                        policy.name
                    ),
                );
            }
        }
        let s = policy.satisfiability(&enrolled_groups(tx, Some(&who.subject)).await?);
        if !s.satisfiable {
            return refuse(
                Code::PolicyUnsatisfiable,
                format!("{} (not counting you, the requester)", s.explanation),
            );
        }
        Ok(())
    }

    pub(crate) async fn load_request(&self, tx: &mut dyn Tx, id: &str) -> AppResult<RequestRow> {
        if uuid::Uuid::parse_str(id).is_err() {
            return refuse(Code::RequestNotFound, format!("no request with id {id:?}"));
        }
        match tx.request(id).await? {
            Some(r) => Ok(r),
            None => refuse(Code::RequestNotFound, format!("no request with id {id}")),
        }
    }

    pub(crate) async fn view(&self, tx: &mut dyn Tx, r: &RequestRow) -> AppResult<RequestView> {
        let decisions = tx.decisions(&r.id).await?;
        let root = match r.credential_id {
            None => tx.root_request(&r.id).await?,
            Some(_) => None,
        };
        Ok(RequestView::new(r, &snapshot(r)?, &decisions, self.now_ms()).with_root(root.as_ref()))
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn show_request(&self, who: &Identity, id: &str) -> AppResult<RequestView> {
        let mut tx = self.store.begin_read().await?;
        let res = async {
            let r = self.load_request(tx.as_mut(), id).await?;
            if !self.sees_all_requests(who) && r.requester != who.subject {
                return refuse(Code::RequestNotFound, format!("no request with id {id}"));
            }
            self.view(tx.as_mut(), &r).await
        }
        .await;
        self.finish_read(tx, who, Action::RequestShow, &request_target(id), res)
            .await
    }

    fn sees_all_requests(&self, who: &Identity) -> bool {
        [Role::Admin, Role::Auditor, Role::Custodian]
            .iter()
            .any(|r| who.has(*r))
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_requests(&self, who: &Identity, limit: i64) -> AppResult<Vec<RequestView>> {
        let mut tx = self.store.begin_read().await?;
        let res = async {
            let filter = RequestFilter {
                requester: (!self.sees_all_requests(who)).then(|| who.subject.clone()),
                credential_id: None,
                limit: super::limit_in(limit, 500)?,
            };
            let mut out = Vec::new();
            for r in tx.requests(&filter).await? {
                out.push(self.view(tx.as_mut(), &r).await?);
            }
            Ok(out)
        }
        .await;
        self.finish_read(tx, who, Action::RequestList, "requests", res)
            .await
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn approve(
        &self,
        who: &Identity,
        id: &str,
        code: &SecretString,
    ) -> AppResult<RequestView> {
        let opened = self.open_presence(&who.subject, code).await;
        let mut tx = self.store.begin().await?;
        let res = match opened {
            Ok(o) => {
                let proof = Proof::Totp {
                    code,
                    opened: o.as_ref(),
                };
                self.decide_tx(tx.as_mut(), who, id, None, proof).await
            }
            Err(e) => Err(e),
        };
        self.finish(
            tx,
            Some(who),
            Action::RequestApprove,
            &request_target(id),
            res,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn deny(
        &self,
        who: &Identity,
        id: &str,
        code: &SecretString,
        reason: &str,
    ) -> AppResult<RequestView> {
        let opened = self.open_presence(&who.subject, code).await;
        let mut tx = self.store.begin().await?;
        let res = match opened {
            Ok(o) => {
                let proof = Proof::Totp {
                    code,
                    opened: o.as_ref(),
                };
                self.decide_tx(tx.as_mut(), who, id, Some(reason), proof)
                    .await
            }
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), Action::RequestDeny, &request_target(id), res)
            .await
    }

    /// The rules a decision (approve: `deny_reason` None, or deny) must
    /// pass before any proof of presence is looked at, so a refused
    /// decision never spends a code or asks a key to sign: the request,
    /// the custodian (locked first), pending, not the requester, eligible,
    /// not decided yet, accepting `factor` from the custodian's groups, and
    /// (to approve) still needed. Returns what they read.
    pub(crate) async fn decision_checks(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
        deny_reason: Option<&str>,
        factor: Factor,
    ) -> AppResult<Checked> {
        self.require(who, Role::Custodian)?;
        let deny_reason = deny_reason.map(reason_of).transpose()?;
        let r = self.load_request(tx, id).await?;
        let c = super::custodians::active_custodian(tx, who).await?;
        let now = self.now_ms();
        super::custodians::refuse_if_locked(&c, now)?;
        let groups = super::custodians::deciding_groups(&c, who);
        let state = state_of(&r, now);
        if state != RequestState::Pending {
            return not_pending(state);
        }
        if r.requester == who.subject {
            return refuse(
                Code::SelfApproval,
                "the requester cannot approve or deny their own request",
            );
        }
        let policy = snapshot(&r)?;
        if !policy.is_eligible(&groups_of(&groups)) {
            return refuse(
                Code::NotEligible,
                format!(
                    "custodian {} is in none of the groups policy {} needs ({})",
                    c.name,
                    policy.name,
                    policy.describe()
                ),
            );
        }
        let counting = policy.counting(&groups_of(&groups), factor);
        if counting.is_empty() {
            let (used, other) = match factor {
                Factor::Totp => (
                    "a TOTP code",
                    "your security key (the console's request page, or `approve --webauthn`)",
                ),
                Factor::Webauthn => ("a security key", "a TOTP code"),
            };
            return refuse(
                Code::PresenceRequired,
                format!(
                    "policy {} does not accept {used} from your groups ({}): it needs {}; decide with {other}",
                    policy.name,
                    groups.join(", "),
                    policy.describe()
                ),
            );
        }
        let decisions = tx.decisions(&r.id).await?;
        if decisions.iter().any(|d| d.custodian == c.name) {
            return refuse(
                Code::AlreadyDecided,
                format!("custodian {} has already decided on this request", c.name),
            );
        }
        if deny_reason.is_none() {
            let approvers = counting_approvers(&policy, &decisions, None);
            if !policy.contributes(&approvers, &counting) {
                return refuse(
                    Code::ApprovalNotNeeded,
                    format!(
                        "policy {} needs {}; the approvals so far already cover your groups ({}): it is waiting for {}",
                        policy.name,
                        policy.describe(),
                        groups.join(", "),
                        policy.missing(&approvers)
                    ),
                );
            }
        }
        Ok(Checked {
            r,
            c,
            deny_reason,
            policy,
            groups,
            decisions,
        })
    }

    /// Approve (`deny_reason` None) or deny, with `proof` of presence.
    /// Locks the request, then the custodian; checks the cheap rules
    /// before the proof.
    pub(crate) async fn decide_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
        deny_reason: Option<&str>,
        proof: Proof<'_>,
    ) -> AppResult<Done<RequestView>> {
        let Checked {
            r,
            c,
            deny_reason,
            policy,
            groups,
            decisions,
        } = self
            .decision_checks(tx, who, id, deny_reason, proof.factor())
            .await?;
        let now = self.now_ms();
        let (step, totp_code, assertion) = match proof {
            Proof::Totp { code, opened } => {
                let step = self.check_presence(tx, &c, code, opened).await?;
                let code = SpentCode::new(super::custodians::well_formed_code(code)?.to_owned());
                (step, Some(code), None)
            }
            Proof::Key {
                ceremony,
                credential,
            } => {
                let wa = self.webauthn()?;
                let credential = super::webauthn::parse_credential(credential)?;
                let v = self
                    .verify_assertion(tx, &wa, &c, &ceremony, &credential)
                    .await?;
                (0, None, Some(v.assertion))
            }
        };
        let decision = DecisionRow {
            request_id: r.id.clone(),
            custodian: c.name.clone(),
            decision: if deny_reason.is_some() {
                Decision::Deny
            } else {
                Decision::Approve
            },
            reason: deny_reason.clone(),
            groups: groups.clone(),
            totp_step: step,
            at: now,
            totp_code,
            webauthn: assertion.as_ref().map(|a| a.to_json()),
        };
        match tx.insert_decision(&decision).await {
            Err(StoreError::Conflict(_)) => {
                return refuse(
                    Code::AlreadyDecided,
                    format!("custodian {} has already decided on this request", c.name),
                )
            }
            other => other?,
        }
        let target = request_target(&r.id);
        let mut decisions = decisions;
        decisions.push(decision);
        let approvers = counting_approvers(&policy, &decisions, None);
        let presence = json!(decision_factor(&assertion));
        let webauthn = json!(assertion);
        let mut events = Vec::new();
        match &deny_reason {
            None => {
                events.push(Event::new(
                    Action::RequestApprove,
                    target.clone(),
                    json!({ "credential": r.credential_name, "approvals": approvers.len(), "needed": policy.approvals_needed(), "step": step, "groups": groups, "presence": presence, "webauthn": webauthn }),
                ));
                if policy.is_met(&approvers) {
                    let approvers = decisions
                        .iter()
                        .filter(|d| d.decision == Decision::Approve)
                        .map(|d| d.custodian.clone())
                        .collect();
                    events.push(
                        super::quorum::approve_on_quorum(
                            tx,
                            &r,
                            &policy,
                            now,
                            approvers,
                            ("the request expired before its quorum was met", json!({})),
                        )
                        .await?,
                    );
                }
            }
            Some(reason) => {
                events.push(Event::new(
                    Action::RequestDeny,
                    target.clone(),
                    json!({ "credential": r.credential_name, "reason": reason, "veto": policy.deny_vetoes, "step": step, "groups": groups, "presence": presence, "webauthn": webauthn }),
                ));
                if policy.deny_vetoes {
                    if !tx.mark_denied(&r.id, now, &c.name).await? {
                        return refuse(
                            Code::RequestExpired,
                            "the request expired before the denial",
                        );
                    }
                    events.push(Event::new(
                        Action::RequestDenied,
                        target.clone(),
                        json!({ "credential": r.credential_name, "by": c.name }),
                    ));
                }
            }
        }
        let r = self.load_request(tx, id).await?;
        let view = self.view(tx, &r).await?;
        // Signed at once: a release proves each decision by this checkpoint.
        Ok(Done::with_events(view, events).checkpointed())
    }

    /// Start a ceremony that approves or denies request `id` with a key,
    /// after the same checks as the decision itself (so a key is never
    /// asked to sign what would be refused).
    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn begin_decision(
        &self,
        who: &Identity,
        id: &str,
        decision: Decision,
    ) -> AppResult<CeremonyView> {
        let mut tx = self.store.begin().await?;
        let res = async {
            self.webauthn()?;
            let deny = (decision == Decision::Deny).then_some("(given with the response)");
            let checked = self
                .decision_checks(tx.as_mut(), who, id, deny, Factor::Webauthn)
                .await?;
            self.decision_ceremony(tx.as_mut(), who, &checked.r, &checked.c, decision)
                .await
        }
        .await;
        self.finish(
            tx,
            Some(who),
            Action::WebauthnChallenge,
            &request_target(id),
            res,
        )
        .await
    }

    /// Approve or deny with a key: the ceremony is taken (once), then the
    /// decision runs as with a TOTP code, with the assertion as its proof.
    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn decide_with_key(
        &self,
        who: &Identity,
        id: &str,
        decision: Decision,
        body: CeremonyResponse,
    ) -> AppResult<RequestView> {
        let action = match decision {
            Decision::Approve => Action::RequestApprove,
            Decision::Deny => Action::RequestDeny,
        };
        let taken = self
            .take(who, &body.ceremony, CeremonyKind::of(decision), Some(id))
            .await;
        let mut tx = self.store.begin().await?;
        let res = match taken {
            Ok(c) => {
                let proof = Proof::Key {
                    ceremony: Box::new(c),
                    credential: &body.credential,
                };
                let reason = match decision {
                    Decision::Deny => Some(body.reason.as_deref().unwrap_or("")),
                    Decision::Approve => None,
                };
                self.decide_tx(tx.as_mut(), who, id, reason, proof).await
            }
            Err(e) => Err(e),
        };
        let regressed = match &res {
            Err(AppError::Refused(r)) if r.code == Code::CounterRegressed => {
                Some(r.message.clone())
            }
            _ => None,
        };
        let out = self
            .finish(tx, Some(who), action, &request_target(id), res)
            .await;
        if let Some(message) = regressed {
            self.counter_regressed(who, message).await?;
        }
        out
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn release(&self, who: &Identity, id: &str) -> AppResult<ReleaseView> {
        if self.is_root_request(id).await? {
            return self.release_root(who, id).await;
        }
        let target = request_target(id);
        // Phase 1, holding no lock: check, fetch the envelope, decrypt. A
        // key service or secret store outage is refused here, before any
        // state changes, and no database lock waits on a network call.
        let opened = self.release_open(who, id).await;
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                self.record_refusal(&who.subject, Action::RequestRelease, &target, &e)
                    .await?;
                return Err(e);
            }
        };
        // Phase 2: the conditional state change only one caller can win,
        // `exposed`, and the audit event, in one transaction.
        let mut tx = self.store.begin().await?;
        let res = self.release_tx(tx.as_mut(), who, id, opened).await;
        self.finish(tx, Some(who), Action::RequestRelease, &target, res)
            .await
    }

    /// Every rule of a release, read in `tx`; returns the request, the
    /// credential and its current version.
    pub(crate) async fn release_check(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
    ) -> AppResult<(RequestRow, CredentialRow, VersionRow)> {
        let r = self.release_rules(tx, who, id).await?;
        let (c, v) = super::release::current_version_of(tx, &r).await?;
        Ok((r, c, v))
    }

    /// The rules every release passes, of a credential or a root session:
    /// the requester, approved and inside its window and hours, and the
    /// recorded decisions meeting the policy snapshot.
    pub(crate) async fn release_rules(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
    ) -> AppResult<RequestRow> {
        self.require(who, Role::Requester)?;
        let r = self.load_request(tx, id).await?;
        if r.requester != who.subject {
            return refuse(
                Code::NotRequester,
                "only the requester can release an approved request",
            );
        }
        match state_of(&r, self.now_ms()) {
            RequestState::Approved => {}
            RequestState::Pending => {
                return refuse(
                    Code::RequestNotApproved,
                    "the request does not have its quorum yet",
                )
            }
            RequestState::Released => {
                return refuse(
                    Code::RequestReleased,
                    "the request was already released; a release happens once",
                )
            }
            RequestState::ReleaseWindowClosed => {
                return refuse(
                    Code::ReleaseWindowClosed,
                    "the release window has closed: file a new request",
                )
            }
            other => return not_pending(other),
        }
        // Defence in depth: the stored state says approved; the recorded
        // decisions must say so too, or someone wrote to the database.
        let policy = snapshot(&r)?;
        if !policy.release_allowed_at(self.now_ms()) {
            return refuse(
                Code::OutsideReleaseHours,
                format!(
                    "policy {} allows releases only {} (UTC)",
                    policy.name,
                    policy.release_hours.join(" or ")
                ),
            );
        }
        let decisions = tx.decisions(&r.id).await?;
        let approvers = counting_approvers(&policy, &decisions, Some(&r.requester));
        let vetoed = policy.deny_vetoes && decisions.iter().any(|d| d.decision == Decision::Deny);
        if !policy.is_met(&approvers) || vetoed {
            tracing::error!(request = %r.id, "request is marked approved but its recorded decisions do not meet its policy");
            return refuse(
                Code::QuorumNotMet,
                "the request's recorded approvals do not meet its policy: the release is refused",
            );
        }
        Ok(r)
    }

    /// Phase 1 of a release: its rules, then the proof of its quorum (the
    /// chain read here; the codes checked against the seeds after the read
    /// transaction, with the key service), then the credential opened.
    async fn release_open(&self, who: &Identity, id: &str) -> AppResult<Opened> {
        let mut tx = self.store.begin_read().await?;
        let checked = async {
            let (r, c, v) = self.release_check(tx.as_mut(), who, id).await?;
            let decisions = tx.decisions(&r.id).await?;
            self.prove_by_chain(tx.as_mut(), &r, &decisions).await?;
            let mut custodians = Vec::new();
            for d in super::proof::counted(&r, &decisions) {
                custodians.extend(tx.custodian(&d.custodian).await?);
            }
            AppResult::Ok((r, c, v, decisions, custodians))
        }
        .await;
        tx.rollback().await?;
        let (r, c, v, decisions, custodians) = checked?;
        self.prove_by_codes(&r, &decisions, &custodians).await?;
        let proven = super::proof::state_digest(&r, &decisions);
        let (fields, code_only) = self.open_version(&c, &v).await?;
        let mut fields = fields;
        let (codes, codes_valid_until) =
            super::release::release_codes(&mut fields, &code_only, self.now_ms())?;
        Ok(Opened {
            version: v.version,
            fields,
            codes,
            codes_valid_until,
            proven,
        })
    }

    /// A credential version's fields (and which are code-only), fetched
    /// from the secret store and opened with the key service, in memory.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn open_version(
        &self,
        c: &CredentialRow,
        v: &VersionRow,
    ) -> AppResult<(BTreeMap<String, SecretString>, Vec<String>)> {
        let loc = SecretLocation {
            credential_id: c.id.clone(),
            credential_name: c.name.clone(),
            account_id: c.account_id.clone(),
            policy: c.policy.clone(),
            version: v.version,
        };
        let bytes = self
            .secrets
            .get(&loc, &SecretRef(v.secret_ref.clone()))
            .await?;
        let env =
            Envelope::from_bytes(&bytes).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
        let plaintext = env
            .open(
                self.keys.as_ref(),
                &EncryptionContext::credential(&c.id, v.version),
                &credential_aad(&c.id, v.version),
            )
            .await?;
        #[derive(serde::Deserialize)]
        struct Payload {
            fields: BTreeMap<String, SecretString>,
            #[serde(default)]
            code_only: Vec<String>,
        }
        let p: Payload = serde_json::from_slice(&plaintext).map_err(|_| {
            AppError::Internal(anyhow::anyhow!("decrypted payload is not a field map"))
        })?;
        Ok((p.fields, p.code_only))
    }

    async fn release_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
        opened: Opened,
    ) -> AppResult<Done<ReleaseView>> {
        let (r, c, v) = self.release_check(tx, who, id).await?;
        if super::proof::state_digest(&r, &tx.decisions(&r.id).await?) != opened.proven {
            return refuse(
                Code::RequestChanged,
                "the request or its decisions changed while the release was being proved: release again",
            );
        }
        if v.version != opened.version {
            return refuse(
                Code::ConcurrentRotation,
                "the credential was rotated during the release: release again",
            );
        }
        let now = self.now_ms();
        if !tx.mark_released(&r.id, now, Some(v.version)).await? {
            return refuse(
                Code::RequestReleased,
                "the request was already released; a release happens once",
            );
        }
        tx.mark_exposed(&c.id, now).await?;
        let ev = Event::new(
            Action::RequestRelease,
            request_target(&r.id),
            json!({
                "credential": c.name,
                "account_id": c.account_id,
                "version": v.version,
                "fields": opened.fields.keys().collect::<Vec<_>>(),
            }),
        );
        let view = ReleaseView {
            request_id: r.id.clone(),
            credential: c.name.clone(),
            account_id: c.account_id.clone(),
            version: v.version,
            fields: opened.fields,
            codes: opened.codes,
            codes_valid_until: opened.codes_valid_until.map(crate::clock::rfc3339),
            root_task: None,
        };
        Ok(Done::new(view, ev).and(Event::new(
            Action::CredentialExposed,
            format!("credential:{}", c.name),
            json!({ "version": v.version, "request": r.id }),
        )))
    }
}

/// A decrypted credential version waiting for the release to commit; the
/// values are zeroized when it is dropped.
struct Opened {
    version: i64,
    fields: BTreeMap<String, SecretString>,
    codes: Vec<String>,
    codes_valid_until: Option<i64>,
    /// The request and decisions as proved (`proof::state_digest`).
    proven: String,
}
