//! Use cases. Each runs in one transaction that also appends its audit
//! event; a refusal rolls the action back and commits only its own audit
//! event (and, for a wrong TOTP code, the failure that counts toward
//! lockout).

use crate::domain::Action;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::auth::{Identity, TokenService};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::chain::AuditEvent;
use crate::domain::{Code, PolicySet, Role};
use crate::keys::{KeyError, KeyService};
use crate::secrets::{SecretStore, SecretStoreError};
use crate::store::{Store, StoreError, Tx};

pub mod alerts;
pub mod audit;
pub mod audit_ship;
pub mod auth_refusals;
pub mod console;
pub mod credentials;
pub mod custodians;
pub mod hygiene;
pub mod key_resets;
pub mod org;
pub mod policy_changes;
pub mod proof;
pub mod quorum;
pub mod recovery;
pub mod release;
pub mod requests;
pub mod rewrap;
pub mod root_requests;
pub mod rotation;
pub mod ticker;
pub mod views;
pub mod watch;
pub mod webauthn;
pub mod witness;

pub struct App {
    pub store: Arc<dyn Store>,
    pub keys: Arc<dyn KeyService>,
    pub secrets: Arc<dyn SecretStore>,
    pub policies: Arc<PolicySet>,
    pub clock: Arc<dyn Clock>,
    pub tokens: Arc<TokenService>,
    pub settings: Settings,
    /// This server process, as recovery sessions name it.
    pub replica: String,
    /// Trusted OpenID Connect providers.
    pub oidc: crate::oidc::Issuers,
    /// Local tokens seen by this process while OIDC is configured (each
    /// fallback sign-in is audited once per process).
    pub fallback_seen: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The AWS configuration, for calls made with a credential's own keys.
    pub aws_sdk: Option<aws_config::SdkConfig>,
    /// IAM and STS, when the review covers the AWS accounts.
    pub aws_review: Option<(aws_sdk_iam::Client, aws_sdk_sts::Client)>,
    /// The AWS organisation, as its broker (`[org] enabled`).
    pub org: Option<crate::org::OrgAws>,
    /// The CloudTrail bucket (and queue) the root watch reads.
    pub trail: Option<crate::trail::TrailSource>,
    /// Outgoing HTTP (the audit sink).
    pub http: reqwest::Client,
    /// Signs audit checkpoints.
    pub audit_key: Arc<crate::crypto::signing::SigningKey>,
    /// The token signing key the tokens are minted with; also signs
    /// backups.
    pub token_key: Arc<crate::crypto::signing::SigningKey>,
    /// The recovery sessions this process opened (memory only).
    pub vault: Arc<recovery::session::Vault>,
    /// Rate limits (this process's buckets).
    pub limiters: Arc<crate::limits::Limiters>,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The last signed checkpoint this service verified, kept outside the
    /// database (`witness.rs`).
    pub witness: Arc<witness::Witness>,
    /// A break of the audit chain this process found: no checkpoint is
    /// signed while it is set, and `/readyz` says why.
    pub chain_break: std::sync::Mutex<Option<crate::crypto::chain::Break>>,
    /// The data directory (its keys are checked again by the review).
    pub data_dir: std::path::PathBuf,
    /// Refused authentications, counted per address and minute.
    pub auth_refusals: Arc<auth_refusals::AuthRefusals>,
}

/// A refused action: a stable code, the HTTP status it is answered with
/// (one of the code's own), a message for people.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub code: Code,
    pub message: String,
    /// A wrong TOTP code by this custodian: counts toward lockout.
    pub totp_failure_of: Option<String>,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            status: code.status(),
            code,
            message: message.into(),
            totp_failure_of: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{}: {}", .0.code, .0.message)]
    Refused(Refusal),
    /// A dependency (key service, secret store, database) is down.
    #[error("{code}: {message}")]
    Unavailable { code: Code, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

/// Refuse with the code's usual status.
pub fn refuse<T>(code: Code, message: impl Into<String>) -> AppResult<T> {
    Err(AppError::Refused(Refusal::new(code, message)))
}

/// Refuse with another of the code's statuses (an unknown policy named in
/// a body rather than a path, a query read rather than parsed).
pub fn refuse_as<T>(status: u16, code: Code, message: impl Into<String>) -> AppResult<T> {
    debug_assert!(
        code.statuses().contains(&status),
        "{code} is never {status}"
    );
    Err(AppError::Refused(Refusal {
        status,
        ..Refusal::new(code, message)
    }))
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => AppError::Unavailable {
                code: Code::DatabaseUnavailable,
                message: m,
            },
            StoreError::Busy => AppError::Unavailable {
                code: Code::DatabaseBusy,
                message: "no free database connection within the acquire timeout".into(),
            },
            other => AppError::Internal(anyhow::anyhow!(other)),
        }
    }
}

