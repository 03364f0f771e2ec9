//! Root-session requests: member-account root through AWS Organizations'
//! centralized root access, behind the quorum.
//!
//! A request names a member account, one of the five task policies, a
//! duration and (for the unlock tasks) the bucket or queue: the tuple. Its
//! SHA-256 is in the signed `request.create` event, and a release
//! recomputes it from the stored row before anything reaches AWS, so the
//! quorum approved exactly what is executed. Approvals, denials and expiry
//! are a credential request's.
//!
//! At release the service assumes its broker role with `SourceIdentity`
//! set to the request id, calls `sts:AssumeRoot`, and by default executes
//! the task itself; where the policy allows it, it hands the session's
//! credentials to the requester once instead. They are never stored: only
//! the session's key id and expiry are audited. An execution holds the
//! request (so two releases cannot run it at once); one cut short by an
//! outage is recorded with the steps it did, the request stays approved,
//! and the next release re-audits and resumes. The request is released
//! when the task has run to its end, once.

use serde::Deserialize;
use serde_json::json;

use super::proof::tuple_digest;
use super::requests::{pending_request, reason_of, request_target, ticket_of};
use super::views::{ReleaseView, RequestView, RootTaskView};
use super::{refuse, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::domain::policy::root_policy_for;
use crate::domain::{Action, Code, Role};
use crate::org::{OrgError, RootSession, RootTask, TaskRun};
use crate::store::{RequestRow, RootRequestRow, Tx};

/// The shortest root session a request may ask for: a task's calls and
/// their retries need a minute.
pub const MIN_DURATION_SECS: i64 = 60;
/// A request's session when it names no duration.
pub const DEFAULT_DURATION_SECS: i64 = 300;

/// `POST /v1/org/root-requests`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRootRequestBody {
    /// The member account (12 digits).
    pub account_id: String,
    /// One of the five task policies, e.g. `IAMDeleteRootUserCredentials`.
    pub task: String,
    /// The session's length, 60 to 900 seconds (default 300).
    pub duration_secs: Option<i64>,
    /// The bucket whose policy `S3UnlockBucketPolicy` deletes.
    pub bucket: Option<String>,
    /// The queue (its URL) whose policy `SQSUnlockQueuePolicy` deletes.
    pub queue_url: Option<String>,
    /// Receive the session's credentials instead of having the service
    /// execute the task (only where the policy allows it).
    #[serde(default)]
    pub hand_over: bool,
    /// Why; shown to custodians.
    pub reason: String,
    /// Incident or ticket reference.
    pub ticket: Option<String>,
}

/// The target a root request's refusals name before it has an id.
fn account_target(account: &str) -> String {
    format!("account:{account}")
}

/// An S3 bucket name as S3 accepts it (3 to 63 lowercase letters, digits,
/// dots and hyphens, starting and ending with a letter or digit).
fn bucket_of(raw: &str) -> AppResult<String> {
    let b = raw.trim();
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        return refuse(
            Code::InvalidResource,
            format!(
                "{:?} is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)",
                crate::domain::text::escape(b)
            ),
        );
    }
    Ok(b.to_string())
}

/// A queue URL in `account`: `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`
/// (any host, for endpoints of other partitions and emulators), whose
/// account is the request's.
fn queue_of(raw: &str, account: &str) -> AppResult<String> {
    let bad = |why: &str| {
        refuse(
            Code::InvalidResource,
            format!(
                "{:?} is not a queue URL of account {account}: {why}",
                crate::domain::text::escape(raw)
            ),
        )
    };
    let Ok(u) = reqwest::Url::parse(raw.trim()) else {
        return bad("not a URL");
    };
    if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
        return bad("not an http(s) URL");
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return bad("a queue URL has no query, fragment or user");
    }
    let parts: Vec<&str> = u.path().trim_matches('/').split('/').collect();
    let [owner, name] = parts.as_slice() else {
        return bad("its path is /ACCOUNT/QUEUE");
    };
    if *owner != account {
        return bad("the queue belongs to another account");
    }
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let name_ok = (1..=80).contains(&base.len())
        && base
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !name_ok {
        return bad("a queue name is 1 to 80 letters, digits, hyphens and underscores");
    }
    Ok(u.to_string().trim_end_matches('/').to_string())
}

