//! Compliance-grade audit: signed checkpoints catch what the bare hash
//! chain cannot (a truncated tail with its head row moved back, a chain
//! rewritten from some event on); every kind of tampering done directly in
//! the database is named by the online verification, by `audit verify
//! --file` on an export, and by an independent Python verifier; the OCSF
//! export validates against the OCSF class; the auditor API filters and
//! pages stably, and every read is audited.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use breakglass::crypto::chain::{AuditEvent, GENESIS};
use common::{cli, Backend, World};
use serde_json::{json, Value};

both_backends!(
    an_intact_log_verifies_online_offline_and_in_python,
    an_edited_event_is_named,
    a_deleted_event_is_named,
    an_inserted_event_is_named,
    two_swapped_events_are_named,
    a_truncated_tail_with_its_head_moved_back_is_caught_by_a_checkpoint,
    a_chain_rehashed_without_the_key_is_caught_by_a_checkpoint,
    a_forged_checkpoint_is_named,
    the_auditor_filters_and_pages_stably_and_every_read_is_audited,
    the_ocsf_export_validates_against_the_api_activity_class,
    the_siem_receives_every_event_once_in_order_through_receiver_failures,
    archived_and_pruned_events_leave_a_verifiable_log,
);

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");
const VERIFY_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_audit.py");
const OCSF_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocsf/validate.py");

/// A log with two signed checkpoints and events after the second.
struct Logged {
    w: World,
    dir: tempfile::TempDir,
    key: PathBuf,
    cp1: i64,
    cp2: i64,
    /// Every signed checkpoint, in order: the two above and those signed
    /// with each request and decision.
    checkpoints: Vec<i64>,
}

impl Logged {
    /// The first checkpoint after event `seq`.
    fn first_checkpoint_after(&self, seq: i64) -> i64 {
        *self.checkpoints.iter().find(|&&c| c > seq).unwrap()
    }
}

async fn logged(b: Backend) -> Logged {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.approved_request().await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    let cp1 = t
        .post("/v1/audit/checkpoints", &w.auditor, json!({}))
        .await
        .ok()["seq"]
        .as_i64()
        .unwrap();
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    t.next_step();
    let cp2 = t
        .post("/v1/audit/checkpoints", &w.admin, json!({}))
        .await
        .ok()["seq"]
        .as_i64()
        .unwrap();
    w.approve(&id, "bob", &w.bob).await.ok();
    assert!(cp2 >= cp1 + 3, "{cp1} {cp2}");
    // The auditor keeps the published key where the service cannot write.
    let dir = tempfile::tempdir().unwrap();
    let key_json = t.get("/.well-known/breakglass-audit-key", "").await.ok();
    let key = dir.path().join("audit-key.json");
    std::fs::write(&key, key_json.to_string()).unwrap();
    let mut tx = w.t.app.store.begin_read().await.unwrap();
    let checkpoints = tx
        .checkpoints(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    tx.rollback().await.unwrap();
    Logged {
        w,
        dir,
        key,
        cp1,
        cp2,
        checkpoints,
    }
}

impl Logged {
    fn export(&self, name: &str, format: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        let (code, stdout, err) = cli(
            &[
                "audit",
                "export",
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
            ],
            &self.w.t.base,
            &self.w.auditor,
        );
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains("exported"), "{stdout}");
        out
    }

    fn offline(&self, file: &Path) -> (i32, String) {
        let (code, out, err) = cli(
            &[
                "audit",
                "verify",
                "--file",
                file.to_str().unwrap(),
                "--public-key",
                self.key.to_str().unwrap(),
            ],
            "http://127.0.0.1:9",
            "",
        );
        (code, out + &err)
    }

    fn python(&self, file: &Path) -> (i32, String) {
        let out = Command::new("python3")
            .arg(VERIFY_PY)
            .arg("--public-key")
            .arg(&self.key)
            .arg(file)
            .output()
            .expect("python3 must be installed");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    async fn online(&self) -> Value {
        self.w
            .t
            .post("/v1/audit/verify", &self.w.auditor, json!({}))
            .await
            .ok()
    }

    /// Online, offline and in Python: broken at `seq`, with `words` in
    /// the reason.
    async fn assert_broken_at(&self, seq: i64, words: &str) {
        let v = self.online().await;
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["first_break"]["seq"], seq, "{v}");
        let reason = v["first_break"]["reason"].as_str().unwrap();
        assert!(reason.contains(words), "{reason}");
        let file = self.export("tampered.jsonl", "jsonl");
        let (code, out) = self.offline(&file);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("BROKEN at event {seq}:")), "{out}");
        let (code, out) = self.python(&file);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("BROKEN at event {seq}:")), "{out}");
    }
}

