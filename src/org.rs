//! AWS Organizations, from the broker's side: the organisation and its
//! accounts, IAM's trusted access and the two centralized-root features,
//! and root sessions (`sts:AssumeRoot`) for one task in one member account.
//!
//! A root session's credentials live in memory for the task and are
//! dropped with it: never stored, never logged; only the session's key id
//! and expiry leave this module. Throttling is retried with exponential
//! back-off (the SDK's standard retry strategy, with more attempts than
//! the default); an outage or a refusal is classified so the caller can
//! answer 503 with its own code.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_sts::config::retry::RetryPartition;
use secrecy::{ExposeSecret, SecretString};

/// The five AWS-managed task policies a root session may carry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
    utoipa::ToSchema,
)]
// AWS's own names, verbatim: they are the task policies' names.
#[allow(clippy::upper_case_acronyms)]
pub enum RootTask {
    IAMAuditRootUserCredentials,
    IAMCreateRootUserPassword,
    IAMDeleteRootUserCredentials,
    S3UnlockBucketPolicy,
    SQSUnlockQueuePolicy,
}

impl RootTask {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The task policy's ARN.
    pub fn policy_arn(self) -> String {
        format!("arn:aws:iam::aws:policy/root-task/{}", self.as_str())
    }

    /// The longest a root session lasts (AWS's own bound).
    pub const MAX_DURATION_SECS: i32 = 900;

    /// The five names, in order.
    pub fn names() -> Vec<&'static str> {
        use strum::IntoEnumIterator;
        RootTask::iter().map(RootTask::as_str).collect()
    }

    /// What the unlock tasks act on: `Some("bucket")`, `Some("queue")`.
    pub fn resource_kind(self) -> Option<&'static str> {
        match self {
            RootTask::S3UnlockBucketPolicy => Some("bucket"),
            RootTask::SQSUnlockQueuePolicy => Some("queue"),
            _ => None,
        }
    }
}

/// The organisation as Organizations describes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Organization {
    pub id: String,
    pub management_account_id: String,
    /// `ALL` or `CONSOLIDATED_BILLING`.
    pub feature_set: String,
}

/// One account of the organisation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub email: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`.
    pub status: String,
}

/// What the organisation has turned on for centralized root access.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Features {
    /// Trusted access for IAM (`iam.amazonaws.com`) in Organizations.
    pub trusted_access: bool,
    /// `RootCredentialsManagement`.
    pub root_credentials_management: bool,
    /// `RootSessions`.
    pub root_sessions: bool,
}

/// A member account's root user: which credentials it has.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct RootPosture {
    pub password: bool,
    /// Access key ids (never secrets: AWS keeps those).
    pub access_keys: Vec<String>,
    /// MFA device serial numbers.
    pub mfa_devices: Vec<String>,
    /// Signing certificate ids.
    pub signing_certificates: Vec<String>,
}

impl RootPosture {
    /// Whether the root user holds any credential at all.
    pub fn any(&self) -> bool {
        self.password
            || !self.access_keys.is_empty()
            || !self.mfa_devices.is_empty()
            || !self.signing_certificates.is_empty()
    }

    /// "a password, 2 access keys, 1 MFA device".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.password {
            parts.push("a password".to_string());
        }
        let n = |count: usize, one: &str, many: &str| match count {
            1 => format!("1 {one}"),
            n => format!("{n} {many}"),
        };
        if !self.access_keys.is_empty() {
            parts.push(n(self.access_keys.len(), "access key", "access keys"));
        }
        if !self.mfa_devices.is_empty() {
            parts.push(n(self.mfa_devices.len(), "MFA device", "MFA devices"));
        }
        if !self.signing_certificates.is_empty() {
            parts.push(n(
                self.signing_certificates.len(),
                "signing certificate",
                "signing certificates",
            ));
        }
        match parts.is_empty() {
            true => "no credentials".into(),
            false => parts.join(", "),
        }
    }
}

/// Why an organisation call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrgError {
    /// Not reached, timed out, throttled past the retries, a server fault.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        service: &'static str,
        message: String,
    },
    /// The service answered with a refusal (AccessDenied, ...).
    #[error("{service} refused: {code}: {message}")]
    Refused {
        service: &'static str,
        code: String,
        message: String,
    },
}