impl App {
    /// Whether `id` names a root-session request.
    pub(crate) async fn is_root_request(&self, id: &str) -> AppResult<bool> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(false);
        }
        let mut tx = self.store.begin_read().await?;
        let r = tx.request(id).await?;
        tx.rollback().await?;
        Ok(r.is_some_and(|r| r.credential_id.is_none()))
    }

    /// A root-session request (requester). Audited, and its event signed
    /// at once with the tuple's digest.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn create_root_request(
        &self,
        who: &Identity,
        body: CreateRootRequestBody,
    ) -> AppResult<RequestView> {
        let target = account_target(&body.account_id);
        let mut tx = self.store.begin().await?;
        let res = self.create_root_request_tx(tx.as_mut(), who, body).await;
        self.finish(tx, Some(who), Action::RequestCreate, &target, res)
            .await
    }

    async fn create_root_request_tx(
        &self,
        tx: &mut dyn Tx,
        who: &Identity,
        body: CreateRootRequestBody,
    ) -> AppResult<Done<RequestView>> {
        self.require(who, Role::Requester)?;
        self.org_aws()?;
        // Without the broker role there is no SourceIdentity, and CloudTrail
        // could not name the request a root session acted for.
        if self
            .settings
            .org
            .as_ref()
            .and_then(|o| o.broker_role_arn.as_ref())
            .is_none()
        {
            return refuse(
                Code::OrgNotConfigured,
                "root-session requests need `[org] broker_role_arn`: the role the service assumes with the request id as SourceIdentity, so that CloudTrail names the request each root session acted for",
            );
        }
        let reason = reason_of(&body.reason)?;
        let ticket = ticket_of(body.ticket)?;
        let Ok(task) = body.task.parse::<RootTask>() else {
            return refuse(
                Code::UnknownTask,
                format!(
                    "{:?} is not a root task: one of {}",
                    crate::domain::text::escape(&body.task),
                    RootTask::names().join(", ")
                ),
            );
        };
        let duration = body.duration_secs.unwrap_or(DEFAULT_DURATION_SECS);
        let max = i64::from(RootTask::MAX_DURATION_SECS);
        if !(MIN_DURATION_SECS..=max).contains(&duration) {
            return refuse(
                Code::InvalidDuration,
                format!(
                    "a root session lasts {MIN_DURATION_SECS} to {max} seconds (AWS's limit is 15 minutes), not {duration}"
                ),
            );
        }
        let account = crate::domain::AccountId::parse(&body.account_id)
            .or_else(|e| refuse(Code::InvalidAccount, e.0))?
            .to_string();
        let Some(org) = tx.org_state().await? else {
            return refuse(
                Code::AccountNotInOrganization,
                "the organisation has not been synced yet: run `breakglass org sync` first",
            );
        };
        if account == org.management_account_id {
            return refuse(
                Code::ManagementAccount,
                format!(
                    "account {account} is the organisation's management account: its root cannot be centralized, so request the credential that keeps it"
                ),
            );
        }
        match tx.org_account(&account).await? {
            Some(a) if a.status == "ACTIVE" => {}
            Some(a) => {
                return refuse(
                    Code::AccountNotInOrganization,
                    format!(
                        "account {account} is {} in the organisation {}: only active member accounts have root sessions",
                        a.status, org.organization_id
                    ),
                )
            }
            None => {
                return refuse(
                    Code::AccountNotInOrganization,
                    format!(
                        "account {account} is not in the organisation {} as last synced: run `breakglass org sync` if it joined since",
                        org.organization_id
                    ),
                )
            }
        }
        let resource = match (task.resource_kind(), &body.bucket, &body.queue_url) {
            (Some("bucket"), Some(b), None) => Some(bucket_of(b)?),
            (Some("queue"), None, Some(q)) => Some(queue_of(q, &account)?),
            (None, None, None) => None,
            (Some(kind), _, _) => {
                let field = if kind == "bucket" {
                    "bucket"
                } else {
                    "queue_url"
                };
                return refuse(
                    Code::InvalidResource,
                    format!(
                        "{} names its {kind}: give `{field}` (and nothing else)",
                        task.as_str()
                    ),
                );
            }
            (None, _, _) => {
                return refuse(
                    Code::InvalidResource,
                    format!(
                        "{} acts on the root user's credentials: it names no bucket or queue",
                        task.as_str()
                    ),
                )
            }
        };
        let policies = self.effective_policies(tx).await?;
        let Some(policy) =
            root_policy_for(policies.values().map(|(p, _)| p), &account, task).cloned()
        else {
            return refuse(
                Code::NoRootPolicy,
                format!(
                    "no policy governs {} in account {account}: add `root_sessions` to a policy in policies/",
                    task.as_str()
                ),
            );
        };
        let hand_over_allowed = policy.root_sessions.as_ref().is_some_and(|r| r.hand_over);
        if body.hand_over && !hand_over_allowed {
            return refuse(
                Code::HandOverNotAllowed,
                format!(
                    "policy {} executes {} itself and never hands the session over: leave hand_over out",
                    policy.name,
                    task.as_str()
                ),
            );
        }
        self.admit(tx, who, &policy, ticket.as_deref()).await?;
        let now = self.now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let mut root = RootRequestRow {
            request_id: id.clone(),
            policy: policy.name.to_string(),
            account_id: account.clone(),
            task: task.as_str().to_string(),
            duration_secs: duration,
            resource,
            delivery: if body.hand_over {
                "hand_over"
            } else {
                "execute"
            }
            .to_string(),
            tuple_sha256: String::new(),
            claimed_until: 0,
            attempts: 0,
            progress: None,
            outcome: None,
        };
        root.tuple_sha256 = tuple_digest(&root);
        let row = pending_request(
            id,
            (None, format!("root:{account}")),
            who,
            (reason, ticket),
            &policy,
            now,
        );
        tx.insert_request(&row).await?;
        tx.insert_root_request(&root).await?;
        let ev = Event::new(
            Action::RequestCreate,
            request_target(&row.id),
            json!({
                "credential": row.credential_name,
                "credential_id": null,
                "account_id": account,
                "root_session": {
                    "task": root.task,
                    "duration_secs": root.duration_secs,
                    "resource": root.resource,
                    "delivery": root.delivery,
                },
                "tuple_sha256": root.tuple_sha256,
                "policy": policy.name,
                "quorum": policy.describe(),
                "reason": row.reason,
                "ticket": row.ticket,
                "expires_at": crate::clock::rfc3339(row.expires_at),
                "policy_sha256": super::proof::snapshot_digest(&row.policy),
            }),
        );
        let view = RequestView::new(&row, &policy, &[], now).with_root(Some(&root));
        Ok(Done::new(view, ev).checkpointed())
    }

    /// The release of a root-session request: its rules and proof, then
    /// the session, then the task (or the hand-over). See the module.
    pub(crate) async fn release_root(&self, who: &Identity, id: &str) -> AppResult<ReleaseView> {
        let target = request_target(id);
        let result = self.release_root_steps(who, id).await;
        match result {
            // The release's transaction, with its events appended by
            // `finish`: released and audited together.
            Ok((tx, done)) => {
                self.finish(tx, Some(who), Action::RequestRelease, &target, Ok(done))
                    .await
            }
            Err(e) => {
                self.record_refusal(&who.subject, Action::RequestRelease, &target, &e)
                    .await?;
                Err(e)
            }
        }
    }

    async fn release_root_steps(
        &self,
        who: &Identity,
        id: &str,
    ) -> AppResult<(Box<dyn Tx>, Done<ReleaseView>)> {
        // Phase 1, read only: the rules, the proof of the quorum and of the
        // tuple (prove_by_chain recomputes its digest from the row).
        let mut tx = self.store.begin_read().await?;
        let checked = async {
            let r = self.release_rules(tx.as_mut(), who, id).await?;
            let Some(root) = tx.root_request(&r.id).await? else {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "a root-session request has no root_requests row"
                )));
            };
            let decisions = tx.decisions(&r.id).await?;
            self.prove_by_chain(tx.as_mut(), &r, &decisions).await?;
            let mut custodians = Vec::new();
            for d in super::proof::counted(&r, &decisions) {
                custodians.extend(tx.custodian(&d.custodian).await?);
            }
            AppResult::Ok((r, root, decisions, custodians))
        }
        .await;
        tx.rollback().await?;
        let (r, root, decisions, custodians) = checked?;
        self.prove_by_codes(&r, &decisions, &custodians).await?;
        let policy = super::requests::snapshot(&r)?;
        let task: RootTask = root.task.parse().map_err(|_| {
            AppError::Internal(anyhow::anyhow!(
                "stored root task {:?} is unknown",
                root.task
            ))
        })?;
        // The snapshot still governs the tuple (defence in depth: the
        // digest proved the row, this proves the policy allowed it).
        let governs = policy.root_sessions.as_ref().is_some_and(|rs| {
            rs.covers(&root.account_id, task) > 0 && (root.delivery == "execute" || rs.hand_over)
        });
        if !governs {
            return super::proof::policy_unproven(format!(
                "policy {}'s root sessions as approved for request {}",
                policy.name, r.id
            ));
        }
        let aws = self.org_aws()?.clone();

        // Phase 2: hold the request for the session's length.
        let started = self.now_ms();
        let hold_until = started + root.duration_secs * 1000 + 60_000;
        let mut tx = self.store.begin().await?;
        let claimed = tx.claim_root_request(&r.id, started, hold_until).await?;
        tx.commit().await?;
        if !claimed {
            return refuse(
                Code::ReleaseInProgress,
                format!(
                    "another release of request {} is executing {} in account {}: wait for its answer",
                    r.id, root.task, root.account_id
                ),
            );
        }

        // Phase 3: the session, audited whether or not STS gave it.
        let duration = i32::try_from(root.duration_secs).unwrap_or(RootTask::MAX_DURATION_SECS);
        let session = aws
            .root_session(&root.account_id, task, duration, &r.id)
            .await;
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                let run = TaskRun::default();
                return Err(self.task_stopped(&r, &root, None, &run, e).await);
            }
        };
        // On the record before the session acts in the account; if it
        // cannot be, the session is dropped unused.
        let mut tx = self.store.begin().await?;
        let opened = Event::new(
            Action::OrgRootSession,
            account_target(&root.account_id),
            json!({
                "account_id": root.account_id,
                "task": root.task,
                "purpose": "release",
                "request": r.id,
                "source_identity": r.id,
                "delivery": root.delivery,
                "session_key_id": session.access_key_id,
                "session_expires_at": crate::clock::rfc3339(session.expires_at_ms),
            }),
        );
        tx.insert_brokered_session(&crate::store::BrokeredSessionRow {
            key_id: session.access_key_id.clone(),
            account_id: root.account_id.clone(),
            purpose: "release".into(),
            request_id: Some(r.id.clone()),
            opened_by: who.subject.clone(),
            opened_at: self.now_ms(),
            expires_at: session.expires_at_ms,
        })
        .await?;
        self.append(tx.as_mut(), &who.subject, "success", None, opened)
            .await?;
        tx.commit().await?;

        // Phase 4: the task, or the hand-over.
        let mut run = TaskRun::default();
        let (fields, run) = if root.delivery == "hand_over" {
            let (key, secret, token) = session.hand_over();
            let fields: std::collections::BTreeMap<String, secrecy::SecretString> = [
                (
                    "access_key_id".to_string(),
                    secrecy::SecretString::from(key),
                ),
                ("secret_access_key".to_string(), secret.clone()),
                ("session_token".to_string(), token.clone()),
            ]
            .into_iter()
            .collect();
            (fields, None)
        } else {
            let done = match task {
                RootTask::IAMAuditRootUserCredentials => {
                    aws.root_posture(&session).await.map(|p| {
                        run.before = Some(p.clone());
                        run.after = Some(p);
                    })
                }
                RootTask::IAMDeleteRootUserCredentials => {
                    aws.delete_root_credentials(&session, &mut run).await
                }
                RootTask::IAMCreateRootUserPassword => {
                    aws.allow_root_password_recovery(&session, &mut run).await
                }
                RootTask::S3UnlockBucketPolicy => {
                    let bucket = root.resource.clone().unwrap_or_default();
                    aws.unlock_bucket(&session, &bucket, &mut run).await
                }
                RootTask::SQSUnlockQueuePolicy => {
                    let queue = root.resource.clone().unwrap_or_default();
                    aws.unlock_queue(&session, &queue, &mut run).await
                }
            };
            if let Err(e) = done {
                return Err(self.task_stopped(&r, &root, Some(&session), &run, e).await);
            }
            (Default::default(), Some(run))
        };

        // Phase 5: released, once, with the result and the posture read.
        let mut tx = self.store.begin().await?;
        let progress = json!({ "attempt": root.attempts + 1, "run": run, "error": null });
        let outcome = json!({
            "session_key_id": session.access_key_id,
            "session_expires_at": crate::clock::rfc3339(session.expires_at_ms),
            "run": run,
        });
        tx.finish_root_attempt(&r.id, &progress.to_string(), Some(&outcome.to_string()))
            .await?;
        if let Some(after) = run.as_ref().and_then(|r| r.after.as_ref()) {
            let p = serde_json::to_string(after).map_err(anyhow::Error::from)?;
            tx.set_org_posture(&root.account_id, Some(&p), None, self.now_ms())
                .await?;
        }
        // At the time the release began, inside its window: a task that
        // ran past the window's end is still the release it was.
        if !tx.mark_released(&r.id, started, None).await? {
            tx.rollback().await?;
            return refuse(
                Code::RequestReleased,
                "the request was already released; a release happens once",
            );
        }
        let task_event = Event::new(
            Action::OrgRootTask,
            account_target(&root.account_id),
            json!({
                "request": r.id,
                "task": root.task,
                "delivery": root.delivery,
                "resource": root.resource,
                "attempt": root.attempts + 1,
                "session_key_id": session.access_key_id,
                "session_expires_at": crate::clock::rfc3339(session.expires_at_ms),
                "run": run,
            }),
        );
        let release_event = Event::new(
            Action::RequestRelease,
            request_target(&r.id),
            json!({
                "credential": r.credential_name,
                "account_id": root.account_id,
                "task": root.task,
                "delivery": root.delivery,
                "tuple_sha256": root.tuple_sha256,
                "session_key_id": session.access_key_id,
                "session_expires_at": crate::clock::rfc3339(session.expires_at_ms),
                "fields": fields.keys().collect::<Vec<_>>(),
            }),
        );
        let view = ReleaseView {
            request_id: r.id.clone(),
            credential: r.credential_name.clone(),
            account_id: root.account_id.clone(),
            version: 0,
            fields,
            codes: vec![],
            codes_valid_until: None,
            root_task: Some(RootTaskView {
                account_id: root.account_id.clone(),
                task: root.task.clone(),
                delivery: root.delivery.clone(),
                session_key_id: session.access_key_id.clone(),
                session_expires_at: crate::clock::rfc3339(session.expires_at_ms),
                run,
            }),
        };
        Ok((tx, Done::new(view, task_event).and(release_event)))
    }

    /// An attempt that stopped (no session, or a task call that failed):
    /// its steps and error recorded, the request let go and still
    /// approved, audited; returns the error to answer with.
    async fn task_stopped(
        &self,
        r: &RequestRow,
        root: &RootRequestRow,
        session: Option<&RootSession>,
        run: &TaskRun,
        e: OrgError,
    ) -> AppError {
        let err = task_error(&e);
        let progress = json!({
            "attempt": root.attempts + 1,
            "run": run,
            "error": e.to_string(),
        });
        let mut details = json!({
            "request": r.id,
            "task": root.task,
            "delivery": root.delivery,
            "resource": root.resource,
            "attempt": root.attempts + 1,
            "run": run,
            "message": e.to_string(),
            "resumes": "the next release re-audits and does what is left",
        });
        if let Some(s) = session {
            details["session_key_id"] = json!(s.access_key_id);
            details["session_expires_at"] = json!(crate::clock::rfc3339(s.expires_at_ms));
        }
        let recorded = async {
            let mut tx = self.store.begin().await?;
            tx.finish_root_attempt(&r.id, &progress.to_string(), None)
                .await?;
            let ev = Event::new(
                Action::OrgRootTask,
                account_target(&root.account_id),
                details,
            );
            let code = match &err {
                AppError::Refused(x) => x.code.as_str(),
                AppError::Unavailable { code, .. } => code.as_str(),
                AppError::Internal(_) => Code::Internal.as_str(),
            };
            self.append(tx.as_mut(), &r.requester, "failure", Some(code), ev)
                .await?;
            tx.commit().await?;
            AppResult::Ok(())
        }
        .await;
        match recorded {
            Ok(()) => err,
            Err(other) => other,
        }
    }
}

