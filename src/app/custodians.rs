//! Custodians: enrolment with TOTP, and the presence check every approval
//! and denial goes through (code for the current step ± 1, never the same
//! step twice, lockout after repeated failures).

use crate::domain::states::CustodianStatus;
use crate::domain::Action;
use crate::domain::Code;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::views::{AddCustodian, CustodianView, EnrollmentView, WhoAmI};
use super::{refuse, App, AppError, AppResult, Done, Event, Refusal};
use crate::auth::Identity;
use crate::crypto::envelope::{totp_aad, Envelope};
use crate::crypto::totp::{self, Seed};
use crate::domain::{CustodianName, GroupName, Role};
use crate::keys::EncryptionContext;
use crate::store::{CustodianRow, StoreError, Tx};

pub(crate) fn custodian_target(name: &str) -> String {
    format!("custodian:{name}")
}

/// The lockout rule, checked before any code is looked at.
pub(crate) fn refuse_if_locked(c: &CustodianRow, now: i64) -> AppResult<()> {
    match c.locked_until.filter(|&u| u > now) {
        Some(until) => refuse(
            Code::CustodianLocked,
            format!(
                "custodian {} is locked out after repeated wrong codes until {}",
                c.name,
                crate::clock::rfc3339(until)
            ),
        ),
        None => Ok(()),
    }
}

impl App {
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn add_custodian(
        &self,
        who: &Identity,
        body: AddCustodian,
    ) -> AppResult<CustodianView> {
        let target = custodian_target(&body.name);
        let mut tx = self.store.begin().await?;
        let res = self.add_custodian_tx(tx.as_mut(), who, body).await;
        self.finish(tx, Some(who), Action::CustodianAdd, &target, res)
            .await
    }