impl OrgError {
    pub fn service(&self) -> &'static str {
        match self {
            OrgError::Unavailable { service, .. } | OrgError::Refused { service, .. } => service,
        }
    }

    /// The AWS error code, for a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            OrgError::Refused { code, .. } => Some(code),
            OrgError::Unavailable { .. } => None,
        }
    }
}

pub(crate) fn classify<E: ProvideErrorMetadata>(
    service: &'static str,
    e: &aws_sdk_kms::error::SdkError<E>,
) -> OrgError {
    match crate::aws::classify(e) {
        crate::aws::Failure::Unavailable(message) => OrgError::Unavailable { service, message },
        crate::aws::Failure::Service { code, message } => OrgError::Refused {
            service,
            code,
            message,
        },
    }
}

/// A root session: the credentials for one task in one account, for its
/// 15 minutes at most. Its `Debug` shows the key id only.
pub struct RootSession {
    pub account_id: String,
    pub task: RootTask,
    pub access_key_id: String,
    secret_access_key: SecretString,
    session_token: SecretString,
    /// Milliseconds since the epoch.
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for RootSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootSession")
            .field("account_id", &self.account_id)
            .field("task", &self.task)
            .field("access_key_id", &self.access_key_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl RootSession {
    /// The three values a requester receives when the policy hands the
    /// session over instead of executing the task.
    pub fn hand_over(&self) -> (String, &SecretString, &SecretString) {
        (
            self.access_key_id.clone(),
            &self.secret_access_key,
            &self.session_token,
        )
    }
}

/// The organisation's clients, as the broker.
#[derive(Clone)]
pub struct OrgAws {
    sdk: aws_config::SdkConfig,
    org: aws_sdk_organizations::Client,
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    /// Assumed first, with the request's SourceIdentity, when set.
    broker_role_arn: Option<String>,
    /// The name of this broker's retry partitions.
    partition: String,
}

/// Throttling is retried with exponential back-off, within a longer bound
/// than a single call's.
pub fn org_sdk(base: &aws_config::SdkConfig, call_timeout: Duration) -> aws_config::SdkConfig {
    let attempt = call_timeout.max(Duration::from_secs(2));
    base.to_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(attempt.min(Duration::from_secs(3)))
                .operation_attempt_timeout(attempt)
                .operation_timeout(attempt * 12)
                .build(),
        )
        .build()
}

impl OrgAws {
    pub fn new(sdk: &aws_config::SdkConfig, broker_role_arn: Option<String>) -> OrgAws {
        let partition = format!("breakglass-org-{}", uuid::Uuid::new_v4().simple());
        let quota = |service: &str| quota_of(&partition, service);
        OrgAws {
            sdk: sdk.clone(),
            org: aws_sdk_organizations::Client::from_conf(
                aws_sdk_organizations::config::Builder::from(sdk)
                    .retry_partition(quota("organizations"))
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(sdk)
                    .retry_partition(quota("iam"))
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(sdk)
                    .retry_partition(quota("sts"))
                    .build(),
            ),
            partition,
            broker_role_arn,
        }
    }

    /// The retry quota (the SDK's token bucket) of one service's clients:
    /// this broker's own, not the process's, so that an outage one broker
    /// saw does not spend another's retries.
    fn quota(&self, service: &str) -> RetryPartition {
        quota_of(&self.partition, service)
    }

    pub async fn organization(&self) -> Result<Organization, OrgError> {
        let r = self
            .org
            .describe_organization()
            .send()
            .await
            .map_err(|e| classify("organizations", &e))?;
        let o = r.organization().ok_or_else(|| OrgError::Unavailable {
            service: "organizations",
            message: "DescribeOrganization answered without an organization".into(),
        })?;
        Ok(Organization {
            id: o.id().unwrap_or_default().to_string(),
            management_account_id: o.master_account_id().unwrap_or_default().to_string(),
            feature_set: o
                .feature_set()
                .map(|f| f.as_str().to_string())
                .unwrap_or_default(),
        })
    }

