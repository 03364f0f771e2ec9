//! Configuration: a TOML file, then `BREAKGLASS_*` environment variables
//! (every setting of the file, by the rule in `schema.rs`), then flags
//! (which win). A key or variable that names no setting stops the start,
//! with the nearest valid name. Nothing secret is configured here: keys
//! live in files of the data directory or in the key service.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

pub mod schema;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8200";
pub const DEFAULT_DATA_DIR: &str = "./breakglass-data";

/// The file's shape; every field optional, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// A file holding the database URL (whose password has no place in an
    /// environment variable or on a command line).
    pub database_url_file: Option<PathBuf>,
    pub policies_dir: Option<PathBuf>,
    pub migrate_on_start: Option<bool>,
    /// How long a stopping server (SIGTERM) lets in-flight requests and
    /// the background round finish before it releases its leases and
    /// exits (default "8s").
    pub shutdown_timeout: Option<String>,
    #[serde(default)]
    pub tokens: TokenFileConfig,
    #[serde(default)]
    pub totp: TotpFileConfig,
    pub log_format: Option<String>,
    #[serde(default)]
    pub aws: AwsFileConfig,
    #[serde(default)]
    pub keys: KeysFileConfig,
    #[serde(default)]
    pub secrets: SecretsFileConfig,
    #[serde(default)]
    pub audit: AuditFileConfig,
    /// Trusted OpenID Connect providers.
    #[serde(default)]
    pub oidc: Vec<OidcFileConfig>,
    #[serde(default)]
    pub alerts: AlertsFileConfig,
    #[serde(default)]
    pub review: ReviewFileConfig,
    #[serde(default)]
    pub org: OrgFileConfig,
    #[serde(default)]
    pub root_watch: RootWatchFileConfig,
    #[serde(default)]
    pub console: ConsoleFileConfig,
    #[serde(default)]
    pub webauthn: WebauthnFileConfig,
    #[serde(default)]
    pub limits: LimitsFileConfig,
    #[serde(default)]
    pub database: DatabaseFileConfig,
    #[serde(default)]
    pub tls: TlsFileConfig,
    /// Serve plain HTTP on an address other than loopback (behind a TLS
    /// terminating proxy on the same host or network). Off by default.
    pub allow_plain_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFileConfig {
    /// Largest request body (default 262144 bytes): `body_too_large`.
    pub max_body_bytes: Option<usize>,
    /// Largest request head, all header names and values together (default
    /// 16384 bytes): `headers_too_large`.
    pub max_header_bytes: Option<usize>,
    /// Requests per minute from one client address (default 600):
    /// `rate_limited_address`.
    pub requests_per_minute_per_address: Option<u32>,
    /// Requests per minute of one authenticated identity (default 300):
    /// `rate_limited_identity`.
    pub requests_per_minute_per_identity: Option<u32>,
    /// TOTP codes checked per minute for one custodian (default 10):
    /// `totp_rate_limited`.
    pub totp_attempts_per_minute: Option<u32>,
    /// TOTP codes checked per minute from one client address, whoever the
    /// custodian (default 50): `totp_rate_limited`.
    pub totp_attempts_per_minute_per_address: Option<u32>,
    /// How long one request may take before it is abandoned and rolled back
    /// (default "30s"): `request_timeout`.
    pub request_timeout: Option<String>,
    /// Refused authentications audited one by one per minute, across
    /// addresses (default 100): the first of each address and code; the
    /// rest are counted in per-minute summaries.
    pub auth_refusal_events_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFileConfig {
    /// Connections in the pool (default 8 on SQLite, 16 on PostgreSQL).
    pub max_connections: Option<u32>,
    /// How long a request waits for a free connection (default "10s"):
    /// `database_busy`.
    pub acquire_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1); owner-only.
    pub key_file: Option<PathBuf>,
    /// How often the files are checked for a change (default "10s"); a
    /// changed pair is loaded for new connections without a restart.
    pub reload_interval: Option<String>,
}

/// Limits on what one request, client or identity may ask of the service.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub requests_per_minute_per_address: u32,
    pub requests_per_minute_per_identity: u32,
    pub totp_attempts_per_minute: u32,
    pub totp_attempts_per_minute_per_address: u32,
    pub request_timeout: Duration,
    pub auth_refusal_events_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            max_header_bytes: 16 * 1024,
            requests_per_minute_per_address: 600,
            requests_per_minute_per_identity: 300,
            totp_attempts_per_minute: 10,
            totp_attempts_per_minute_per_address: 50,
            request_timeout: Duration::from_secs(30),
            auth_refusal_events_per_minute: 100,
        }
    }
}

/// Native TLS: the certificate and key files, watched for changes.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub reload_interval: Duration,
}

fn limits_from_file(f: LimitsFileConfig) -> anyhow::Result<Limits> {
    let d = Limits::default();
    let positive = |field: &str, v: Option<u32>, default: u32| -> anyhow::Result<u32> {
        match v {
            None => Ok(default),
            Some(0) => anyhow::bail!("limits.{field} must be at least 1"),
            Some(n) => Ok(n),
        }
    };
    let limits = Limits {
        max_body_bytes: f.max_body_bytes.unwrap_or(d.max_body_bytes),
        max_header_bytes: f.max_header_bytes.unwrap_or(d.max_header_bytes),
        requests_per_minute_per_address: positive(
            "requests_per_minute_per_address",
            f.requests_per_minute_per_address,
            d.requests_per_minute_per_address,
        )?,
        requests_per_minute_per_identity: positive(
            "requests_per_minute_per_identity",
            f.requests_per_minute_per_identity,
            d.requests_per_minute_per_identity,
        )?,
        totp_attempts_per_minute: positive(
            "totp_attempts_per_minute",
            f.totp_attempts_per_minute,
            d.totp_attempts_per_minute,
        )?,
        totp_attempts_per_minute_per_address: positive(
            "totp_attempts_per_minute_per_address",
            f.totp_attempts_per_minute_per_address,
            d.totp_attempts_per_minute_per_address,
        )?,
        request_timeout: duration(
            "limits.request_timeout",
            f.request_timeout.as_ref(),
            d.request_timeout,
        )?,
        auth_refusal_events_per_minute: positive(
            "auth_refusal_events_per_minute",
            f.auth_refusal_events_per_minute,
            d.auth_refusal_events_per_minute,
        )?,
    };
    anyhow::ensure!(
        limits.max_body_bytes >= 1024,
        "limits.max_body_bytes must be at least 1024"
    );
    anyhow::ensure!(
        (1024..=1024 * 1024).contains(&limits.max_header_bytes),
        "limits.max_header_bytes must be 1024 to 1048576"
    );
    anyhow::ensure!(
        !limits.request_timeout.is_zero(),
        "limits.request_timeout must be more than zero"
    );
    Ok(limits)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgFileConfig {
    /// Know the AWS organisation this service's identity manages (the
    /// management account, or IAM's delegated administrator).
    #[serde(default)]
    pub enabled: bool,
    /// A role assumed before each root session, with the request's id as
    /// its SourceIdentity (which flows into the root session and
    /// CloudTrail); unset: the service's own identity calls AssumeRoot.
    pub broker_role_arn: Option<String>,
    /// How often the inventory and every account's root posture are
    /// refreshed (default "24h"; "off": only `org sync`).
    pub sync_interval: Option<String>,
    /// Root-posture audits run at once (default 8, at most 64).
    pub posture_concurrency: Option<i64>,
}

/// The organisation, when the service knows it.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    pub broker_role_arn: Option<String>,
    pub sync_interval: Option<Duration>,
    pub posture_concurrency: usize,
}

