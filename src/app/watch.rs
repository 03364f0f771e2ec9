//! The root watch: every root sign-in and root API call CloudTrail
//! records is matched to what this service granted (a release of that
//! account's credential, inside its window; a root session it brokered,
//! by the session's key id), and linked to it in the audit log. Anything
//! else is a finding, an audit event and a high alert, once per episode
//! (a sign-in, a key, a session, a change) until someone acknowledges it.
//!
//! Reading is exactly once: a file is recorded as handled in the same
//! transaction as its events, so a second replica, a restart or a lost
//! cursor finds it handled and skips it; an event CloudTrail delivered
//! twice is skipped by its id. One replica reads at a time (a lease that
//! ends by itself).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{refuse, App, AppError, AppResult, Done, Event};
use crate::auth::Identity;
use crate::clock::rfc3339;
use crate::domain::{Action, Code, Role};
use crate::store::prelude::*;
use crate::store::{
    BrokeredSessionRow, ReleaseOfAccount, RootActivityRow, RootFindingRow, TrailFileRow,
};
use crate::trail::{Kind, LogKey, RootEvent, TrailSource};

/// A round holds the watch this long at most (a stopped replica's lease
/// ends by itself).
const LEASE_MS: i64 = 10 * 60_000;
/// Files read per prefix and round at most (the rest at the next round).
const FILES_PER_PREFIX: usize = 2_000;

/// What a round did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WatchReport {
    /// Log prefixes (account and region) listed.
    pub prefixes: usize,
    /// Files announced on the queue.
    pub notified: usize,
    pub files_read: usize,
    pub files_rejected: usize,
    /// Files another replica (or an earlier round) had handled already.
    pub files_skipped: usize,
    pub events: usize,
    pub root_events: usize,
    /// Root events linked to a release or a brokered session.
    pub matched: usize,
    /// New findings (each alerted).
    pub unmatched: usize,
    /// Root events of a finding already open (not alerted again).
    pub repeated: usize,
    pub elapsed_ms: u64,
}

/// A finding of root activity nothing accounts for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    pub id: String,
    pub account_id: String,
    pub kind: String,
    pub what: String,
    pub first_at: String,
    pub last_at: String,
    pub events: i64,
    /// The first event as CloudTrail recorded it (no secret: key ids
    /// only).
    #[schema(value_type = Object)]
    pub first_event: serde_json::Value,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledgement: Option<String>,
}

/// A file that was not a CloudTrail log file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RejectedFileView {
    pub key: String,
    pub why: String,
    pub read_at: String,
}

/// A log prefix and how far it was read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CursorView {
    pub prefix: String,
    pub last_key: String,
    pub last_file_at: String,
}

/// The watch as it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WatchView {
    pub bucket: String,
    pub files_read: i64,
    pub files_rejected: i64,
    pub events_read: i64,
    pub root_events: i64,
    pub newest_file_at: Option<String>,
    pub open_findings: i64,
    pub findings: Vec<FindingView>,
    pub cursors: Vec<CursorView>,
    pub rejected_files: Vec<RejectedFileView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    /// Why the activity is accounted for (1 to 500 characters), e.g. the
    /// incident ticket that covers it.
    pub reason: String,
}

/// What an event belongs to.
enum Link {
    Release(ReleaseOfAccount),
    Session(BrokeredSessionRow),
    /// A failed AssumeRoot the service made for this request.
    Attempt(String),
    /// Nothing: the episode a finding groups it under.
    Unmatched(String),
}

/// Matched events of one file, per release or session and account.
#[derive(Default)]
struct Group {
    first: i64,
    last: i64,
    events: usize,
    kinds: BTreeSet<&'static str>,
    names: BTreeSet<String>,
    details: serde_json::Value,
}

pub(crate) fn finding_view(f: &RootFindingRow) -> FindingView {
    let kind: Option<Kind> = f.kind.parse().ok();
    FindingView {
        id: f.id.clone(),
        account_id: f.account_id.clone(),
        kind: f.kind.clone(),
        what: kind.map(Kind::describe).unwrap_or("root activity").into(),
        first_at: rfc3339(f.first_at),
        last_at: rfc3339(f.last_at),
        events: f.events,
        first_event: serde_json::from_str(&f.summary).unwrap_or_default(),
        acknowledged_at: f.acknowledged_at.map(rfc3339),
        acknowledged_by: f.acknowledged_by.clone(),
        acknowledgement: f.acknowledgement.clone(),
    }
}

fn hhmm(ms: i64) -> String {
    let s = rfc3339(ms);
    s.get(11..16).unwrap_or(&s).to_string()
}

