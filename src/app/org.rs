//! `org sync`: the organisation's accounts, IAM's trusted access and the
//! centralized-root features, kept as an inventory; then one audit-task
//! root session per member account (bounded concurrency) keeps every
//! account's root posture current. The review reads the inventory.
//!
//! Each step is committed with its audit event: the inventory with one
//! `org.sync` event, each account's posture with its `org.root_session`
//! event (the session's key id and expiry, never its secrets). An outage
//! of Organizations, IAM or STS answers 503 `org_unavailable`, audited;
//! what was read before it stays, each account's posture whole or not
//! written.

use std::time::Instant;

use futures_util::StreamExt;
use serde_json::json;

use super::{App, AppError, AppResult, Event};
use crate::auth::Identity;
use crate::domain::{Action, Code, Role};
use crate::org::{Features, OrgAws, OrgError, RootPosture, RootTask};
use crate::store::{OrgAccountRow, OrgStateRow};

/// How long a posture audit's root session lasts: long enough for four
/// list calls and their retries, far under AWS's 15 minutes.
const POSTURE_SESSION_SECS: i32 = 120;

/// One account's root posture, as the sync read it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccountPosture {
    pub account_id: String,
    pub name: String,
    pub posture: RootPosture,
}

/// An account whose posture could not be read, and why.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PostureFailure {
    pub account_id: String,
    pub error: String,
}

/// What a sync found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SyncReport {
    pub organization_id: String,
    pub management_account_id: String,
    /// Every account listed, the management account included.
    pub accounts: usize,
    /// Active member accounts (their root can be centralized).
    pub members: usize,
    /// Accounts of the inventory the organisation no longer lists.
    pub gone: u64,
    pub trusted_access: bool,
    pub root_credentials_management: bool,
    pub root_sessions: bool,
    /// Member accounts whose posture was read.
    pub postures_read: usize,
    /// Why no posture was read, when none could be (a feature is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posture_skipped: Option<String>,
    pub posture_failures: Vec<PostureFailure>,
    /// Member accounts whose root user holds credentials.
    pub root_credentials_present: Vec<AccountPosture>,
    pub elapsed_ms: u64,
}

/// An account of the inventory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrgAccountView {
    pub account_id: String,
    pub name: String,
    pub email: String,
    /// As Organizations says (`ACTIVE`, `SUSPENDED`, ...), or `GONE`.
    pub status: String,
    pub management: bool,
    /// Whether a credential of this service keeps this account's root
    /// (what the management account's needs; a member's need not).
    pub in_custody: bool,
    /// The root user's credentials as last read; none before the first
    /// posture audit.
    pub posture: Option<RootPosture>,
    pub posture_read_at: Option<String>,
    pub posture_error: Option<String>,
    pub last_seen_at: String,
}

/// The inventory and the organisation's state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrgInventory {
    pub organization_id: Option<String>,
    pub management_account_id: Option<String>,
    pub synced_at: Option<String>,
    pub trusted_access: bool,
    pub root_credentials_management: bool,
    pub root_sessions: bool,
    pub accounts: Vec<OrgAccountView>,
}

/// An organisation call's failure as the API answers it.
impl From<OrgError> for AppError {
    fn from(e: OrgError) -> Self {
        match e {
            OrgError::Unavailable { .. } => AppError::Unavailable {
                code: Code::OrgUnavailable,
                message: e.to_string(),
            },
            OrgError::Refused { .. } => AppError::Unavailable {
                code: Code::OrgRefused,
                message: e.to_string(),
            },
        }
    }
}

pub(crate) fn posture_of(row: &OrgAccountRow) -> Option<RootPosture> {
    row.posture
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
}

impl App {
    pub(crate) fn org_aws(&self) -> AppResult<&OrgAws> {
        self.org.as_ref().ok_or_else(|| {
            AppError::Refused(super::Refusal::new(
                Code::OrgNotConfigured,
                "the service does not know an AWS organisation: set [org] enabled = true (and run it with the management or delegated administrator account's identity)",
            ))
        })
    }