impl From<KeyError> for AppError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unavailable(_) => AppError::Unavailable {
                code: Code::KeyServiceUnavailable,
                message: e.to_string(),
            },
            KeyError::Refused(_) => AppError::Unavailable {
                code: Code::KeyServiceRefused,
                message: e.to_string(),
            },
            KeyError::InvalidCiphertext | KeyError::UnknownKey(_) => {
                AppError::Internal(anyhow::anyhow!(e))
            }
        }
    }
}

impl From<SecretStoreError> for AppError {
    fn from(e: SecretStoreError) -> Self {
        match e {
            SecretStoreError::Unavailable(_) => AppError::Unavailable {
                code: Code::SecretStoreUnavailable,
                message: e.to_string(),
            },
            SecretStoreError::Refused(_) => AppError::Unavailable {
                code: Code::SecretStoreRefused,
                message: e.to_string(),
            },
            SecretStoreError::NotFound => AppError::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<crate::crypto::envelope::EnvelopeError> for AppError {
    fn from(e: crate::crypto::envelope::EnvelopeError) -> Self {
        match e {
            crate::crypto::envelope::EnvelopeError::Key(k) => k.into(),
            other => AppError::Internal(anyhow::anyhow!(other)),
        }
    }
}

/// An audit event to append, before sequencing and hashing.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: Action,
    pub target: String,
    pub details: Value,
}

impl Event {
    pub fn new(action: Action, target: impl Into<String>, details: Value) -> Event {
        Event {
            action,
            target: target.into(),
            details,
        }
    }
}

/// What a successful use case returns: its value and the audit events to
/// append in its transaction (the first is the action itself).
pub struct Done<T> {
    pub value: T,
    pub events: Vec<Event>,
    /// Sign a checkpoint over the chain head in the same transaction, so
    /// that its events are vouched for by the audit key at once (requests
    /// and decisions: what a release must later prove).
    pub checkpoint: bool,
}

impl<T> Done<T> {
    pub fn new(value: T, event: Event) -> Done<T> {
        Done {
            value,
            events: vec![event],
            checkpoint: false,
        }
    }
    pub fn with_events(value: T, events: Vec<Event>) -> Done<T> {
        Done {
            value,
            events,
            checkpoint: false,
        }
    }
    pub fn and(mut self, event: Event) -> Done<T> {
        self.events.push(event);
        self
    }
    /// Sign a checkpoint over these events in their transaction.
    pub fn checkpointed(mut self) -> Done<T> {
        self.checkpoint = true;
        self
    }
}

/// A page size as given: 1 to `max`, or refused (never silently clamped:
/// a client that asks for 5000 and gets 1000 believes it has everything).
pub fn limit_in(limit: i64, max: i64) -> AppResult<i64> {
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        refuse(
            Code::InvalidLimit,
            format!("limit must be 1 to {max}; page with `after` for more"),
        )
    }
}

/// Who acted, for the audit log: the subject, or `anonymous`.
pub fn actor_of(who: Option<&Identity>) -> String {
    who.map(|w| w.subject.clone())
        .unwrap_or_else(|| "anonymous".into())
}

impl App {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Append one event to the chain inside `tx`.
    pub async fn append(
        &self,
        tx: &mut dyn Tx,
        actor: &str,
        outcome: &str,
        code: Option<&str>,
        ev: Event,
    ) -> AppResult<AuditEvent> {
        let e = match audit::seal_and_insert(tx, self.now_ms(), actor, outcome, code, ev).await {
            Ok(e) => e,
            Err(err) => match err.downcast_ref::<audit::AppendedOutside>() {
                Some(o) => {
                    return Err(self.chain_broken(crate::crypto::chain::Break {
                        seq: o.seq,
                        reason: format!(
                            "events after {} are not recorded in the chain head: they were appended outside the service",
                            o.head
                        ),
                    }))
                }
                None => return Err(err.into()),
            },
        };
        // Alerts are written with the event: they exist exactly when it does.
        self.enqueue_alerts(tx, &e).await?;
        Ok(e)
    }

