//! Rotation of the root access keys deposited in a credential, after a
//! release or on demand: create a new key with the old one, deposit it as a
//! new version, prove it works, then delete the old key. Each step is
//! recorded before the next starts and audited, so an interrupted rotation
//! resumes where it stopped, and at every point at least one working key is
//! deposited:
//!
//! 1. `started` → `deposited`: `iam:CreateAccessKey` (as the old key's
//!    user), and the new key and secret deposited as a new version in the
//!    same step. If a rotation stopped after AWS created a key but before
//!    it was deposited, that key's secret is lost; it is deleted (with the
//!    old key, which still works) and a new one made.
//! 2. `deposited` → `verified`: `sts:GetCallerIdentity` with the new key.
//! 3. `verified` → `done`: `iam:DeleteAccessKey` of the old key, with the
//!    new one.

use crate::domain::states::RotationState;
use crate::domain::Action;
use crate::domain::Code;
use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::views::RotateBody;
use super::{refuse, App, AppError, AppResult, Event};
use crate::auth::Identity;
use crate::domain::Role;
use crate::store::{CredentialRow, KeyRotationRow, VersionRow};

const KEY_ID: &str = "access_key_id";
const SECRET: &str = "secret_access_key";

/// Where a rotation stands.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RotationView {
    pub credential: String,
    pub id: String,
    /// `started`, `deposited`, `verified` or `done`.
    pub state: String,
    pub old_key_id: String,
    pub new_key_id: Option<String>,
    /// The steps this call ran.
    pub steps: Vec<String>,
}

fn aws_error(what: &str) -> AppError {
    AppError::Unavailable {
        code: Code::AwsUnavailable,
        message: format!(
            "AWS refused or did not answer {what}: the rotation stopped and resumes from here"
        ),
    }
}

