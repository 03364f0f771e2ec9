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

fn classify<E: ProvideErrorMetadata>(
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
        OrgAws {
            sdk: sdk.clone(),
            org: aws_sdk_organizations::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            broker_role_arn,
        }
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
        let creds = aws_sdk_iam::config::Credentials::new(
            s.access_key_id.clone(),
            s.secret_access_key.expose_secret().to_string(),
            Some(s.session_token.expose_secret().to_string()),
            None,
            "breakglass-root-session",
        );
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&self.sdk)
                .credentials_provider(creds)
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
    fn a_session_name_is_what_sts_accepts() {
        assert_eq!(session_name("req/1 x"), "req-1-x");
        assert_eq!(session_name("a"), "a-");
        assert_eq!(session_name(&"x".repeat(80)).len(), 64);
    }
}