    /// Every account, page by page.
    pub async fn accounts(&self) -> Result<Vec<Account>, OrgError> {
        let mut out = Vec::new();
        let mut pages = self.org.list_accounts().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("organizations", &e))?;
            for a in page.accounts() {
                out.push(Account {
                    id: a.id().unwrap_or_default().to_string(),
                    name: a.name().unwrap_or_default().to_string(),
                    email: a.email().unwrap_or_default().to_string(),
                    status: a
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Trusted access for IAM and the two features.
    pub async fn features(&self) -> Result<Features, OrgError> {
        let mut trusted_access = false;
        let mut pages = self
            .org
            .list_aws_service_access_for_organization()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("organizations", &e))?;
            trusted_access |= page
                .enabled_service_principals()
                .iter()
                .any(|s| s.service_principal() == Some("iam.amazonaws.com"));
        }
        if !trusted_access {
            return Ok(Features::default());
        }
        let r = match self.iam.list_organizations_features().send().await {
            Ok(r) => r,
            Err(e) => {
                let e = classify("iam", &e);
                // Not enabled is an answer, not an outage.
                if e.code() == Some("ServiceAccessNotEnabledException") {
                    return Ok(Features::default());
                }
                return Err(e);
            }
        };
        let on = |name: &str| r.enabled_features().iter().any(|f| f.as_str() == name);
        Ok(Features {
            trusted_access,
            root_credentials_management: on("RootCredentialsManagement"),
            root_sessions: on("RootSessions"),
        })
    }

    /// The STS client that calls AssumeRoot: the broker role's session
    /// with `source_identity`, or the service's own identity.
    async fn broker(&self, source_identity: &str) -> Result<aws_sdk_sts::Client, OrgError> {
        let Some(role) = &self.broker_role_arn else {
            return Ok(self.sts.clone());
        };
        let r = self
            .sts
            .assume_role()
            .role_arn(role)
            .role_session_name(session_name(source_identity))
            .source_identity(source_identity)
            .duration_seconds(900)
            .send()
            .await
            .map_err(|e| classify("sts", &e))?;
        let c = r.credentials().ok_or_else(|| OrgError::Unavailable {
            service: "sts",
            message: "AssumeRole answered without credentials".into(),
        })?;
        let creds = aws_sdk_sts::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "breakglass-broker",
        );
        Ok(aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.sdk)
                .retry_partition(self.quota("sts"))
                .credentials_provider(creds)
                .build(),
        ))
    }

    /// `sts:AssumeRoot` for `task` in `account`, `duration_secs` long.
    pub async fn root_session(
        &self,
        account: &str,
        task: RootTask,
        duration_secs: i32,
        source_identity: &str,
    ) -> Result<RootSession, OrgError> {
        let sts = self.broker(source_identity).await?;
        let r = sts
            .assume_root()
            .target_principal(account)
            .task_policy_arn(
                aws_sdk_sts::types::PolicyDescriptorType::builder()
                    .arn(task.policy_arn())
                    .build(),
            )
            .duration_seconds(duration_secs)
            .send()
            .await
            .map_err(|e| classify("sts", &e))?;
        let c = r.credentials().ok_or_else(|| OrgError::Unavailable {
            service: "sts",
            message: "AssumeRoot answered without credentials".into(),
        })?;
        let expires_at_ms = c.expiration().secs() * 1000;
        Ok(RootSession {
            account_id: account.to_string(),
            task,
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: SecretString::from(c.secret_access_key().to_string()),
            session_token: SecretString::from(c.session_token().to_string()),
            expires_at_ms,
        })
    }

    /// IAM as the root user of the session's account.
    pub fn iam_as_root(&self, s: &RootSession) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&self.sdk)
                .retry_partition(self.quota("iam"))
                .credentials_provider(self.root_credentials(s))
                .build(),
        )
    }

    /// The root user's credentials, read in an audit session.
    pub async fn root_posture(&self, s: &RootSession) -> Result<RootPosture, OrgError> {
        let iam = self.iam_as_root(s);
        let password = match iam.get_login_profile().send().await {
            Ok(_) => true,
            Err(e) => {
                let e = classify("iam", &e);
                if e.code() != Some("NoSuchEntity") {
                    return Err(e);
                }
                false
            }
        };
        let mut posture = RootPosture {
            password,
            ..Default::default()
        };
        let mut keys = iam.list_access_keys().into_paginator().send();
        while let Some(page) = keys.next().await {
            let page = page.map_err(|e| classify("iam", &e))?;
            posture.access_keys.extend(
                page.access_key_metadata()
                    .iter()
                    .filter_map(|k| k.access_key_id().map(str::to_owned)),
            );
        }
        let mut mfa = iam.list_mfa_devices().into_paginator().send();
        while let Some(page) = mfa.next().await {
            let page = page.map_err(|e| classify("iam", &e))?;
            posture.mfa_devices.extend(
                page.mfa_devices()
                    .iter()
                    .map(|d| d.serial_number().to_owned()),
            );
        }
        let mut certs = iam.list_signing_certificates().into_paginator().send();
        while let Some(page) = certs.next().await {
            let page = page.map_err(|e| classify("iam", &e))?;
            posture.signing_certificates.extend(
                page.certificates()
                    .iter()
                    .map(|c| c.certificate_id().to_owned()),
            );
        }
        Ok(posture)
    }
}

