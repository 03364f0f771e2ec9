//! `/metrics` in the Prometheus (OpenMetrics) text format. HTTP traffic and
//! limit refusals are counted in this process; the state of the custody
//! (open requests, releases, lockouts, outbox backlog, chain length) is read
//! from the database at each scrape, so every replica reports the same.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What `/metrics` says about the watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchGauges {
    pub files_read: i64,
    pub files_rejected: i64,
    pub events_read: i64,
    pub root_events: i64,
    /// The newest delivery time read, over every prefix (ms).
    pub newest_file_at: Option<i64>,
    pub open_findings: i64,
}

/// What the database says at a scrape.
#[derive(Debug, Default, Clone)]
pub struct CustodyGauges {
    pub requests_by_state: Vec<(String, i64)>,
    pub custodians_locked_out: i64,
    pub alerts_by_state: Vec<(String, i64)>,
    pub audit_head_seq: i64,
    /// Events each SIEM sink has yet to receive.
    pub sink_backlog: Vec<(String, i64)>,
    /// The witness of the audit chain (this process's).
    pub witness: Option<crate::crypto::chain::Checkpoint>,
    /// This process found the chain broken and refuses writes.
    pub chain_broken: bool,
    /// The root watch, when it is on.
    pub watch: Option<WatchGauges>,
    /// The time of the scrape (ms), for the watch's lag.
    pub now_ms: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabels {
    seq: String,
    hash: String,
    ts_ms: String,
    kid: String,
    signature: String,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    limit_refusals: Family<CodeLabels, Counter>,
    lockouts: Counter,
    auth_refusals: Family<CodeLabels, Counter>,
    requests: Family<StateLabels, Gauge>,
    released: Gauge,
    locked_out: Gauge,
    alerts: Family<StateLabels, Gauge>,
    sink_backlog: Family<SinkLabels, Gauge>,
    audit_length: Gauge,
    verify_ok: Gauge,
    verify_at: Gauge,
    verify_seq: Gauge,
    witness_seq: Gauge,
    witness: Family<WitnessLabels, Gauge>,
    chain_broken: Gauge,
    trail_files: Family<StatusLabels, Gauge>,
    trail_events: Gauge,
    trail_root_events: Gauge,
    trail_lag: Gauge,
    root_unmatched: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            limit_refusals: Family::default(),
            lockouts: Counter::default(),
            auth_refusals: Family::default(),
            requests: Family::default(),
            released: Gauge::default(),
            locked_out: Gauge::default(),
            alerts: Family::default(),
            sink_backlog: Family::default(),
            audit_length: Gauge::default(),
            verify_ok: Gauge::default(),
            verify_at: Gauge::default(),
            verify_seq: Gauge::default(),
            witness_seq: Gauge::default(),
            witness: Family::default(),
            chain_broken: Gauge::default(),
            trail_files: Family::default(),
            trail_events: Gauge::default(),
            trail_root_events: Gauge::default(),
            trail_lag: Gauge::default(),
            root_unmatched: Gauge::default(),
            registry: Registry::with_prefix("breakglass"),
        };
        m.registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            m.http_requests.clone(),
        );
        m.registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the response head), by route template and method",
            m.http_duration.clone(),
        );
        m.registry.register(
            "limit_refusals",
            "Requests refused by a limit, by error code",
            m.limit_refusals.clone(),
        );
        m.registry.register(
            "auth_refusals",
            "Refused bearer tokens, by error code (this process; audited per address and minute)",
            m.auth_refusals.clone(),
        );
        m.registry.register(
            "totp_lockouts",
            "Custodians locked out after repeated wrong TOTP codes (this process)",
            m.lockouts.clone(),
        );
        m.registry.register(
            "requests",
            "Access requests in the database, by state",
            m.requests.clone(),
        );
        m.registry.register(
            "released_requests",
            "Access requests whose credential was released (all time)",
            m.released.clone(),
        );
        m.registry.register(
            "custodians_locked_out",
            "Custodians locked out now",
            m.locked_out.clone(),
        );
        m.registry.register(
            "alert_outbox",
            "Alert deliveries in the outbox, by state",
            m.alerts.clone(),
        );
        m.registry.register(
            "audit_sink_backlog_events",
            "Audit events a SIEM sink has not yet acknowledged",
            m.sink_backlog.clone(),
        );
        m.registry.register(
            "audit_chain_length",
            "Sequence number of the audit chain's head",
            m.audit_length.clone(),
        );
        m.registry.register(
            "audit_last_verification_ok",
            "1 if this process's last verification of the audit chain passed, 0 if it failed, -1 if none ran",
            m.verify_ok.clone(),
        );
        m.registry.register(
            "audit_last_verification_timestamp_seconds",
            "When this process last verified the audit chain (Unix seconds, 0 if never)",
            m.verify_at.clone(),
        );
        m.registry.register(
            "audit_last_verification_head_seq",
            "The head sequence number the last verification reached",
            m.verify_seq.clone(),
        );
        m.registry.register(
            "audit_witness_seq",
            "Sequence number of the witness: the last signed checkpoint this process verified (0 if none)",
            m.witness_seq.clone(),
        );
        m.registry.register(
            "audit_witness",
            "The witness checkpoint itself (seq, hash, time, key id, Ed25519 signature), so that the metrics store keeps a copy outside the database",
            m.witness.clone(),
        );
        m.registry.register(
            "audit_chain_broken",
            "1 if this process found the audit chain broken and refuses writes",
            m.chain_broken.clone(),
        );
        m.registry.register(
            "cloudtrail_files",
            "CloudTrail log files the root watch handled, by status (read, rejected)",
            m.trail_files.clone(),
        );
        m.registry.register(
            "cloudtrail_events",
            "CloudTrail events in the files the root watch read",
            m.trail_events.clone(),
        );
        m.registry.register(
            "cloudtrail_root_events",
            "Root activity events the root watch found",
            m.trail_root_events.clone(),
        );
        m.registry.register(
            "cloudtrail_lag_seconds",
            "Seconds between now and the delivery time of the newest CloudTrail file read (-1 if none yet)",
            m.trail_lag.clone(),
        );
        m.registry.register(
            "root_unmatched_findings",
            "Root activity no release and no brokered session accounts for, not yet acknowledged",
            m.root_unmatched.clone(),
        );
        m.verify_ok.set(-1);
        m.trail_lag.set(-1);
        m
    }

    pub fn observe_http(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.into(),
                method: method.into(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.into(),
                method: method.into(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn limit_refused(&self, code: crate::domain::Code) {
        self.limit_refusals
            .get_or_create(&CodeLabels {
                code: code.as_str().into(),
            })
            .inc();
    }

    pub fn auth_refused(&self, code: crate::domain::Code) {
        self.auth_refusals
            .get_or_create(&CodeLabels {
                code: code.as_str().into(),
            })
            .inc();
    }

    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    pub fn verified(&self, ok: bool, head_seq: i64, at_ms: i64) {
        self.verify_ok.set(i64::from(ok));
        self.verify_at.set(at_ms / 1000);
        self.verify_seq.set(head_seq);
    }

    /// The exposition, with the database's figures as of now.
    pub fn render(&self, g: &CustodyGauges) -> String {
        set_family(&self.requests, &g.requests_by_state, |s| StateLabels {
            state: s.into(),
        });
        // Every state is reported, zero included, so a query for a state
        // that has no requests yet finds a series.
        for state in ["pending", "approved", "denied", "released"] {
            let _ = self.requests.get_or_create(&StateLabels {
                state: state.into(),
            });
        }
        // A request is released exactly when its state says so.
        let released = g
            .requests_by_state
            .iter()
            .filter(|(state, _)| state == "released")
            .map(|(_, n)| *n)
            .sum();
        self.released.set(released);
        self.locked_out.set(g.custodians_locked_out);
        set_family(&self.alerts, &g.alerts_by_state, |s| StateLabels {
            state: s.into(),
        });
        set_family(&self.sink_backlog, &g.sink_backlog, |s| SinkLabels {
            sink: s.into(),
        });
        self.audit_length.set(g.audit_head_seq);
        self.witness.clear();
        self.witness_seq
            .set(g.witness.as_ref().map_or(0, |w| w.seq));
        if let Some(w) = &g.witness {
            self.witness
                .get_or_create(&WitnessLabels {
                    seq: w.seq.to_string(),
                    hash: w.hash.clone(),
                    ts_ms: w.ts_ms.to_string(),
                    kid: w.kid.clone(),
                    signature: w.signature.clone(),
                })
                .set(1);
        }
        self.chain_broken.set(i64::from(g.chain_broken));
        if let Some(w) = &g.watch {
            self.trail_files
                .get_or_create(&StatusLabels {
                    status: "read".into(),
                })
                .set(w.files_read);
            self.trail_files
                .get_or_create(&StatusLabels {
                    status: "rejected".into(),
                })
                .set(w.files_rejected);
            self.trail_events.set(w.events_read);
            self.trail_root_events.set(w.root_events);
            self.trail_lag.set(
                w.newest_file_at
                    .map_or(-1, |at| ((g.now_ms - at) / 1000).max(0)),
            );
            self.root_unmatched.set(w.open_findings);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Replace a gauge family's series with `values` (labels that vanished from
/// the database vanish from the exposition).
fn set_family<L>(family: &Family<L, Gauge>, values: &[(String, i64)], label: impl Fn(&str) -> L)
where
    L: Clone + std::hash::Hash + Eq,
{
    family.clear();
    for (k, v) in values {
        family.get_or_create(&label(k)).set(*v);
    }
}
