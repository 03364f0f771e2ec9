//! Continuous shipping of the audit log to a SIEM.
//!
//! The log is its own outbox: every event is already committed with the
//! action it records, so shipping needs no second write in the action's
//! transaction and can never block or fail it. A cursor row per sink
//! records the last event (and checkpoint) delivered; a lease on that row
//! lets one server process deliver at a time without holding a database
//! lock across the HTTP call. A failed POST backs off exponentially with
//! jitter and is retried from the same cursor, so nothing is lost when the
//! receiver is down or the server restarts. Delivery is at least once: a
//! process that dies after the receiver accepted a batch but before the
//! cursor moved sends it again, and receivers deduplicate by `seq` (or by
//! `metadata.uid`, the event hash, in OCSF).

use serde_json::json;

use super::App;
use crate::crypto::chain::Checkpoint;

/// The one configured sink's name in the cursor table.
pub const SINK: &str = "siem";
/// How long a lease lasts: longer than a POST's timeout.
const LEASE_MS: i64 = 120_000;
const BACKOFF_MAX_MS: i64 = 5 * 60 * 1000;

/// What one shipping round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shipped {
    /// Delivered events up to this `seq`; more may be waiting if `full`.
    Delivered { through: i64, full: bool },
    /// The receiver refused or could not be reached; retried later.
    Failed,
}

/// Status of the sink, for auditors.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SinkStatus {
    pub configured: bool,
    /// The receiver's scheme, host and port (never its path or query,
    /// which may carry a token).
    pub endpoint: Option<String>,
    pub format: Option<String>,
    pub events_through: i64,
    pub head_seq: i64,
    /// Events not yet delivered.
    pub backlog: i64,
    /// Failed attempts since the last delivery.
    pub attempts: i64,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub next_attempt_at: Option<String>,
}

/// The delay before retry number `attempts + 1`: 1 s doubling, at most
/// `max_ms`.
pub(crate) fn backoff_ms(attempts: i64, max_ms: i64) -> i64 {
    let base = 1000i64.saturating_mul(1 << attempts.clamp(0, 20));
    let capped = base.min(max_ms);
    // Jitter: 50 % to 100 % of the delay, so replicas and retries spread.
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as i64;
    capped / 2 + capped / 2 * r / 1000
}

/// `X-Breakglass-Signature: t=UNIX,v1=HEX(HMAC-SHA256(key, "UNIX." ‖ body))`.
pub fn signature(key: &[u8], unix: i64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut msg = format!("{unix}.").into_bytes();
    msg.extend_from_slice(body);
    format!("t={unix},v1={}", hex::encode(hmac::sign(&k, &msg).as_ref()))
}

fn endpoint_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