    /// `org sync` (admin). Audited.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn org_sync(&self, who: &Identity) -> AppResult<SyncReport> {
        if let Err(e) = self.require(who, Role::Admin) {
            self.record_refusal(&who.subject, Action::OrgSync, "organization", &e)
                .await?;
            return Err(e);
        }
        self.run_org_sync(&who.subject).await
    }

    /// The sync itself, for an admin or the scheduled round.
    pub async fn run_org_sync(&self, actor: &str) -> AppResult<SyncReport> {
        let result = self.org_sync_steps(actor).await;
        if let Err(e) = &result {
            self.record_refusal(actor, Action::OrgSync, "organization", e)
                .await?;
        }
        result
    }

    async fn org_sync_steps(&self, actor: &str) -> AppResult<SyncReport> {
        let started = Instant::now();
        let aws = self.org_aws()?;
        let org = aws.organization().await?;
        if org.feature_set != "ALL" {
            return Err(AppError::Unavailable {
                code: Code::OrgRefused,
                message: format!(
                    "the organisation {} is in {} mode: centralized root access needs all features",
                    org.id, org.feature_set
                ),
            });
        }
        let accounts = aws.accounts().await?;
        let features = aws.features().await?;
        let now = self.now_ms();
        let members: Vec<_> = accounts
            .iter()
            .filter(|a| a.id != org.management_account_id && a.status == "ACTIVE")
            .cloned()
            .collect();

        // The inventory, whole, with its event.
        let mut tx = self.store.begin().await?;
        tx.put_org_state(&OrgStateRow {
            organization_id: org.id.clone(),
            management_account_id: org.management_account_id.clone(),
            feature_set: org.feature_set.clone(),
            trusted_access: features.trusted_access,
            root_credentials_management: features.root_credentials_management,
            root_sessions: features.root_sessions,
            synced_at: now,
        })
        .await?;
        for a in &accounts {
            tx.see_org_account(&OrgAccountRow {
                account_id: a.id.clone(),
                name: a.name.clone(),
                email: a.email.clone(),
                status: a.status.clone(),
                is_management: a.id == org.management_account_id,
                first_seen_at: now,
                last_seen_at: now,
                posture: None,
                posture_at: None,
                posture_error: None,
            })
            .await?;
        }
        let gone = tx.retire_unseen_org_accounts(now).await?;
        let ev = Event::new(
            Action::OrgSync,
            format!("organization:{}", org.id),
            json!({
                "management_account_id": org.management_account_id,
                "accounts": accounts.len(),
                "members": members.len(),
                "gone": gone,
                "trusted_access": features.trusted_access,
                "root_credentials_management": features.root_credentials_management,
                "root_sessions": features.root_sessions,
            }),
        );
        self.append(tx.as_mut(), actor, "success", None, ev).await?;
        tx.commit().await?;

        let mut report = SyncReport {
            organization_id: org.id.clone(),
            management_account_id: org.management_account_id.clone(),
            accounts: accounts.len(),
            members: members.len(),
            gone,
            trusted_access: features.trusted_access,
            root_credentials_management: features.root_credentials_management,
            root_sessions: features.root_sessions,
            postures_read: 0,
            posture_skipped: None,
            posture_failures: vec![],
            root_credentials_present: vec![],
            elapsed_ms: 0,
        };
        if let Some(why) = posture_blocked(&features) {
            report.posture_skipped = Some(why);
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }

        // Every member's posture, a bounded number at once.
        let source_identity = format!(
            "breakglass-posture-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let concurrency = self
            .settings
            .org
            .as_ref()
            .map_or(8, |o| o.posture_concurrency);
        let mut outages = 0usize;
        let results: Vec<_> = futures_util::stream::iter(members.iter().cloned())
            .map(|a| self.read_posture(aws, actor, a, &source_identity))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in results {
            match r {
                Ok((a, posture)) => {
                    report.postures_read += 1;
                    if posture.any() {
                        report.root_credentials_present.push(AccountPosture {
                            account_id: a.id.clone(),
                            name: a.name.clone(),
                            posture,
                        });
                    }
                }
                Err((a, e)) => {
                    if matches!(
                        e,
                        AppError::Unavailable {
                            code: Code::OrgUnavailable,
                            ..
                        }
                    ) {
                        outages += 1;
                    }
                    report.posture_failures.push(PostureFailure {
                        account_id: a.id.clone(),
                        error: e.to_string(),
                    });
                }
            }
        }
        report
            .root_credentials_present
            .sort_by(|a, b| a.account_id.cmp(&b.account_id));
        report
            .posture_failures
            .sort_by(|a, b| a.account_id.cmp(&b.account_id));
        if outages > 0 {
            return Err(AppError::Unavailable {
                code: Code::OrgUnavailable,
                message: format!(
                    "the inventory was kept, but {outages} of {} root posture audits did not get an answer from AWS: run the sync again",
                    members.len()
                ),
            });
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// One member's audit-task session: its posture and its event
    /// committed together, or its error recorded.
    async fn read_posture(
        &self,
        aws: &OrgAws,
        actor: &str,
        a: crate::org::Account,
        source_identity: &str,
    ) -> Result<(crate::org::Account, RootPosture), (crate::org::Account, AppError)> {
        let task = RootTask::IAMAuditRootUserCredentials;
        let outcome = async {
            let session = aws
                .root_session(&a.id, task, POSTURE_SESSION_SECS, source_identity)
                .await?;
            let posture = aws.root_posture(&session).await;
            Ok::<_, OrgError>((
                session.access_key_id.clone(),
                session.expires_at_ms,
                posture,
            ))
        }
        .await;
        let now = self.now_ms();
        let step = async {
            let mut details = json!({
                "account_id": a.id,
                "task": task.as_str(),
                "purpose": "posture",
                "source_identity": source_identity,
            });
            if let Ok((key_id, expires, _)) = &outcome {
                details["session_key_id"] = json!(key_id);
                details["session_expires_at"] = json!(crate::clock::rfc3339(*expires));
            }
            // The session opened and was read; opened and not read; or
            // refused.
            let (posture, error, outcome_name) = match &outcome {
                Ok((_, _, Ok(p))) => (Some(p), None, "success"),
                Ok((_, _, Err(e))) => (None, Some(e), "failure"),
                Err(e) => (None, Some(e), "refused"),
            };
            let posture_json = match posture {
                Some(p) => {
                    details["root_credentials"] = json!(p.describe());
                    Some(serde_json::to_string(p).map_err(anyhow::Error::from)?)
                }
                None => None,
            };
            let message = error.map(|e| e.to_string());
            if let Some(m) = &message {
                details["message"] = json!(m);
            }
            let code = error.map(|e| code_of(&AppError::from(e.clone())));
            let mut tx = self.store.begin().await?;
            tx.set_org_posture(&a.id, posture_json.as_deref(), message.as_deref(), now)
                .await?;
            if let Ok((key_id, expires, _)) = &outcome {
                tx.insert_brokered_session(&crate::store::BrokeredSessionRow {
                    key_id: key_id.clone(),
                    account_id: a.id.clone(),
                    purpose: "posture".into(),
                    request_id: None,
                    opened_by: actor.to_string(),
                    opened_at: now,
                    expires_at: *expires,
                })
                .await?;
            }
            let ev = Event::new(Action::OrgRootSession, format!("account:{}", a.id), details);
            self.append(tx.as_mut(), actor, outcome_name, code, ev)
                .await?;
            tx.commit().await?;
            Ok::<_, AppError>(())
        }
        .await;
        if let Err(e) = step {
            return Err((a, e));
        }
        match outcome {
            Ok((_, _, Ok(p))) => Ok((a, p)),
            Ok((_, _, Err(e))) | Err(e) => Err((a, e.into())),
        }
    }

    /// The inventory (admin or auditor). Audited.
    pub async fn org_inventory(&self, who: &Identity) -> AppResult<OrgInventory> {
        let mut tx = self.store.begin().await?;
        let result = async {
            self.require_any(who, &[Role::Admin, Role::Auditor])?;
            let state = tx.org_state().await?;
            let rows = tx.org_accounts().await?;
            let kept: std::collections::BTreeSet<String> = tx
                .credentials()
                .await?
                .into_iter()
                .map(|c| c.account_id)
                .collect();
            let inventory = OrgInventory {
                organization_id: state.as_ref().map(|s| s.organization_id.clone()),
                management_account_id: state.as_ref().map(|s| s.management_account_id.clone()),
                synced_at: state.as_ref().map(|s| crate::clock::rfc3339(s.synced_at)),
                trusted_access: state.as_ref().is_some_and(|s| s.trusted_access),
                root_credentials_management: state
                    .as_ref()
                    .is_some_and(|s| s.root_credentials_management),
                root_sessions: state.as_ref().is_some_and(|s| s.root_sessions),
                accounts: rows
                    .iter()
                    .map(|r| OrgAccountView {
                        account_id: r.account_id.clone(),
                        name: r.name.clone(),
                        email: r.email.clone(),
                        status: r.status.clone(),
                        management: r.is_management,
                        in_custody: kept.contains(&r.account_id),
                        posture: posture_of(r),
                        posture_read_at: r.posture_at.map(crate::clock::rfc3339),
                        posture_error: r.posture_error.clone(),
                        last_seen_at: crate::clock::rfc3339(r.last_seen_at),
                    })
                    .collect(),
            };
            let n = inventory.accounts.len();
            Ok::<_, AppError>(super::Done::new(
                inventory,
                Event::new(Action::OrgList, "organization", json!({ "accounts": n })),
            ))
        }
        .await;
        self.finish(tx, Some(who), Action::OrgList, "organization", result)
            .await
    }

    /// The scheduled sync, from the background round: one replica at a
    /// time, when the last one is older than `sync_interval`.
    pub async fn scheduled_org_sync(&self) -> AppResult<Option<SyncReport>> {
        let Some(interval) = self.settings.org.as_ref().and_then(|o| o.sync_interval) else {
            return Ok(None);
        };
        let now = self.now_ms();
        let interval_ms = interval.as_millis() as i64;
        let mut tx = self.store.begin().await?;
        let claimed = tx
            .claim_org_sync(now, now - interval_ms, now + 15 * 60_000)
            .await?;
        tx.commit().await?;
        if !claimed {
            return Ok(None);
        }
        self.run_org_sync("breakglass").await.map(Some)
    }
}

fn code_of(e: &AppError) -> &'static str {
    match e {
        AppError::Refused(r) => r.code.as_str(),
        AppError::Unavailable { code, .. } => code.as_str(),
        AppError::Internal(_) => Code::Internal.as_str(),
    }
}

/// Why no root session can run, if one cannot.
fn posture_blocked(f: &Features) -> Option<String> {
    if !f.trusted_access {
        return Some(
            "trusted access for IAM (iam.amazonaws.com) is not enabled in Organizations".into(),
        );
    }
    if !f.root_sessions {
        return Some(
            "the RootSessions feature is not enabled (aws iam enable-organizations-root-sessions)"
                .into(),
        );
    }
    None
}