impl App {
    fn trail(&self) -> AppResult<(&TrailSource, &crate::config::RootWatchSettings)> {
        match (&self.trail, &self.settings.root_watch) {
            (Some(t), Some(s)) => Ok((t, s)),
            _ => refuse(
                Code::WatchNotConfigured,
                "the root watch is off: set [root_watch] enabled = true and bucket = the trail's S3 bucket",
            ),
        }
    }

    /// A round: the queue's announced files, then (when `list`) every log
    /// prefix's new files. `None` when another replica holds the watch.
    pub async fn watch_round(&self, list: bool) -> AppResult<Option<WatchReport>> {
        let (source, settings) = self.trail()?;
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let claimed = tx
            .claim_trail_lease(&self.replica, now, now + LEASE_MS)
            .await?;
        tx.commit().await?;
        if !claimed {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let mut report = WatchReport::default();
        let result = self.watch_steps(source, settings, list, &mut report).await;
        let mut tx = self.store.begin().await?;
        tx.release_trail_lease(&self.replica).await?;
        tx.commit().await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        result.map(|()| Some(report))
    }

    async fn watch_steps(
        &self,
        source: &TrailSource,
        settings: &crate::config::RootWatchSettings,
        list: bool,
        report: &mut WatchReport,
    ) -> AppResult<()> {
        for (receipt, keys) in source.notifications().await? {
            for key in keys {
                report.notified += 1;
                if key.contains("/CloudTrail-Digest/") || !key.starts_with(&source.logs) {
                    continue;
                }
                self.watch_file(source, settings, &key, report).await?;
            }
            source.handled(&receipt).await?;
        }
        if !list {
            return Ok(());
        }
        let cursors: BTreeMap<String, crate::store::TrailCursorRow> = {
            let mut tx = self.store.begin_read().await?;
            let c = tx.trail_cursors().await?;
            tx.rollback().await?;
            c.into_iter().map(|c| (c.prefix.clone(), c)).collect()
        };
        for prefix in source.log_prefixes().await? {
            report.prefixes += 1;
            // From the day before the cursor's file: a file delivered
            // late under an earlier name is still found; what was handled
            // is skipped by name.
            let start = match cursors.get(&prefix) {
                Some(c) => {
                    let day = rfc3339(c.last_file_at - 86_400_000);
                    format!("{prefix}{}/{}/{}/", &day[0..4], &day[5..7], &day[8..10])
                }
                None => String::new(),
            };
            let handled: HashSet<String> = {
                let mut tx = self.store.begin_read().await?;
                let h = tx.handled_trail_files(&prefix, &start).await?;
                tx.rollback().await?;
                h.into_iter().collect()
            };
            for key in source
                .keys_after(&prefix, &start, FILES_PER_PREFIX + handled.len())
                .await?
            {
                if handled.contains(&key) {
                    continue;
                }
                self.watch_file(source, settings, &key, report).await?;
            }
        }
        Ok(())
    }

    /// One file, handled once: read and matched, or rejected, with its
    /// events in one transaction.
    async fn watch_file(
        &self,
        source: &TrailSource,
        settings: &crate::config::RootWatchSettings,
        key: &str,
        report: &mut WatchReport,
    ) -> AppResult<()> {
        {
            let mut tx = self.store.begin_read().await?;
            let handled = tx.trail_file_handled(key).await?;
            tx.rollback().await?;
            if handled {
                report.files_skipped += 1;
                return Ok(());
            }
        }
        let parsed = crate::trail::parse_log_key(key);
        let content = match &parsed {
            Err(why) => Err(format!("not a CloudTrail log file name: {why}")),
            Ok(k) => match source.get(key).await {
                Ok(Ok(bytes)) => crate::trail::read_log_file(&bytes, k),
                Ok(Err(why)) => Err(why),
                Err(e) if e.code() == Some("NoSuchKey") => {
                    Err("announced, but not in the bucket (deleted?)".into())
                }
                Err(e) => return Err(e.into()),
            },
        };
        match content {
            Err(why) => {
                self.reject_file(key, parsed.ok().as_ref(), &why, report)
                    .await
            }
            Ok(read) => {
                let k = parsed.expect("a file is read only under a parsed key");
                self.record_file(settings, key, &k, read, report).await
            }
        }
    }

    async fn reject_file(
        &self,
        key: &str,
        log: Option<&LogKey>,
        why: &str,
        report: &mut WatchReport,
    ) -> AppResult<()> {
        let now = self.now_ms();
        let prefix = match log {
            Some(k) => k.prefix.clone(),
            None => key
                .rsplit_once('/')
                .map(|(p, _)| format!("{p}/"))
                .unwrap_or_default(),
        };
        let mut tx = self.store.begin().await?;
        let row = TrailFileRow {
            file_key: key.into(),
            prefix: prefix.clone(),
            status: "rejected".into(),
            events: 0,
            root_events: 0,
            error: Some(why.into()),
            file_at: log.map(|k| k.file_at_ms),
            read_at: now,
        };
        if !tx.insert_trail_file(&row).await? {
            tx.rollback().await?;
            report.files_skipped += 1;
            return Ok(());
        }
        if let Some(k) = log {
            tx.advance_trail_cursor(&k.prefix, key, k.file_at_ms, now)
                .await?;
        }
        let ev = Event::new(
            Action::WatchFileRejected,
            "cloudtrail",
            json!({ "file": key, "why": why }),
        );
        self.append(tx.as_mut(), "breakglass", "failure", None, ev)
            .await?;
        tx.commit().await?;
        tracing::warn!(
            file = key,
            why,
            "skipped a file that is not a CloudTrail log file"
        );
        report.files_rejected += 1;
        Ok(())
    }

    async fn record_file(
        &self,
        settings: &crate::config::RootWatchSettings,
        key: &str,
        log: &LogKey,
        read: crate::trail::FileRead,
        report: &mut WatchReport,
    ) -> AppResult<()> {
        let now = self.now_ms();
        let window_ms = settings.release_window.as_millis() as i64;
        let mut tx = self.store.begin().await?;
        let row = TrailFileRow {
            file_key: key.into(),
            prefix: log.prefix.clone(),
            status: "read".into(),
            events: read.records as i64,
            root_events: read.root.len() as i64,
            error: None,
            file_at: Some(log.file_at_ms),
            read_at: now,
        };
        if !tx.insert_trail_file(&row).await? {
            tx.rollback().await?;
            report.files_skipped += 1;
            return Ok(());
        }
        let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
        let mut events = Vec::new();
        let (mut matched, mut unmatched, mut repeated) = (0, 0, 0);
        for e in &read.root {
            let mut activity = RootActivityRow {
                event_id: e.event_id.clone(),
                file_key: key.into(),
                account_id: e.account_id.clone(),
                kind: e.kind.as_str().into(),
                event_name: e.event_name.clone(),
                at_ms: e.at_ms,
                request_id: None,
                session_key_id: None,
                finding_id: None,
            };
            if tx.root_activity_seen(&e.event_id).await? {
                continue;
            }
            let (group_key, details) = match link_of(tx.as_mut(), e, window_ms).await? {
                Link::Release(rel) => {
                    activity.request_id = Some(rel.request_id.clone());
                    (
                        format!("request:{}", rel.request_id),
                        json!({
                            "request": rel.request_id,
                            "released_to": rel.requester,
                            "credential": rel.credential,
                            "released_at": rfc3339(rel.released_at),
                        }),
                    )
                }
                Link::Session(s) => {
                    activity.request_id = s.request_id.clone();
                    activity.session_key_id = Some(s.key_id.clone());
                    (
                        format!("session:{}", s.key_id),
                        json!({
                            "request": s.request_id,
                            "session_key_id": s.key_id,
                            "purpose": s.purpose,
                            "opened_by": s.opened_by,
                            "opened_at": rfc3339(s.opened_at),
                        }),
                    )
                }
                Link::Attempt(request) => {
                    activity.request_id = Some(request.clone());
                    (
                        format!("request:{request}"),
                        json!({ "request": request, "attempt": "a refused AssumeRoot of this request" }),
                    )
                }
                Link::Unmatched(episode) => {
                    match tx.open_root_finding(&episode).await? {
                        Some(f) => {
                            tx.touch_root_finding(&f.id, e.at_ms).await?;
                            activity.finding_id = Some(f.id);
                            repeated += 1;
                        }
                        None => {
                            let id = uuid::Uuid::new_v4().to_string();
                            tx.insert_root_finding(&RootFindingRow {
                                id: id.clone(),
                                episode,
                                account_id: e.account_id.clone(),
                                kind: e.kind.as_str().into(),
                                summary: serde_json::to_string(e).map_err(anyhow::Error::from)?,
                                first_at: e.at_ms,
                                last_at: e.at_ms,
                                events: 1,
                                opened_at: now,
                                acknowledged_at: None,
                                acknowledged_by: None,
                                acknowledgement: None,
                            })
                            .await?;
                            events.push(unmatched_event(&id, e, key));
                            activity.finding_id = Some(id);
                            unmatched += 1;
                        }
                    }
                    tx.insert_root_activity(&activity).await?;
                    continue;
                }
            };
            matched += 1;
            tx.insert_root_activity(&activity).await?;
            let g = groups
                .entry((group_key, e.account_id.clone()))
                .or_insert_with(|| Group {
                    first: e.at_ms,
                    last: e.at_ms,
                    details,
                    ..Default::default()
                });
            g.first = g.first.min(e.at_ms);
            g.last = g.last.max(e.at_ms);
            g.events += 1;
            g.kinds.insert(e.kind.as_str());
            if g.names.len() < 20 {
                g.names.insert(e.event_name.clone());
            }
        }
        for ((link, account), g) in groups {
            let mut d = g.details;
            let during = match (d["request"].as_str(), d["released_to"].as_str()) {
                (Some(r), Some(to)) => format!("during release {r} by {to}"),
                (Some(r), None) => format!("in the root session of request {r}"),
                (None, _) => format!(
                    "in the root session {} of an org sync",
                    link.trim_start_matches("session:")
                ),
            };
            d["summary"] = json!(format!(
                "root used {}\u{2013}{} UTC in account {account} {during}",
                hhmm(g.first),
                hhmm(g.last)
            ));
            d["account_id"] = json!(account);
            d["first"] = json!(rfc3339(g.first));
            d["last"] = json!(rfc3339(g.last));
            d["events"] = json!(g.events);
            d["kinds"] = json!(g.kinds);
            d["event_names"] = json!(g.names);
            d["file"] = json!(key);
            let target = match d["request"].as_str() {
                Some(r) => format!("request:{r}"),
                None => format!("account:{account}"),
            };
            events.push(Event::new(Action::WatchMatched, target, d));
        }
        for ev in events {
            self.append(tx.as_mut(), "breakglass", "success", None, ev)
                .await?;
        }
        tx.advance_trail_cursor(&log.prefix, key, log.file_at_ms, now)
            .await?;
        tx.commit().await?;
        report.files_read += 1;
        report.events += read.records;
        report.root_events += read.root.len();
        report.matched += matched;
        report.unmatched += unmatched;
        report.repeated += repeated;
        if unmatched > 0 {
            tracing::warn!(
                file = key,
                findings = unmatched,
                "root activity that no release and no brokered session accounts for"
            );
        }
        Ok(())
    }

    /// `watch run` (admin): a round now, the bucket listed. Audited.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn run_watch(&self, who: &Identity) -> AppResult<WatchReport> {
        let result = async {
            self.require(who, Role::Admin)?;
            match self.watch_round(true).await? {
                Some(r) => Ok(r),
                None => refuse(
                    Code::WatchBusy,
                    "another replica is reading CloudTrail now; its results are in the audit log: try again in a minute",
                ),
            }
        }
        .await;
        let tx = self.store.begin().await?;
        let result = result.map(|r| {
            let ev = Event::new(
                Action::WatchRun,
                "cloudtrail",
                serde_json::to_value(&r).unwrap_or_default(),
            );
            Done::new(r, ev)
        });
        self.finish(tx, Some(who), Action::WatchRun, "cloudtrail", result)
            .await
    }