impl App {
    fn iam_as(&self, key_id: &str, secret: &SecretString) -> AppResult<aws_sdk_iam::Client> {
        let Some(sdk) = &self.aws_sdk else {
            return refuse(
                Code::AwsNotConfigured,
                "key rotation needs AWS: set [review] aws = true or an AWS key service",
            );
        };
        let creds = aws_sdk_iam::config::Credentials::new(
            key_id,
            secret.expose_secret(),
            None,
            None,
            "breakglass-rotation",
        );
        Ok(aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(sdk)
                .credentials_provider(creds)
                .build(),
        ))
    }

    fn sts_as(&self, key_id: &str, secret: &SecretString) -> AppResult<aws_sdk_sts::Client> {
        let Some(sdk) = &self.aws_sdk else {
            return refuse(Code::AwsNotConfigured, "key rotation needs AWS");
        };
        let creds = aws_sdk_sts::config::Credentials::new(
            key_id,
            secret.expose_secret(),
            None,
            None,
            "breakglass-rotation",
        );
        Ok(aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(sdk)
                .credentials_provider(creds)
                .build(),
        ))
    }

    async fn audit_step(
        &self,
        who: &Identity,
        credential: &str,
        action: Action,
        details: serde_json::Value,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        self.append(
            tx.as_mut(),
            &who.subject,
            "success",
            None,
            Event::new(action, format!("credential:{credential}"), details),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Move a rotation one step and audit it, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn record_step(
        &self,
        who: &Identity,
        credential: &str,
        rotation: &str,
        (from, to): (RotationState, RotationState),
        new_key_id: Option<&str>,
        action: Action,
        details: serde_json::Value,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        if !tx
            .advance_key_rotation(rotation, from, to, new_key_id, self.now_ms())
            .await?
        {
            return refuse(
                Code::RotationInProgress,
                "another run moved this rotation on: run it again to resume",
            );
        }
        self.append(
            tx.as_mut(),
            &who.subject,
            "success",
            None,
            Event::new(action, format!("credential:{credential}"), details),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Run (or resume) the rotation of `name`'s root access keys, at most
    /// `max_steps` steps (admin).
    #[tracing::instrument(skip_all, fields(caller = %who.subject, name = %name))]
    pub async fn rotate_access_key(
        &self,
        who: &Identity,
        name: &str,
        max_steps: u8,
    ) -> AppResult<RotationView> {
        let target = format!("credential:{name}");
        let r = self.rotate_access_key_inner(who, name, max_steps).await;
        if let Err(e) = &r {
            self.record_refusal(&who.subject, Action::RotationRun, &target, e)
                .await?;
        }
        r
    }

    /// The credential, its current version and its rotation in progress,
    /// opened (and audited) if there is none.
    async fn open_rotation(
        &self,
        who: &Identity,
        name: &str,
    ) -> AppResult<(CredentialRow, VersionRow, KeyRotationRow)> {
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let Some(c) = tx.credential_by_name(name).await? else {
            return refuse(
                Code::CredentialNotFound,
                format!("no credential named {name}"),
            );
        };
        let Some(v) = tx.version(&c.id, c.current_version).await? else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "current version missing"
            )));
        };
        let rotation = match tx.open_key_rotation(&c.id).await? {
            Some(r) => r,
            None => {
                let Some(old) = c.access_key_id.clone() else {
                    return refuse(
                        Code::NoAccessKey,
                        format!(
                            "{name} holds no root access key (deposit it with --access-key-id)"
                        ),
                    );
                };
                let r = KeyRotationRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    credential_id: c.id.clone(),
                    state: RotationState::Started,
                    old_key_id: old,
                    new_key_id: None,
                    started_by: who.subject.clone(),
                    started_at: now,
                    updated_at: now,
                };
                tx.insert_key_rotation(&r).await?;
                self.append(
                    tx.as_mut(),
                    &who.subject,
                    "success",
                    None,
                    Event::new(
                        Action::RotationStart,
                        format!("credential:{name}"),
                        json!({ "rotation": r.id, "old_key_id": r.old_key_id }),
                    ),
                )
                .await?;
                r
            }
        };
        tx.commit().await?;
        Ok((c, v, rotation))
    }

    /// Delete a key an interrupted run left, create the new key with the
    /// old one, and deposit it as the credential's next version: the new
    /// key's id.
    async fn create_and_deposit(
        &self,
        who: &Identity,
        name: &str,
        rotation: &KeyRotationRow,
        old_secret: &SecretString,
        fields: &mut BTreeMap<String, SecretString>,
        code_only: &[String],
    ) -> AppResult<String> {
        let iam = self.iam_as(&rotation.old_key_id, old_secret)?;
        // A key made by an interrupted run, whose secret was
        // never deposited, is deleted first (AWS allows two).
        let keys = iam
            .list_access_keys()
            .send()
            .await
            .map_err(|_| aws_error("listing the access keys"))?;
        for k in keys.access_key_metadata() {
            let id = k.access_key_id().unwrap_or_default();
            if id != rotation.old_key_id {
                iam.delete_access_key()
                    .access_key_id(id)
                    .send()
                    .await
                    .map_err(|_| aws_error("deleting an orphaned key"))?;
                self.audit_step(
                    who,
                    name,
                    Action::RotationOrphanDeleted,
                    json!({ "key_id": id }),
                )
                .await?;
            }
        }
        let created = iam
            .create_access_key()
            .send()
            .await
            .map_err(|_| aws_error("creating the new key"))?;
        let k = created
            .access_key()
            .ok_or_else(|| aws_error("creating the new key"))?;
        let (nid, nsecret) = (
            k.access_key_id().to_string(),
            SecretString::from(k.secret_access_key().to_string()),
        );
        fields.insert(KEY_ID.into(), SecretString::from(nid.clone()));
        fields.insert(SECRET.into(), nsecret);
        let body = RotateBody {
            fields: fields.clone(),
            code_only: code_only.to_vec(),
            access_key_id: Some(nid.clone()),
        };
        self.rotate(who, name, body).await?;
        self.record_step(
            who,
            name,
            &rotation.id,
            (RotationState::Started, RotationState::Deposited),
            Some(&nid),
            Action::RotationDeposited,
            json!({ "rotation": rotation.id, "new_key_id": nid }),
        )
        .await?;
        Ok(nid)
    }

    async fn rotate_access_key_inner(
        &self,
        who: &Identity,
        name: &str,
        max_steps: u8,
    ) -> AppResult<RotationView> {
        self.require(who, Role::Admin)?;
        if !(1..=3).contains(&max_steps) {
            return refuse(
                Code::InvalidMaxSteps,
                "max_steps is 1 to 3 (create and deposit, verify, delete the old key)",
            );
        }
        let (c, v, rotation) = self.open_rotation(who, name).await?;
        let mut state = rotation.state;
        let mut new_key_id = rotation.new_key_id.clone();
        let mut steps = Vec::new();
        let (mut fields, code_only) = self.open_version(&c, &v).await?;
        let secret_of = |f: &BTreeMap<String, SecretString>, id: &str| -> AppResult<SecretString> {
            match (f.get(KEY_ID), f.get(SECRET)) {
                (Some(k), Some(s)) if k.expose_secret() == id => Ok(s.clone()),
                _ => refuse(Code::NoAccessKey, format!("the current version of {name} does not hold access key {id} with its secret")),
            }
        };
        while (steps.len() as u8) < max_steps && state != RotationState::Done {
            match state {
                RotationState::Started => {
                    let current = fields.get(KEY_ID).map(|k| k.expose_secret().to_string());
                    if current.as_deref() != Some(rotation.old_key_id.as_str())
                        && current.is_some()
                        && current == c.access_key_id
                    {
                        // A run stopped after depositing the new key.
                        let nid = current.unwrap_or_default();
                        let mut tx = self.store.begin().await?;
                        tx.advance_key_rotation(
                            &rotation.id,
                            RotationState::Started,
                            RotationState::Deposited,
                            Some(&nid),
                            self.now_ms(),
                        )
                        .await?;
                        tx.commit().await?;
                        new_key_id = Some(nid);
                        state = RotationState::Deposited;
                        steps.push(state.to_string());
                        continue;
                    }
                    let old_secret = secret_of(&fields, &rotation.old_key_id)?;
                    let nid = self
                        .create_and_deposit(
                            who,
                            name,
                            &rotation,
                            &old_secret,
                            &mut fields,
                            &code_only,
                        )
                        .await?;
                    new_key_id = Some(nid);
                    state = RotationState::Deposited;
                }
                RotationState::Deposited => {
                    let nid = new_key_id.clone().ok_or_else(|| {
                        AppError::Internal(anyhow::anyhow!("no new key recorded"))
                    })?;
                    let secret = secret_of(&fields, &nid)?;
                    self.sts_as(&nid, &secret)?
                        .get_caller_identity()
                        .send()
                        .await
                        .map_err(|_| aws_error("the new key's identity check"))?;
                    self.record_step(
                        who,
                        name,
                        &rotation.id,
                        (RotationState::Deposited, RotationState::Verified),
                        None,
                        Action::RotationVerified,
                        json!({ "rotation": rotation.id, "new_key_id": nid }),
                    )
                    .await?;
                    state = RotationState::Verified;
                }
                RotationState::Verified => {
                    let nid = new_key_id.clone().ok_or_else(|| {
                        AppError::Internal(anyhow::anyhow!("no new key recorded"))
                    })?;
                    let secret = secret_of(&fields, &nid)?;
                    let iam = self.iam_as(&nid, &secret)?;
                    match iam
                        .delete_access_key()
                        .access_key_id(&rotation.old_key_id)
                        .send()
                        .await
                    {
                        Ok(_) => {}
                        // Already gone (a run stopped after deleting it).
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_no_such_entity_exception()) => {}
                        Err(_) => return Err(aws_error("deleting the old key")),
                    }
                    self.record_step(
                        who,
                        name,
                        &rotation.id,
                        (RotationState::Verified, RotationState::Done),
                        None,
                        Action::RotationOldKeyDeleted,
                        json!({ "rotation": rotation.id, "old_key_id": rotation.old_key_id }),
                    )
                    .await?;
                    state = RotationState::Done;
                }
                RotationState::Done => {}
            }
            steps.push(state.to_string());
        }
        Ok(RotationView {
            credential: name.into(),
            id: rotation.id,
            state: state.to_string(),
            old_key_id: rotation.old_key_id,
            new_key_id,
            steps,
        })
    }
}

