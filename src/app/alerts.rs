//! Alerts that always arrive: every audit event a channel listens to gets
//! an outbox row in the same transaction as the event (so an alert exists
//! exactly when its action happened), and the server delivers each
//! channel's rows in event order, retrying with exponential back-off and
//! jitter, dead-lettering after the configured number of attempts. A lease
//! per channel, taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL, lets one
//! process deliver a channel at a time: no duplicates across replicas, and
//! nothing lost across restarts. Messages are built from the audit event,
//! which never holds a secret; keys and URLs are added only when sending.

use crate::domain::states::AlertState;
use crate::domain::Action;
use crate::domain::Code;
use serde_json::{json, Value};

use super::{App, AppResult};
use crate::auth::Identity;
use crate::config::{AlertChannel, Alerts};
use crate::crypto::chain::AuditEvent;
use crate::domain::Role;
use crate::store::{AlertRow, Tx};

const LEASE_MS: i64 = 60_000;
const BACKOFF_MAX_MS: i64 = 10 * 60 * 1000;

/// A delivery, as admins see it.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: String,
    pub seq: i64,
    pub channel: String,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// The message as it will be (or was) sent.
    #[schema(value_type = Object)]
    pub payload: Value,
}

fn matches(channel: &AlertChannel, e: &AuditEvent) -> bool {
    if Action::of(&e.action) == Some(Action::AuditVerify) && e.details["ok"] == json!(false) {
        return channel.events.contains(crate::config::VERIFY_FAILED_EVENT);
    }
    e.outcome == "success" && channel.events.contains(&e.action)
}

fn request_id(e: &AuditEvent) -> Option<&str> {
    e.target
        .strip_prefix("request:")
        .or_else(|| e.details["request"].as_str())
}

/// The message for one channel, without any secret.
pub fn render(channel: &AlertChannel, e: &AuditEvent, public_url: Option<&str>) -> Value {
    let link = match (public_url, request_id(e)) {
        (Some(base), Some(id)) => Some(format!("{base}/console/requests/{id}")),
        _ => None,
    };
    let what = summary(e);
    match channel.kind.as_str() {
        "slack" => {
            let mut text = format!(":rotating_light: *breakglass*: {what}");
            if let Some(l) = &link {
                text.push_str(&format!(" <{l}|open>"));
            }
            json!({ "text": text })
        }
        "pagerduty" => pagerduty(e, what, link.as_deref()),
        _ => json!({
            "summary": what,
            "event": e,
            "link": link,
        }),
    }
}

/// The strings of a JSON list, joined (nothing for anything else).
fn joined(list: &Value, sep: &str) -> String {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(sep)
        })
        .unwrap_or_default()
}

