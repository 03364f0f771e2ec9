//! The security review, as a report instead of a wiki page: what about
//! this service and its custodians needs attention, each finding with the
//! fix. `breakglass doctor` prints it and fails on any high finding.

use crate::domain::states::{AlertState, CustodianStatus};
use crate::domain::Action;
use crate::domain::Code;
use serde_json::json;

use super::{App, AppResult, Done, Event};
use crate::auth::Identity;
use crate::clock::rfc3339 as since;
use crate::domain::Role;

/// How long a share, an approval or a credential may go unreviewed.
pub const REVIEW_PERIOD_MS: i64 = 90 * 86_400_000;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// `high`, `medium` or `low`.
    pub severity: String,
    /// Which check, e.g. `recovery.share_unchecked`.
    pub check: String,
    /// What it is about, e.g. `custodian:ann`.
    pub subject: String,
    pub finding: String,
    /// How to fix it.
    pub fix: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HygieneReport {
    pub generated_at: String,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub findings: Vec<Finding>,
}

fn f(severity: &str, check: &str, subject: String, finding: String, fix: String) -> Finding {
    Finding {
        severity: severity.into(),
        check: check.into(),
        subject,
        finding,
        fix,
    }
}

impl App {
    /// The key service and the data directory, as they are now.
    async fn service_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        // The key service: automatic rotation of the KMS key.
        match self.keys.rotation_enabled().await {
            Ok(Some(false)) => out.push(f(
                "medium",
                "kms.rotation_disabled",
                format!("key:{}", self.keys.key_id()),
                "automatic rotation of the KMS key is off".into(),
                "aws kms enable-key-rotation --key-id KEY".into(),
            )),
            Ok(_) => {}
            Err(e) => out.push(f(
                "high",
                "kms.unreachable",
                format!("key:{}", self.keys.key_id()),
                format!("the key service does not answer: {e}"),
                "check the KMS endpoint, credentials and key policy".into(),
            )),
        }
        // The data directory and its keys, as the start checks them: a
        // change made since (a chmod, a swapped file) is found here.
        for problem in crate::datadir::problems(&self.data_dir) {
            out.push(f(
                "high",
                "datadir.exposed",
                format!("path:{}", self.data_dir.display()),
                problem,
                "restore owner-only permissions (directory 700, key files 600, owned by the service's user, no symbolic links); if a key was replaced, treat it as compromised".into(),
            ));
        }
        out
    }

    /// The review (auditor or admin). Audited.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn hygiene(&self, who: &Identity) -> AppResult<HygieneReport> {
        self.require_any(who, &[Role::Auditor, Role::Admin])?;
        let now = self.now_ms();
        let mut out = self.service_findings().await;
        let mut tx = self.store.begin_read().await?;
        // A policy version written around the service stops every decision
        // under the policies; the review says so instead of failing.
        let policies_in_force = match self.effective_policies(tx.as_mut()).await {
            Ok(p) => p,
            Err(super::AppError::Refused(r)) if r.code == Code::PolicyUnproven => {
                out.push(f(
                    "high",
                    "policy.unsealed",
                    "policies".into(),
                    r.message.clone(),
                    "restore the policy_versions table from a trusted backup, or remove the version written around the service; then change the policy through the service (four-eyes)".into(),
                ));
                self.policies
                    .iter()
                    .map(|p| (p.name.to_string(), (p.clone(), 0)))
                    .collect()
            }
            Err(e) => return Err(e),
        };
        let custodians = tx.custodians().await?;
        let credentials = tx.credentials().await?;
        let set = tx.active_recovery_set().await?;
        let shares = match &set {
            Some(s) => tx.recovery_shares(&s.set_id).await?,
            None => vec![],
        };
        let decided: std::collections::BTreeMap<String, i64> =
            tx.last_decisions().await?.into_iter().collect();
        let dead = tx.alerts(Some(AlertState::Dead), 1000).await?.len();
        let mut versions = Vec::new();
        for c in &credentials {
            versions.push(tx.version(&c.id, c.current_version).await?);
        }
        let org = match &self.settings.org {
            Some(_) => Some((
                tx.org_state().await?,
                tx.org_accounts().await?,
                tx.stopped_root_requests().await?,
            )),
            None => None,
        };
        let watch = match &self.settings.root_watch {
            Some(w) => Some((
                w.poll_interval,
                tx.root_findings(true, 1000).await?,
                tx.watch_gauges().await?,
                tx.trail_files(Some("rejected"), 1000).await?,
            )),
            None => None,
        };
        tx.rollback().await?;
        let x = Facts {
            custodians,
            credentials,
            set,
            shares,
            decided,
            dead,
            versions,
            policies_in_force,
        };

        let key = self.audit_public_key();
        out.extend(sealed_findings(&key, &x));
        out.extend(recovery_findings(&x, now));
        out.extend(custodian_findings(&x, now));
        out.extend(drill_findings(&x, now));
        out.extend(credential_findings(&x, now));
        if let Some((iam, sts)) = &self.aws_review {
            out.extend(aws_findings(iam, sts, &x.credentials).await);
        }
        if let (Some((state, accounts, stopped)), Some(settings)) = (&org, &self.settings.org) {
            out.extend(org_findings(
                state.as_ref(),
                accounts,
                &x.credentials,
                settings,
                now,
            ));
            out.extend(stopped_root_tasks(stopped, now));
        }
        if let Some((poll, open, gauges, rejected)) = &watch {
            out.extend(watch_findings(open, gauges, rejected, *poll, now));
        }
        if x.dead > 0 {
            out.push(f(
                "medium",
                "alerts.dead_letters",
                "alerts".into(),
                format!("{} alert(s) could not be delivered", x.dead),
                "fix the channel, then `breakglass alerts retry ID`".into(),
            ));
        }
        let rank = |s: &str| match s {
            "high" => 0,
            "medium" => 1,
            _ => 2,
        };
        out.sort_by(|a, b| {
            rank(&a.severity)
                .cmp(&rank(&b.severity))
                .then(a.check.cmp(&b.check))
        });
        let count = |s: &str| out.iter().filter(|x| x.severity == s).count();
        let report = HygieneReport {
            generated_at: since(now),
            high: count("high"),
            medium: count("medium"),
            low: count("low"),
            findings: out,
        };
        let tx = self.store.begin().await?;
        let ev = Event::new(
            Action::HygieneReport,
            "hygiene",
            json!({ "high": report.high, "medium": report.medium, "low": report.low,
                    "checks": report.findings.iter().map(|x| x.check.clone()).collect::<Vec<_>>() }),
        );
        self.finish(
            tx,
            Some(who),
            Action::HygieneReport,
            "hygiene",
            Ok(Done::new(report, ev)),
        )
        .await
    }
}