async fn an_intact_log_verifies_online_offline_and_in_python(b: Backend) {
    let l = logged(b).await;
    let v = l.online().await;
    let last = *l.checkpoints.last().unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["signed_through"], last);
    assert_eq!(v["checkpoints_checked"], l.checkpoints.len());
    let file = l.export("clean.jsonl", "jsonl");
    let (code, out) = l.offline(&file);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("audit chain OK") && out.contains(&format!("signed through event {last}")),
        "{out}"
    );
    let (code, out) = l.python(&file);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("signed through event {last}")),
        "{out}"
    );

    // The file itself, edited after export: both verifiers name the line's event.
    let text = std::fs::read_to_string(&file).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if v["record"] == "event" && v["seq"] == 4 {
                v["actor"] = json!("mallory");
            }
            v.to_string()
        })
        .collect();
    let bad = l.dir.path().join("edited.jsonl");
    std::fs::write(&bad, edited.join("\n") + "\n").unwrap();
    assert!(l
        .offline(&bad)
        .1
        .contains("BROKEN at event 4: event 4 was altered"));
    assert!(l
        .python(&bad)
        .1
        .contains("BROKEN at event 4: event 4 was altered"));
    // A file cut short loses its head record: named, not passed.
    let cut: Vec<&str> = text.lines().take(6).collect();
    let short = l.dir.path().join("short.jsonl");
    std::fs::write(&short, cut.join("\n") + "\n").unwrap();
    assert!(l.offline(&short).1.contains("cut short"));
    assert!(l.python(&short).1.contains("cut short"));
    // Without a trusted key, a key the file names is used and shown.
    let (code, out, _) = cli(
        &["audit", "verify", "--file", file.to_str().unwrap()],
        "http://127.0.0.1:9",
        "",
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("compare it with the key the service publishes"),
        "{out}"
    );
    // An export by a service with another key does not pass as this one's.
    let other = l.dir.path().join("other-key.json");
    let foreign = breakglass::crypto::chain::AuditKey::new(
        breakglass::crypto::signing::SigningKey::generate().public_key(),
    );
    std::fs::write(&other, serde_json::to_string(&foreign).unwrap()).unwrap();
    let (code, out, _) = cli(
        &[
            "audit",
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--public-key",
            other.to_str().unwrap(),
        ],
        "http://127.0.0.1:9",
        "",
    );
    assert_eq!(code, 1);
    assert!(out.contains("not a trusted audit key"), "{out}");
}

async fn an_edited_event_is_named(b: Backend) {
    let l = logged(b).await;
    l.w.t
        .raw_sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5")
        .await;
    l.assert_broken_at(5, "altered").await;
}

async fn a_deleted_event_is_named(b: Backend) {
    let l = logged(b).await;
    l.w.t
        .raw_sql("DELETE FROM audit_events WHERE seq = 6")
        .await;
    l.assert_broken_at(6, "missing").await;
}