/// A task executed in a root session: what it did, step by step. On an
/// error the steps done before it are kept, so a retry (which re-audits
/// first) resumes where this one stopped.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TaskRun {
    /// The root user's credentials before the task (IAM tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<RootPosture>,
    /// Each call that changed something, e.g. "DeleteAccessKey AKIA…".
    pub steps: Vec<String>,
    /// What was already as the task wants it (a retry's earlier work, or
    /// nothing to do), e.g. "no bucket policy".
    pub already: Vec<String>,
    /// The root user's credentials after the task (IAM tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<RootPosture>,
}

impl OrgAws {
    /// `IAMDeleteRootUserCredentials`: audit, then delete in the order AWS
    /// documents (the password, access keys, signing certificates, then
    /// the MFA devices deactivated), then audit again. A credential gone
    /// meanwhile (NoSuchEntity) counts as deleted.
    pub async fn delete_root_credentials(
        &self,
        s: &RootSession,
        run: &mut TaskRun,
    ) -> Result<(), OrgError> {
        let iam = self.iam_as_root(s);
        let before = self.root_posture(s).await?;
        run.before = Some(before.clone());
        let gone = |r: Result<(), OrgError>| match r {
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(false),
            Err(e) => Err(e),
            Ok(()) => Ok(true),
        };
        if before.password {
            let r = iam.delete_login_profile().send().await;
            if gone(r.map(|_| ()).map_err(|e| classify("iam", &e)))? {
                run.steps.push("DeleteLoginProfile".into());
            }
        } else {
            run.already.push("no password".into());
        }
        for k in &before.access_keys {
            let r = iam.delete_access_key().access_key_id(k).send().await;
            if gone(r.map(|_| ()).map_err(|e| classify("iam", &e)))? {
                run.steps.push(format!("DeleteAccessKey {k}"));
            }
        }
        for c in &before.signing_certificates {
            let r = iam
                .delete_signing_certificate()
                .certificate_id(c)
                .send()
                .await;
            if gone(r.map(|_| ()).map_err(|e| classify("iam", &e)))? {
                run.steps.push(format!("DeleteSigningCertificate {c}"));
            }
        }
        for m in &before.mfa_devices {
            let r = iam.deactivate_mfa_device().serial_number(m).send().await;
            if gone(r.map(|_| ()).map_err(|e| classify("iam", &e)))? {
                run.steps.push(format!("DeactivateMFADevice {m}"));
            }
        }
        if !before.any() {
            run.already.push("no root credentials".into());
        }
        run.after = Some(self.root_posture(s).await?);
        Ok(())
    }

    /// `IAMCreateRootUserPassword`: a login profile without a password, so
    /// the root user's email can recover one. An existing password is left
    /// as it is.
    pub async fn allow_root_password_recovery(
        &self,
        s: &RootSession,
        run: &mut TaskRun,
    ) -> Result<(), OrgError> {
        let iam = self.iam_as_root(s);
        match iam.create_login_profile().send().await {
            Ok(_) => run.steps.push("CreateLoginProfile".into()),
            Err(e) => {
                let e = classify("iam", &e);
                if e.code() != Some("EntityAlreadyExists") {
                    return Err(e);
                }
                run.already
                    .push("the root user already has a password".into());
            }
        }
        Ok(())
    }
}

impl OrgAws {
    fn root_credentials(&self, s: &RootSession) -> aws_sdk_iam::config::Credentials {
        aws_sdk_iam::config::Credentials::new(
            s.access_key_id.clone(),
            s.secret_access_key.expose_secret().to_string(),
            Some(s.session_token.expose_secret().to_string()),
            None,
            "breakglass-root-session",
        )
    }