/// The organisation: its features, each member account's root posture,
/// an inventory gone stale, and the roots that stay under custody (the
/// management account's) or should not (a member's, which can be
/// centralized).
fn org_findings(
    state: Option<&crate::store::OrgStateRow>,
    accounts: &[crate::store::OrgAccountRow],
    credentials: &[crate::store::CredentialRow],
    settings: &crate::config::OrgSettings,
    now: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(state) = state else {
        out.push(f(
            "high",
            "org.never_synced",
            "organization".into(),
            "the AWS organisation has never been synced: its accounts and their root credentials are unknown".into(),
            "`breakglass org sync` (admin)".into(),
        ));
        return out;
    };
    let org = format!("organization:{}", state.organization_id);
    let stale_after = settings
        .sync_interval
        .map_or(7 * 86_400_000, |d| 2 * d.as_millis() as i64);
    if now - state.synced_at > stale_after {
        out.push(f(
            "medium",
            "org.inventory_stale",
            org.clone(),
            format!(
                "the inventory was last synced {}: accounts created since, and root credentials added since, are missing from it",
                since(state.synced_at)
            ),
            "`breakglass org sync`, and check that the scheduled sync (`[org] sync_interval`) runs".into(),
        ));
    }
    for (on, check, what, fix) in [
        (
            state.trusted_access,
            "org.trusted_access_off",
            "trusted access for IAM is not enabled in Organizations",
            "aws organizations enable-aws-service-access --service-principal iam.amazonaws.com",
        ),
        (
            state.root_credentials_management,
            "org.root_credentials_management_off",
            "the RootCredentialsManagement feature is off: member accounts' root credentials cannot be managed centrally",
            "aws iam enable-organizations-root-credentials-management",
        ),
        (
            state.root_sessions,
            "org.root_sessions_off",
            "the RootSessions feature is off: no root session (AssumeRoot) can audit or fix a member account",
            "aws iam enable-organizations-root-sessions",
        ),
    ] {
        if !on {
            out.push(f("high", check, org.clone(), what.into(), fix.into()));
        }
    }
    let in_custody = |account: &str| credentials.iter().any(|c| c.account_id == account);
    if !in_custody(&state.management_account_id) {
        out.push(f(
            "high",
            "org.management_root_not_in_custody",
            format!("account:{}", state.management_account_id),
            "the management account's root cannot be centralized, and no credential of this service keeps it".into(),
            format!(
                "deposit it: `breakglass credential deposit NAME --account {} --policy POLICY --field password=- --field mfa_seed=-`",
                state.management_account_id
            ),
        ));
    }
    for a in accounts
        .iter()
        .filter(|a| a.status == "ACTIVE" && !a.is_management)
    {
        let subject = format!("account:{}", a.account_id);
        match (super::org::posture_of(a), &a.posture_error) {
            (Some(p), None) if p.any() => out.push(f(
                "high",
                "org.root_credentials_present",
                subject.clone(),
                format!(
                    "member account {} ({}): the root user has {}",
                    a.account_id,
                    a.name,
                    p.describe()
                ),
                format!(
                    "delete them: `breakglass org request {} --task IAMDeleteRootUserCredentials --reason …`, approved by its quorum, then released; the organisation then keeps root centrally",
                    a.account_id
                ),
            )),
            (Some(_), None) => {}
            (_, error) => out.push(f(
                "medium",
                "org.posture_unknown",
                subject.clone(),
                format!(
                    "member account {} ({}): the root user's credentials are unknown: {}",
                    a.account_id,
                    a.name,
                    error.as_deref().unwrap_or("never audited")
                ),
                "check the broker's sts:AssumeRoot permission for IAMAuditRootUserCredentials, then `breakglass org sync`".into(),
            )),
        }
        for c in credentials.iter().filter(|c| c.account_id == a.account_id) {
            out.push(f(
                "low",
                "org.member_root_in_custody",
                format!("credential:{}", c.name),
                format!(
                    "credential {} keeps the root of member account {}, whose root can be centralized",
                    c.name, a.account_id
                ),
                "delete the account's root credentials with a root session, then retire this deposit".into(),
            ));
        }
    }
    out
}