/// The event in one line, for people.
fn summary(e: &AuditEvent) -> String {
    let d = &e.details;
    let credential = d["credential"].as_str().unwrap_or("");
    match Action::of(&e.action) {
        Some(Action::RequestCreate) => format!(
            "{} asks to break the glass on {credential} (account {}): \"{}\"{}; needs {}",
            e.actor,
            d["account_id"].as_str().unwrap_or("?"),
            d["reason"].as_str().unwrap_or(""),
            d["ticket"]
                .as_str()
                .map(|t| format!(", ticket {t}"))
                .unwrap_or_default(),
            d["quorum"].as_str().unwrap_or("its quorum"),
        ),
        Some(Action::RequestApprove) => format!(
            "{} approved {credential}: {} of {} approvals",
            e.actor, d["approvals"], d["needed"]
        ),
        Some(Action::RequestApproved) => format!(
            "{credential} is approved by {}: it may be released until {}",
            joined(&d["approvers"], ", "),
            d["release_deadline"].as_str().unwrap_or("?")
        ),
        Some(Action::RequestRelease) => format!(
            "{} RELEASED {credential} (account {}, version {}): rotate it after use",
            e.actor,
            d["account_id"].as_str().unwrap_or("?"),
            d["version"]
        ),
        Some(Action::RequestDenied) => format!(
            "{} denied the request for {credential}",
            d["by"].as_str().unwrap_or("?")
        ),
        Some(Action::CustodianLockout) => format!(
            "{} is locked out after {} wrong TOTP codes, until {}",
            e.target.trim_start_matches("custodian:"),
            d["failures"],
            d["locked_until"].as_str().unwrap_or("?")
        ),
        Some(Action::WebauthnCounterRegressed) => format!(
            "the security key of {} showed a signature counter that went backwards: it may be cloned; the approval was refused",
            e.target.trim_start_matches("custodian:")
        ),
        Some(Action::KeyResetPropose) => format!(
            "{} asks for a new security key for {} (no key left): \"{}\"; needs {}",
            e.actor,
            d["custodian"].as_str().unwrap_or("?"),
            d["reason"].as_str().unwrap_or(""),
            d["quorum"].as_str().unwrap_or("its quorum"),
        ),
        Some(Action::RecoverySessionOpen) => format!(
            "{} opened a Shamir recovery session for {credential}",
            e.actor
        ),
        Some(Action::RecoveryRelease) => format!(
            "{credential} was RELEASED with the recovery key (shares of {})",
            joined(&d["shares"], ", ")
        ),
        Some(Action::RecoveryRecover) => format!(
            "{} was RECOVERED offline with the recovery key",
            e.target.trim_start_matches("credential:")
        ),
        Some(Action::AuthFallback) => format!(
            "{} signed in with a local break-glass token instead of the identity provider",
            d["subject"].as_str().unwrap_or(&e.actor)
        ),
        Some(Action::AuditVerify) => format!("the audit log does NOT verify: {}", d["first_break"]),
        Some(Action::WatchUnmatched) => {
            let mut s = format!(
                "ROOT ACTIVITY NO RELEASE ACCOUNTS FOR: {} in account {} at {} by {}",
                d["what"].as_str().unwrap_or("root activity"),
                d["account_id"].as_str().unwrap_or("?"),
                d["at"].as_str().unwrap_or("?"),
                d["principal"].as_str().unwrap_or("?")
            );
            if let Some(ip) = d["source_ip"].as_str() {
                s.push_str(&format!(" from {ip}"));
            }
            if d["mfa_used"] == json!(false) {
                s.push_str(" without MFA");
            }
            s.push_str(&format!(
                " (finding {})",
                d["finding"].as_str().unwrap_or("?")
            ));
            s
        }
        Some(Action::PolicyPropose) => format!(
            "{} proposes to change policy {}: {}",
            e.actor,
            d["policy"].as_str().unwrap_or("?"),
            joined(&d["changes"], "; ")
        ),
        Some(Action::PolicyChangeApplied) => format!(
            "policy {} changed (version {})",
            d["policy"].as_str().unwrap_or("?"),
            d["version"]
        ),
        _ => format!("{} {} {}", e.actor, e.action, e.target),
    }
}

/// A PagerDuty Events v2 message: one incident per request, triggered by
/// its creation, acknowledged by approvals, resolved by its end.
fn pagerduty(e: &AuditEvent, what: String, link: Option<&str>) -> Value {
    let d = &e.details;
    let credential = d["credential"].as_str().unwrap_or("");
    let (action, dedup) = match (Action::of(&e.action), request_id(e)) {
        (Some(Action::RequestCreate), Some(id)) => ("trigger", format!("breakglass-request-{id}")),
        (Some(Action::RequestApprove) | Some(Action::RequestApproved), Some(id)) => {
            ("acknowledge", format!("breakglass-request-{id}"))
        }
        (
            Some(Action::RequestRelease)
            | Some(Action::RequestDenied)
            | Some(Action::RecoveryRelease),
            Some(id),
        ) => ("resolve", format!("breakglass-request-{id}")),
        (Some(Action::WatchUnmatched), _) => (
            "trigger",
            format!("breakglass-root-{}", d["finding"].as_str().unwrap_or("?")),
        ),
        _ => ("trigger", format!("breakglass-event-{}", e.seq)),
    };
    let severity = match Action::of(&e.action) {
        Some(Action::RequestRelease)
        | Some(Action::RecoveryRelease)
        | Some(Action::RecoveryRecover)
        | Some(Action::AuditVerify)
        | Some(Action::WatchUnmatched) => "critical",
        Some(Action::RequestCreate)
        | Some(Action::CustodianLockout)
        | Some(Action::AuthFallback) => "error",
        _ => "info",
    };
    let mut v = json!({
        "event_action": action,
        "dedup_key": dedup,
    });
    if action == "trigger" {
        v["payload"] = json!({
            "summary": what,
            "source": "breakglass",
            "severity": severity,
            "component": credential,
            "group": d["account_id"],
            "custom_details": { "action": e.action, "actor": e.actor, "target": e.target, "seq": e.seq },
        });
    }
    if let Some(l) = link {
        v["links"] = json!([{ "href": l, "text": "breakglass request" }]);
    }
    v
}