/// Who acts when the service rotates or reminds on its own.
fn service_identity() -> Identity {
    Identity {
        subject: "breakglass-rotation".into(),
        roles: [Role::Admin].into_iter().collect(),
        jti: "service".into(),
        expires_at: i64::MAX,
        issuer: None,
        custodian_groups: None,
    }
}

const LEASE: &str = "__rotation";

impl App {
    /// The server's ticker: remind to rotate exposed credentials, rotate
    /// root access keys a while after a release, and resume rotations that
    /// stopped. One process at a time, under a lease.
    #[tracing::instrument(skip_all)]
    pub async fn rotation_round(&self) -> anyhow::Result<()> {
        let now = self.now_ms();
        let interval = self.settings.reminder_interval.as_millis() as i64;
        // One read decides what is due; with nothing due, no write at all.
        let (credentials, open, policies) = {
            let mut tx = self.store.begin_read().await?;
            let credentials = tx.credentials().await?;
            let open = tx.open_key_rotation_ids().await?;
            let policies = self.effective_policies(tx.as_mut()).await;
            tx.rollback().await?;
            (
                credentials,
                open,
                policies.map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        };
        let remind: Vec<&CredentialRow> = credentials
            .iter()
            .filter(|c| {
                c.exposed
                    && !c.drill
                    && c.exposed_at.is_some_and(|t| t <= now - interval)
                    && c.reminded_at.is_none_or(|t| t < now - interval)
            })
            .collect();
        let rotate: Vec<&CredentialRow> = credentials
            .iter()
            .filter(|c| {
                self.aws_sdk.is_some()
                    && (open.contains(&c.id) || self.rotation_due(c, &policies, now))
            })
            .collect();
        if remind.is_empty() && rotate.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        let leased = tx
            .lease_alert_channel(LEASE, &self.replica, now, now + 120_000)
            .await?;
        tx.commit().await?;
        if !leased {
            return Ok(());
        }
        let result = self.rotation_work(now, interval, &remind, &rotate).await;
        let mut tx = self.store.begin().await?;
        tx.release_alert_channel(LEASE, &self.replica).await?;
        tx.commit().await?;
        result
    }

    /// Root access keys due for rotation: a while after a release, or
    /// older than the policy's maximum age.
    fn rotation_due(
        &self,
        c: &CredentialRow,
        policies: &std::collections::BTreeMap<String, (crate::domain::Policy, i64)>,
        now: i64,
    ) -> bool {
        let after_release = match (self.settings.rotate_keys_after_release, c.last_released_at) {
            (Some(after), Some(released)) => {
                c.exposed && now >= released + after.as_millis() as i64
            }
            _ => false,
        };
        let too_old = policies
            .get(&c.policy)
            .and_then(|(p, _)| p.max_age_secs)
            .is_some_and(|max| now - c.updated_at >= max as i64 * 1000);
        c.access_key_id.is_some() && !c.drill && (after_release || too_old)
    }

    async fn rotation_work(
        &self,
        now: i64,
        interval: i64,
        remind: &[&CredentialRow],
        rotate: &[&CredentialRow],
    ) -> anyhow::Result<()> {
        let who = service_identity();
        for c in remind {
            let mut tx = self.store.begin().await?;
            if tx.mark_reminded(&c.id, now, now - interval).await? {
                self.append(tx.as_mut(), &who.subject, "success", None, Event::new(
                    Action::CredentialRotationReminder,
                    format!("credential:{}", c.name),
                    json!({
                        "credential": c.name,
                        "account_id": c.account_id,
                        "exposed_since": c.exposed_at.map(crate::clock::rfc3339),
                        "fix": format!("rotate it in AWS, then `breakglass credential rotate {}`", c.name),
                    }),
                ))
                .await?;
            }
            tx.commit().await?;
        }
        for c in rotate {
            if let Err(e) = self.rotate_access_key(&who, &c.name, 3).await {
                tracing::warn!(credential = %c.name, error = %e, "key rotation stopped; it resumes on the next round");
            }
        }
        Ok(())
    }
}