impl App {
    /// One shipping round: take the lease, read the next batch, POST it,
    /// move the cursor (or back off). `None` when there is no sink, nothing
    /// to send, or another process holds the lease.
    #[tracing::instrument(skip_all)]
    pub async fn ship_audit(&self) -> anyhow::Result<Option<Shipped>> {
        let Some(sink) = self.settings.audit_sink.clone() else {
            return Ok(None);
        };
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let cursor = tx.sink_cursor(SINK).await?;
        let leased = tx
            .lease_sink(SINK, &self.replica, now, now + LEASE_MS)
            .await?;
        tx.commit().await?;
        if !leased {
            return Ok(None);
        }
        let (events, checkpoints) = {
            let mut r = self.store.begin_read().await?;
            let base = r.audit_base().await?;
            let events = r
                .audit_events(cursor.events_through.max(base.0), sink.batch_size)
                .await?;
            let through = events.last().map_or(cursor.events_through, |e| e.seq);
            let checkpoints: Vec<Checkpoint> = r
                .checkpoints(cursor.checkpoints_through, 10_000)
                .await?
                .into_iter()
                .filter(|c| c.seq <= through)
                .collect();
            r.rollback().await?;
            (events, checkpoints)
        };
        let through = events.last().map_or(cursor.events_through, |e| e.seq);
        let cps_through = checkpoints
            .last()
            .map_or(cursor.checkpoints_through, |c| c.seq);
        if events.is_empty() && checkpoints.is_empty() {
            let mut tx = self.store.begin().await?;
            tx.sink_delivered(
                SINK,
                &self.replica,
                through,
                cps_through,
                cursor.delivered_at.unwrap_or(0),
            )
            .await?;
            tx.commit().await?;
            return Ok(None);
        }
        let mut body = Vec::with_capacity(events.len() * 400);
        let mut cps = checkpoints.iter().peekable();
        for e in &events {
            if sink.ocsf {
                serde_json::to_writer(&mut body, &crate::ocsf::api_activity(e))?;
                body.push(b'\n');
                continue;
            }
            let mut v = serde_json::to_value(e)?;
            v["record"] = json!("event");
            serde_json::to_writer(&mut body, &v)?;
            body.push(b'\n');
            while let Some(c) = cps.next_if(|c| c.seq <= e.seq) {
                let mut v = serde_json::to_value(c)?;
                v["record"] = json!("checkpoint");
                serde_json::to_writer(&mut body, &v)?;
                body.push(b'\n');
            }
        }
        if !sink.ocsf {
            // Checkpoints of events delivered in an earlier batch.
            for c in cps {
                let mut v = serde_json::to_value(c)?;
                v["record"] = json!("checkpoint");
                serde_json::to_writer(&mut body, &v)?;
                body.push(b'\n');
            }
        }
        let mut req = self
            .http
            .post(&sink.url)
            .timeout(sink.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .header(
                "X-Breakglass-Batch",
                format!("{}-{through}", events.first().map_or(through, |e| e.seq)),
            );
        // The receiver witnesses the last signed checkpoint too (compact
        // JSON; its Ed25519 signature makes it self-proving).
        if let Some(w) = self.witness.current() {
            req = req.header("X-Breakglass-Audit-Witness", super::witness::compact(&w));
        }
        if let Some(key) = &sink.hmac_key {
            req = req.header("X-Breakglass-Signature", signature(key, now / 1000, &body));
        }
        let outcome = match req.body(body).send().await {
            Ok(res) if res.status().is_success() => Ok(()),
            Ok(res) => Err(format!(
                "the receiver answered HTTP {}",
                res.status().as_u16()
            )),
            Err(e) if e.is_timeout() => Err("the receiver did not answer in time".to_string()),
            Err(e) if e.is_connect() => Err("the receiver cannot be reached".to_string()),
            Err(_) => Err("the delivery failed".to_string()),
        };
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let shipped = match outcome {
            Ok(()) => {
                tx.sink_delivered(SINK, &self.replica, through, cps_through, now)
                    .await?;
                Shipped::Delivered {
                    through,
                    full: events.len() as i64 == sink.batch_size,
                }
            }
            Err(why) => {
                let next = now + backoff_ms(cursor.attempts, BACKOFF_MAX_MS);
                tx.sink_failed(SINK, &self.replica, &why, now, next).await?;
                tracing::warn!(error = %why, attempts = cursor.attempts + 1, "audit sink delivery failed; will retry");
                Shipped::Failed
            }
        };
        tx.commit().await?;
        Ok(Some(shipped))
    }

    /// Ship until caught up or a delivery fails (the server's ticker).
    pub async fn ship_audit_all(&self) -> anyhow::Result<()> {
        while let Some(Shipped::Delivered { full: true, .. }) = self.ship_audit().await? {}
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(caller = %who.subject))]
    pub async fn sink_status(&self, who: &crate::auth::Identity) -> super::AppResult<SinkStatus> {
        self.require(who, crate::domain::Role::Auditor)?;
        let mut tx = self.store.begin().await?;
        let cursor = tx.sink_cursor(SINK).await?;
        let head = tx.audit_head_peek().await?;
        tx.commit().await?;
        let sink = &self.settings.audit_sink;
        Ok(SinkStatus {
            configured: sink.is_some(),
            endpoint: sink.as_ref().map(|s| endpoint_of(&s.url)),
            format: sink
                .as_ref()
                .map(|s| if s.ocsf { "ocsf" } else { "jsonl" }.to_string()),
            events_through: cursor.events_through,
            head_seq: head.0,
            backlog: (head.0 - cursor.events_through).max(0),
            attempts: cursor.attempts,
            last_error: cursor.last_error,
            last_attempt_at: cursor.last_attempt_at.map(crate::clock::rfc3339),
            delivered_at: cursor.delivered_at.map(crate::clock::rfc3339),
            next_attempt_at: (cursor.next_attempt_at > 0)
                .then(|| crate::clock::rfc3339(cursor.next_attempt_at)),
        })
    }
}