    async fn add_custodian_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        body: AddCustodian,
    ) -> AppResult<Done<CustodianView>> {
        self.require(who, Role::Admin)?;
        let name =
            CustodianName::parse_person(&body.name).or_else(|e| refuse(Code::InvalidName, e.0))?;
        if body.groups.is_empty() {
            return refuse(Code::InvalidGroups, "a custodian needs at least one group");
        }
        let mut groups = Vec::new();
        for g in &body.groups {
            let g = GroupName::parse(g).or_else(|e| refuse(Code::InvalidGroups, e.0))?;
            if !groups.contains(&g.to_string()) {
                groups.push(g.to_string());
            }
        }
        let now = self.now_ms();
        let row = CustodianRow {
            name: name.to_string(),
            groups: groups.clone(),
            status: CustodianStatus::New,
            enrollment_id: None,
            totp_envelope: None,
            last_totp_step: None,
            locked_until: None,
            created_at: now,
            created_by: who.subject.clone(),
            enrolled_at: None,
            totp_recovery_set: None,
            totp_recovery_wrap: None,
        };
        match tx.insert_custodian(&row).await {
            Err(StoreError::Conflict(_)) => {
                return refuse(
                    Code::CustodianExists,
                    format!("custodian {name} already exists"),
                )
            }
            other => other?,
        }
        let view = CustodianView::from_row(&row, now);
        Ok(Done::new(
            view,
            Event::new(
                Action::CustodianAdd,
                custodian_target(name.as_str()),
                json!({ "groups": groups }),
            ),
        ))
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_custodians(&self, who: &Identity) -> AppResult<Vec<CustodianView>> {
        let mut tx = self.store.begin_read().await?;
        let res = async {
            self.require_any(who, &[Role::Admin, Role::Auditor, Role::Custodian])?;
            let now = self.now_ms();
            Ok(tx
                .custodians()
                .await?
                .iter()
                .map(|c| CustodianView::from_row(c, now))
                .collect())
        }
        .await;
        self.finish_read(tx, who, Action::CustodianList, "custodians", res)
            .await
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn whoami(&self, who: &Identity) -> AppResult<WhoAmI> {
        let mut tx = self.store.begin_read().await?;
        let c = tx.custodian(&who.subject).await?;
        tx.rollback().await?;
        let now = self.now_ms();
        Ok(WhoAmI {
            subject: who.subject.clone(),
            token_id: who.jti.clone(),
            roles: who.roles.iter().copied().collect(),
            expires_at: crate::clock::rfc3339(who.expires_at * 1000),
            custodian: c
                .filter(|_| who.has(Role::Custodian))
                .map(|c| CustodianView::from_row(&c, now)),
            console_url: self.settings.console.public_url.clone(),
        })
    }

    /// Reads change nothing: roll back; only a refusal is audited.
    pub async fn finish_read<T>(
        &self,
        tx: Box<dyn Tx>,
        who: &Identity,
        action: Action,
        target: &str,
        res: AppResult<T>,
    ) -> AppResult<T> {
        tx.rollback().await?;
        match res {
            Ok(v) => Ok(v),
            Err(e) => {
                self.record_refusal(&who.subject, action, target, &e)
                    .await?;
                Err(e)
            }
        }
    }

    /// Start (or restart, while unconfirmed) TOTP enrolment. Only the
    /// custodian themselves may enrol: the seed is shown to the caller.
    #[tracing::instrument(skip_all, fields(caller = %who.subject, name = %name))]
    pub async fn enroll(&self, who: &Identity, name: &str) -> AppResult<EnrollmentView> {
        let target = custodian_target(name);
        let mut tx = self.store.begin().await?;
        let res = self.enroll_tx(tx.as_mut(), who, name).await;
        self.finish(tx, Some(who), Action::CustodianEnroll, &target, res)
            .await
    }

    async fn enroll_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        name: &str,
    ) -> AppResult<Done<EnrollmentView>> {
        self.require(who, Role::Custodian)?;
        if who.subject != name {
            return refuse(
                Code::NotSelf,
                "custodians enrol themselves: the token's subject must be the custodian",
            );
        }
        let Some(c) = tx.custodian(name).await? else {
            return refuse(
                Code::CustodianNotFound,
                format!("no custodian named {name}: an admin adds custodians first"),
            );
        };
        if c.status == CustodianStatus::Active {
            return refuse(
                Code::AlreadyEnrolled,
                format!("custodian {name} is already enrolled"),
            );
        }
        let seed = Seed::generate();
        let enrollment_id = uuid::Uuid::new_v4().to_string();
        let env = Envelope::seal(
            self.keys.as_ref(),
            &EncryptionContext::totp_seed(name, &enrollment_id),
            &totp_aad(name, &enrollment_id),
            seed.expose_bytes(),
        )
        .await?;
        tx.set_enrollment(
            name,
            CustodianStatus::Pending,
            Some(&enrollment_id),
            Some(&env.to_bytes()),
            None,
        )
        .await?;
        let uri = seed.otpauth_uri(&self.settings.totp_issuer_label, name);
        let view = EnrollmentView {
            custodian: name.into(),
            otpauth_uri: SecretString::from(uri.as_str().to_owned()),
            algorithm: "SHA1".into(),
            digits: totp::DIGITS,
            period: totp::STEP_SECS,
        };
        Ok(Done::new(
            view,
            Event::new(
                Action::CustodianEnroll,
                custodian_target(name),
                json!({ "enrollment_id": enrollment_id }),
            ),
        ))
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject, name = %name))]
    pub async fn confirm(
        &self,
        who: &Identity,
        name: &str,
        code: &SecretString,
    ) -> AppResult<CustodianView> {
        let target = custodian_target(name);
        let opened = match who.subject == name {
            true => self.open_presence(name, code).await,
            false => Ok(None),
        };
        let mut tx = self.store.begin().await?;
        let res = match opened {
            Ok(opened) => {
                self.confirm_tx(tx.as_mut(), who, name, code, opened.as_ref())
                    .await
            }
            Err(e) => Err(e),
        };
        self.finish(tx, Some(who), Action::CustodianConfirm, &target, res)
            .await
    }

    async fn confirm_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        name: &str,
        code: &SecretString,
        opened: Option<&OpenedSeed>,
    ) -> AppResult<Done<CustodianView>> {
        self.require(who, Role::Custodian)?;
        if who.subject != name {
            return refuse(Code::NotSelf, "custodians confirm their own enrolment");
        }
        let Some(c) = tx.custodian(name).await? else {
            return refuse(
                Code::CustodianNotFound,
                format!("no custodian named {name}"),
            );
        };
        match c.status {
            CustodianStatus::Active => {
                return refuse(
                    Code::AlreadyEnrolled,
                    format!("custodian {name} is already enrolled"),
                )
            }
            CustodianStatus::New => {
                return refuse(
                    Code::NotEnrolled,
                    "start with `breakglass custodian enroll`",
                )
            }
            CustodianStatus::Pending => {}
        }
        let step = self.check_presence(tx, &c, code, opened).await?;
        let now = self.now_ms();
        tx.set_enrollment(
            name,
            CustodianStatus::Active,
            c.enrollment_id.as_deref(),
            c.totp_envelope.as_deref(),
            Some(now),
        )
        .await?;
        // The confirmation code is spent: it cannot approve anything.
        tx.advance_totp_step(name, step).await?;
        // With a recovery set active, the seed is also wrapped to the
        // recovery key, so presence can be checked while the key service is
        // down (online recovery).
        if let Some(set) = tx.active_recovery_set().await? {
            if let (Some(o), Some(enrollment)) = (opened, &c.enrollment_id) {
                let wrap = crate::crypto::recovery_wrap::wrap_seed_for_recovery(
                    &set.recipient,
                    name,
                    enrollment,
                    &o.seed,
                )?;
                tx.set_totp_recovery_wrap(name, &set.set_id, &wrap).await?;
            }
        }
        let mut row = c.clone();
        row.status = CustodianStatus::Active;
        row.enrolled_at = Some(now);
        Ok(Done::new(
            CustodianView::from_row(&row, now),
            Event::new(
                Action::CustodianConfirm,
                custodian_target(name),
                json!({ "groups": c.groups }),
            ),
        ))
    }

    /// Open the TOTP seed of custodian `name` with the key service, before
    /// the transaction that checks `code` with it: no key-service call is
    /// made while the write lock (SQLite) or row locks (PostgreSQL) are
    /// held, so a slow KMS stalls only this caller. Nothing is opened for a
    /// malformed code or a custodian without a seed; the checks themselves
    /// run in the transaction.
    pub(crate) async fn open_presence(
        &self,
        name: &str,
        code: &SecretString,
    ) -> AppResult<Option<OpenedSeed>> {
        if well_formed_code(code).is_err() {
            return Ok(None);
        }
        let mut tx = self.store.begin_read().await?;
        let c = tx.custodian(name).await?;
        tx.rollback().await?;
        let Some(c) = c else { return Ok(None) };
        let (Some(env), Some(enrollment)) = (&c.totp_envelope, &c.enrollment_id) else {
            return Ok(None);
        };
        let seed = open_seed(self.keys.as_ref(), &c, env, enrollment).await?;
        Ok(Some(OpenedSeed {
            name: c.name.clone(),
            enrollment_id: enrollment.clone(),
            envelope: env.clone(),
            seed,
        }))
    }

    /// The presence check: not locked out, a valid code for the current
    /// step ± 1, and a step later than any this custodian used before, with
    /// the seed `open_presence` opened (which must still be the custodian's
    /// as read in `tx`). Returns the matched step (already recorded as
    /// used).
    pub(crate) async fn check_presence(
        &self,
        tx: &mut dyn Tx,
        c: &CustodianRow,
        code: &SecretString,
        opened: Option<&OpenedSeed>,
    ) -> AppResult<i64> {
        let now = self.now_ms();
        refuse_if_locked(c, now)?;
        let (Some(env), Some(enrollment)) = (&c.totp_envelope, &c.enrollment_id) else {
            return refuse(
                Code::NotEnrolled,
                format!("custodian {} has not enrolled TOTP", c.name),
            );
        };
        let code = well_formed_code(code)?;
        self.totp_attempt(&c.name)?;
        let seed = match opened {
            Some(o) if o.name == c.name && &o.enrollment_id == enrollment && &o.envelope == env => {
                &o.seed
            }
            _ => {
                return refuse(
                    Code::EnrollmentChanged,
                    format!(
                        "the TOTP enrolment of custodian {} changed while the code was checked: send a new code",
                        c.name
                    ),
                )
            }
        };
        let unix = u64::try_from(now / 1000).unwrap_or(0);
        let Some(step) = seed.check(code, unix) else {
            return Err(self.wrong_code(tx, &c.name).await?);
        };
        let step = i64::try_from(step)
            .map_err(|_| AppError::Internal(anyhow::anyhow!("TOTP step out of range")))?;
        if !tx.advance_totp_step(&c.name, step).await? {
            return refuse(
                Code::TotpReplayed,
                "this code (or a later one) was already used: wait for the next code",
            );
        }
        tx.clear_totp_failures(&c.name).await?;
        Ok(step)
    }

    /// The refusal of a wrong (well-formed) code: it counts toward lockout,
    /// and says how many tries are left before one.
    pub(crate) async fn wrong_code(&self, tx: &mut dyn Tx, name: &str) -> AppResult<AppError> {
        let now = self.now_ms();
        let since = now - self.settings.totp_failure_window.as_millis() as i64;
        let before = tx.count_totp_failures(name, since).await?;
        let max = i64::from(self.settings.totp_max_failures);
        let left = max - before - 1;
        let consequence = match left {
            n if n <= 0 => format!(
                "custodian {name} is now locked out until {}",
                crate::clock::rfc3339(now + self.settings.totp_lockout.as_millis() as i64)
            ),
            1 => format!(
                "1 try left before a lockout of {}",
                humantime::format_duration(self.settings.totp_lockout)
            ),
            n => format!(
                "{n} tries left before a lockout of {}",
                humantime::format_duration(self.settings.totp_lockout)
            ),
        };
        Ok(AppError::Refused(Refusal {
            status: 401,
            code: Code::InvalidTotp,
            message: format!(
                "the TOTP code is wrong or outside the accepted time window; {consequence}"
            ),
            totp_failure_of: Some(name.to_owned()),
        }))
    }

    /// A TOTP code of `custodian` is about to be checked: refuse it if this
    /// custodian, or the client's address, has sent too many this minute.
    /// The lockout bounds guessing per custodian across replicas; this
    /// bounds the rate, and guessing spread over many custodians.
    pub(crate) fn totp_attempt(&self, custodian: &str) -> AppResult<()> {
        let peer = crate::context::current().and_then(|c| c.peer);
        match self.limiters.totp(custodian, peer) {
            Ok(()) => Ok(()),
            Err(wait) => {
                self.metrics.limit_refused(Code::TotpRateLimited);
                refuse(
                    Code::TotpRateLimited,
                    format!(
                        "too many TOTP codes for custodian {custodian} or from this address; try again in {} s",
                        crate::limits::retry_after_secs(wait)
                    ),
                )
            }
        }
    }

    /// Count a wrong code; lock the custodian out when the window fills.
    pub(crate) async fn count_totp_failure(
        &self,
        tx: &mut dyn Tx,
        actor: &str,
        name: &str,
    ) -> AppResult<()> {
        // Lock the custodian's row first (on PostgreSQL), so concurrent wrong
        // codes are counted one after another and none outruns the lockout.
        tx.custodian(name).await?;
        let now = self.now_ms();
        tx.add_totp_failure(name, now).await?;
        let since = now - self.settings.totp_failure_window.as_millis() as i64;
        let n = tx.count_totp_failures(name, since).await?;
        if n >= i64::from(self.settings.totp_max_failures) {
            let until = now + self.settings.totp_lockout.as_millis() as i64;
            tx.set_locked_until(name, Some(until)).await?;
            tx.clear_totp_failures(name).await?;
            let ev = Event::new(
                Action::CustodianLockout,
                custodian_target(name),
                json!({ "failures": n, "locked_until": crate::clock::rfc3339(until) }),
            );
            self.append(tx, actor, "success", None, ev).await?;
            self.metrics.lockout();
            tracing::warn!(
                custodian = name,
                "custodian locked out after repeated wrong TOTP codes"
            );
        }
        Ok(())
    }
}