/// How a stopped task answers: an outage or a refusal of the broker's
/// own call (STS) as `org_*`, a refusal inside the member account as
/// `root_task_failed`.
fn task_error(e: &OrgError) -> AppError {
    match e {
        OrgError::Refused { service, .. } if *service != "sts" => {
            AppError::Refused(super::Refusal::new(Code::RootTaskFailed, e.to_string()))
        }
        _ => AppError::from(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_url_names_its_account_and_a_queue() {
        let a = "111122223333";
        assert!(queue_of("https://sqs.eu-west-1.amazonaws.com/111122223333/jobs", a).is_ok());
        assert!(queue_of(
            "https://sqs.eu-west-1.amazonaws.com/111122223333/jobs.fifo",
            a
        )
        .is_ok());
        for bad in [
            "https://sqs.eu-west-1.amazonaws.com/444455556666/jobs",
            "https://sqs.eu-west-1.amazonaws.com/111122223333",
            "https://sqs.eu-west-1.amazonaws.com/111122223333/jobs?x=1",
            "ftp://sqs/111122223333/jobs",
            "jobs",
            "https://sqs.eu-west-1.amazonaws.com/111122223333/j%20obs",
        ] {
            assert!(queue_of(bad, a).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_name_is_what_s3_accepts() {
        assert!(bucket_of("logs-archive.2026").is_ok());
        for bad in ["ab", "Logs", "-logs", "logs-", &"a".repeat(64), "lo gs"] {
            assert!(bucket_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tuple_digest_changes_with_every_part() {
        let base = RootRequestRow {
            request_id: "r".into(),
            policy: "p".into(),
            account_id: "111122223333".into(),
            task: "IAMDeleteRootUserCredentials".into(),
            duration_secs: 300,
            resource: None,
            delivery: "execute".into(),
            tuple_sha256: String::new(),
            claimed_until: 0,
            attempts: 0,
            progress: None,
            outcome: None,
        };
        let d = tuple_digest(&base);
        let variants = [
            RootRequestRow {
                account_id: "111122223334".into(),
                ..base.clone()
            },
            RootRequestRow {
                task: "IAMAuditRootUserCredentials".into(),
                ..base.clone()
            },
            RootRequestRow {
                duration_secs: 301,
                ..base.clone()
            },
            RootRequestRow {
                resource: Some("b".into()),
                ..base.clone()
            },
            RootRequestRow {
                delivery: "hand_over".into(),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(tuple_digest(&v), d);
        }
        // The request id, the policy and the execution state are not the
        // tuple.
        let same = RootRequestRow {
            request_id: "other".into(),
            attempts: 3,
            ..base.clone()
        };
        assert_eq!(tuple_digest(&same), d);
    }
}
