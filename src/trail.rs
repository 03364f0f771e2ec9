//! CloudTrail as the root watch reads it: the names of log files in S3
//! (one account's trail and an organisation's), the files themselves
//! (gzip, `{"Records": [...]}`), and which of their events are root
//! activity. Reading S3 and SQS is here too; deciding what an event means
//! for custody (matched to a release, or an alarm) is `app::watch`.

use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::org::OrgError;

/// A log file larger than this, compressed, is refused unread (CloudTrail
/// writes files of a few megabytes at most).
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// And once decompressed.
pub const MAX_RECORDS_BYTES: u64 = 512 * 1024 * 1024;

/// Where a log file sits: `…AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/
/// YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_RANDOM.json.gz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    /// The key up to and including `REGION/`: the cursor's unit.
    pub prefix: String,
    pub org_id: Option<String>,
    pub account_id: String,
    pub region: String,
    /// The delivery time in the file's name (ms since the epoch).
    pub file_at_ms: i64,
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_org(s: &str) -> bool {
    s.len() > 2
        && s.starts_with("o-")
        && s[2..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The delivery time of a name's `YYYYMMDDTHHMMZ`.
fn stamp_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 14 || b[8] != b'T' || b[13] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d, h, mi) = (
        num(0..4)?,
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
    );
    let date = time::Date::from_calendar_date(
        i32::try_from(y).ok()?,
        time::Month::try_from(u8::try_from(mo).ok()?).ok()?,
        u8::try_from(d).ok()?,
    )
    .ok()?;
    let t = date
        .with_hms(u8::try_from(h).ok()?, u8::try_from(mi).ok()?, 0)
        .ok()?
        .assume_utc();
    Some(t.unix_timestamp() * 1000)
}

/// Parse a log file's key; the error says what about it is not
/// CloudTrail's layout.
pub fn parse_log_key(key: &str) -> Result<LogKey, String> {
    let start = key
        .find("AWSLogs/")
        .ok_or_else(|| "not under AWSLogs/".to_string())?;
    let rest = &key[start + "AWSLogs/".len()..];
    let mut parts: Vec<&str> = rest.split('/').collect();
    let org_id = match parts.first() {
        Some(p) if is_org(p) => Some(parts.remove(0).to_string()),
        _ => None,
    };
    let [account, ct, region, y, m, d, name] = parts.as_slice() else {
        return Err("not AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/FILE".into());
    };
    if !is_account(account) || *ct != "CloudTrail" || !is_region(region) {
        return Err("not AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/…".into());
    }
    let stem = name
        .strip_suffix(".json.gz")
        .ok_or_else(|| "not a .json.gz file".to_string())?;
    let expected = format!("{account}_CloudTrail_{region}_");
    let tail = stem
        .strip_prefix(&expected)
        .ok_or_else(|| format!("its name does not begin with {expected}"))?;
    let (stamp, random) = tail
        .split_once('_')
        .ok_or_else(|| "its name has no delivery time".to_string())?;
    if random.is_empty() || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("its name does not end with a random part".into());
    }
    let file_at_ms = stamp_ms(stamp).ok_or_else(|| format!("{stamp:?} is not YYYYMMDDTHHMMZ"))?;
    if stamp.get(0..4) != Some(*y) || stamp.get(4..6) != Some(*m) || stamp.get(6..8) != Some(*d) {
        return Err("its folder's date is not its name's".into());
    }
    let prefix_len = key.len() - (y.len() + m.len() + d.len() + name.len() + 3);
    Ok(LogKey {
        prefix: key[..prefix_len].to_string(),
        org_id,
        account_id: account.to_string(),
        region: region.to_string(),
        file_at_ms,
    })
}

#[derive(Debug, Deserialize)]
struct LogFile<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<Record<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    #[serde(borrow, default)]
    source_identity: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    arn: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    account_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    access_key_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    invoked_by: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    session_context: Option<SessionContext<'a>>,
}