    /// Finish a use case: commit it with its events, or roll it back and
    /// commit the refusal's audit event instead.
    pub async fn finish<T>(
        &self,
        tx: Box<dyn Tx>,
        who: Option<&Identity>,
        action: Action,
        target: &str,
        result: AppResult<Done<T>>,
    ) -> AppResult<T> {
        let actor = actor_of(who);
        match result {
            Ok(done) => {
                let mut tx = tx;
                for ev in done.events {
                    self.append(tx.as_mut(), &actor, "success", None, ev)
                        .await?;
                }
                let signed = match done.checkpoint {
                    true => self.checkpoint_head(tx.as_mut()).await?,
                    false => None,
                };
                tx.commit().await?;
                if let Some(c) = signed {
                    self.advance_witness(&c);
                }
                Ok(done.value)
            }
            Err(err) => {
                tx.rollback().await?;
                self.record_refusal(&actor, action, target, &err).await?;
                Err(err)
            }
        }
    }

    /// Commit the audit event of a refused or failed action, in its own
    /// transaction. If even that fails, the caller gets the audit failure:
    /// nothing happened, and nothing is hidden.
    pub async fn record_refusal(
        &self,
        actor: &str,
        action: Action,
        target: &str,
        err: &AppError,
    ) -> AppResult<()> {
        let (outcome, code, message) = match err {
            AppError::Refused(r) => ("refused", r.code, r.message.clone()),
            AppError::Unavailable { code, message } => ("refused", *code, message.clone()),
            AppError::Internal(e) => {
                let request_id = crate::context::current().map_or_else(|| "-".into(), |c| c.id);
                tracing::error!(%request_id, %action, target, error = %format!("{e:#}"), "internal error");
                ("error", Code::Internal, "internal error".to_string())
            }
        };
        let mut tx = self.store.begin().await?;
        self.refusal_in(
            tx.as_mut(),
            actor,
            action,
            target,
            err,
            (outcome, code, message),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(%action, target, %code, "refused");
        Ok(())
    }

    /// Append a refusal's event inside `tx` (and, for a wrong TOTP code,
    /// count the failure toward lockout), for a caller that commits other
    /// changes with it.
    pub(crate) async fn refusal_in(
        &self,
        tx: &mut dyn Tx,
        actor: &str,
        action: Action,
        target: &str,
        err: &AppError,
        (outcome, code, message): (&str, Code, String),
    ) -> AppResult<()> {
        if let AppError::Refused(Refusal {
            totp_failure_of: Some(name),
            ..
        }) = err
        {
            self.count_totp_failure(tx, actor, name).await?;
        }
        // The target and message may quote what the caller sent: escaped,
        // so that a refusal can always be written and read safely.
        let ev = Event::new(
            action,
            crate::domain::text::escape(target).into_owned(),
            json!({ "message": crate::domain::text::escape(&message) }),
        );
        self.append(tx, actor, outcome, Some(code.as_str()), ev)
            .await?;
        Ok(())
    }

    /// Refuse unless the caller holds `role`.
    pub fn require(&self, who: &Identity, role: Role) -> AppResult<()> {
        if who.has(role) {
            Ok(())
        } else {
            refuse(
                Code::ForbiddenRole,
                format!("this action needs the {role} role"),
            )
        }
    }

    /// Refuse unless the caller holds one of `roles`.
    pub fn require_any(&self, who: &Identity, roles: &[Role]) -> AppResult<()> {
        if roles.iter().any(|r| who.has(*r)) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            refuse(
                Code::ForbiddenRole,
                format!("this action needs one of the roles {}", names.join(", ")),
            )
        }
    }

    /// The audit event of a sign-in with a local credential (a token, or a
    /// console sign-in link) while OIDC is configured.
    pub(crate) fn fallback_event(&self, id: &Identity, via: &str) -> Event {
        Event::new(
            Action::AuthFallback,
            format!("token:{}", id.jti),
            json!({
                "subject": id.subject,
                "roles": id.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "issuers_configured": self.oidc.iter().map(|i| i.config.issuer.clone()).collect::<Vec<_>>(),
                "via": via,
            }),
        )
    }

