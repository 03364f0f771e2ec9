//! Online recovery: custodians submit their shares to the server for one
//! request, and the server releases that one credential once, with neither
//! the key service nor the secret store.
//!
//! - The requester opens a session for their request. The server makes an
//!   ephemeral age identity that lives only in this process's memory; its
//!   recipient is recorded, so each custodian's CLI encrypts their decrypted
//!   share to it before it leaves their machine. Shares never reach the
//!   database, a log, or another process.
//! - Each submission is checked at once against the set's commitments (a
//!   corrupted, foreign or someone else's share is named and refused) and
//!   carries a TOTP code. The key service may be down, so the code is
//!   checked when the recovery key is rebuilt, against the custodian's seed
//!   wrapped to that key. To keep the replay guard exact, a submission
//!   spends the custodian's current TOTP window at once, and its code must
//!   match a step later than the one they had used before.
//! - The release rebuilds the recovery key from the held shares, checks
//!   every code, and, if the request is still pending, counts the share
//!   holders as its approvals (the policy must be met by them, never by the
//!   requester). Then, in one transaction: the request is released once,
//!   the credential marked exposed, the session closed. The recovery key
//!   and the shares are dropped (zeroized) whatever the outcome.
//!
//! A session is served by the process that opened it; another replica
//! answers `recovery_session_elsewhere`, and a restarted one has lost the
//! session (open a new one: opening supersedes the old).

use crate::domain::states::{Decision, SessionState};
use crate::domain::Action;
use crate::domain::Code;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::offline::refusal_for;
use super::{open_recovered, set_info};
use crate::app::quorum::groups_of;
use crate::app::requests::{request_target, state_of};
use crate::app::views::{RecoverySessionView, ReleaseView, SubmissionView, SubmitShareBody};
use crate::app::{refuse, App, AppError, AppResult, Done, Event, Refusal};
use crate::auth::Identity;
use crate::crypto::recovery_wrap::unwrap_seed_for_recovery;
use crate::crypto::shamir::{self, ShareData};
use crate::domain::{RequestState, Role};
use crate::store::{
    DecisionRow, RecoverySessionRow, RecoverySetRow, RecoverySubmissionRow, RequestRow, StoreError,
    Tx,
};

/// How long a session stays open at most (and never past its request's
/// own deadline).
pub const SESSION_TTL_MS: i64 = 30 * 60 * 1000;
/// The largest sealed share accepted (a share file is about 300 bytes).
const MAX_SEALED: usize = 16 * 1024;
const STEP_MS: i64 = 30_000;

/// A share held in memory until the release.
struct HeldShare {
    custodian: String,
    share: ShareData,
    code: SecretString,
    submitted_at: i64,
    prior_step: Option<i64>,
}

struct Held {
    identity: age::x25519::Identity,
    expires_at: i64,
    shares: BTreeMap<u8, HeldShare>,
    /// A release is running: a second one waits its turn by refusal.
    busy: bool,
}

/// The sessions this process opened. Nothing here is ever written out.
#[derive(Default)]
pub struct Vault {
    sessions: Mutex<HashMap<String, Held>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

impl Vault {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop expired sessions (their shares and keys are zeroized).
    fn sweep(&self, now: i64) {
        self.lock().retain(|_, h| h.expires_at > now);
    }

    fn holds(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The share a custodian sealed to this session, decrypted into memory
    /// that is zeroized when dropped (the plaintext is never copied).
    fn open_share(
        &self,
        id: &str,
        sealed: &[u8],
    ) -> Option<Result<zeroize::Zeroizing<Vec<u8>>, ()>> {
        let map = self.lock();
        let h = map.get(id)?;
        Some(
            age::decrypt(&h.identity, sealed)
                .map(zeroize::Zeroizing::new)
                .map_err(|_| ()),
        )
    }
}

fn session_target(id: &str) -> String {
    format!("recovery-session:{id}")
}

/// What a release needs, read before any lock.
struct Prepared {
    request: RequestRow,
    session: RecoverySessionRow,
    valid: Vec<(String, i64)>,
    failed: Vec<(u8, String)>,
    #[allow(clippy::type_complexity)]
    fields: Option<(
        String,
        String,
        i64,
        BTreeMap<String, SecretString>,
        (Vec<String>, Option<i64>),
    )>,
}

impl App {
    async fn load_session(&self, tx: &mut dyn Tx, id: &str) -> AppResult<RecoverySessionRow> {
        if id.len() > 64 {
            return refuse(
                Code::RecoverySessionNotFound,
                format!("no recovery session with id {id}"),
            );
        }
        match tx.recovery_session(id).await? {
            Some(s) => Ok(s),
            None => refuse(
                Code::RecoverySessionNotFound,
                format!("no recovery session with id {id}"),
            ),
        }
    }