/// Root tasks an outage stopped midway: what they left, and whether the
/// request can still finish them (its release window) or a new one must.
fn stopped_root_tasks(
    stopped: &[(crate::store::RootRequestRow, Option<i64>)],
    now: i64,
) -> Vec<Finding> {
    stopped
        .iter()
        .map(|(q, deadline)| {
            let open = deadline.is_some_and(|d| d > now);
            let steps = q
                .progress
                .as_deref()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .and_then(|p| p["run"]["steps"].as_array().map(Vec::len))
                .unwrap_or(0);
            let half_deleted = q.task == crate::org::RootTask::IAMDeleteRootUserCredentials.as_str();
            f(
                if half_deleted { "high" } else { "medium" },
                "org.root_task_stopped",
                format!("request:{}", q.request_id),
                format!(
                    "{} in account {} stopped after {steps} step(s) (attempt {}){}",
                    q.task,
                    q.account_id,
                    q.attempts,
                    if half_deleted { ": the root user's credentials may be partly deleted" } else { "" }
                ),
                if open {
                    format!("release request {} again: it audits first and does what is left", q.request_id)
                } else {
                    format!(
                        "its release window has closed: file a new request, `breakglass org request {} --task {} …`",
                        q.account_id, q.task
                    )
                },
            )
        })
        .collect()
}