    /// Whether the token `jti` has been revoked.
    pub(crate) async fn token_revoked(&self, jti: &str) -> AppResult<bool> {
        let mut tx = self.store.begin_read().await?;
        let revoked = tx.is_token_revoked(jti).await?;
        tx.rollback().await?;
        Ok(revoked)
    }

    /// A local token used while OIDC is configured: the identity provider
    /// fallback. Audited (and logged as a warning) the first time this
    /// process sees the token.
    async fn audit_fallback(&self, id: &Identity) -> AppResult<()> {
        let first = self
            .fallback_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.jti.clone());
        if !first {
            return Ok(());
        }
        tracing::warn!(subject = %id.subject, "a local break-glass token was used instead of the identity provider");
        let mut tx = self.store.begin().await?;
        let ev = self.fallback_event(id, "bearer token");
        self.append(tx.as_mut(), &id.subject, "success", None, ev)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Check a bearer token: signature, claims, then revocation. A refused
    /// token is audited.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, token: Option<&str>) -> AppResult<Identity> {
        let now = self.now_ms() / 1000;
        let checked = match token {
            None => Err(crate::auth::TokenError::Missing),
            Some(t) => {
                let claimed = crate::oidc::claimed_issuer(t);
                match self
                    .oidc
                    .iter()
                    .find(|i| claimed.as_deref() == Some(i.config.issuer.as_str()))
                {
                    Some(issuer) => issuer.verify(t, now).await,
                    // An issuer that is neither a provider nor this service.
                    None if claimed.is_some()
                        && claimed.as_deref() != Some(self.tokens.issuer.as_str()) =>
                    {
                        Err(crate::auth::TokenError::WrongIssuer)
                    }
                    None => self.tokens.verify(t, now),
                }
            }
        };
        let result = match checked {
            Err(e) => Err(e),
            Ok(id) => {
                if self.token_revoked(&id.jti).await? {
                    Err(crate::auth::TokenError::Revoked)
                } else {
                    Ok(id)
                }
            }
        };
        match result {
            Ok(id) => {
                if id.issuer.is_none() && !self.oidc.is_empty() {
                    self.audit_fallback(&id).await?;
                }
                Ok(id)
            }
            Err(e) => {
                let err = AppError::Refused(Refusal {
                    status: 401,
                    code: e.code(),
                    message: e.to_string(),
                    totp_failure_of: None,
                });
                self.metrics.auth_refused(e.code());
                let peer = crate::context::current().and_then(|c| c.peer);
                if let auth_refusals::Counted::First { address } =
                    self.auth_refusals
                        .count(peer, e.code().as_str(), self.now_ms())
                {
                    let ev = Event::new(
                        Action::AuthToken,
                        "api",
                        json!({
                            "message": e.to_string(),
                            "address": address,
                            "counting": "the first refusal of this address and code this minute; the minute's total follows in auth.refused_summary",
                        }),
                    );
                    let mut tx = self.store.begin().await?;
                    self.append(
                        tx.as_mut(),
                        "anonymous",
                        "refused",
                        Some(e.code().as_str()),
                        ev,
                    )
                    .await?;
                    tx.commit().await?;
                }
                Err(err)
            }
        }
    }

    /// Audit the summaries of refused authentications whose minute has
    /// ended (`all`: the open minute's too, at shutdown). Run every second
    /// by the server.
    #[tracing::instrument(skip_all)]
    pub async fn flush_auth_refusals(&self, all: bool) -> anyhow::Result<usize> {
        let summaries = self.auth_refusals.take(self.now_ms(), all);
        if summaries.is_empty() {
            return Ok(0);
        }
        let mut tx = self.store.begin().await?;
        for s in &summaries {
            let ev = Event::new(
                Action::AuthRefusedSummary,
                "api",
                json!({
                    "address": s.address,
                    "addresses": s.addresses,
                    "attempts": s.attempts,
                    "window_start": crate::clock::rfc3339(s.window_start),
                    "window_end": crate::clock::rfc3339(s.window_end),
                    "first_at": crate::clock::rfc3339(s.first_at),
                    "last_at": crate::clock::rfc3339(s.last_at),
                }),
            );
            self.append(tx.as_mut(), "breakglass", "refused", Some(s.code), ev)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        tx.commit().await?;
        Ok(summaries.len())
    }
}