fn org_from_file(o: OrgFileConfig) -> anyhow::Result<Option<OrgSettings>> {
    if !o.enabled {
        anyhow::ensure!(
            o.broker_role_arn.is_none()
                && o.sync_interval.is_none()
                && o.posture_concurrency.is_none(),
            "[org] settings are given but org.enabled is not true: enable it, or remove them"
        );
        return Ok(None);
    }
    if let Some(arn) = &o.broker_role_arn {
        anyhow::ensure!(
            arn.starts_with("arn:") && arn.contains(":iam::") && arn.contains(":role/"),
            "org.broker_role_arn {arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        );
    }
    let sync_interval = match o.sync_interval.as_deref() {
        Some("off") => None,
        v => {
            let d = duration(
                "org.sync_interval",
                v.map(str::to_owned).as_ref(),
                Duration::from_secs(24 * 3600),
            )?;
            anyhow::ensure!(
                d >= Duration::from_secs(60),
                "org.sync_interval must be at least 1m (or \"off\")"
            );
            Some(d)
        }
    };
    let posture_concurrency = match o.posture_concurrency.unwrap_or(8) {
        n @ 1..=64 => n as usize,
        n => anyhow::bail!("org.posture_concurrency = {n} must be between 1 and 64"),
    };
    Ok(Some(OrgSettings {
        broker_role_arn: o.broker_role_arn,
        sync_interval,
        posture_concurrency,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootWatchFileConfig {
    /// Read CloudTrail's log files and match every root event to a release
    /// or a brokered session; the rest raises the alarm.
    #[serde(default)]
    pub enabled: bool,
    /// The trail's S3 bucket.
    pub bucket: Option<String>,
    /// The trail's key prefix, before `AWSLogs/` (default none; give it
    /// with its trailing `/`).
    pub prefix: Option<String>,
    /// An SQS queue receiving the bucket's object-created notifications
    /// (or CloudTrail's SNS ones): files are read as they are announced.
    pub queue_url: Option<String>,
    /// How often the bucket is listed for new files (default "5m"; with a
    /// queue, the listing is the backstop).
    pub poll_interval: Option<String>,
    /// How long after a release root activity of its account is taken as
    /// the releaser's (default "12h").
    pub release_window: Option<String>,
}

/// The root watch, when it is on.
#[derive(Debug, Clone)]
pub struct RootWatchSettings {
    pub bucket: String,
    pub prefix: String,
    pub queue_url: Option<String>,
    pub poll_interval: Duration,
    pub release_window: Duration,
}

fn root_watch_from_file(w: RootWatchFileConfig) -> anyhow::Result<Option<RootWatchSettings>> {
    if !w.enabled {
        anyhow::ensure!(
            w.bucket.is_none()
                && w.prefix.is_none()
                && w.queue_url.is_none()
                && w.poll_interval.is_none()
                && w.release_window.is_none(),
            "[root_watch] settings are given but root_watch.enabled is not true: enable it, or remove them"
        );
        return Ok(None);
    }
    let bucket = w.bucket.ok_or_else(|| {
        anyhow::anyhow!(
            "root_watch.bucket is missing: name the S3 bucket the CloudTrail trail writes to"
        )
    })?;
    anyhow::ensure!(
        (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || b == b'.'),
        "root_watch.bucket {bucket:?} is not an S3 bucket name (3 to 63 lower-case letters, digits, dots and hyphens; no s3:// and no path)"
    );
    let prefix = w.prefix.unwrap_or_default();
    anyhow::ensure!(
        prefix.is_empty() || (prefix.ends_with('/') && !prefix.starts_with('/')),
        "root_watch.prefix {prefix:?} must end with / and not begin with one (the part of the key before AWSLogs/)"
    );
    anyhow::ensure!(
        !prefix.contains("AWSLogs"),
        "root_watch.prefix {prefix:?} is the part before AWSLogs/: leave AWSLogs/ out"
    );
    if let Some(q) = &w.queue_url {
        anyhow::ensure!(
            q.starts_with("https://") || q.starts_with("http://"),
            "root_watch.queue_url {q:?} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
        );
    }
    let poll_interval = duration(
        "root_watch.poll_interval",
        w.poll_interval.as_ref(),
        Duration::from_secs(300),
    )?;
    anyhow::ensure!(
        poll_interval >= Duration::from_secs(10),
        "root_watch.poll_interval must be at least 10s"
    );
    let release_window = duration(
        "root_watch.release_window",
        w.release_window.as_ref(),
        Duration::from_secs(12 * 3600),
    )?;
    anyhow::ensure!(
        release_window >= Duration::from_secs(60)
            && release_window <= Duration::from_secs(7 * 86_400),
        "root_watch.release_window must be between 1m and 7d"
    );
    Ok(Some(RootWatchSettings {
        bucket,
        prefix,
        queue_url: w.queue_url,
        poll_interval,
        release_window,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewFileConfig {
    /// Review the AWS account of each credential through IAM with the
    /// service's own AWS identity (a read-only review role).
    #[serde(default)]
    pub aws: bool,
    /// Rotate deposited root access keys this long after a release
    /// (e.g. "1h"); unset: only on demand.
    pub rotate_keys_after_release: Option<String>,
    /// Remind (an audit event, and its alerts) to rotate an exposed
    /// credential this often (default "24h").
    pub reminder_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFileConfig {
    /// A console session ends after this long unused (default "12h").
    pub idle_timeout: Option<String>,
    /// ...and this long after sign-in in any case (default "24h").
    pub session_lifetime: Option<String>,
    /// A sign-in link from `token issue --link` works once, within this
    /// long (default "15m").
    pub link_ttl: Option<String>,
    /// The console's address as people reach it (`https://bg.example.com`):
    /// the return address of a sign-in through the provider, and the base
    /// of sign-in links.
    pub public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnFileConfig {
    /// A PEM file of authenticator vendors' attestation roots: when set, a
    /// security key is registered only if its attestation chains to one of
    /// them (passkeys that do not attest are then refused).
    pub attestation_roots: Option<PathBuf>,
}

/// The attestation roots (DER), read from `webauthn.attestation_roots`.
fn attestation_roots_from(f: WebauthnFileConfig) -> anyhow::Result<Vec<Vec<u8>>> {
    match f.attestation_roots {
        None => Ok(Vec::new()),
        Some(path) => Config::attestation_roots_of(&path),
    }
}

impl Config {
    /// The certificates (DER) of a PEM file of attestation roots.
    pub fn attestation_roots_of(path: &std::path::Path) -> anyhow::Result<Vec<Vec<u8>>> {
        use rustls_pki_types::pem::PemObject;
        let roots = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                anyhow::anyhow!(
                    "webauthn.attestation_roots {}: not a PEM file of certificates: {e}",
                    path.display()
                )
            })?;
        anyhow::ensure!(
            !roots.is_empty(),
            "webauthn.attestation_roots {} holds no certificate",
            path.display()
        );
        Ok(roots.into_iter().map(|c| c.to_vec()).collect())
    }
}

/// The web console's sessions and sign-in links.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub idle_timeout: Duration,
    pub session_lifetime: Duration,
    pub link_ttl: Duration,
    pub public_url: Option<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            idle_timeout: Duration::from_secs(12 * 3600),
            session_lifetime: Duration::from_secs(24 * 3600),
            link_ttl: Duration::from_secs(15 * 60),
            public_url: None,
        }
    }
}

fn console_from_file(c: ConsoleFileConfig) -> anyhow::Result<ConsoleSettings> {
    let d = ConsoleSettings::default();
    let s = ConsoleSettings {
        idle_timeout: duration(
            "console.idle_timeout",
            c.idle_timeout.as_ref(),
            d.idle_timeout,
        )?,
        session_lifetime: duration(
            "console.session_lifetime",
            c.session_lifetime.as_ref(),
            d.session_lifetime,
        )?,
        link_ttl: duration("console.link_ttl", c.link_ttl.as_ref(), d.link_ttl)?,
        public_url: match c.public_url {
            None => None,
            Some(u) => {
                let parsed = reqwest::Url::parse(&u)
                    .map_err(|e| anyhow::anyhow!("console.public_url {u:?} is not a URL: {e}"))?;
                anyhow::ensure!(
                    matches!(parsed.scheme(), "https" | "http")
                        && parsed.path() == "/"
                        && parsed.query().is_none(),
                    "console.public_url {u:?} must be an http(s) origin like https://bg.example.com"
                );
                Some(u.trim_end_matches('/').to_string())
            }
        },
    };
    anyhow::ensure!(
        !s.idle_timeout.is_zero() && !s.link_ttl.is_zero(),
        "console.idle_timeout and console.link_ttl must be more than zero"
    );
    anyhow::ensure!(
        s.idle_timeout <= s.session_lifetime,
        "console.idle_timeout ({}) must not be longer than console.session_lifetime ({})",
        humantime::format_duration(s.idle_timeout),
        humantime::format_duration(s.session_lifetime)
    );
    Ok(s)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFileConfig {
    /// The service's address as people reach it, for links in messages.
    pub public_url: Option<String>,
    /// Attempts before an alert is dead-lettered (default 8).
    pub max_attempts: Option<i64>,
    #[serde(default)]
    pub channel: Vec<ChannelFileConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelFileConfig {
    pub name: String,
    /// `slack`, `pagerduty` or `webhook`.
    pub kind: String,
    /// Where to POST. For Slack the incoming-webhook URL is itself a
    /// secret: prefer `url_file`.
    pub url: Option<String>,
    /// A file holding the URL (owner-only, or a mounted Secret).
    pub url_file: Option<PathBuf>,
    /// Which events (audit actions, plus `audit.verify.failed`); default
    /// per kind.
    pub events: Option<Vec<String>>,
    /// `webhook`: the HMAC-SHA256 key file (owner-only, 32 bytes or more).
    pub hmac_key_file: Option<PathBuf>,
    /// `pagerduty`: the file holding the Events API v2 routing key.
    pub routing_key_file: Option<PathBuf>,
}

/// A configured alert channel.
#[derive(Clone)]
pub struct AlertChannel {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub events: std::collections::BTreeSet<String>,
    /// The webhook's HMAC key, or PagerDuty's routing key.
    pub secret: Option<std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for AlertChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertChannel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// Alerting, when any channel is configured.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub public_url: Option<String>,
    pub max_attempts: i64,
    pub channels: Vec<AlertChannel>,
}

/// What a channel hears about by default.
/// The alert event for an `audit.verify` that found the chain broken (not
/// an audit action of its own).
pub const VERIFY_FAILED_EVENT: &str = "audit.verify.failed";

/// The events a channel of this kind alerts on when it names none.
pub fn default_alert_events(kind: &str) -> Vec<&'static str> {
    use crate::domain::Action::*;
    let actions = match kind {
        "pagerduty" => vec![
            RequestCreate,
            RequestApprove,
            RequestApproved,
            RequestRelease,
            RequestDenied,
            RecoveryRelease,
            WatchUnmatched,
        ],
        _ => vec![
            RequestCreate,
            RequestApproved,
            RequestRelease,
            RequestDenied,
            CustodianLockout,
            RecoverySessionOpen,
            RecoveryRelease,
            RecoveryRecover,
            AuthFallback,
            PolicyPropose,
            PolicyChangeApplied,
            CredentialRotationReminder,
            RotationOldKeyDeleted,
            WatchUnmatched,
        ],
    };
    let mut names: Vec<&'static str> = actions.into_iter().map(|a| a.as_str()).collect();
    if kind != "pagerduty" {
        names.push(VERIFY_FAILED_EVENT);
    }
    names
}

/// Read an owner-only secret file, trimmed; refuse an empty one.
pub fn read_secret_file(
    p: &Path,
    what: &str,
) -> anyhow::Result<std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>> {
    let bytes = crate::crypto::private_file::read_secret(p)?;
    let trimmed = zeroize::Zeroizing::new(bytes.trim_ascii().to_vec());
    anyhow::ensure!(!trimmed.is_empty(), "{}: the {what} is empty", p.display());
    Ok(std::sync::Arc::new(trimmed))
}

/// A setting given inline (`key`) or in a secret file (`key_file`), at
/// most one of them; the file's text, trimmed.
fn inline_or_file(
    key: &str,
    inline: Option<String>,
    file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    match (inline, file) {
        (Some(_), Some(_)) => anyhow::bail!(
            "{key} and {key}_file are both set: keep one (the file, when the value carries a credential)"
        ),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(p)) => {
            let bytes = read_secret_file(p, key)?;
            String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{}: the {key} is not text", p.display()))
        }
        (None, None) => Ok(None),
    }
}

/// A URL given inline or in a file (exactly one), http(s). Its text never
/// appears in the error: it may be a credential.
fn url_or_file(what: &str, url: Option<String>, file: Option<&Path>) -> anyhow::Result<String> {
    let url = inline_or_file(&format!("{what}.url"), url, file)?.ok_or_else(|| {
        anyhow::anyhow!("{what}: set url, or url_file naming a file that holds it")
    })?;
    anyhow::ensure!(
        url.starts_with("https://") || url.starts_with("http://"),
        "{what}: the URL must be http(s) (it starts {:?})",
        redacted_url(&url)
    );
    Ok(url)
}

fn alerts_from_file(f: AlertsFileConfig) -> anyhow::Result<Option<Alerts>> {
    if f.channel.is_empty() {
        return Ok(None);
    }
    let mut channels = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for c in f.channel {
        anyhow::ensure!(
            crate::domain::names::GroupName::parse(&c.name).is_ok() && names.insert(c.name.clone()),
            "alerts.channel name {:?} must be a unique simple name",
            c.name
        );
        let url = url_or_file(
            &format!("alerts.channel[{}]", c.name),
            c.url,
            c.url_file.as_deref(),
        )?;
        let secret = match c.kind.as_str() {
            "slack" => None,
            "webhook" => match &c.hmac_key_file {
                Some(p) => {
                    let k = read_secret_file(p, "HMAC key")?;
                    anyhow::ensure!(
                        k.len() >= 32,
                        "{}: an HMAC key of at least 32 bytes",
                        p.display()
                    );
                    Some(k)
                }
                None => anyhow::bail!("alerts.channel {}: a webhook needs hmac_key_file", c.name),
            },
            "pagerduty" => match &c.routing_key_file {
                Some(p) => Some(read_secret_file(p, "routing key")?),
                None => anyhow::bail!(
                    "alerts.channel {}: pagerduty needs routing_key_file",
                    c.name
                ),
            },
            other => anyhow::bail!(
                "alerts.channel {}: kind {other:?} is not slack, pagerduty or webhook",
                c.name
            ),
        };
        let events = c
            .events
            .unwrap_or_else(|| {
                default_alert_events(&c.kind)
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .into_iter()
            .collect();
        channels.push(AlertChannel {
            name: c.name,
            kind: c.kind,
            url,
            events,
            secret,
        });
    }
    let max_attempts = f.max_attempts.unwrap_or(8);
    anyhow::ensure!(
        (1..=100).contains(&max_attempts),
        "alerts.max_attempts must be 1 to 100"
    );
    Ok(Some(Alerts {
        public_url: f.public_url.map(|u| u.trim_end_matches('/').to_string()),
        max_attempts,
        channels,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFileConfig {
    pub issuer: String,
    pub audience: String,
    /// Default ["RS256", "ES256", "EdDSA"].
    pub algorithms: Option<Vec<String>>,
    /// Default "sub".
    pub subject_claim: Option<String>,
    /// Default "groups".
    pub roles_claim: Option<String>,
    /// Role name → the provider groups that grant it.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Custodian group → the provider groups that grant it (optional).
    #[serde(default)]
    pub custodian_groups: BTreeMap<String, Vec<String>>,
    /// Timeout of a call to the provider (default "5s").
    pub timeout: Option<String>,
    /// An unknown key id refreshes the provider's keys at most this often
    /// (default "10s").
    pub jwks_min_refresh: Option<String>,
    /// The console's client at this provider: people sign in to the
    /// console through it (authorization code with PKCE). Its ID tokens
    /// carry it as their audience.
    pub client_id: Option<String>,
    /// An owner-only file holding the client's secret, for a confidential
    /// client (none: a public client, PKCE alone).
    pub client_secret_file: Option<PathBuf>,
}

fn oidc_from_file(f: OidcFileConfig) -> anyhow::Result<crate::oidc::OidcConfig> {
    let url = reqwest::Url::parse(&f.issuer)
        .map_err(|e| anyhow::anyhow!("oidc.issuer {:?} is not a URL: {e}", f.issuer))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    anyhow::ensure!(
        url.scheme() == "https" || (url.scheme() == "http" && loopback),
        "oidc.issuer {:?} must be https (http only on loopback, for tests)",
        f.issuer
    );
    anyhow::ensure!(!f.audience.is_empty(), "oidc.audience must not be empty");
    let mut algorithms = Vec::new();
    for a in f
        .algorithms
        .unwrap_or_else(|| vec!["RS256".into(), "ES256".into(), "EdDSA".into()])
    {
        algorithms.push(match a.as_str() {
            "RS256" => jsonwebtoken::Algorithm::RS256,
            "ES256" => jsonwebtoken::Algorithm::ES256,
            "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
            other => anyhow::bail!("oidc.algorithms: {other:?} is not RS256, ES256 or EdDSA"),
        });
    }
    anyhow::ensure!(!algorithms.is_empty(), "oidc.algorithms must not be empty");
    let mut roles = BTreeMap::new();
    for (name, groups) in f.roles {
        let role: crate::domain::Role = name.parse().map_err(|_| {
            anyhow::anyhow!("oidc.roles: {name:?} is not admin, requester, custodian or auditor")
        })?;
        roles.insert(role, groups);
    }
    anyhow::ensure!(
        !roles.is_empty(),
        "oidc.roles must map at least one role to provider groups"
    );
    let client = match (f.client_id, f.client_secret_file) {
        (None, None) => None,
        (None, Some(_)) => anyhow::bail!("oidc.client_secret_file needs oidc.client_id"),
        (Some(id), file) => {
            anyhow::ensure!(!id.is_empty(), "oidc.client_id must not be empty");
            let secret = file
                .map(|p| read_secret_file(&p, "client secret"))
                .transpose()?;
            Some(crate::oidc::OidcClient { id, secret })
        }
    };
    Ok(crate::oidc::OidcConfig {
        client,
        issuer: f.issuer,
        audience: f.audience,
        algorithms,
        subject_claim: f.subject_claim.unwrap_or_else(|| "sub".into()),
        roles_claim: f.roles_claim.unwrap_or_else(|| "groups".into()),
        roles,
        custodian_groups: f.custodian_groups,
        timeout: duration("oidc.timeout", f.timeout.as_ref(), Duration::from_secs(5))?,
        min_refresh: duration(
            "oidc.jwks_min_refresh",
            f.jwks_min_refresh.as_ref(),
            Duration::from_secs(10),
        )?,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFileConfig {
    /// Sign a checkpoint after this many events (default 1000)...
    pub checkpoint_every_events: Option<i64>,
    /// ...or after this long, whichever comes first (default "5m").
    pub checkpoint_interval: Option<String>,
    /// Ship every audit event to a SIEM endpoint.
    pub sink: Option<SinkFileConfig>,
    /// How often the server verifies the whole chain itself (default
    /// "1h", "off" to disable); a failure is audited and alerted.
    pub verify_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFileConfig {
    /// An http(s) URL that accepts POSTed JSON Lines.
    pub url: Option<String>,
    /// A file holding the URL, when it carries a credential.
    pub url_file: Option<PathBuf>,
    /// `jsonl` (verifiable records) or `ocsf`.
    pub format: Option<String>,
    /// Events per POST (default 500).
    pub batch_size: Option<i64>,
    /// A file holding the HMAC-SHA256 key that signs each POST
    /// (`X-Breakglass-Signature`); owner-only.
    pub hmac_key_file: Option<PathBuf>,
    /// Timeout of one POST (default "10s").
    pub timeout: Option<String>,
}

/// Where audit events are shipped.
#[derive(Clone)]
pub struct AuditSink {
    pub url: String,
    pub ocsf: bool,
    pub batch_size: i64,
    pub hmac_key: Option<std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>>,
    pub timeout: Duration,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink")
            .field("url", &self.url)
            .field("ocsf", &self.ocsf)
            .field("batch_size", &self.batch_size)
            .field("signed", &self.hmac_key.is_some())
            .finish()
    }
}

impl AuditSink {
    fn from_file(f: SinkFileConfig) -> anyhow::Result<AuditSink> {
        let url = url_or_file("audit.sink", f.url, f.url_file.as_deref())?;
        let ocsf = match f.format.as_deref().unwrap_or("jsonl") {
            "jsonl" => false,
            "ocsf" => true,
            other => anyhow::bail!("audit.sink.format {other:?} is not jsonl or ocsf"),
        };
        let batch_size = f.batch_size.unwrap_or(500);
        anyhow::ensure!(
            (1..=10_000).contains(&batch_size),
            "audit.sink.batch_size must be 1 to 10000"
        );
        let hmac_key = match f.hmac_key_file {
            None => None,
            Some(p) => {
                let key = crate::crypto::private_file::read_secret(&p)?;
                anyhow::ensure!(
                    key.len() >= 32,
                    "{}: an HMAC key of at least 32 bytes",
                    p.display()
                );
                Some(std::sync::Arc::new(key))
            }
        };
        Ok(AuditSink {
            url,
            ocsf,
            batch_size,
            hmac_key,
            timeout: duration(
                "audit.sink.timeout",
                f.timeout.as_ref(),
                Duration::from_secs(10),
            )?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsFileConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub call_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFileConfig {
    /// `local` (the data directory's key file) or `aws-kms`.
    pub service: Option<String>,
    pub kms_key_id: Option<String>,
    /// Where the token signing key and the audit checkpoint key live:
    /// `data_dir` (files, the default) or `database` (generated once,
    /// wrapped by the key service, shared by every replica).
    pub signing_keys: Option<String>,
    /// The local key-encryption key's file, when not the data directory's
    /// `local.key` (a mounted Secret shared by replicas); never created.
    pub local_key_file: Option<PathBuf>,
}

/// Where the service's signing keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKeysAt {
    DataDir,
    Database,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsFileConfig {
    /// `database` or `aws-secretsmanager`.
    pub store: Option<String>,
    pub name_prefix: Option<String>,
    pub recovery_window_days: Option<i64>,
}

/// Which key service wraps new data keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyServiceChoice {
    Local,
    AwsKms { key_id: String },
}

/// Where envelopes rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretStoreChoice {
    Database,
    AwsSecretsManager {
        name_prefix: String,
        recovery_window_days: i64,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFileConfig {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub max_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpFileConfig {
    pub max_failures: Option<u32>,
    pub failure_window: Option<String>,
    pub lockout: Option<String>,
    pub issuer_label: Option<String>,
}

/// Settings the use cases read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Wrong codes within `failure_window` that lock a custodian out.
    pub totp_max_failures: u32,
    pub totp_failure_window: Duration,
    pub totp_lockout: Duration,
    /// Issuer shown in authenticator apps.
    pub totp_issuer_label: String,
    /// A signed audit checkpoint is due after this many events...
    pub audit_checkpoint_every_events: i64,
    /// ...or this long after the last one, if the chain moved.
    pub audit_checkpoint_interval: Duration,
    /// Where to ship audit events, if anywhere.
    pub audit_sink: Option<AuditSink>,
    /// How often the server verifies the chain itself.
    pub audit_verify_interval: Option<Duration>,
    /// Alert channels, if any.
    pub alerts: Option<Alerts>,
    /// Whether the review asks IAM about each credential's AWS account.
    pub review_aws: bool,
    /// The AWS organisation, when the service knows it.
    pub org: Option<OrgSettings>,
    /// CloudTrail's root activity, matched to releases (`[root_watch]`).
    pub root_watch: Option<RootWatchSettings>,
    /// Rotate deposited root access keys this long after a release.
    pub rotate_keys_after_release: Option<Duration>,
    /// How often an exposed credential's rotation is reminded.
    pub reminder_interval: Duration,
    pub console: ConsoleSettings,
    /// Security keys register only if their attestation chains to one of
    /// these roots (DER); empty: any authenticator.
    pub webauthn_attestation_roots: Vec<Vec<u8>>,
    pub limits: Limits,
    /// How long a stop (SIGTERM) waits for in-flight requests and the
    /// background round before it releases the leases and exits.
    pub shutdown_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            totp_max_failures: 5,
            totp_failure_window: Duration::from_secs(15 * 60),
            totp_lockout: Duration::from_secs(15 * 60),
            totp_issuer_label: "breakglass".into(),
            audit_checkpoint_every_events: 1000,
            audit_checkpoint_interval: Duration::from_secs(5 * 60),
            audit_sink: None,
            audit_verify_interval: Some(Duration::from_secs(3600)),
            alerts: None,
            review_aws: false,
            org: None,
            root_watch: None,
            rotate_keys_after_release: None,
            reminder_interval: Duration::from_secs(24 * 3600),
            console: ConsoleSettings::default(),
            webauthn_attestation_roots: Vec::new(),
            limits: Limits::default(),
            shutdown_timeout: Duration::from_secs(8),
        }
    }
}

/// The resolved configuration of `serve`. Its `Debug` hides the database
/// URL's password.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub policies_dir: PathBuf,
    pub migrate_on_start: bool,
    pub token_issuer: String,
    pub token_audience: String,
    pub token_max_ttl: Duration,
    pub settings: Settings,
    pub log_json: bool,
    pub key_service: KeyServiceChoice,
    pub secret_store: SecretStoreChoice,
    pub aws: crate::aws::AwsSettings,
    pub oidc: Vec<crate::oidc::OidcConfig>,
    pub pool: crate::store::PoolSettings,
    /// Serve HTTPS with these files; `None`: plain HTTP.
    pub tls: Option<Tls>,
    pub allow_plain_http: bool,
    pub signing_keys: SigningKeysAt,
    /// The local key file, when not the data directory's.
    pub local_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redacted_url(&self.database_url))
            .field("policies_dir", &self.policies_dir)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .field("token_max_ttl", &self.token_max_ttl)
            .field("settings", &self.settings)
            .field("log_json", &self.log_json)
            .field("key_service", &self.key_service)
            .field("secret_store", &self.secret_store)
            .field("aws", &self.aws)
            .field("oidc", &self.oidc)
            .field("pool", &self.pool)
            .field("tls", &self.tls)
            .field("allow_plain_http", &self.allow_plain_http)
            .field("signing_keys", &self.signing_keys)
            .field("local_key_file", &self.local_key_file)
            .finish()
    }
}

/// A URL as it may be shown: its password (and any query, which can carry
/// one, e.g. `?password=`) replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                u.set_query(Some("***"));
            }
            u.to_string()
        }
        // Not a URL: show only its scheme.
        Err(_) => format!("{}:***", url.split(':').next().unwrap_or("?")),
    }
}

/// Values given on the command line or in the environment. Its `Debug`
/// hides the database URL's password.
#[derive(Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub policies_dir: Option<PathBuf>,
    pub no_migrate: bool,
    pub log_format: Option<String>,
    pub key_service: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_store: Option<String>,
    pub aws_endpoint_url: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub allow_plain_http: bool,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redacted_url),
            )
            .field("policies_dir", &self.policies_dir)
            .field("key_service", &self.key_service)
            .field("kms_key_id", &self.kms_key_id)
            .field("secret_store", &self.secret_store)
            .field("aws_endpoint_url", &self.aws_endpoint_url)
            .finish_non_exhaustive()
    }
}

fn duration(field: &str, v: Option<&String>, default: Duration) -> anyhow::Result<Duration> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s)
            .with_context(|| format!("{field} = {s:?} is not a duration like \"15m\"")),
    }
}

impl Config {
    /// Plain HTTP carries bearer tokens and TOTP codes in the clear: only
    /// on loopback, unless the operator says a TLS proxy is in front.
    pub fn check_transport(&self) -> anyhow::Result<()> {
        if self.tls.is_none() && !self.allow_plain_http && !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing plain HTTP on {}, which is not a loopback address: \
                 configure tls.cert_file and tls.key_file, or set allow_plain_http = true \
                 (--allow-plain-http) if a TLS proxy in front of this server terminates TLS",
                self.listen
            );
        }
        Ok(())
    }

    /// The file, the process's environment and the flags.
    pub fn load(file: Option<&Path>, o: Overrides) -> anyhow::Result<Config> {
        Self::load_from(file, o, std::env::vars())
    }

    /// The file, the environment `env` and the flags.
    pub fn load_from(
        file: Option<&Path>,
        o: Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match file {
            None => toml::Table::new(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("while reading {}", p.display()))?;
                let t: toml::Table =
                    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                known_keys(&t, &[], &p.display().to_string())?;
                t
            }
        };
        overlay_env(&mut table, env)?;
        if let Some(url) = &o.database_url {
            refuse_password("--database-url or BREAKGLASS_DATABASE_URL", url)?;
        }
        let f: FileConfig = toml::Value::Table(table).try_into().map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}",
                file.map_or("the environment".into(), |p| p.display().to_string())
            )
        })?;
        let listen_s = o
            .listen
            .or(f.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_s.parse().with_context(|| {
            format!("listen address {listen_s:?} is not HOST:PORT (e.g. 127.0.0.1:8200)")
        })?;
        let data_dir = o
            .data_dir
            .or(f.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let database_url = inline_or_file(
            "database_url",
            o.database_url.or(f.database_url),
            f.database_url_file.as_deref(),
        )?
        .unwrap_or_else(|| crate::datadir::DataDir::new(&data_dir).database_url());
        let policies_dir = o
            .policies_dir
            .or(f.policies_dir)
            .unwrap_or_else(|| "policies".into());
        let log_format = o
            .log_format
            .or(f.log_format)
            .unwrap_or_else(|| "text".into());
        anyhow::ensure!(
            log_format == "text" || log_format == "json",
            "log format {log_format:?} is not text or json"
        );
        let mut settings = settings_from(
            f.totp, f.audit, f.alerts, f.review, f.console, f.webauthn, f.limits,
        )?;
        settings.org = org_from_file(f.org)?;
        settings.root_watch = root_watch_from_file(f.root_watch)?;
        settings.shutdown_timeout = duration(
            "shutdown_timeout",
            f.shutdown_timeout.as_ref(),
            Duration::from_secs(8),
        )?;
        let pool = crate::store::PoolSettings {
            max_connections: match f.database.max_connections {
                Some(0) => anyhow::bail!("database.max_connections must be at least 1"),
                n => n,
            },
            acquire_timeout: duration(
                "database.acquire_timeout",
                f.database.acquire_timeout.as_ref(),
                Duration::from_secs(10),
            )?,
        };
        let tls = tls_from(
            o.tls_cert_file.or(f.tls.cert_file),
            o.tls_key_file.or(f.tls.key_file),
            f.tls.reload_interval,
        )?;
        let allow_plain_http = o.allow_plain_http || f.allow_plain_http.unwrap_or(false);
        let signing_keys = match f.keys.signing_keys.as_deref().unwrap_or("data_dir") {
            "data_dir" => SigningKeysAt::DataDir,
            "database" => SigningKeysAt::Database,
            other => anyhow::bail!("keys.signing_keys {other:?} is not data_dir or database"),
        };
        let local_key_file = f.keys.local_key_file.clone();
        let (key_service, secret_store) = custody_from(
            (o.key_service, o.kms_key_id, o.secret_store),
            f.keys,
            f.secrets,
        )?;
        let aws = crate::aws::AwsSettings {
            region: f.aws.region,
            endpoint_url: o.aws_endpoint_url.or(f.aws.endpoint_url),
            call_timeout: duration(
                "aws.call_timeout",
                f.aws.call_timeout.as_ref(),
                Duration::from_secs(5),
            )?,
        };
        let oidc = f
            .oidc
            .into_iter()
            .map(oidc_from_file)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Config {
            oidc,
            pool,
            tls,
            allow_plain_http,
            key_service,
            secret_store,
            aws,
            listen,
            data_dir,
            database_url,
            policies_dir,
            migrate_on_start: !o.no_migrate && f.migrate_on_start.unwrap_or(true),
            token_issuer: f.tokens.issuer.unwrap_or_else(|| "breakglass".into()),
            token_audience: f.tokens.audience.unwrap_or_else(|| "breakglass-api".into()),
            token_max_ttl: duration(
                "tokens.max_ttl",
                f.tokens.max_ttl.as_ref(),
                Duration::from_secs(30 * 86400),
            )?,
            settings,
            log_json: log_format == "json",
            signing_keys,
            local_key_file,
        })
    }
}