/// The root watch: root activity nothing accounts for, files that were
/// not CloudTrail's, and a trail that stopped delivering.
fn watch_findings(
    open: &[crate::store::RootFindingRow],
    gauges: &crate::metrics::WatchGauges,
    rejected: &[crate::store::TrailFileRow],
    poll: std::time::Duration,
    now: i64,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = open
        .iter()
        .map(|r| {
            let v = super::watch::finding_view(r);
            let e = &v.first_event;
            let mut what = format!("{} at {}", v.what, v.first_at);
            if let Some(p) = e["principal"].as_str() {
                what.push_str(&format!(" by {p}"));
            }
            if let Some(ip) = e["source_ip"].as_str() {
                what.push_str(&format!(" from {ip}"));
            }
            if e["mfa_used"] == json!(false) {
                what.push_str(", without MFA");
            }
            if let Some(why) = e["failure"].as_str() {
                what.push_str(&format!(" (failed: {why})"));
            }
            if v.events > 1 {
                what.push_str(&format!("; {} events until {}", v.events, v.last_at));
            }
            f(
                "high",
                "root.unmatched_activity",
                format!("account:{}", v.account_id),
                format!("{what}: no release and no brokered session accounts for it"),
                format!(
                    "find out who it was (CloudTrail event {}); if the root password or a key is compromised, rotate it; then `breakglass watch ack {} --reason …`",
                    e["event_id"].as_str().unwrap_or("?"),
                    v.id
                ),
            )
        })
        .collect();
    let recent: Vec<_> = rejected
        .iter()
        .filter(|r| r.read_at > now - 7 * 86_400_000)
        .collect();
    if let Some(last) = recent.first() {
        out.push(f(
            "medium",
            "watch.files_rejected",
            "cloudtrail".into(),
            format!(
                "{} file(s) under the trail's prefix in the last 7 days were not CloudTrail log files, e.g. {}: {}",
                recent.len(),
                last.file_key,
                last.error.as_deref().unwrap_or("?")
            ),
            "check who writes to the trail's bucket (its policy should let only CloudTrail write there); `breakglass watch status` lists them".into(),
        ));
    }
    let stale_after = (poll.as_millis() as i64).max(3_600_000) * 2;
    match gauges.newest_file_at {
        Some(at) if at < now - stale_after => out.push(f(
            "medium",
            "watch.trail_silent",
            "cloudtrail".into(),
            format!("the newest CloudTrail file read was delivered at {}", since(at)),
            "check the trail still logs (aws cloudtrail get-trail-status) and that the service may list and read its bucket".into(),
        )),
        None => out.push(f(
            "medium",
            "watch.trail_silent",
            "cloudtrail".into(),
            "no CloudTrail log file has been read yet".into(),
            "check root_watch.bucket and prefix name the trail's, and that the service may list and read them; `breakglass watch run` reads now".into(),
        )),
        _ => {}
    }
    out
}

/// What the review reads from the store, in one transaction.
struct Facts {
    custodians: Vec<crate::store::CustodianRow>,
    credentials: Vec<crate::store::CredentialRow>,
    set: Option<crate::store::RecoverySetRow>,
    shares: Vec<crate::store::RecoveryShareRow>,
    /// Each custodian's latest decision.
    decided: std::collections::BTreeMap<String, i64>,
    /// Dead-lettered alerts.
    dead: usize,
    /// Each credential's current version, in `credentials`' order.
    versions: Vec<Option<crate::store::VersionRow>>,
    policies_in_force: std::collections::BTreeMap<String, (crate::domain::Policy, i64)>,
}

/// Which policy each credential is under, as the service set it.
fn sealed_findings(key: &crate::crypto::chain::AuditKey, x: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in x
        .credentials
        .iter()
        .filter(|c| !super::proof::policy_of_sealed(key, c))
    {
        out.push(f(
            "high",
            "policy.unsealed",
            format!("credential:{}", c.name),
            format!(
                "credential {} is under policy {} without the audit key's seal: the assignment was written around the service, and no request for it is accepted",
                c.name, c.policy
            ),
            "restore the credential's row from a trusted backup, or move it through the service (a policy change, four-eyes)".into(),
        ));
    }

    out
}

/// Recovery: a set, complete, every share checked recently.
fn recovery_findings(x: &Facts, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    match &x.set {
        None => out.push(f(
            "high",
            "recovery.no_set",
            "recovery".into(),
            "no recovery share set: losing the key service loses every credential".into(),
            "run `breakglass init --threshold K --custodian NAME=AGE_RECIPIENT …`".into(),
        )),
        Some(s) => {
            for sh in &x.shares {
                let checked = sh.checked_at.unwrap_or(0);
                if now - checked > REVIEW_PERIOD_MS {
                    out.push(f(
                        "medium",
                        "recovery.share_unchecked",
                        format!("custodian:{}", sh.custodian),
                        match sh.checked_at {
                            Some(t) => format!(
                                "share {} of set {} was last checked {}",
                                sh.idx,
                                s.set_id,
                                since(t)
                            ),
                            None => format!(
                                "share {} of set {} has never been checked",
                                sh.idx, s.set_id
                            ),
                        },
                        format!(
                            "{} runs `breakglass share check FILE --identity KEY`",
                            sh.custodian
                        ),
                    ));
                }
                if !x
                    .custodians
                    .iter()
                    .any(|c| c.name == sh.custodian && c.status == CustodianStatus::Active)
                {
                    out.push(f(
                        "high",
                        "recovery.holder_gone",
                        format!("custodian:{}", sh.custodian),
                        format!(
                            "share {} is held by {}, who is not an active custodian",
                            sh.idx, sh.custodian
                        ),
                        "re-split with `breakglass rekey` for the current custodians".into(),
                    ));
                }
            }
        }
    }
    out
}