async fn an_inserted_event_is_named(b: Backend) {
    let l = logged(b).await;
    let k = 7;
    let mut forged = AuditEvent {
        seq: k,
        ts_ms: 1_800_000_000_000,
        actor: "mallory".into(),
        action: "request.approve".into(),
        target: "request:forged".into(),
        outcome: "success".into(),
        code: None,
        details: json!({}),
        prev_hash: "f".repeat(64),
        hash: String::new(),
    };
    forged.hash = forged.compute_hash().unwrap();
    l.w.t
        .raw_sql(&format!(
            "UPDATE audit_events SET seq = -seq WHERE seq >= {k};
             UPDATE audit_events SET seq = 1 - seq WHERE seq < 0;
             INSERT INTO audit_events (seq, ts_ms, actor, action, target, outcome, code, details, prev_hash, hash)
               VALUES ({k}, {}, 'mallory', 'request.approve', 'request:forged', 'success', NULL, '{{}}', '{}', '{}');
             UPDATE audit_head SET seq = seq + 1;",
            forged.ts_ms, forged.prev_hash, forged.hash
        ))
        .await;
    l.assert_broken_at(k, "does not link").await;
}

async fn two_swapped_events_are_named(b: Backend) {
    let l = logged(b).await;
    l.w.t
        .raw_sql(
            "UPDATE audit_events SET seq = -1 WHERE seq = 8;
             UPDATE audit_events SET seq = 8 WHERE seq = 9;
             UPDATE audit_events SET seq = 9 WHERE seq = -1;",
        )
        .await;
    l.assert_broken_at(8, "altered").await;
}

async fn a_truncated_tail_with_its_head_moved_back_is_caught_by_a_checkpoint(b: Backend) {
    let l = logged(b).await;
    let t = &l.w.t;
    // Events that no checkpoint signs yet (audited reads), then one that
    // signs them all: the tail cut three events before it.
    for _ in 0..5 {
        t.get("/v1/audit/events", &l.w.auditor).await.ok();
    }
    let covering = t
        .post("/v1/audit/checkpoints", &l.w.auditor, json!({}))
        .await
        .ok()["seq"]
        .as_i64()
        .unwrap();
    let keep = covering - 3;
    let hash = t
        .audit()
        .await
        .into_iter()
        .find(|e| e.seq == keep)
        .unwrap()
        .hash;
    // The bare chain cannot see this: the head row agrees with the tail.
    t.raw_sql(&format!(
        "DELETE FROM audit_events WHERE seq > {keep};
         UPDATE audit_head SET seq = {keep}, hash = '{hash}';"
    ))
    .await;
    assert!(t.verify().await, "the unsigned chain alone passes");
    let v = l.online().await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"]["seq"], keep + 1);
    let reason = v["first_break"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("truncated") && reason.contains(&format!("covers event {covering}")),
        "{reason}"
    );
    // The export (after the verification's own event) and both offline
    // verifiers say the same about the signed event that is gone.
    let file = l.export("truncated.jsonl", "jsonl");
    for (code, out) in [l.offline(&file), l.python(&file)] {
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("BROKEN"), "{out}");
    }
    let (_, out) = l.offline(&file);
    assert!(
        out.contains("truncated") && out.contains(&format!("covers event {covering}")),
        "{out}"
    );
}

async fn a_chain_rehashed_without_the_key_is_caught_by_a_checkpoint(b: Backend) {
    let l = logged(b).await;
    let t = &l.w.t;
    // Edit event 3, then recompute every later hash and the head: a
    // consistent chain that the unsigned verification accepts.
    let mut prev = GENESIS.to_string();
    let mut sql = String::new();
    for mut e in t.audit().await {
        if e.seq == 3 {
            e.actor = "mallory".into();
        }
        if e.seq >= 3 {
            e.prev_hash = prev.clone();
            e.hash = e.compute_hash().unwrap();
            sql += &format!(
                "UPDATE audit_events SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {};\n",
                e.actor, e.prev_hash, e.hash, e.seq
            );
        }
        prev = e.hash.clone();
        sql += &format!(
            "UPDATE audit_head SET seq = {}, hash = '{}';\n",
            e.seq, e.hash
        );
    }
    t.raw_sql(&sql).await;
    assert!(t.verify().await, "the unsigned chain alone passes");
    // The first checkpoint after event 3 (the one signed with the first
    // request) catches it.
    l.assert_broken_at(l.first_checkpoint_after(3), "signed checkpoint")
        .await;
}