/// One CloudTrail record: the fields the watch reads; the rest of it
/// (request and response bodies) is parsed only for the events that need
/// it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(rename = "eventID", borrow)]
    event_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event_time: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event_source: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event_name: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    user_identity: Identity<'a>,
    #[serde(borrow, default)]
    recipient_account_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "sourceIPAddress", borrow, default)]
    source_ip: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    error_code: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    request_parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response_elements: Option<&'a RawValue>,
    #[serde(borrow, default)]
    additional_event_data: Option<&'a RawValue>,
}

/// What kind of root activity an event is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum Kind {
    /// The root user signed in to the console (or tried to), or another
    /// sign-in step (CheckMfa, …).
    ConsoleSignIn,
    /// The root password was reset through its e-mail.
    PasswordRecovery,
    /// A call made with one of the root user's access keys (`AKIA…`).
    AccessKey,
    /// A call of a root session (`ASIA…`): an AssumeRoot session, or the
    /// root user's console session.
    RootSession,
    /// The root user's MFA devices changed.
    MfaChange,
    /// Someone called `sts:AssumeRoot`.
    AssumeRoot,
    /// The organisation's centralized-root features were turned on or off.
    RootFeatures,
    /// IAM's trusted access in Organizations was turned on or off.
    TrustedAccess,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// What a person reads.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::ConsoleSignIn => "root console sign-in",
            Kind::PasswordRecovery => "root password recovery",
            Kind::AccessKey => "root access key use",
            Kind::RootSession => "root session call",
            Kind::MfaChange => "root MFA device change",
            Kind::AssumeRoot => "AssumeRoot",
            Kind::RootFeatures => "centralized root features changed",
            Kind::TrustedAccess => "IAM trusted access changed",
        }
    }
}

/// A root event, as the watch records and matches it. It holds no secret:
/// CloudTrail never logs one, and only key *ids* are kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RootEvent {
    pub event_id: String,
    /// The account it happened in (the log's).
    pub account_id: String,
    #[serde(serialize_with = "kind_name")]
    pub kind: Kind,
    pub event_source: String,
    pub event_name: String,
    pub at_ms: i64,
    /// Who acted: the root user's ARN, or AssumeRoot's caller.
    pub principal: String,
    /// The key the root user used (`AKIA…`, `ASIA…`), or the one an
    /// AssumeRoot issued.
    pub key_id: Option<String>,
    pub source_ip: Option<String>,
    /// A sign-in: whether MFA was used.
    pub mfa_used: Option<bool>,
    /// Why it failed (an error code, a refused sign-in), if it did.
    pub failure: Option<String>,
    /// AssumeRoot: the member account and the task asked for.
    pub target_account: Option<String>,
    pub task: Option<String>,
    /// AssumeRoot: the caller's SourceIdentity.
    pub source_identity: Option<String>,
}

fn kind_name<S: serde::Serializer>(k: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

const MFA_EVENTS: [&str; 5] = [
    "CreateVirtualMFADevice",
    "EnableMFADevice",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "ResyncMFADevice",
];

const ROOT_FEATURE_EVENTS: [&str; 4] = [
    "EnableOrganizationsRootCredentialsManagement",
    "DisableOrganizationsRootCredentialsManagement",
    "EnableOrganizationsRootSessions",
    "DisableOrganizationsRootSessions",
];

fn field(raw: Option<&RawValue>, path: &[&str]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw?.get()).ok()?;
    let mut at = &v;
    for p in path {
        at = at.get(p)?;
    }
    at.as_str().map(str::to_owned)
}