    fn require_open(&self, s: &RecoverySessionRow, now: i64) -> AppResult<()> {
        match s.state {
            SessionState::Open if now < s.expires_at => Ok(()),
            SessionState::Open => refuse(
                Code::RecoverySessionExpired,
                "the recovery session has expired: the requester opens a new one",
            ),
            SessionState::Released => refuse(
                Code::RequestReleased,
                "this session already released its credential; a release happens once",
            ),
            SessionState::Superseded => refuse(
                Code::RecoverySessionClosed,
                "this recovery session was superseded by a newer one for the same request",
            ),
        }
    }

    fn require_here(&self, s: &RecoverySessionRow) -> AppResult<()> {
        if self.vault.holds(&s.id) {
            return Ok(());
        }
        Err(self.elsewhere(s))
    }

    fn elsewhere(&self, s: &RecoverySessionRow) -> AppError {
        AppError::Refused(Refusal {
            status: 409,
            code: Code::RecoverySessionElsewhere,
            message: format!(
                "this session's key is held by server process {}, not this one ({}), or was lost when that process stopped: \
                 send the request to the process that opened it, or open a new session",
                s.replica, self.replica
            ),
            totp_failure_of: None,
        })
    }

    async fn session_view(
        &self,
        tx: &mut dyn Tx,
        s: &RecoverySessionRow,
        r: &RequestRow,
    ) -> AppResult<RecoverySessionView> {
        let set = tx.recovery_shares(&s.set_id).await?;
        let threshold = {
            let mut t = 0;
            if let Some(a) = tx.active_recovery_set().await? {
                if a.set_id == s.set_id {
                    t = a.threshold;
                }
            }
            t
        };
        let subs = tx.recovery_submissions(&s.id).await?;
        let submitted: Vec<SubmissionView> = subs
            .iter()
            .map(|x| SubmissionView {
                index: x.idx,
                custodian: x.custodian.clone(),
                submitted_at: crate::clock::rfc3339(x.submitted_at),
            })
            .collect();
        Ok(RecoverySessionView {
            id: s.id.clone(),
            request_id: s.request_id.clone(),
            credential: r.credential_name.clone(),
            set_id: s.set_id.clone(),
            threshold,
            share_holders: set.iter().map(|x| x.custodian.clone()).collect(),
            recipient: s.recipient.clone(),
            state: s.state.to_string(),
            opened_by: s.opened_by.clone(),
            opened_at: crate::clock::rfc3339(s.opened_at),
            expires_at: crate::clock::rfc3339(s.expires_at),
            needed: (threshold - submitted.len() as i64).max(0),
            submitted,
            replica: s.replica.clone(),
            held_here: self.vault.holds(&s.id),
        })
    }

    /// The requester opens a recovery session for their pending or
    /// approved request. Any open session of the request is superseded.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn open_recovery_session(
        &self,
        who: &Identity,
        request_id: &str,
    ) -> AppResult<RecoverySessionView> {
        let target = request_target(request_id);
        self.vault.sweep(self.now_ms());
        let mut tx = self.store.begin().await?;
        let (res, identity) = match self.open_session_tx(tx.as_mut(), who, request_id).await {
            Ok((d, i, until)) => (Ok(d), Some((i, until))),
            Err(e) => (Err(e), None),
        };
        let view = self
            .finish(tx, Some(who), Action::RecoverySessionOpen, &target, res)
            .await?;
        if let Some((identity, expires_at)) = identity {
            self.vault.lock().insert(
                view.id.clone(),
                Held {
                    identity,
                    expires_at,
                    shares: BTreeMap::new(),
                    busy: false,
                },
            );
        }
        Ok(RecoverySessionView {
            held_here: true,
            ..view
        })
    }