async fn a_forged_checkpoint_is_named(b: Backend) {
    let l = logged(b).await;
    l.w.t
        .raw_sql(&format!(
            "UPDATE audit_checkpoints SET ts_ms = ts_ms + 1 WHERE seq = {}",
            l.cp2
        ))
        .await;
    l.assert_broken_at(l.cp2, "bad signature").await;
}

async fn the_auditor_filters_and_pages_stably_and_every_read_is_audited(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.approved_request().await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    let get = |q: String| {
        let tok = w.auditor.clone();
        async move { t.get(format!("/v1/audit/events?{q}"), &tok).await }
    };
    // Filters: actor, action, outcome, credential, time range.
    let v = get("actor=ann&limit=1000".into()).await.ok();
    assert!(!v.as_array().unwrap().is_empty());
    assert!(v.as_array().unwrap().iter().all(|e| e["actor"] == "ann"));
    let v = get("action=request.release".into()).await.ok();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let v = get("credential=aws-prod-root&limit=1000".into()).await.ok();
    let actions: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "credential.deposit",
        "request.create",
        "request.approve",
        "request.release",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    // A wrong code: the refusal is found by outcome.
    let id2 = w.request().await;
    t.post(
        format!("/v1/requests/{id2}/approve"),
        &w.ann,
        json!({ "code": t.wrong_code("ann") }),
    )
    .await;
    let v = get("outcome=refused".into()).await.ok();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["outcome"] == "refused"));
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["code"] == "invalid_totp"));
    let future = {
        use breakglass::clock::Clock;
        breakglass::clock::rfc3339(t.clock.now_ms() + 3_600_000)
    };
    let v = get(format!("since={future}")).await.ok();
    assert!(v.as_array().unwrap().is_empty());
    let v = get(format!("until={future}&actor=oncall")).await.ok();
    assert!(!v.as_array().unwrap().is_empty());
    get("since=yesterday".into())
        .await
        .refused(400, "invalid_query");
    get("outcome=maybe".into())
        .await
        .refused(400, "invalid_query");
    get("colour=red".into()).await.refused(400, "invalid_query");
    t.get("/v1/audit/events", &w.requester)
        .await
        .refused(403, "forbidden_role");

    // Cursor pagination of a filtered view while events are appended: every
    // matching event exactly once, in order.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = get(format!("after={after}&limit=3&actor=ann")).await.ok();
        let page = page.as_array().unwrap().clone();
        // Appends between pages (by ann, so they match the filter).
        t.next_step();
        let id = w.request().await;
        w.approve(&id, "ann", &w.ann).await;
        let Some(last) = page.last() else { break };
        after = last["seq"].as_i64().unwrap();
        seen.extend(page.iter().map(|e| e["seq"].as_i64().unwrap()));
        if seen.len() > 200 {
            panic!("pagination does not end");
        }
        if page.len() < 3 {
            break;
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "each event once, in chain order");
    let all: Vec<i64> = t
        .audit()
        .await
        .iter()
        .filter(|e| e.actor == "ann" && e.seq <= after)
        .map(|e| e.seq)
        .collect();
    assert_eq!(seen, all);

    // Every read was audited, with its filter.
    let events = t.audit().await;
    let reads: Vec<&AuditEvent> = events.iter().filter(|e| e.action == "audit.list").collect();
    assert!(reads.len() >= 8);
    assert!(reads
        .iter()
        .any(|e| e.details["filter"]["credential"] == "aws-prod-root"));

    // Checkpoints are signed in the background when the interval passes
    // (besides those signed with each request and decision).
    let head = t.audit().await.last().unwrap().seq;
    t.clock.advance_secs(6 * 60);
    t.app.checkpoint_if_due().await.unwrap();
    let signed = t
        .get("/v1/audit/checkpoints?limit=1000", &w.auditor)
        .await
        .ok();
    let last = signed.as_array().unwrap().last().unwrap().clone();
    assert!(last["seq"].as_i64().unwrap() >= head, "{signed}");
    let v = t.post("/v1/audit/verify", &w.auditor, json!({})).await.ok();
    assert_eq!(v["ok"], true);
    assert_eq!(v["signed_through"], last["seq"]);
}