/// The root activity in one record, if it is any. `Err` names what makes
/// the record not CloudTrail's (an unreadable time).
fn classify(r: &Record<'_>, log_account: &str) -> Result<Option<RootEvent>, String> {
    let id = &r.user_identity;
    let is_root = id.kind.as_deref() == Some("Root");
    let source = r.event_source.as_ref();
    let name = r.event_name.as_ref();
    let kind = if is_root {
        match (source, name) {
            ("signin.amazonaws.com", n) if n.starts_with("PasswordRecovery") => {
                Kind::PasswordRecovery
            }
            ("signin.amazonaws.com", _) => Kind::ConsoleSignIn,
            ("iam.amazonaws.com", n) if MFA_EVENTS.contains(&n) => Kind::MfaChange,
            _ => match id.access_key_id.as_deref() {
                Some(k) if k.starts_with("AKIA") => Kind::AccessKey,
                _ => Kind::RootSession,
            },
        }
    } else {
        match (source, name) {
            ("sts.amazonaws.com", "AssumeRoot") => Kind::AssumeRoot,
            ("iam.amazonaws.com", n) if ROOT_FEATURE_EVENTS.contains(&n) => Kind::RootFeatures,
            (
                "organizations.amazonaws.com",
                "EnableAWSServiceAccess" | "DisableAWSServiceAccess",
            ) if field(r.request_parameters, &["servicePrincipal"]).as_deref()
                == Some("iam.amazonaws.com") =>
            {
                Kind::TrustedAccess
            }
            _ => return Ok(None),
        }
    };
    let at_ms = crate::clock::parse_rfc3339(&r.event_time).ok_or_else(|| {
        format!(
            "event {}: eventTime {:?} is not a time",
            r.event_id, r.event_time
        )
    })?;
    let account_id = r
        .recipient_account_id
        .as_deref()
        .or(id.account_id.as_deref())
        .unwrap_or(log_account)
        .to_string();
    let mut failure = r.error_code.as_deref().map(str::to_owned);
    let mut mfa_used = None;
    if kind == Kind::ConsoleSignIn && name == "ConsoleLogin" {
        mfa_used = Some(field(r.additional_event_data, &["MFAUsed"]).as_deref() == Some("Yes"));
        if let Some(outcome) = field(r.response_elements, &["ConsoleLogin"]) {
            if outcome != "Success" {
                failure.get_or_insert(outcome);
            }
        }
    }
    let (key_id, target_account, task) = if kind == Kind::AssumeRoot {
        (
            field(r.response_elements, &["credentials", "accessKeyId"]),
            field(r.request_parameters, &["targetPrincipal"]),
            field(r.request_parameters, &["taskPolicyArn", "arn"])
                .map(|a| a.rsplit('/').next().unwrap_or_default().to_string()),
        )
    } else {
        (id.access_key_id.as_deref().map(str::to_owned), None, None)
    };
    let principal = id
        .arn
        .as_deref()
        .or(id.invoked_by.as_deref())
        .map(str::to_owned)
        .unwrap_or_else(|| match is_root {
            true => format!("arn:aws:iam::{account_id}:root"),
            false => "unknown".into(),
        });
    Ok(Some(RootEvent {
        event_id: r.event_id.to_string(),
        account_id,
        kind,
        event_source: source.to_string(),
        event_name: name.to_string(),
        at_ms,
        principal,
        key_id: key_id.filter(|k| !k.is_empty()),
        source_ip: r.source_ip.as_deref().map(str::to_owned),
        mfa_used,
        failure,
        target_account,
        task,
        source_identity: id
            .session_context
            .as_ref()
            .and_then(|c| c.source_identity.as_deref())
            .map(str::to_owned),
    }))
}

/// What one log file held.
#[derive(Debug, Default)]
pub struct FileRead {
    pub records: usize,
    pub root: Vec<RootEvent>,
}

/// Read one log file of `key`'s account: gunzip, parse, classify. Any
/// fault (not gzip, not JSON, not `{"Records": [...]}`, a record of
/// another account, a record without its fields) refuses the whole file,
/// saying why.
pub fn read_log_file(bytes: &[u8], key: &LogKey) -> Result<FileRead, String> {
    let mut json = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_RECORDS_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    if json.len() as u64 > MAX_RECORDS_BYTES {
        return Err(format!(
            "larger than {} MiB once decompressed",
            MAX_RECORDS_BYTES >> 20
        ));
    }
    classify_records(&json, &key.account_id)
}

/// Classify a decompressed `{"Records": [...]}` of `account`'s log.
pub fn classify_records(json: &[u8], account: &str) -> Result<FileRead, String> {
    let file: LogFile<'_> =
        serde_json::from_slice(json).map_err(|e| format!("not a CloudTrail log file: {e}"))?;
    let mut out = FileRead {
        records: file.records.len(),
        root: Vec::new(),
    };
    for r in &file.records {
        if let Some(other) = r.recipient_account_id.as_deref() {
            if other != account {
                return Err(format!(
                    "event {} is of account {other}, in the log of account {account}",
                    r.event_id
                ));
            }
        }
        if let Some(e) = classify(r, account)? {
            out.root.push(e);
        }
    }
    Ok(out)
}

