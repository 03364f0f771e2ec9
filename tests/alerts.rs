//! Alerts through a durable outbox: a real local receiver that fails the
//! first attempts gets every alert exactly once, in order per request, with
//! a valid signature; a receiver down past the retry budget leaves a dead
//! letter that a manual retry delivers; two replicas never deliver twice;
//! a server stopped between the action and the delivery delivers after the
//! restart.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use breakglass::app::ticker::Ticker;
use breakglass::config::{AlertChannel, Alerts, Config};
use breakglass::domain::Role;
use common::{Backend, TestApp, World};
use serde_json::{json, Value};

both_backends!(every_alert_arrives_once_in_order_per_request_with_a_valid_signature,);

const HMAC_KEY: &[u8] = b"0123456789abcdef0123456789abcdef-webhook";
const ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000000";

/// What the receiver accepted: (path, delivery id, signature, body).
type Log = Arc<Mutex<Vec<(String, String, String, Value)>>>;

struct Receiver {
    base: String,
    accepted: Log,
    posts: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

async fn receiver(fail_first: usize) -> Receiver {
    use axum::http::{HeaderMap, StatusCode, Uri};
    let accepted: Log = Arc::default();
    let posts = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let (a, p, d) = (accepted.clone(), posts.clone(), down.clone());
    let app = axum::Router::new().fallback(axum::routing::post(
        move |uri: Uri, headers: HeaderMap, body: String| {
            let (a, p, d, seen) = (a.clone(), p.clone(), d.clone(), seen.clone());
            async move {
                p.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let path = uri.path().to_string();
                {
                    let mut s = seen.lock().unwrap();
                    let n = s.entry(path.clone()).or_default();
                    *n += 1;
                    if *n <= fail_first {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                }
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let sig = h("x-breakglass-signature");
                if path == "/hook" {
                    // Verify as a receiver would: t=UNIX,v1=HMAC(key, "UNIX." + body).
                    let unix: i64 = sig
                        .split(',')
                        .next()
                        .and_then(|t| t.strip_prefix("t="))
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    let expected =
                        breakglass::app::audit_ship::signature(HMAC_KEY, unix, body.as_bytes());
                    if expected != sig {
                        return StatusCode::UNAUTHORIZED;
                    }
                }
                a.lock().unwrap().push((
                    path,
                    h("x-breakglass-delivery"),
                    sig,
                    serde_json::from_str(&body).unwrap(),
                ));
                StatusCode::ACCEPTED
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        base,
        accepted,
        posts,
        down,
    }
}

fn alerts_config(base: &str, max_attempts: i64) -> impl Fn(&mut Config) {
    let base = base.to_string();
    move |c: &mut Config| {
        let events = |kind: &str| {
            breakglass::config::default_alert_events(kind)
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        c.settings.alerts = Some(Alerts {
            public_url: Some("https://bg.example".into()),
            max_attempts,
            channels: vec![
                AlertChannel {
                    name: "security".into(),
                    kind: "slack".into(),
                    url: format!("{base}/slack"),
                    events: events("slack"),
                    secret: None,
                },
                AlertChannel {
                    name: "pager".into(),
                    kind: "pagerduty".into(),
                    url: format!("{base}/pd"),
                    events: events("pagerduty"),
                    secret: Some(Arc::new(zeroize::Zeroizing::new(
                        ROUTING_KEY.as_bytes().to_vec(),
                    ))),
                },
                AlertChannel {
                    name: "siem".into(),
                    kind: "webhook".into(),
                    url: format!("{base}/hook"),
                    events: events("webhook"),
                    secret: Some(Arc::new(zeroize::Zeroizing::new(HMAC_KEY.to_vec()))),
                },
            ],
        });
    }
}

/// Let time pass (back-offs) and step the background rounds until `done`
/// holds, or fail.
async fn wait_until(t: &TestApp, what: &str, mut done: impl FnMut() -> bool) {
    let mut ticker = Ticker::default();
    for _ in 0..300 {
        if done() {
            return;
        }
        t.clock.advance_secs(700);
        t.app.tick(&mut ticker).await;
    }
    panic!("timed out waiting for {what}");
}

fn bodies(r: &Receiver, path: &str) -> Vec<Value> {
    r.accepted
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, ..)| p == path)
        .map(|(.., b)| b.clone())
        .collect()
}

async fn every_alert_arrives_once_in_order_per_request_with_a_valid_signature(b: Backend) {
    let r = receiver(2).await;
    let w = World::with(TestApp::start_configured(b, &alerts_config(&r.base, 8)).await).await;
    let t = &w.t;
    let id = w.approved_request().await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    // Slack and the webhook: created, approved, released. PagerDuty: a
    // trigger, an acknowledgement per approval and for the quorum, a resolve.
    wait_until(t, "every alert", || {
        bodies(&r, "/slack").len() == 3
            && bodies(&r, "/hook").len() == 3
            && bodies(&r, "/pd").len() == 6
    })
    .await;
    assert!(
        r.posts.load(Ordering::SeqCst) >= 12 + 6,
        "the first attempts failed"
    );

    // Exactly once: no delivery id accepted twice.
    let log = r.accepted.lock().unwrap().clone();
    let mut ids: Vec<&String> = log.iter().map(|(_, id, ..)| id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an alert was delivered twice");

    // In order per request, with one dedup key.
    let pd = bodies(&r, "/pd");
    let actions: Vec<&str> = pd
        .iter()
        .map(|b| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "trigger",
            "acknowledge",
            "acknowledge",
            "acknowledge",
            "acknowledge",
            "resolve"
        ]
    );
    assert!(pd
        .iter()
        .all(|b| b["dedup_key"] == format!("breakglass-request-{id}")));
    assert!(pd.iter().all(|b| b["routing_key"] == ROUTING_KEY));
    assert_eq!(pd[0]["payload"]["severity"], "error");
    let slack = bodies(&r, "/slack");
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.contains("oncall asks to break the glass on aws-prod-root (account 123456789012): \"prod is down\", ticket INC-42; needs 2 of sre AND 1 of security")
            && text.contains(&format!("<https://bg.example/console/requests/{id}|open>")),
        "{text}"
    );
    assert!(slack[1]["text"]
        .as_str()
        .unwrap()
        .contains("approved by ann, bob, sec"));
    assert!(slack[2]["text"]
        .as_str()
        .unwrap()
        .contains("oncall RELEASED aws-prod-root"));
    let hook = bodies(&r, "/hook");
    let seqs: Vec<i64> = hook
        .iter()
        .map(|b| b["event"]["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    // No secret in any alert, nor the channel secrets in the outbox.
    let all = serde_json::to_string(&log.iter().map(|(.., b)| b).collect::<Vec<_>>()).unwrap();
    assert!(!all.contains(common::PASSWORD) && !all.contains(common::MFA_SEED));
    // (Time moved on while waiting: fresh tokens.)
    let admin = t.token("root-admin", &[Role::Admin]);
    let requester = t.token("oncall", &[Role::Requester]);
    let listed = t.get("/v1/alerts", &admin).await.ok();
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(ROUTING_KEY));
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["state"] == "delivered"));
    t.get("/v1/alerts", &requester)
        .await
        .refused(403, "forbidden_role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_past_the_retry_budget_dead_letters_and_a_retry_delivers() {
    let r = receiver(0).await;
    r.down.store(true, Ordering::SeqCst);
    let w =
        World::with(TestApp::start_configured(Backend::Sqlite, &alerts_config(&r.base, 3)).await)
            .await;
    let t = &w.t;
    w.request().await;
    let dead = || async {
        let admin = t.token("root-admin", &[Role::Admin]);
        t.get("/v1/alerts?state=dead", &admin).await.ok()
    };
    let mut listed = Value::Null;
    let mut ticker = Ticker::default();
    for _ in 0..300 {
        listed = dead().await;
        if listed.as_array().unwrap().len() == 3 {
            break;
        }
        t.clock.advance_secs(700);
        t.app.tick(&mut ticker).await;
    }
    let dead_letters = listed.as_array().unwrap().clone();
    assert_eq!(dead_letters.len(), 3, "{listed}");
    assert!(dead_letters.iter().all(|a| a["attempts"] == 3));
    assert!(dead_letters[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("HTTP 503"));
    assert!(r.accepted.lock().unwrap().is_empty());
    // The receiver is back; an admin retries the dead letters.
    r.down.store(false, Ordering::SeqCst);
    let admin = t.token("root-admin", &[Role::Admin]);
    for a in &dead_letters {
        let id = a["id"].as_str().unwrap();
        t.post(format!("/v1/alerts/{id}/retry"), &admin, json!({}))
            .await
            .ok();
        t.post(format!("/v1/alerts/{id}/retry"), &admin, json!({}))
            .await
            .refused(409, "alert_not_dead");
    }
    wait_until(t, "the retried alerts", || {
        r.accepted.lock().unwrap().len() == 3
    })
    .await;
    assert!(t.audit().await.iter().any(|e| e.action == "alert.retry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_database_deliver_each_alert_once() {
    let r = receiver(0).await;
    let config = alerts_config(&r.base, 8);
    let w = World::with(TestApp::start_configured(Backend::Postgres, &config).await).await;
    let t = &w.t;
    let other = t.successor_configured(&config).await;
    for _ in 0..8 {
        w.request().await;
    }
    wait_until(t, "every alert", || {
        bodies(&r, "/slack").len() == 8
            && bodies(&r, "/pd").len() == 8
            && bodies(&r, "/hook").len() == 8
    })
    .await;
    // Both replicas run more rounds of their own: neither delivers again.
    let (mut mine, mut theirs) = (Ticker::default(), Ticker::default());
    for _ in 0..3 {
        t.app.tick(&mut mine).await;
        other.app.tick(&mut theirs).await;
    }
    let log = r.accepted.lock().unwrap().clone();
    assert_eq!(log.len(), 24, "each alert exactly once");
    let mut ids: Vec<&String> = log.iter().map(|(_, id, ..)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24);
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_between_the_action_and_the_delivery_delivers_after_restart() {
    let r = receiver(0).await;
    r.down.store(true, Ordering::SeqCst);
    let config = alerts_config(&r.base, 8);
    let w = World::with(TestApp::start_configured(Backend::Sqlite, &config).await).await;
    let t = &w.t;
    let id = w.request().await;
    t.stop().await;
    r.down.store(false, Ordering::SeqCst);
    let restarted = t.successor_configured(&config).await;
    wait_until(&restarted, "the alerts after restart", || {
        bodies(&r, "/slack").len() == 1
            && bodies(&r, "/pd").len() == 1
            && bodies(&r, "/hook").len() == 1
    })
    .await;
    assert_eq!(
        bodies(&r, "/pd")[0]["dedup_key"],
        format!("breakglass-request-{id}")
    );
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_on_the_host_alert_too() {
    use std::os::unix::fs::PermissionsExt;
    let r = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("webhook.key");
    std::fs::write(&key, HMAC_KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config_file = dir.path().join("breakglass.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[alerts.channel]]\nname = \"siem\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nhmac_key_file = \"{}\"\nevents = [\"token.issue\"]\n",
            r.base,
            key.display()
        ),
    )
    .unwrap();
    // The server reads the same file.
    let loaded = Config::load(Some(&config_file), Default::default()).unwrap();
    let alerts = loaded.settings.alerts.clone();
    let t = TestApp::start_configured(Backend::Sqlite, &move |c| {
        c.settings.alerts = alerts.clone();
    })
    .await;
    // A token minted on the host, with no server involved.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args([
            "token",
            "issue",
            "--subject",
            "alice",
            "--role",
            "auditor",
            "--config",
        ])
        .arg(&config_file)
        .args(["--database-url", &t.database_url, "--data-dir"])
        .arg(&t.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(&t, "the host event's alert", || {
        bodies(&r, "/hook").len() == 1
    })
    .await;
    let b = &bodies(&r, "/hook")[0];
    assert_eq!(b["event"]["action"], "token.issue");
    assert_eq!(b["event"]["details"]["subject"], "alice");
    t.stop().await;
}