async fn the_ocsf_export_validates_against_the_api_activity_class(b: Backend) {
    let l = logged(b).await;
    // A refusal too, so failures are mapped.
    let id = l.w.request().await;
    l.w.t
        .post(
            format!("/v1/requests/{id}/approve"),
            &l.w.ann,
            json!({ "code": l.w.t.wrong_code("ann") }),
        )
        .await;
    let file = l.export("audit.ocsf.jsonl", "ocsf");
    let out = Command::new("python3")
        .arg(OCSF_PY)
        .arg(&file)
        .output()
        .expect("python3 must be installed");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ocsf OK"), "{text}");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let release = lines
        .iter()
        .find(|r| r["api"]["operation"] == "request.release")
        .unwrap();
    assert_eq!(release["severity_id"], 4);
    assert_eq!(release["activity_id"], 2);
    assert_eq!(release["cloud"]["account"]["uid"], "123456789012");
    let refused = lines
        .iter()
        .find(|r| r["status_code"] == "invalid_totp")
        .unwrap();
    assert_eq!(refused["status_id"], 2);
    // No secret travels to the SIEM either.
    let all = std::fs::read_to_string(&file).unwrap();
    assert!(!all.contains(common::PASSWORD) && !all.contains(common::MFA_SEED));
    // Unknown formats are refused.
    l.w.t
        .get("/v1/audit/export?format=csv", &l.w.auditor)
        .await
        .refused(400, "invalid_query");
}