/// Custodians: enrolled, not locked, active within the period.
fn custodian_findings(x: &Facts, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in &x.custodians {
        if c.status != CustodianStatus::Active {
            out.push(f(
                "medium",
                "custodian.not_enrolled",
                format!("custodian:{}", c.name),
                format!("{} has not completed TOTP enrolment", c.name),
                format!(
                    "{} runs `breakglass custodian enroll` and `confirm`",
                    c.name
                ),
            ));
        } else if c.locked_until.is_some_and(|u| u > now) {
            out.push(f(
                "medium",
                "custodian.locked",
                format!("custodian:{}", c.name),
                format!(
                    "{} is locked out until {}",
                    c.name,
                    since(c.locked_until.unwrap_or(0))
                ),
                "find out why their codes failed before the lockout ends".into(),
            ));
        }
        let approved = x.decided.get(&c.name).copied();
        let checked = x
            .shares
            .iter()
            .filter(|s| s.custodian == c.name)
            .filter_map(|s| s.checked_at)
            .max();
        let last = approved.into_iter().chain(checked).max();
        if c.status == CustodianStatus::Active
            && now - last.unwrap_or(c.created_at) > REVIEW_PERIOD_MS
        {
            out.push(f(
                "low",
                "custodian.idle",
                format!("custodian:{}", c.name),
                format!(
                    "{} has neither approved nor checked a share in 90 days",
                    c.name
                ),
                "run a break-glass drill, or have them check their share".into(),
            ));
        }
    }
    out
}

/// Drills: every policy guarding a real credential is rehearsed.
fn drill_findings(x: &Facts, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut policies: Vec<&str> = x
        .credentials
        .iter()
        .filter(|c| !c.drill)
        .map(|c| c.policy.as_str())
        .collect();
    policies.sort();
    policies.dedup();
    for p in policies {
        let last = x
            .credentials
            .iter()
            .filter(|c| c.drill && c.policy == p)
            .filter_map(|c| c.last_released_at)
            .max();
        if last.is_none_or(|t| now - t > REVIEW_PERIOD_MS) {
            out.push(f(
                "medium",
                "drill.overdue",
                format!("policy:{p}"),
                match last {
                    Some(t) => format!("policy {p} was last drilled {}", since(t)),
                    None => format!("policy {p} has never been drilled"),
                },
                format!("deposit a drill credential under {p} (`--drill`) and break the glass on it with the real custodians"),
            ));
        }
    }
    out
}

/// Credentials: exposed and not rotated; stale; not recoverable.
fn credential_findings(x: &Facts, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for (c, v) in x.credentials.iter().zip(&x.versions) {
        if c.drill {
            continue;
        }
        if c.exposed {
            out.push(f(
                "high",
                "credential.exposed",
                format!("credential:{}", c.name),
                format!(
                    "{} was released {} and has not been rotated",
                    c.name,
                    since(c.exposed_at.unwrap_or(0))
                ),
                format!(
                    "rotate it in AWS, then `breakglass credential rotate {}`",
                    c.name
                ),
            ));
        }
        let max_age = x
            .policies_in_force
            .get(&c.policy)
            .and_then(|(p, _)| p.max_age_secs)
            .map(|s| s as i64 * 1000);
        if let Some(max) = max_age.filter(|m| now - c.updated_at > *m) {
            out.push(f(
                "medium",
                "credential.too_old",
                format!("credential:{}", c.name),
                format!(
                    "{} was last rotated {}, longer ago than its policy's maximum age ({})",
                    c.name,
                    since(c.updated_at),
                    humantime::format_duration(std::time::Duration::from_millis(max as u64))
                ),
                format!("rotate it, then `breakglass credential rotate {}`", c.name),
            ));
        } else if max_age.is_none() && now - c.updated_at > REVIEW_PERIOD_MS && !c.exposed {
            out.push(f(
                "low",
                "credential.stale",
                format!("credential:{}", c.name),
                format!(
                    "{} has not been rotated since {}",
                    c.name,
                    since(c.updated_at)
                ),
                format!("rotate it, then `breakglass credential rotate {}`", c.name),
            ));
        }
        if let (Some(s), Some(v)) = (&x.set, v) {
            if v.recovery_set.as_deref() != Some(s.set_id.as_str()) {
                out.push(f(
                    "medium",
                    "credential.not_recoverable",
                    format!("credential:{}", c.name),
                    format!(
                        "version {} of {} is not wrapped to the recovery key",
                        v.version, c.name
                    ),
                    format!(
                        "`breakglass credential rotate {}` (deposited before the ceremony)",
                        c.name
                    ),
                ));
            }
        }
    }
    out
}