    async fn open_session_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        request_id: &str,
    ) -> AppResult<(Done<RecoverySessionView>, age::x25519::Identity, i64)> {
        self.require(who, Role::Requester)?;
        let r = self.load_request(tx, request_id).await?;
        if r.requester != who.subject {
            return refuse(
                Code::NotRequester,
                "only the requester can open a recovery session for a request",
            );
        }
        let now = self.now_ms();
        let deadline = match state_of(&r, now) {
            RequestState::Pending => r.expires_at,
            RequestState::Approved => r.release_deadline.unwrap_or(now),
            other => return crate::app::requests::not_pending(other),
        };
        let Some(credential_id) = r.credential_id.as_deref() else {
            return refuse(
                Code::RootRequestNotRecoverable,
                format!(
                    "request {} is for a root session ({}): recovery opens stored credentials only, and a root task needs AWS",
                    r.id, r.credential_name
                ),
            );
        };
        let Some(set) = tx.active_recovery_set().await? else {
            return refuse(
                Code::NoRecoverySet,
                "no recovery share set is active: run the `init` ceremony",
            );
        };
        let Some(c) = tx.credential_by_id(credential_id).await? else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "request names a missing credential"
            )));
        };
        let v = tx.version(&c.id, c.current_version).await?;
        let recoverable = v.as_ref().is_some_and(|v| {
            v.recovery_wrap.is_some()
                && v.recovery_envelope.is_some()
                && v.recovery_set.as_deref() == Some(set.set_id.as_str())
        });
        if !recoverable {
            return refuse(
                Code::NotRecoverable,
                format!(
                    "the current version of {} is not wrapped to the active recovery set: rotate it",
                    c.name
                ),
            );
        }
        let superseded = tx.supersede_recovery_sessions(&r.id, now).await?;
        let identity = age::x25519::Identity::generate();
        let row = RecoverySessionRow {
            id: uuid::Uuid::new_v4().to_string(),
            request_id: r.id.clone(),
            set_id: set.set_id.clone(),
            recipient: identity.to_public().to_string(),
            replica: self.replica.clone(),
            opened_by: who.subject.clone(),
            opened_at: now,
            expires_at: deadline.min(now + SESSION_TTL_MS),
            state: SessionState::Open,
            closed_at: None,
        };
        tx.insert_recovery_session(&row).await?;
        let view = self.session_view(tx, &row, &r).await?;
        let ev = Event::new(
            Action::RecoverySessionOpen,
            session_target(&row.id),
            json!({
                "request": r.id,
                "credential": r.credential_name,
                "set_id": set.set_id,
                "threshold": set.threshold,
                "expires_at": view.expires_at,
                "superseded_sessions": superseded,
            }),
        );
        Ok((Done::new(view, ev), identity, row.expires_at))
    }

    /// A session as its requester, a custodian or an auditor sees it.
    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn show_recovery_session(
        &self,
        who: &Identity,
        id: &str,
    ) -> AppResult<RecoverySessionView> {
        self.require_any(who, &[Role::Requester, Role::Custodian, Role::Auditor])?;
        let mut tx = self.store.begin_read().await?;
        let res = async {
            let s = self.load_session(tx.as_mut(), id).await?;
            let r = self.load_request(tx.as_mut(), &s.request_id).await?;
            let only_requester = !who.has(Role::Custodian) && !who.has(Role::Auditor);
            if only_requester && r.requester != who.subject {
                return refuse(
                    Code::RecoverySessionNotFound,
                    format!("no recovery session with id {id}"),
                );
            }
            self.session_view(tx.as_mut(), &s, &r).await
        }
        .await;
        tx.rollback().await?;
        res
    }

    /// A custodian submits their share, sealed to the session's recipient,
    /// with a TOTP code.
    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn submit_share(
        &self,
        who: &Identity,
        id: &str,
        body: SubmitShareBody,
    ) -> AppResult<RecoverySessionView> {
        let target = session_target(id);
        self.vault.sweep(self.now_ms());
        let mut tx = self.store.begin().await?;
        let res = self.submit_tx(tx.as_mut(), who, id, &body).await;
        let (res, held) = match res {
            Ok((d, h)) => (Ok(d), Some(h)),
            Err(e) => (Err(e), None),
        };
        let view = self
            .finish(tx, Some(who), Action::RecoveryShareSubmit, &target, res)
            .await?;
        if let Some((idx, h)) = held {
            if let Some(s) = self.vault.lock().get_mut(id) {
                s.shares.insert(idx, h);
            }
        }
        Ok(view)
    }

    async fn submit_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
        body: &SubmitShareBody,
    ) -> AppResult<(Done<RecoverySessionView>, (u8, HeldShare))> {
        self.require(who, Role::Custodian)?;
        let s = self.load_session(tx, id).await?;
        let now = self.now_ms();
        self.require_open(&s, now)?;
        let r = self.load_request(tx, &s.request_id).await?;
        match state_of(&r, now) {
            RequestState::Pending | RequestState::Approved => {}
            other => return crate::app::requests::not_pending(other),
        }
        let c = crate::app::custodians::active_custodian(tx, who).await?;
        crate::app::custodians::refuse_if_locked(&c, now)?;
        let rows = tx.recovery_shares(&s.set_id).await?;
        let Some(mine) = rows.iter().find(|x| x.custodian == c.name) else {
            return refuse(
                Code::NotAShareholder,
                format!("custodian {} holds no share of set {}", c.name, s.set_id),
            );
        };
        let subs = tx.recovery_submissions(&s.id).await?;
        if subs.iter().any(|x| x.custodian == c.name) {
            return refuse(
                Code::ShareAlreadySubmitted,
                format!(
                    "custodian {} has already submitted their share to this session",
                    c.name
                ),
            );
        }
        self.require_here(&s)?;
        let code = crate::app::custodians::well_formed_code(&body.code)?;
        self.totp_attempt(&c.name)?;
        let sealed = {
            use base64::Engine;
            if body.sealed_share.len() > MAX_SEALED * 2 {
                return refuse(Code::ShareTooLarge, "the sealed share is too large");
            }
            match base64::engine::general_purpose::STANDARD.decode(body.sealed_share.trim()) {
                Ok(b) if b.len() <= MAX_SEALED => b,
                _ => {
                    return refuse(
                        Code::ShareUnreadable,
                        "sealed_share is not base64 of an age file",
                    )
                }
            }
        };
        let plain = match self.vault.open_share(&s.id, &sealed) {
            Some(Ok(p)) => p,
            Some(Err(())) => {
                return refuse(
                    Code::ShareUnreadable,
                    format!(
                        "the sealed share does not open with this session's key: encrypt it to {}",
                        s.recipient
                    ),
                )
            }
            None => return Err(self.elsewhere(&s)),
        };
        let Ok(share) = serde_json::from_slice::<ShareData>(&plain) else {
            return refuse(
                Code::ShareMalformed,
                "the submitted share is not a breakglass share",
            );
        };
        let Some(set) = tx.active_recovery_set().await? else {
            return refuse(Code::NoRecoverySet, "no recovery share set is active");
        };
        if set.set_id != s.set_id {
            return refuse(
                Code::RecoverySessionClosed,
                "the recovery set was re-split after this session opened: open a new one",
            );
        }
        let info = set_info(&set, &rows);
        if let Err(e) = shamir::check(&info, &share) {
            return refuse(refusal_for(&e), e.to_string());
        }
        if i64::from(share.index) != mine.idx {
            return refuse(
                Code::NotYourShare,
                format!(
                    "share {} was made for another custodian; {} holds share {}",
                    share.index, c.name, mine.idx
                ),
            );
        }
        // Spend the current TOTP window now: the code is checked at the
        // release, against a step later than `prior`.
        let prior = c.last_totp_step;
        let window_end = now.div_euclid(STEP_MS) + 1;
        if !tx.advance_totp_step(&c.name, window_end).await? {
            return refuse(
                Code::TotpReplayed,
                "a code of this time window was already used: wait for the next code",
            );
        }
        let sub = RecoverySubmissionRow {
            session_id: s.id.clone(),
            idx: mine.idx,
            custodian: c.name.clone(),
            submitted_at: now,
            prior_step: prior,
        };
        match tx.insert_recovery_submission(&sub).await {
            Err(StoreError::Conflict(_)) => {
                return refuse(
                    Code::ShareAlreadySubmitted,
                    format!("share {} is already submitted to this session", mine.idx),
                )
            }
            other => other?,
        }
        let view = self.session_view(tx, &s, &r).await?;
        let ev = Event::new(
            Action::RecoveryShareSubmit,
            session_target(&s.id),
            json!({
                "request": r.id,
                "index": mine.idx,
                "submitted": view.submitted.len(),
                "threshold": view.threshold,
            }),
        );
        let held = HeldShare {
            custodian: c.name.clone(),
            share,
            code: SecretString::from(code.to_string()),
            submitted_at: now,
            prior_step: prior,
        };
        Ok((Done::new(view, ev), (mine.idx as u8, held)))
    }

    /// The requester releases the credential with the submitted shares.
    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn release_recovery(&self, who: &Identity, id: &str) -> AppResult<ReleaseView> {
        let target = session_target(id);
        self.vault.sweep(self.now_ms());
        let prepared = self.prepare_release(who, id).await;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.record_refusal(&who.subject, Action::RecoveryRelease, &target, &e)
                    .await?;
                return Err(e);
            }
        };
        if !prepared.failed.is_empty() {
            return self.refuse_failed_codes(who, id, prepared).await;
        }
        let mut tx = self.store.begin().await?;
        let res = self.release_recovery_tx(tx.as_mut(), who, prepared).await;
        let out = self
            .finish(tx, Some(who), Action::RecoveryRelease, &target, res)
            .await;
        match &out {
            // Released: the shares and the session key go (zeroized).
            Ok(_) => self.vault.forget(id),
            Err(_) => {
                if let Some(h) = self.vault.lock().get_mut(id) {
                    h.busy = false;
                }
            }
        }
        out
    }

    /// Phase 1, holding no database lock: check the rules, rebuild the key
    /// from the held shares, check each code, open the credential.
    async fn prepare_release(&self, who: &Identity, id: &str) -> AppResult<Prepared> {
        self.require(who, Role::Requester)?;
        let mut tx = self.store.begin_read().await?;
        let read = self.release_reads(tx.as_mut(), who, id).await;
        tx.rollback().await?;
        let (session, request, set, rows, custodians, version) = read?;
        // Take the held shares out for this release (a second release of
        // the same session is refused while this one runs).
        let taken = {
            let mut map = self.vault.lock();
            let Some(h) = map.get_mut(id) else {
                drop(map);
                return Err(self.elsewhere(&session));
            };
            if h.busy {
                return refuse(
                    Code::RecoveryInProgress,
                    "a release of this session is already running",
                );
            }
            let need = set.threshold;
            let have = h.shares.len() as i64;
            if have < need {
                return refuse(
                    Code::SharesNotEnough,
                    format!(
                        "{have} of {need} shares submitted; {} more needed",
                        need - have
                    ),
                );
            }
            h.busy = true;
            h.shares
                .iter()
                .map(|(i, s)| {
                    (
                        *i,
                        s.custodian.clone(),
                        s.share.clone(),
                        SecretString::from(s.code.expose_secret().to_string()),
                        s.submitted_at,
                        s.prior_step,
                    )
                })
                .collect::<Vec<_>>()
        };
        let result = (|| -> AppResult<Prepared> {
            let info = set_info(&set, &rows);
            let shares: Vec<ShareData> = taken.iter().map(|t| t.2.clone()).collect();
            let secret = shamir::combine(&info, &shares)
                .map_err(|e| AppError::Refused(Refusal::new(refusal_for(&e), e.to_string())))?;
            let identity = crate::app::recovery::identity_from(secret)?;
            let mut valid = Vec::new();
            let mut failed = Vec::new();
            for (idx, name, _, code, at, prior) in &taken {
                let c = custodians.iter().find(|c| &c.name == name);
                let step = c.and_then(|c| {
                    let wrap = c.totp_recovery_wrap.as_ref()?;
                    if c.totp_recovery_set.as_deref() != Some(set.set_id.as_str()) {
                        return None;
                    }
                    let seed = unwrap_seed_for_recovery(
                        &identity,
                        wrap,
                        &c.name,
                        c.enrollment_id.as_deref()?,
                    )
                    .ok()?;
                    let step = seed.check(code.expose_secret(), u64::try_from(at / 1000).ok()?)?;
                    let step = i64::try_from(step).ok()?;
                    (prior.is_none_or(|p| step > p)).then_some(step)
                });
                match step {
                    Some(step) => valid.push((name.clone(), step)),
                    None => failed.push((*idx, name.clone())),
                }
            }
            let fields = if failed.is_empty() {
                let (Some(wrap), Some(env)) = (&version.recovery_wrap, &version.recovery_envelope)
                else {
                    return refuse(
                        Code::NotRecoverable,
                        "the credential's current version is not wrapped to the recovery set: rotate it",
                    );
                };
                let p = open_recovered(
                    &identity,
                    wrap,
                    env,
                    &version.credential_id,
                    version.version,
                )?;
                let mut fields = p.fields;
                let codes =
                    crate::app::release::release_codes(&mut fields, &p.code_only, self.now_ms())?;
                Some((
                    version.credential_id.clone(),
                    request.credential_name.clone(),
                    version.version,
                    fields,
                    codes,
                ))
            } else {
                None
            };
            drop(identity);
            Ok(Prepared {
                request: request.clone(),
                session: session.clone(),
                valid,
                failed,
                fields,
            })
        })();
        if result.is_err() {
            if let Some(h) = self.vault.lock().get_mut(id) {
                h.busy = false;
            }
        }
        result
    }

    #[allow(clippy::type_complexity)]
    async fn release_reads(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        id: &str,
    ) -> AppResult<(
        RecoverySessionRow,
        RequestRow,
        RecoverySetRow,
        Vec<crate::store::RecoveryShareRow>,
        Vec<crate::store::CustodianRow>,
        crate::store::VersionRow,
    )> {
        let s = self.load_session(tx, id).await?;
        let now = self.now_ms();
        let r = self.load_request(tx, &s.request_id).await?;
        if r.requester != who.subject {
            return refuse(
                Code::NotRequester,
                "only the requester can release with a recovery session",
            );
        }
        self.require_open(&s, now)?;
        match state_of(&r, now) {
            RequestState::Pending | RequestState::Approved => {}
            other => return crate::app::requests::not_pending(other),
        }
        let Some(set) = tx.active_recovery_set().await? else {
            return refuse(Code::NoRecoverySet, "no recovery share set is active");
        };
        if set.set_id != s.set_id {
            return refuse(
                Code::RecoverySessionClosed,
                "the recovery set was re-split after this session opened: open a new one",
            );
        }
        let rows = tx.recovery_shares(&set.set_id).await?;
        let custodians = tx.custodians().await?;
        let (_, v) = super::super::release::current_version_of(tx, &r).await?;
        Ok((s, r, set, rows, custodians, v))
    }

    /// Some codes did not match: drop those submissions (their custodians
    /// submit again), count the failures toward lockout, refuse the release.
    async fn refuse_failed_codes(
        &self,
        who: &Identity,
        id: &str,
        p: Prepared,
    ) -> AppResult<ReleaseView> {
        let names: Vec<String> = p.failed.iter().map(|(_, n)| n.clone()).collect();
        let message = format!(
                "the TOTP code submitted with the share of {} is wrong or outside its time window: {} must submit again",
                names.join(", "),
                if names.len() == 1 { "that custodian" } else { "those custodians" }
            );
        let err = AppError::Refused(Refusal {
            status: 401,
            code: Code::InvalidTotp,
            message: message.clone(),
            totp_failure_of: None,
        });
        let mut tx = self.store.begin().await?;
        for (idx, name) in &p.failed {
            tx.delete_recovery_submission(&p.session.id, i64::from(*idx))
                .await?;
            self.count_totp_failure(tx.as_mut(), &who.subject, name)
                .await?;
        }
        // The refusal is audited with the changes it makes.
        self.refusal_in(
            tx.as_mut(),
            &who.subject,
            Action::RecoveryRelease,
            &session_target(id),
            &err,
            ("refused", Code::InvalidTotp, message),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(code = %Code::InvalidTotp, "recovery release refused");
        {
            let mut map = self.vault.lock();
            if let Some(h) = map.get_mut(id) {
                for (idx, _) in &p.failed {
                    h.shares.remove(idx);
                }
                h.busy = false;
            }
        }
        Err(err)
    }

    /// Phase 2: one transaction re-checks, records the share holders as
    /// approvals if the request was still pending, releases once, marks the
    /// credential exposed and closes the session.
    async fn release_recovery_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        p: Prepared,
    ) -> AppResult<Done<ReleaseView>> {
        let now = self.now_ms();
        let s = self.load_session(tx, &p.session.id).await?;
        self.require_open(&s, now)?;
        let r = self.load_request(tx, &p.request.id).await?;
        let Some((credential_id, credential_name, version, fields, (codes, codes_valid_until))) =
            p.fields
        else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "a release without an opened credential"
            )));
        };
        let policy = crate::app::requests::snapshot(&r)?;
        let target = request_target(&r.id);
        let mut events = Vec::new();
        // The decisions made before the recovery are proved by the signed
        // chain (the key service may be down: their codes are not opened).
        let decided = tx.decisions(&r.id).await?;
        self.prove_by_chain(tx, &r, &decided).await?;
        if state_of(&r, now) == RequestState::Pending {
            // The share holders who proved presence are the approvals.
            let mut approvers: Vec<Vec<crate::domain::GroupName>> = decided
                .iter()
                .filter(|d| d.decision == Decision::Approve && d.custodian != r.requester)
                .map(|d| groups_of(&d.groups))
                .collect();
            let mut added = Vec::new();
            for (name, step) in &p.valid {
                if name == &r.requester || decided.iter().any(|d| &d.custodian == name) {
                    continue;
                }
                let Some(c) = tx.custodian(name).await? else {
                    continue;
                };
                approvers.push(groups_of(&c.groups));
                added.push(DecisionRow {
                    request_id: r.id.clone(),
                    custodian: c.name.clone(),
                    decision: Decision::Approve,
                    reason: Some(format!("recovery session {}", s.id)),
                    groups: c.groups.clone(),
                    totp_step: *step,
                    at: now,
                    // Proved here by the share and its code, checked
                    // against the seed the recovery key opened.
                    totp_code: None,
                    webauthn: None,
                });
            }
            if !policy.is_met(&approvers) {
                return refuse(
                    Code::QuorumNotMet,
                    format!(
                        "policy {} needs {}; the approvals and share holders so far leave it waiting for {}",
                        policy.name,
                        policy.describe(),
                        policy.missing(&approvers)
                    ),
                );
            }
            for d in &added {
                tx.insert_decision(d).await?;
                events.push(Event::new(
                    Action::RequestApprove,
                    target.clone(),
                    json!({ "credential": r.credential_name, "via": "recovery-session", "session": s.id, "step": d.totp_step }),
                ));
            }
            let approvers = added.iter().map(|d| d.custodian.clone()).collect();
            events.push(
                super::super::quorum::approve_on_quorum(
                    tx,
                    &r,
                    &policy,
                    now,
                    approvers,
                    (
                        "the request expired before the release",
                        json!({ "via": "recovery-session" }),
                    ),
                )
                .await?,
            );
        }
        // Every rule of an ordinary release, re-read under lock (quorum
        // from the decision rows, requester, window).
        let (r, c, v) = self.release_check(tx, who, &r.id).await?;
        if v.version != version || c.id != credential_id {
            return refuse(
                Code::ConcurrentRotation,
                "the credential was rotated during the recovery: open a new session",
            );
        }
        if !tx.mark_released(&r.id, now, Some(version)).await? {
            return refuse(
                Code::RequestReleased,
                "the request was already released; a release happens once",
            );
        }
        tx.mark_exposed(&c.id, now).await?;
        if !tx
            .close_recovery_session(&s.id, SessionState::Released, now)
            .await?
        {
            return refuse(
                Code::RecoverySessionClosed,
                "the session was closed during the release",
            );
        }
        let ev = Event::new(
            Action::RecoveryRelease,
            session_target(&s.id),
            json!({
                "request": r.id,
                "credential": credential_name,
                "account_id": c.account_id,
                "version": version,
                "set_id": s.set_id,
                "shares": p.valid.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                "fields": fields.keys().collect::<Vec<_>>(),
            }),
        );
        let view = ReleaseView {
            request_id: r.id.clone(),
            credential: credential_name,
            account_id: c.account_id.clone(),
            version,
            fields,
            codes,
            codes_valid_until: codes_valid_until.map(crate::clock::rfc3339),
            root_task: None,
        };
        // The approvals the share holders gave come first in the chain.
        events.push(ev);
        events.push(Event::new(
            Action::CredentialExposed,
            format!("credential:{}", c.name),
            json!({ "version": version, "request": r.id, "via": "recovery-session" }),
        ));
        Ok(Done::with_events(view, events))
    }
}

/// Seal a decrypted share to a session's recipient (what the CLI does on
/// the custodian's machine before submitting).
pub fn seal_share(recipient: &str, share: &ShareData) -> anyhow::Result<String> {
    use base64::Engine;
    let r = age::x25519::Recipient::from_str(recipient).map_err(|e| {
        anyhow::anyhow!("the session recipient {recipient:?} is not an age recipient: {e}")
    })?;
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(share)?);
    let sealed =
        age::encrypt(&r, &plain).map_err(|e| anyhow::anyhow!("while sealing the share: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
}