/// The S3 keys an event notification names: S3's own
/// (`Records[].s3.object.key`, URL-encoded) or CloudTrail's SNS message
/// (`s3ObjectKey`), raw or wrapped in an SNS envelope.
pub fn notified_keys(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return vec![];
    };
    // An SNS envelope carries the message as a string.
    if let Some(inner) = v.get("Message").and_then(|m| m.as_str()) {
        return notified_keys(inner);
    }
    if let Some(keys) = v.get("s3ObjectKey").and_then(|k| k.as_array()) {
        return keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
    }
    v.get("Records")
        .and_then(|r| r.as_array())
        .map(|records| {
            records
                .iter()
                .filter_map(|r| r.pointer("/s3/object/key")?.as_str())
                .map(url_decode)
                .collect()
        })
        .unwrap_or_default()
}

/// S3 notifications encode keys as a form value (`+` for a space).
fn url_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The trail's bucket (and queue), as the service reads them.
#[derive(Clone)]
pub struct TrailSource {
    s3: aws_sdk_s3::Client,
    sqs: Option<(aws_sdk_sqs::Client, String)>,
    pub bucket: String,
    /// The key prefix the trail writes under, ending in `AWSLogs/`.
    pub logs: String,
}

fn s3_error<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E>,
) -> OrgError {
    crate::org::classify("s3", e)
}