/// The use cases' settings, from their sections of the file.
fn settings_from(
    totp: TotpFileConfig,
    audit: AuditFileConfig,
    alerts: AlertsFileConfig,
    review: ReviewFileConfig,
    console: ConsoleFileConfig,
    webauthn: WebauthnFileConfig,
    limits: LimitsFileConfig,
) -> anyhow::Result<Settings> {
    let d = Settings::default();
    Ok(Settings {
        totp_max_failures: totp.max_failures.unwrap_or(d.totp_max_failures).max(1),
        totp_failure_window: duration(
            "totp.failure_window",
            totp.failure_window.as_ref(),
            d.totp_failure_window,
        )?,
        totp_lockout: duration("totp.lockout", totp.lockout.as_ref(), d.totp_lockout)?,
        totp_issuer_label: totp.issuer_label.unwrap_or(d.totp_issuer_label),
        audit_checkpoint_every_events: match audit.checkpoint_every_events {
            None => d.audit_checkpoint_every_events,
            Some(n) if n >= 1 => n,
            Some(n) => anyhow::bail!("audit.checkpoint_every_events = {n} must be at least 1"),
        },
        audit_checkpoint_interval: duration(
            "audit.checkpoint_interval",
            audit.checkpoint_interval.as_ref(),
            d.audit_checkpoint_interval,
        )?,
        audit_sink: audit.sink.map(AuditSink::from_file).transpose()?,
        audit_verify_interval: match audit.verify_interval.as_deref() {
            Some("off") => None,
            v => Some(duration(
                "audit.verify_interval",
                v.map(str::to_owned).as_ref(),
                Duration::from_secs(3600),
            )?),
        },
        alerts: alerts_from_file(alerts)?,
        review_aws: review.aws,
        org: None,
        root_watch: None,
        rotate_keys_after_release: review
            .rotate_keys_after_release
            .as_ref()
            .map(|v| duration("review.rotate_keys_after_release", Some(v), Duration::ZERO))
            .transpose()?,
        reminder_interval: duration(
            "review.reminder_interval",
            review.reminder_interval.as_ref(),
            d.reminder_interval,
        )?,
        console: console_from_file(console)?,
        webauthn_attestation_roots: attestation_roots_from(webauthn)?,
        limits: limits_from_file(limits)?,
        shutdown_timeout: d.shutdown_timeout,
    })
}