/// A receiver's answer, as the outbox records it (never the URL).
fn outcome(res: reqwest::Result<reqwest::Response>) -> Result<(), String> {
    match res {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!(
            "the receiver answered HTTP {}",
            r.status().as_u16()
        )),
        Err(e) if e.is_timeout() => Err("the receiver did not answer in time".into()),
        Err(_) => Err("the receiver cannot be reached".into()),
    }
}

impl App {
    /// Write the outbox rows for `e` (in the event's transaction).
    pub(crate) async fn enqueue_alerts(
        &self,
        tx: &mut dyn Tx,
        e: &AuditEvent,
    ) -> anyhow::Result<()> {
        match &self.settings.alerts {
            Some(alerts) => enqueue(tx, alerts, e).await,
            None => Ok(()),
        }
    }
}

/// Write the outbox rows of `e` for every channel that listens to it.
pub async fn enqueue(tx: &mut dyn Tx, alerts: &Alerts, e: &AuditEvent) -> anyhow::Result<()> {
    for ch in alerts.channels.iter().filter(|c| matches(c, e)) {
        tx.insert_alert(&AlertRow {
            id: uuid::Uuid::new_v4().to_string(),
            seq: e.seq,
            channel: ch.name.clone(),
            kind: ch.kind.clone(),
            payload: render(ch, e, alerts.public_url.as_deref()).to_string(),
            state: AlertState::Pending,
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
            created_at: e.ts_ms,
            delivered_at: None,
        })
        .await?;
    }
    Ok(())
}

impl App {
    async fn send_alert(&self, ch: &AlertChannel, a: &AlertRow) -> Result<(), String> {
        let mut body: Value =
            serde_json::from_str(&a.payload).map_err(|_| "unreadable payload".to_string())?;
        // Every receiver witnesses the last signed checkpoint, outside the
        // database: a log later rolled back or rewritten disagrees with it.
        if let Some(w) = self.witness.current() {
            let witness = serde_json::to_value(&w).map_err(|e| e.to_string())?;
            match ch.kind.as_str() {
                "slack" => {
                    if let Some(text) = body["text"].as_str() {
                        body["text"] = json!(format!(
                            "{text}\n_audit witness: checkpoint of event {} hash {} signature {}_",
                            w.seq, w.hash, w.signature
                        ));
                    }
                }
                "pagerduty" => {
                    if body["payload"].is_object() {
                        body["payload"]["custom_details"]["audit_witness"] = witness;
                    }
                }
                _ => body["audit_witness"] = witness,
            }
        }
        let mut req = self
            .http
            .post(&ch.url)
            .timeout(std::time::Duration::from_secs(10));
        match ch.kind.as_str() {
            "pagerduty" => {
                let key = ch.secret.as_ref().ok_or("no routing key")?;
                body["routing_key"] = json!(String::from_utf8_lossy(key));
            }
            "webhook" => {
                let key = ch.secret.as_ref().ok_or("no HMAC key")?;
                let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
                let unix = self.now_ms() / 1000;
                req = req
                    .header("X-Breakglass-Delivery", &a.id)
                    .header(
                        "X-Breakglass-Signature",
                        super::audit_ship::signature(key, unix, &bytes),
                    )
                    .header(reqwest::header::CONTENT_TYPE, "application/json");
                return outcome(req.body(bytes).send().await);
            }
            _ => {}
        }
        outcome(
            req.header("X-Breakglass-Delivery", &a.id)
                .json(&body)
                .send()
                .await,
        )
    }