    /// `S3UnlockBucketPolicy`: the bucket's policy read, then deleted.
    pub async fn unlock_bucket(
        &self,
        s: &RootSession,
        bucket: &str,
        run: &mut TaskRun,
    ) -> Result<(), OrgError> {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .retry_partition(self.quota("s3"))
                .credentials_provider(self.root_credentials(s))
                // An endpoint of its own (an emulator, a VPC endpoint)
                // has no per-bucket host names.
                .force_path_style(self.sdk.endpoint_url().is_some())
                .build(),
        );
        match s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(_) => {}
            Err(e) => {
                let e = classify("s3", &e);
                if e.code() == Some("NoSuchBucketPolicy") {
                    run.already.push(format!("bucket {bucket} has no policy"));
                    return Ok(());
                }
                return Err(e);
            }
        }
        s3.delete_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify("s3", &e))?;
        run.steps.push(format!("DeleteBucketPolicy {bucket}"));
        Ok(())
    }

    /// `SQSUnlockQueuePolicy`: the queue's policy read, then removed (set
    /// to empty, as SQS removes one).
    pub async fn unlock_queue(
        &self,
        s: &RootSession,
        queue_url: &str,
        run: &mut TaskRun,
    ) -> Result<(), OrgError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&self.sdk)
                .retry_partition(self.quota("sqs"))
                .credentials_provider(self.root_credentials(s))
                .build(),
        );
        let r = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::Policy)
            .send()
            .await
            .map_err(|e| classify("sqs", &e))?;
        let has = r
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::Policy))
            .is_some_and(|p| !p.is_empty());
        if !has {
            run.already.push(format!("queue {queue_url} has no policy"));
            return Ok(());
        }
        sqs.set_queue_attributes()
            .queue_url(queue_url)
            .attributes(QueueAttributeName::Policy, "")
            .send()
            .await
            .map_err(|e| classify("sqs", &e))?;
        run.steps
            .push(format!("SetQueueAttributes {queue_url} Policy=\"\""));
        Ok(())
    }
}

fn quota_of(partition: &str, service: &str) -> RetryPartition {
    RetryPartition::new(format!("{partition}-{service}"))
}

/// A role session name from a source identity (`[\w+=,.@-]{2,64}`).
fn session_name(source_identity: &str) -> String {
    let mut name: String = source_identity
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '+' | '=' | ',' | '.' | '@' | '-' | '_' => c,
            _ => '-',
        })
        .take(64)
        .collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posture_says_what_the_root_user_holds() {
        let none = RootPosture::default();
        assert!(!none.any());
        assert_eq!(none.describe(), "no credentials");
        let p = RootPosture {
            password: true,
            access_keys: vec!["AKIA1".into(), "AKIA2".into()],
            mfa_devices: vec!["arn:aws:iam::1:mfa/root".into()],
            signing_certificates: vec![],
        };
        assert!(p.any());
        assert_eq!(p.describe(), "a password, 2 access keys, 1 MFA device");
    }

    #[test]
    fn task_policies_are_the_five_aws_managed_ones() {
        use strum::IntoEnumIterator;
        let arns: Vec<String> = RootTask::iter().map(RootTask::policy_arn).collect();
        assert_eq!(arns.len(), 5);
        assert!(arns
            .iter()
            .all(|a| a.starts_with("arn:aws:iam::aws:policy/root-task/")));
        assert_eq!(
            "IAMDeleteRootUserCredentials".parse::<RootTask>().unwrap(),
            RootTask::IAMDeleteRootUserCredentials
        );
        assert!("AdministratorAccess".parse::<RootTask>().is_err());
    }

    #[test]
    fn a_root_session_shows_its_key_id_only() {
        let s = RootSession {
            account_id: "111122223333".into(),
            task: RootTask::IAMAuditRootUserCredentials,
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI-secret".to_string()),
            session_token: SecretString::from("FwoGZXIvYXdz-token".to_string()),
            expires_at_ms: 0,
        };
        let dbg = format!("{s:?}");
        assert!(dbg.contains("ASIAEXAMPLE"), "{dbg}");
        assert!(!dbg.contains("secret") && !dbg.contains("token"), "{dbg}");
    }

    #[test]
    fn a_session_name_is_what_sts_accepts() {
        assert_eq!(session_name("req/1 x"), "req-1-x");
        assert_eq!(session_name("a"), "a-");
        assert_eq!(session_name(&"x".repeat(80)).len(), 64);
    }
}