    /// The watch's state and its findings (admin, auditor). Audited.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn watch_status(&self, who: &Identity, all: bool) -> AppResult<WatchView> {
        let mut tx = self.store.begin().await?;
        let result = async {
            self.require_any(who, &[Role::Admin, Role::Auditor])?;
            let (_, settings) = self.trail()?;
            let g = tx.watch_gauges().await?;
            let findings = tx.root_findings(!all, 500).await?;
            let cursors = tx.trail_cursors().await?;
            let rejected = tx.trail_files(Some("rejected"), 50).await?;
            let view = WatchView {
                bucket: settings.bucket.clone(),
                files_read: g.files_read,
                files_rejected: g.files_rejected,
                events_read: g.events_read,
                root_events: g.root_events,
                newest_file_at: g.newest_file_at.map(rfc3339),
                open_findings: g.open_findings,
                findings: findings.iter().map(finding_view).collect(),
                cursors: cursors
                    .iter()
                    .map(|c| CursorView {
                        prefix: c.prefix.clone(),
                        last_key: c.last_key.clone(),
                        last_file_at: rfc3339(c.last_file_at),
                    })
                    .collect(),
                rejected_files: rejected
                    .iter()
                    .map(|f| RejectedFileView {
                        key: f.file_key.clone(),
                        why: f.error.clone().unwrap_or_default(),
                        read_at: rfc3339(f.read_at),
                    })
                    .collect(),
            };
            let ev = Event::new(
                Action::WatchList,
                "cloudtrail",
                json!({ "findings": view.findings.len(), "open": view.open_findings }),
            );
            Ok(Done::new(view, ev))
        }
        .await;
        self.finish(tx, Some(who), Action::WatchList, "cloudtrail", result)
            .await
    }

    /// Acknowledge a finding (admin): it leaves the review; a new use of
    /// the same key opens a new one. Audited, with the reason.
    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn acknowledge_finding(
        &self,
        who: &Identity,
        id: &str,
        body: AcknowledgeBody,
    ) -> AppResult<FindingView> {
        let target = format!("finding:{id}");
        let mut tx = self.store.begin().await?;
        let result = async {
            self.require(who, Role::Admin)?;
            self.trail()?;
            let reason = super::requests::reason_of(&body.reason)?;
            let Some(f) = tx.root_finding(id).await? else {
                return refuse(Code::FindingNotFound, format!("no root-watch finding {id}"));
            };
            if let Some(at) = f.acknowledged_at {
                return refuse(
                    Code::FindingAcknowledged,
                    format!(
                        "finding {id} was acknowledged by {} at {}",
                        f.acknowledged_by.as_deref().unwrap_or("?"),
                        rfc3339(at)
                    ),
                );
            }
            let now = self.now_ms();
            if !tx
                .acknowledge_root_finding(id, &who.subject, &reason, now)
                .await?
            {
                return refuse(
                    Code::FindingAcknowledged,
                    format!("finding {id} was acknowledged meanwhile"),
                );
            }
            let f = tx.root_finding(id).await?.unwrap_or(f);
            let ev = Event::new(
                Action::WatchAcknowledge,
                target.clone(),
                json!({
                    "finding": id, "account_id": f.account_id, "kind": f.kind,
                    "events": f.events, "reason": reason,
                }),
            );
            Ok(Done::new(finding_view(&f), ev))
        }
        .await;
        self.finish(tx, Some(who), Action::WatchAcknowledge, &target, result)
            .await
    }

    /// The scheduled round, from the background: the queue every time,
    /// the listing when `list`. Failures are logged and retried.
    pub async fn scheduled_watch(&self, list: bool) -> Option<WatchReport> {
        let queue = self
            .settings
            .root_watch
            .as_ref()
            .is_some_and(|w| w.queue_url.is_some());
        if !list && !queue {
            return None;
        }
        match self.watch_round(list).await {
            Ok(r) => r,
            Err(AppError::Refused(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the root watch could not read CloudTrail; will retry");
                None
            }
        }
    }
}