/// TLS, when both files are given (a flag or the file).
fn tls_from(
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    reload_interval: Option<String>,
) -> anyhow::Result<Option<Tls>> {
    Ok(match (cert_file, key_file) {
        (None, None) => None,
        (Some(cert_file), Some(key_file)) => Some(Tls {
            cert_file,
            key_file,
            reload_interval: duration(
                "tls.reload_interval",
                reload_interval.as_ref(),
                Duration::from_secs(10),
            )?,
        }),
        _ => anyhow::bail!("TLS needs both tls.cert_file and tls.key_file"),
    })
}

/// The key service and the secret store chosen (a flag or the file).
fn custody_from(
    (service, kms_key_id, store): (Option<String>, Option<String>, Option<String>),
    keys: KeysFileConfig,
    secrets: SecretsFileConfig,
) -> anyhow::Result<(KeyServiceChoice, SecretStoreChoice)> {
    let key_service = match service.or(keys.service).as_deref().unwrap_or("local") {
        "local" => KeyServiceChoice::Local,
        "aws-kms" => KeyServiceChoice::AwsKms {
            key_id: kms_key_id.or(keys.kms_key_id).ok_or_else(|| {
                anyhow::anyhow!("keys.service = \"aws-kms\" needs keys.kms_key_id (a key id, ARN or alias/NAME)")
            })?,
        },
        other => anyhow::bail!("keys.service {other:?} is not local or aws-kms"),
    };
    let secret_store = match store.or(secrets.store).as_deref().unwrap_or("database") {
        "database" => SecretStoreChoice::Database,
        "aws-secretsmanager" => {
            let days = secrets.recovery_window_days.unwrap_or(30);
            anyhow::ensure!(
                (7..=30).contains(&days),
                "secrets.recovery_window_days must be 7 to 30"
            );
            let prefix = secrets.name_prefix.unwrap_or_else(|| "breakglass/".into());
            anyhow::ensure!(
                !prefix.is_empty()
                    && prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)),
                "secrets.name_prefix {prefix:?} may only hold letters, digits and /_+=.@-"
            );
            SecretStoreChoice::AwsSecretsManager {
                name_prefix: prefix,
                recovery_window_days: days,
            }
        }
        other => anyhow::bail!("secrets.store {other:?} is not database or aws-secretsmanager"),
    };
    Ok((key_service, secret_store))
}