/// The AWS side: root MFA and root access keys of the account the review's
/// identity is in, and when each deposited access key was last used (used
/// outside a break-glass means someone holds root outside breakglass).
async fn aws_findings(
    iam: &aws_sdk_iam::Client,
    sts: &aws_sdk_sts::Client,
    credentials: &[crate::store::CredentialRow],
) -> Vec<Finding> {
    use aws_sdk_iam::types::SummaryKeyType;
    let mut out = Vec::new();
    let failed = |what: &str| {
        f(
            "high",
            "aws.review_failed",
            "aws".into(),
            format!("the AWS review could not {what}"),
            "check the review role's permissions (iam:GetAccountSummary, iam:GetAccessKeyLastUsed, sts:GetCallerIdentity) and the AWS endpoint".into(),
        )
    };
    let account = match sts.get_caller_identity().send().await {
        Ok(r) => r.account().unwrap_or_default().to_string(),
        Err(_) => return vec![failed("identify its AWS account")],
    };
    let here: Vec<&crate::store::CredentialRow> = credentials
        .iter()
        .filter(|c| c.account_id == account)
        .collect();
    for c in credentials.iter().filter(|c| c.account_id != account) {
        out.push(f(
            "low",
            "aws.not_reviewed",
            format!("credential:{}", c.name),
            format!(
                "account {} is not reviewed: the review's AWS identity is in account {account}",
                c.account_id
            ),
            "run a review with a read-only role in that account".into(),
        ));
    }
    if here.is_empty() {
        return out;
    }
    match iam.get_account_summary().send().await {
        Ok(r) => {
            let map = r.summary_map().cloned().unwrap_or_default();
            if map
                .get(&SummaryKeyType::AccountMfaEnabled)
                .copied()
                .unwrap_or(0)
                != 1
            {
                out.push(f(
                    "high",
                    "aws.root_mfa_off",
                    format!("account:{account}"),
                    "the root user of this account has no MFA device".into(),
                    "enable a virtual MFA device for root, deposit its seed as code-only".into(),
                ));
            }
            if map
                .get(&SummaryKeyType::AccountAccessKeysPresent)
                .copied()
                .unwrap_or(0)
                > 0
                && !here.iter().any(|c| c.access_key_id.is_some())
            {
                out.push(f(
                    "high",
                    "aws.root_keys_undeposited",
                    format!("account:{account}"),
                    "the root user has access keys that no credential here holds".into(),
                    "delete them (AWS guidance), or deposit them with --access-key-id".into(),
                ));
            }
        }
        Err(_) => out.push(failed("read the account summary")),
    }
    for c in here {
        let Some(key) = &c.access_key_id else {
            continue;
        };
        match iam
            .get_access_key_last_used()
            .access_key_id(key)
            .send()
            .await
        {
            Ok(r) => {
                let used = r
                    .access_key_last_used()
                    .and_then(|u| u.last_used_date())
                    .map(|d| d.secs() * 1000);
                // A day after the last release, or any use before one.
                let allowed_until = c.last_released_at.map(|t| t + 86_400_000);
                if let Some(used) = used {
                    if allowed_until.is_none_or(|until| used > until) {
                        out.push(f(
                            "high",
                            "aws.key_used_outside",
                            format!("credential:{}", c.name),
                            format!(
                                "root access key {key} was used {} outside any break-glass release",
                                crate::clock::rfc3339(used)
                            ),
                            "someone holds root outside breakglass: investigate, then rotate the key".into(),
                        ));
                    }
                }
            }
            Err(_) => out.push(f(
                "high",
                "aws.key_unknown",
                format!("credential:{}", c.name),
                format!("IAM does not know the deposited access key {key}"),
                "the deposited key was deleted or replaced: rotate the credential".into(),
            )),
        }
    }
    out
}