/// What `e` belongs to.
async fn link_of(tx: &mut dyn Tx, e: &RootEvent, window_ms: i64) -> AppResult<Link> {
    // A session this service opened, by its key: its AssumeRoot and
    // every call made with it.
    if let Some(k) = e.key_id.as_deref().filter(|k| k.starts_with("ASIA")) {
        if let Some(s) = tx.brokered_session(k).await? {
            return Ok(Link::Session(s));
        }
    }
    let episode = match e.kind {
        Kind::AssumeRoot => {
            // The service's own refused attempt names its request.
            if e.failure.is_some() {
                if let Some(id) = e.source_identity.as_deref() {
                    if tx.root_request(id).await?.is_some() {
                        return Ok(Link::Attempt(id.to_string()));
                    }
                }
            }
            return Ok(Link::Unmatched(format!("assume_root:{}", e.event_id)));
        }
        Kind::RootFeatures | Kind::TrustedAccess => {
            return Ok(Link::Unmatched(format!(
                "{}:{}",
                e.kind.as_str(),
                e.event_id
            )))
        }
        Kind::AccessKey | Kind::RootSession | Kind::MfaChange => match &e.key_id {
            Some(k) => format!("key:{}:{k}", e.account_id),
            None => format!("{}:{}", e.kind.as_str(), e.event_id),
        },
        Kind::ConsoleSignIn | Kind::PasswordRecovery => {
            format!("{}:{}", e.kind.as_str(), e.event_id)
        }
    };
    match tx
        .release_covering(&e.account_id, e.at_ms, window_ms)
        .await?
    {
        Some(r) => Ok(Link::Release(r)),
        None => Ok(Link::Unmatched(episode)),
    }
}

fn unmatched_event(finding: &str, e: &RootEvent, file: &str) -> Event {
    let mut d = serde_json::to_value(e).unwrap_or_default();
    d["finding"] = json!(finding);
    d["what"] = json!(e.kind.describe());
    d["at"] = json!(rfc3339(e.at_ms));
    d["file"] = json!(file);
    if let Some(m) = d.as_object_mut() {
        m.remove("at_ms");
    }
    Event::new(
        Action::WatchUnmatched,
        format!("account:{}", e.account_id),
        d,
    )
}