/// Refuse a key of the file that names no setting, with the nearest one.
fn known_keys(t: &toml::Table, prefix: &[&str], file: &str) -> anyhow::Result<()> {
    let allowed = schema::keys_under(prefix);
    // The keys of a map (roles, custodian groups) are names, not settings.
    if allowed.iter().any(|k| k == "*") {
        return Ok(());
    }
    for (k, v) in t {
        let path = prefix
            .iter()
            .copied()
            .chain([k.as_str()])
            .collect::<Vec<_>>();
        if !allowed.iter().any(|a| a == k) {
            let hint = schema::nearest(k, allowed.iter().map(String::as_str))
                .map(|n| {
                    format!(
                        ": did you mean `{}`?",
                        prefix
                            .iter()
                            .copied()
                            .chain([n])
                            .collect::<Vec<_>>()
                            .join(".")
                    )
                })
                .unwrap_or_else(|| format!(" (valid here: {})", allowed.join(", ")));
            anyhow::bail!("{file}: unknown setting `{}`{hint}", path.join("."));
        }
        match v {
            toml::Value::Table(inner) => known_keys(inner, &path, file)?,
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        known_keys(inner, &path, file)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Lay the environment's `BREAKGLASS_*` settings over the file's table. A
/// variable that names no setting stops the start.
fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(schema::PREFIX))
        .collect();
    vars.sort();
    let mut created: Vec<Vec<String>> = Vec::new();
    let mut filled: Vec<Vec<String>> = Vec::new();
    for (var, raw) in vars {
        if schema::OTHER_VARIABLES.contains(&var.as_str()) {
            continue;
        }
        let Some(loc) = schema::locate(&var) else {
            return Err(unknown_variable(&var));
        };
        refuse_secret_in_env(&var, loc.setting.path, &raw)?;
        let value =
            env_value(loc.setting.kind, &raw).map_err(|why| anyhow::anyhow!("{var}: {why}"))?;
        set_at(table, &loc.parts, value, &mut created, &mut filled)
            .map_err(|why| anyhow::anyhow!("{var}: {why}"))?;
    }
    for hole in created {
        if !filled.iter().any(|f| f.starts_with(&hole)) {
            anyhow::bail!(
                "entry {} of `{}` is not set by any {}* variable, but a later entry is: number the entries of a list from 0, without gaps",
                hole.last().map(String::as_str).unwrap_or("?"),
                hole[..hole.len() - 1].join("."),
                schema::PREFIX
            );
        }
    }
    Ok(())
}

/// A URL whose password would be seen by anyone who can list processes or
/// read the environment: refused, with the file setting to use instead.
fn refuse_password(source: &str, url: &str) -> anyhow::Result<()> {
    let has_password = reqwest::Url::parse(url)
        .map(|u| u.password().is_some() || u.query_pairs().any(|(k, _)| k == "password"))
        .unwrap_or(false);
    anyhow::ensure!(
        !has_password,
        "{source} carries a password ({}): put the URL in an owner-only file and set database_url_file (BREAKGLASS_DATABASE_URL_FILE) to its path",
        redacted_url(url)
    );
    Ok(())
}

/// No secret in an environment variable: a URL with a password, or an
/// alert channel's URL (Slack's and Teams' carry their secret in the
/// path), is refused, naming the `_file` setting to use.
fn refuse_secret_in_env(var: &str, path: &str, raw: &str) -> anyhow::Result<()> {
    match path {
        "database_url" => refuse_password(var, raw),
        "audit.sink.url" => {
            let secret = reqwest::Url::parse(raw)
                .map(|u| u.password().is_some() || !u.username().is_empty() || u.query().is_some())
                .unwrap_or(false);
            anyhow::ensure!(
                !secret,
                "{var} carries credentials ({}): put the URL in an owner-only file and set {}_FILE to its path",
                redacted_url(raw),
                var
            );
            Ok(())
        }
        "alerts.channel[].url" => anyhow::bail!(
            "{var}: an alert channel's URL is a credential (a webhook URL carries its secret), so it is not read from the environment: put it in an owner-only file and set {var}_FILE to its path"
        ),
        _ => Ok(()),
    }
}

fn unknown_variable(var: &str) -> anyhow::Error {
    let names = schema::all_variable_names();
    match schema::nearest(var, names.iter().map(String::as_str)) {
        Some(n) => anyhow::anyhow!(
            "unknown environment variable {var}: did you mean {n}? (every setting of the configuration file is BREAKGLASS_ and its path, e.g. BREAKGLASS_KEYS_SERVICE for keys.service)"
        ),
        None => anyhow::anyhow!(
            "unknown environment variable {var}: no setting has that name (every setting of the configuration file is BREAKGLASS_ and its path, e.g. BREAKGLASS_KEYS_SERVICE for keys.service); unset it"
        ),
    }
}

/// Refuse a `BREAKGLASS_*` variable that names nothing (every command
/// checks, client commands included).
pub fn check_environment(env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<()> {
    for (var, _) in env {
        if var.starts_with(schema::PREFIX)
            && !schema::OTHER_VARIABLES.contains(&var.as_str())
            && schema::locate(&var).is_none()
        {
            return Err(unknown_variable(&var));
        }
    }
    Ok(())
}

fn env_value(kind: schema::Kind, raw: &str) -> Result<toml::Value, String> {
    use schema::Kind::*;
    Ok(match kind {
        Str | Path | Duration => toml::Value::String(raw.to_owned()),
        Bool => match raw {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            other => return Err(format!("{other:?} is not true or false")),
        },
        Int => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not a whole number"))?,
        ),
        List | MapOfLists => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

/// Set `value` at `parts` (a numeric part indexes a list of tables).
fn set_at(
    table: &mut toml::Table,
    parts: &[String],
    value: toml::Value,
    created: &mut Vec<Vec<String>>,
    filled: &mut Vec<Vec<String>>,
) -> Result<(), String> {
    let mut here = table;
    let mut path: Vec<String> = Vec::new();
    let mut i = 0;
    while i + 1 < parts.len() {
        let name = &parts[i];
        path.push(name.clone());
        let is_list = parts[i + 1].bytes().all(|b| b.is_ascii_digit());
        if is_list {
            let index: usize = parts[i + 1].parse().map_err(|_| "bad index".to_string())?;
            let list = here
                .entry(name.clone())
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            let toml::Value::Array(items) = list else {
                return Err(format!("`{}` is not a list in the file", path.join(".")));
            };
            while items.len() <= index {
                let mut hole = path.clone();
                hole.push(items.len().to_string());
                created.push(hole);
                items.push(toml::Value::Table(toml::Table::new()));
            }
            path.push(index.to_string());
            let toml::Value::Table(t) = &mut items[index] else {
                return Err(format!("`{}` is not a table", path.join(".")));
            };
            here = t;
            i += 2;
        } else {
            let next = here
                .entry(name.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = next else {
                return Err(format!("`{}` is not a table in the file", path.join(".")));
            };
            here = t;
            i += 1;
        }
    }
    let last = parts.last().ok_or("no setting")?;
    path.push(last.clone());
    here.insert(last.clone(), value);
    filled.push(path);
    Ok(())
}