/// A SIEM stand-in: refuses the first `fail_first` POSTs with 500, then
/// keeps every body whose signature checks out.
struct Receiver {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    posts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn receiver(fail_first: usize, key: Vec<u8>) -> Receiver {
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let posts = Arc::new(AtomicUsize::new(0));
    let (b2, p2) = (bodies.clone(), posts.clone());
    let app = axum::Router::new().route(
        "/ingest",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (bodies, posts, key) = (b2.clone(), p2.clone(), key.clone());
            async move {
                let n = posts.fetch_add(1, Ordering::SeqCst);
                if n < fail_first {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                // Verify the documented signature: t=UNIX,v1=HEX(HMAC(key, "UNIX." + body)).
                let sig = headers["x-breakglass-signature"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let (t, v1) = sig.split_once(",v1=").unwrap();
                let unix: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
                let expected = breakglass::app::audit_ship::signature(&key, unix, body.as_bytes());
                if expected != sig || v1.len() != 64 {
                    return StatusCode::UNAUTHORIZED;
                }
                bodies.lock().unwrap().push(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, bodies, posts }
}

async fn the_siem_receives_every_event_once_in_order_through_receiver_failures(b: Backend) {
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let r = receiver(2, key.clone()).await;
    let url = r.url.clone();
    let hmac = std::sync::Arc::new(zeroize::Zeroizing::new(key));
    let t = common::TestApp::start_configured(b, &move |c| {
        c.settings.audit_sink = Some(breakglass::config::AuditSink {
            url: url.clone(),
            ocsf: false,
            batch_size: 7,
            hmac_key: Some(hmac.clone()),
            timeout: std::time::Duration::from_secs(5),
        });
    })
    .await;
    let w = World::with(t).await;
    let t = &w.t;
    let id = w.approved_request().await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();

    // The first deliveries fail: the status says so, and nothing is lost.
    let mut saw_failure = false;
    let mut received: Vec<Value> = Vec::new();
    let mut ticker = breakglass::app::ticker::Ticker::default();
    for _ in 0..200 {
        let head = t.audit().await.last().unwrap().seq;
        received = r
            .bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<Value>>()
            })
            .collect();
        let events = received.iter().filter(|v| v["record"] == "event").count() as i64;
        let checkpoints = received
            .iter()
            .filter(|v| v["record"] == "checkpoint")
            .count();
        let status = t.get("/v1/audit/sink", &w.auditor).await.ok();
        if status["attempts"].as_i64().unwrap_or(0) > 0 {
            assert!(
                status["last_error"].as_str().unwrap().contains("HTTP 500"),
                "{status}"
            );
            saw_failure = true;
        }
        if events == head && checkpoints >= 1 {
            break;
        }
        // Let the back-off pass (and a checkpoint fall due).
        t.clock.advance_secs(400);
        t.app.tick(&mut ticker).await;
    }
    assert!(saw_failure);
    assert!(r.posts.load(std::sync::atomic::Ordering::SeqCst) > 2);
    let seqs: Vec<i64> = received
        .iter()
        .filter(|v| v["record"] == "event")
        .map(|v| v["seq"].as_i64().unwrap())
        .collect();
    let head = t.audit().await.last().unwrap().seq;
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "every event once, in order"
    );
    // What the SIEM holds verifies on its own, signed checkpoints included.
    let key = t.get("/.well-known/breakglass-audit-key", "").await.ok();
    let mut file = vec![json!({
        "record": "header", "format": "breakglass-audit-export-v1", "exported_at": "",
        "after_seq": 0, "prev_hash": GENESIS, "audit_keys": [key],
    })
    .to_string()];
    file.extend(received.iter().map(|v| v.to_string()));
    let last = received
        .iter()
        .rev()
        .find(|v| v["record"] == "event")
        .unwrap();
    file.push(json!({ "record": "head", "seq": last["seq"], "hash": last["hash"] }).to_string());
    let v = breakglass::crypto::chain::verify_jsonl(
        std::io::Cursor::new(file.join("\n")),
        Some(vec![serde_json::from_value(key).unwrap()]),
        |_| {},
    )
    .unwrap();
    assert!(v.verdict.ok, "{:?}", v.verdict.first_break);
    assert!(v.verdict.signed_through.is_some());
    let status = t.get("/v1/audit/sink", &w.auditor).await.ok();
    assert_eq!(status["backlog"], 0, "{status}");
    assert_eq!(status["attempts"], 0);
    assert!(!status["endpoint"].as_str().unwrap().contains("/ingest"));
}

async fn archived_and_pruned_events_leave_a_verifiable_log(b: Backend) {
    let l = logged(b).await;
    let t = &l.w.t;
    let archive = l.dir.path().join("archive.jsonl");
    let host = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--database-url", &t.database_url, "--data-dir"])
            .arg(&t.data_dir)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = host(&[
        "audit",
        "archive",
        "--through",
        "999999",
        "--out",
        "x.jsonl",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("at most"), "{out}");
    let cut = l.cp1 + 1; // not yet checkpointed: the archive signs one
    let (code, out) = host(&[
        "audit",
        "archive",
        "--through",
        &cut.to_string(),
        "--out",
        archive.to_str().unwrap(),
        "--prune",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pruned"), "{out}");
    // The archive verifies on its own, with both verifiers.
    let (code, out) = l.offline(&archive);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("signed through event {cut}")),
        "{out}"
    );
    let (code, out) = l.python(&archive);
    assert_eq!(code, 0, "{out}");
    // The pruned log verifies from the cut on; its export too.
    assert!(t.audit().await.first().unwrap().seq == cut + 1);
    let v = l.online().await;
    assert_eq!(v["ok"], true, "{v}");
    let file = l.export("after-prune.jsonl", "jsonl");
    let (code, out) = l.offline(&file);
    assert_eq!(code, 0, "{out}");
    let (code, out) = l.python(&file);
    assert_eq!(code, 0, "{out}");
    assert!(t.audit().await.iter().any(|e| e.action == "audit.prune"
        && e.details["through"] == cut
        && e.details["archive_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)));
    // A base the signed checkpoint does not vouch for is caught.
    t.raw_sql(&format!(
        "UPDATE audit_base SET hash = '{}'",
        "e".repeat(64)
    ))
    .await;
    let v = l.online().await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_break"]["seq"], cut);
}