impl TrailSource {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        bucket: &str,
        prefix: &str,
        queue_url: Option<&str>,
    ) -> TrailSource {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(sdk.endpoint_url().is_some())
                .build(),
        );
        TrailSource {
            s3,
            sqs: queue_url.map(|q| (aws_sdk_sqs::Client::new(sdk), q.to_string())),
            bucket: bucket.to_string(),
            logs: format!("{prefix}AWSLogs/"),
        }
    }

    /// The folders directly under `prefix`.
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, OrgError> {
        let mut out = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(&e))?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
        }
        Ok(out)
    }

    /// Every `…/CloudTrail/REGION/` folder of the trail: its accounts, in
    /// an organisation's folder or not.
    pub async fn log_prefixes(&self) -> Result<Vec<String>, OrgError> {
        let mut accounts = Vec::new();
        for f in self.folders(&self.logs).await? {
            let name = f[self.logs.len()..].trim_end_matches('/');
            if is_org(name) {
                for a in self.folders(&f).await? {
                    if is_account(a[f.len()..].trim_end_matches('/')) {
                        accounts.push(a);
                    }
                }
            } else if is_account(name) {
                accounts.push(f);
            }
        }
        let mut out = Vec::new();
        for a in accounts {
            out.extend(self.folders(&format!("{a}CloudTrail/")).await?);
        }
        out.sort();
        Ok(out)
    }

    /// The keys under `prefix` after `start_after`, in order, at most `max`.
    pub async fn keys_after(
        &self,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Result<Vec<String>, OrgError> {
        let mut out = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .start_after(start_after)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(&e))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push(k.to_string());
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One file's bytes; a file larger than `MAX_FILE_BYTES` is refused
    /// unread (`Ok(Err(why))`).
    pub async fn get(&self, key: &str) -> Result<Result<Vec<u8>, String>, OrgError> {
        let o = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error(&e))?;
        if o.content_length().unwrap_or(0) as u64 > MAX_FILE_BYTES as u64 {
            return Ok(Err(format!("larger than {} MiB", MAX_FILE_BYTES >> 20)));
        }
        let bytes = o.body.collect().await.map_err(|e| OrgError::Unavailable {
            service: "s3",
            message: format!("the object could not be read: {e}"),
        })?;
        Ok(Ok(bytes.into_bytes().to_vec()))
    }

    /// The notifications waiting on the queue (none without one): each
    /// message's receipt and the keys it names.
    pub async fn notifications(&self) -> Result<Vec<(String, Vec<String>)>, OrgError> {
        let Some((sqs, url)) = &self.sqs else {
            return Ok(vec![]);
        };
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| crate::org::classify("sqs", &e))?;
        Ok(r.messages()
            .iter()
            .filter_map(|m| {
                Some((
                    m.receipt_handle()?.to_string(),
                    notified_keys(m.body().unwrap_or_default()),
                ))
            })
            .collect())
    }

    /// A notification handled: off the queue.
    pub async fn handled(&self, receipt: &str) -> Result<(), OrgError> {
        let Some((sqs, url)) = &self.sqs else {
            return Ok(());
        };
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| crate::org::classify("sqs", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "trail/AWSLogs/o-abc123def4/111122223333/CloudTrail/us-east-1/2026/12/04/111122223333_CloudTrail_us-east-1_20261204T1405Z_Ab12Cd34Ef56Gh78.json.gz";

    #[test]
    fn a_log_key_names_its_account_region_and_delivery_time() {
        let k = parse_log_key(KEY).unwrap();
        assert_eq!(
            k.prefix,
            "trail/AWSLogs/o-abc123def4/111122223333/CloudTrail/us-east-1/"
        );
        assert_eq!(k.org_id.as_deref(), Some("o-abc123def4"));
        assert_eq!(k.account_id, "111122223333");
        assert_eq!(k.region, "us-east-1");
        assert_eq!(crate::clock::rfc3339(k.file_at_ms), "2026-12-04T14:05:00Z");
        let single = parse_log_key("AWSLogs/111122223333/CloudTrail/eu-west-1/2026/01/31/111122223333_CloudTrail_eu-west-1_20260131T2359Z_x1.json.gz").unwrap();
        assert_eq!(single.org_id, None);
        assert_eq!(single.prefix, "AWSLogs/111122223333/CloudTrail/eu-west-1/");
    }

    #[test]
    fn keys_not_in_cloudtrails_layout_say_why() {
        for (key, why) in [
            ("logs/x.json.gz", "not under AWSLogs/"),
            ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/04/x.json", "not a .json.gz"),
            ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/04/999999999999_CloudTrail_us-east-1_20261204T1405Z_a.json.gz", "does not begin"),
            ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/05/111122223333_CloudTrail_us-east-1_20261204T1405Z_a.json.gz", "folder's date"),
            ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/13/04/111122223333_CloudTrail_us-east-1_20261304T1405Z_a.json.gz", "YYYYMMDDTHHMMZ"),
            ("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/12/04/f.json.gz", "not AWSLogs"),
        ] {
            let e = parse_log_key(key).unwrap_err();
            assert!(e.contains(why), "{key}: {e}");
        }
    }

    fn one(record: serde_json::Value) -> Option<RootEvent> {
        let json = serde_json::json!({ "Records": [record] }).to_string();
        let mut r = classify_records(json.as_bytes(), "111122223333").unwrap();
        r.root.pop()
    }

    #[test]
    fn root_sign_ins_keys_sessions_and_changes_are_classified() {
        let base = |source: &str, name: &str, identity: serde_json::Value| {
            serde_json::json!({
                "eventVersion": "1.09", "eventID": "e1", "eventTime": "2026-12-04T14:03:00Z",
                "eventSource": source, "eventName": name, "userIdentity": identity,
                "recipientAccountId": "111122223333", "sourceIPAddress": "198.51.100.7",
            })
        };
        let root = serde_json::json!({ "type": "Root", "principalId": "111122223333",
            "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333" });
        let mut login = base("signin.amazonaws.com", "ConsoleLogin", root.clone());
        login["responseElements"] = serde_json::json!({ "ConsoleLogin": "Success" });
        login["additionalEventData"] = serde_json::json!({ "MFAUsed": "No" });
        let e = one(login.clone()).unwrap();
        assert_eq!(
            (e.kind, e.mfa_used, e.failure.clone()),
            (Kind::ConsoleSignIn, Some(false), None)
        );
        login["responseElements"] = serde_json::json!({ "ConsoleLogin": "Failure" });
        assert_eq!(one(login).unwrap().failure.as_deref(), Some("Failure"));

        let mut with_key = root.clone();
        with_key["accessKeyId"] = "AKIAROOTKEY000000001".into();
        assert_eq!(
            one(base("s3.amazonaws.com", "ListBuckets", with_key))
                .unwrap()
                .kind,
            Kind::AccessKey
        );
        let mut session = root.clone();
        session["accessKeyId"] = "ASIASESSION000000001".into();
        let e = one(base(
            "iam.amazonaws.com",
            "GetLoginProfile",
            session.clone(),
        ))
        .unwrap();
        assert_eq!(
            (e.kind, e.key_id.as_deref()),
            (Kind::RootSession, Some("ASIASESSION000000001"))
        );
        assert_eq!(
            one(base("iam.amazonaws.com", "EnableMFADevice", session))
                .unwrap()
                .kind,
            Kind::MfaChange
        );

        let caller = serde_json::json!({ "type": "AssumedRole",
            "arn": "arn:aws:sts::111122223333:assumed-role/ops/ann", "accountId": "111122223333",
            "sessionContext": { "sourceIdentity": "req-1" } });
        let mut assume = base("sts.amazonaws.com", "AssumeRoot", caller.clone());
        assume["requestParameters"] = serde_json::json!({ "targetPrincipal": "444455556666",
            "taskPolicyArn": { "arn": "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials" } });
        assume["responseElements"] =
            serde_json::json!({ "credentials": { "accessKeyId": "ASIAISSUED0000000001" } });
        let e = one(assume).unwrap();
        assert_eq!(e.kind, Kind::AssumeRoot);
        assert_eq!(e.key_id.as_deref(), Some("ASIAISSUED0000000001"));
        assert_eq!(e.target_account.as_deref(), Some("444455556666"));
        assert_eq!(e.task.as_deref(), Some("IAMAuditRootUserCredentials"));
        assert_eq!(e.source_identity.as_deref(), Some("req-1"));
        assert_eq!(
            e.principal,
            "arn:aws:sts::111122223333:assumed-role/ops/ann"
        );

        assert_eq!(
            one(base(
                "iam.amazonaws.com",
                "DisableOrganizationsRootSessions",
                caller.clone()
            ))
            .unwrap()
            .kind,
            Kind::RootFeatures
        );
        let mut trusted = base(
            "organizations.amazonaws.com",
            "DisableAWSServiceAccess",
            caller.clone(),
        );
        trusted["requestParameters"] =
            serde_json::json!({ "servicePrincipal": "iam.amazonaws.com" });
        assert_eq!(one(trusted.clone()).unwrap().kind, Kind::TrustedAccess);
        trusted["requestParameters"] =
            serde_json::json!({ "servicePrincipal": "config.amazonaws.com" });
        assert_eq!(one(trusted), None);
        assert_eq!(one(base("s3.amazonaws.com", "ListBuckets", caller)), None);
    }

    #[test]
    fn a_file_of_another_account_or_without_records_is_refused() {
        let other = serde_json::json!({ "Records": [{ "eventID": "e", "eventTime": "2026-12-04T14:03:00Z",
            "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "recipientAccountId": "999999999999" }] });
        let e = classify_records(other.to_string().as_bytes(), "111122223333").unwrap_err();
        assert!(e.contains("of account 999999999999"), "{e}");
        let e = classify_records(b"{\"records\": []}", "111122223333").unwrap_err();
        assert!(e.contains("not a CloudTrail log file"), "{e}");
        let key = parse_log_key(KEY).unwrap();
        let e = read_log_file(b"{\"Records\": []}", &key).unwrap_err();
        assert!(e.starts_with("not gzip"), "{e}");
    }

    #[test]
    fn notifications_name_their_keys() {
        let s3 = r#"{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":"AWSLogs/1/a+b%2Fc.json.gz"}}}]}"#;
        assert_eq!(
            notified_keys(s3),
            vec!["AWSLogs/1/a b/c.json.gz".to_string()]
        );
        let ct = r#"{"s3Bucket":"b","s3ObjectKey":["AWSLogs/1/x.json.gz"]}"#;
        assert_eq!(notified_keys(ct), vec!["AWSLogs/1/x.json.gz".to_string()]);
        let sns = serde_json::json!({ "Type": "Notification", "Message": ct }).to_string();
        assert_eq!(notified_keys(&sns), vec!["AWSLogs/1/x.json.gz".to_string()]);
        assert!(notified_keys("not json").is_empty());
    }
}