/// A custodian's TOTP seed opened before a transaction (see
/// `App::open_presence`), with what identifies it.
pub(crate) struct OpenedSeed {
    name: String,
    enrollment_id: String,
    envelope: Vec<u8>,
    pub(crate) seed: Seed,
}

/// A TOTP code as typed: exactly six ASCII digits once surrounding blanks
/// are trimmed. Anything else is refused as malformed before any work is
/// done, and never counts toward lockout (a typo is not a guess).
pub(crate) fn well_formed_code(code: &SecretString) -> AppResult<&str> {
    let c = code.expose_secret().trim();
    if c.len() == usize::from(totp::DIGITS) && c.bytes().all(|b| b.is_ascii_digit()) {
        Ok(c)
    } else {
        refuse(
            Code::InvalidTotpFormat,
            "a TOTP code is exactly 6 digits, as the authenticator app shows it",
        )
    }
}

/// Open a custodian's TOTP seed with the key service.
pub(crate) async fn open_seed(
    keys: &dyn crate::keys::KeyService,
    c: &CustodianRow,
    envelope: &[u8],
    enrollment: &str,
) -> AppResult<Seed> {
    let env = Envelope::from_bytes(envelope).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
    let seed_bytes = env
        .open(
            keys,
            &EncryptionContext::totp_seed(&c.name, enrollment),
            &totp_aad(&c.name, enrollment),
        )
        .await?;
    Seed::from_bytes(&seed_bytes)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored TOTP seed has the wrong length")))
}

/// The groups a custodian decides with: their record's, narrowed to those
/// their identity provider still grants when it maps custodian groups.
pub(crate) fn deciding_groups(c: &CustodianRow, who: &Identity) -> Vec<String> {
    match &who.custodian_groups {
        None => c.groups.clone(),
        Some(granted) => c
            .groups
            .iter()
            .filter(|g| granted.contains(*g))
            .cloned()
            .collect(),
    }
}

/// The caller's custodian record, which must be enrolled (TOTP confirmed).
pub(crate) async fn active_custodian(tx: &mut dyn Tx, who: &Identity) -> AppResult<CustodianRow> {
    let Some(c) = tx.custodian(&who.subject).await? else {
        return refuse(
            Code::NotACustodian,
            format!("{} is not an enrolled custodian", who.subject),
        );
    };
    if c.status != CustodianStatus::Active {
        return refuse(
            Code::NotEnrolled,
            format!("custodian {} has not confirmed TOTP enrolment", c.name),
        );
    }
    Ok(c)
}