    /// One delivery round for every channel (the server's ticker).
    #[tracing::instrument(skip_all)]
    pub async fn deliver_alerts(&self) -> anyhow::Result<()> {
        let Some(alerts) = self.settings.alerts.clone() else {
            return Ok(());
        };
        for ch in &alerts.channels {
            let now = self.now_ms();
            let mut tx = self.store.begin().await?;
            let leased = tx
                .lease_alert_channel(&ch.name, &self.replica, now, now + LEASE_MS)
                .await?;
            let due = if leased {
                tx.due_alerts(&ch.name, now, 100).await?
            } else {
                Vec::new()
            };
            tx.commit().await?;
            if !leased {
                continue;
            }
            for a in due {
                if a.next_attempt_at > self.now_ms() {
                    // The channel waits for its oldest alert (order).
                    break;
                }
                let outcome = self.send_alert(ch, &a).await;
                let now = self.now_ms();
                let mut tx = self.store.begin().await?;
                let stop = match &outcome {
                    Ok(()) => {
                        tx.set_alert_state(
                            &a.id,
                            AlertState::Delivered,
                            a.attempts + 1,
                            0,
                            None,
                            Some(now),
                        )
                        .await?;
                        false
                    }
                    Err(why) if a.attempts + 1 >= alerts.max_attempts => {
                        tx.set_alert_state(
                            &a.id,
                            AlertState::Dead,
                            a.attempts + 1,
                            0,
                            Some(why),
                            None,
                        )
                        .await?;
                        tracing::error!(channel = %ch.name, alert = %a.id, error = %why, "alert dead-lettered");
                        false
                    }
                    Err(why) => {
                        tx.set_alert_state(
                            &a.id,
                            AlertState::Pending,
                            a.attempts + 1,
                            now + super::audit_ship::backoff_ms(a.attempts, BACKOFF_MAX_MS),
                            Some(why),
                            None,
                        )
                        .await?;
                        tracing::warn!(channel = %ch.name, alert = %a.id, error = %why, "alert delivery failed; will retry");
                        true
                    }
                };
                tx.commit().await?;
                if stop {
                    break;
                }
            }
            let mut tx = self.store.begin().await?;
            tx.release_alert_channel(&ch.name, &self.replica).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn list_alerts(
        &self,
        who: &Identity,
        state: Option<&str>,
    ) -> AppResult<Vec<AlertView>> {
        self.require_any(who, &[Role::Admin, Role::Auditor])?;
        let state = match state.map(str::parse::<AlertState>).transpose() {
            Ok(state) => state,
            Err(_) => {
                return super::refuse(Code::InvalidQuery, "state is pending, delivered or dead")
            }
        };
        let mut tx = self.store.begin_read().await?;
        let rows = tx.alerts(state, 500).await;
        tx.rollback().await?;
        Ok(rows?
            .into_iter()
            .map(|a| AlertView {
                payload: serde_json::from_str(&a.payload).unwrap_or(Value::Null),
                id: a.id,
                seq: a.seq,
                channel: a.channel,
                kind: a.kind,
                state: a.state.to_string(),
                attempts: a.attempts,
                last_error: a.last_error,
                created_at: crate::clock::rfc3339(a.created_at),
                next_attempt_at: (a.next_attempt_at > 0)
                    .then(|| crate::clock::rfc3339(a.next_attempt_at)),
                delivered_at: a.delivered_at.map(crate::clock::rfc3339),
            })
            .collect())
    }

    /// An admin sends a dead letter again (audited).
    #[tracing::instrument(skip_all, fields(caller = %who.subject, id = %id))]
    pub async fn retry_alert(&self, who: &Identity, id: &str) -> AppResult<serde_json::Value> {
        let target = format!("alert:{id}");
        let mut tx = self.store.begin().await?;
        let res = async {
            self.require(who, Role::Admin)?;
            if !tx.retry_alert(id).await? {
                return super::refuse(
                    Code::AlertNotDead,
                    format!("no dead-lettered alert with id {id}"),
                );
            }
            Ok(super::Done::new(
                json!({ "id": id, "state": "pending" }),
                super::Event::new(Action::AlertRetry, target.clone(), json!({})),
            ))
        }
        .await;
        self.finish(tx, Some(who), Action::AlertRetry, &target, res)
            .await
    }
}
