//! A database writer (an insider, or whoever stole the database's
//! credentials) tampers with what the service keeps there. What the
//! database does not hold — the audit key, the witness kept outside it, the
//! custodians' TOTP seeds behind the key service — catches each attempt.

mod common;

use breakglass::crypto::chain::{seal, AuditEvent, GENESIS};
use common::{Backend, TestApp, World};
use serde_json::{json, Value};

both_backends!(
    erased_checkpoints_and_a_rewritten_chain_are_caught_by_the_witness_and_never_signed_over,
    a_rolled_back_log_is_caught_by_the_witness,
    an_event_appended_outside_the_service_is_named_and_writes_fail_closed,
    every_alert_and_siem_batch_carries_the_witness,
    a_database_writer_cannot_fake_a_quorum,
    a_database_writer_cannot_weaken_move_or_unveto_a_real_request,
    a_slow_key_service_stalls_only_the_approval_that_waits_for_it,
    a_database_writer_cannot_weaken_the_policy_of_future_requests,
    a_state_outside_its_closed_set_is_never_acted_on,
);

/// Rewrite the chain from `from` with `edit` applied, recomputing every
/// later hash and the head, as a database writer can: the unsigned chain
/// stays consistent.
async fn rewrite_chain(t: &TestApp, from: i64, edit: impl Fn(&mut AuditEvent)) {
    let mut prev = GENESIS.to_string();
    let mut sql = String::new();
    for mut e in t.audit().await {
        if e.seq == from {
            edit(&mut e);
        }
        if e.seq >= from {
            e = seal(e, &prev).unwrap();
            sql += &format!(
                "UPDATE audit_events SET actor = '{}', details = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {};\n",
                e.actor.replace('\'', "''"),
                serde_json::to_string(&e.details).unwrap().replace('\'', "''"),
                e.prev_hash,
                e.hash,
                e.seq
            );
        }
        prev = e.hash.clone();
        sql += &format!(
            "UPDATE audit_head SET seq = {}, hash = '{}';\n",
            e.seq, e.hash
        );
    }
    t.raw_sql(&sql).await;
}

async fn checkpoint(w: &World) -> i64 {
    w.t.post("/v1/audit/checkpoints", &w.auditor, json!({}))
        .await
        .ok()["seq"]
        .as_i64()
        .unwrap()
}

async fn readyz(t: &TestApp) -> (u16, Value) {
    let r = t.call("GET", "/readyz", None, None).await;
    let chain = r.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "audit_chain")
        .cloned()
        .unwrap();
    (r.status, chain)
}

async fn checkpoints_in_db(t: &TestApp) -> usize {
    let mut tx = t.app.store.begin_read().await.unwrap();
    let n = tx.checkpoints(0, 1000).await.unwrap().len();
    tx.rollback().await.unwrap();
    n
}

async fn erased_checkpoints_and_a_rewritten_chain_are_caught_by_the_witness_and_never_signed_over(
    b: Backend,
) {
    let w = World::new(b).await;
    let t = &w.t;
    w.approved_request().await;
    let cp = checkpoint(&w).await;
    // The witness is outside the database: in the data directory and in
    // /metrics.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(t.data_dir.join("audit.witness")).unwrap())
            .unwrap();
    assert_eq!(file["seq"], cp);
    let metrics = t.call("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(&format!("breakglass_audit_witness_seq {cp}"))
            && text.contains(&format!("hash=\"{}\"", file["hash"].as_str().unwrap())),
        "{text}"
    );
    // A request is checkpointed in its own transaction: the witness moves.
    w.request().await;
    let cp = t.app.witness.current().unwrap().seq;
    assert!(cp > file["seq"].as_i64().unwrap());

    // Erase every checkpoint and rewrite event 3 with the chain recomputed.
    t.raw_sql("DELETE FROM audit_checkpoints").await;
    rewrite_chain(t, 3, |e| e.actor = "mallory".into()).await;
    assert!(t.verify().await, "the unsigned chain alone passes");

    // The server refuses to sign over it, and signs nothing by itself.
    t.post("/v1/audit/checkpoints", &w.auditor, json!({}))
        .await
        .refused(503, "audit_chain_broken");
    t.app.checkpoint_if_due().await.unwrap();
    assert_eq!(
        checkpoints_in_db(t).await,
        0,
        "a checkpoint over a forged head"
    );
    // `audit verify` compares against the witness and names the break.
    let v = t.post("/v1/audit/verify", &w.auditor, json!({})).await.ok();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_break"]["seq"], cp, "{v}");
    let reason = v["first_break"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("witnessed outside the database"),
        "{reason}"
    );
    let (status, chain) = readyz(t).await;
    assert_eq!((status, &chain["ok"]), (503, &json!(false)), "{chain}");
    assert!(chain["reason"]
        .as_str()
        .unwrap()
        .contains(&format!("broken at {cp}")));

    // A server started afresh on the same data directory has only the
    // witness file to go by, and finds the same.
    let fresh = t.successor(None).await;
    let auditor = fresh.token("audrey", &[breakglass::domain::Role::Auditor]);
    let v = fresh
        .post("/v1/audit/verify", &auditor, json!({}))
        .await
        .ok();
    assert_eq!(
        (v["ok"].clone(), v["first_break"]["seq"].clone()),
        (json!(false), json!(cp))
    );
    fresh
        .post("/v1/audit/checkpoints", &auditor, json!({}))
        .await
        .refused(503, "audit_chain_broken");
    assert_eq!(checkpoints_in_db(t).await, 0);
}

async fn a_rolled_back_log_is_caught_by_the_witness(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let early = t.audit().await.len() as i64;
    let hash = t.audit().await.last().unwrap().hash.clone();
    w.approved_request().await;
    let cp = checkpoint(&w).await;
    // Restore an older state of the database: the events, the head and
    // the checkpoints as they were before the request.
    t.raw_sql(&format!(
        "DELETE FROM audit_events WHERE seq > {early};
         DELETE FROM audit_checkpoints WHERE seq > {early};
         UPDATE audit_head SET seq = {early}, hash = '{hash}';"
    ))
    .await;
    assert!(t.verify().await, "the unsigned chain alone passes");
    let v = t.post("/v1/audit/verify", &w.auditor, json!({})).await.ok();
    assert_eq!(v["ok"], false, "{v}");
    let reason = v["first_break"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("rolled back") && reason.contains(&format!("event {cp}")),
        "{reason}"
    );
    t.post("/v1/audit/checkpoints", &w.auditor, json!({}))
        .await
        .refused(503, "audit_chain_broken");
}

async fn an_event_appended_outside_the_service_is_named_and_writes_fail_closed(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.request().await;
    // A correctly hashed event past the head, the head left alone.
    let last = t.audit().await.pop().unwrap();
    let forged = seal(
        AuditEvent {
            seq: last.seq + 1,
            ts_ms: last.ts_ms + 1,
            actor: "sec".into(),
            action: "request.approve".into(),
            target: format!("request:{id}"),
            outcome: "success".into(),
            code: None,
            details: json!({ "credential": "aws-prod-root" }),
            prev_hash: String::new(),
            hash: String::new(),
        },
        &last.hash,
    )
    .unwrap();
    t.raw_sql(&format!(
        "INSERT INTO audit_events (seq, ts_ms, actor, action, target, outcome, code, details, prev_hash, hash) \
         VALUES ({}, {}, 'sec', 'request.approve', 'request:{id}', 'success', NULL, '{}', '{}', '{}')",
        forged.seq,
        forged.ts_ms,
        serde_json::to_string(&forged.details).unwrap(),
        forged.prev_hash,
        forged.hash
    ))
    .await;
    let broken_at = forged.seq;
    // Every audited write fails closed with its own code, naming the break.
    for _ in 0..2 {
        let r = t
            .post(
                "/v1/requests",
                &w.requester,
                json!({ "credential": "aws-prod-root", "reason": "again" }),
            )
            .await;
        r.refused(503, "audit_chain_broken");
    }
    w.approve(&id, "ann", &w.ann)
        .await
        .refused(503, "audit_chain_broken");
    // Verify reports the break instead of failing.
    let v = t.post("/v1/audit/verify", &w.auditor, json!({})).await.ok();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"]["seq"], broken_at, "{v}");
    assert!(v["first_break"]["reason"]
        .as_str()
        .unwrap()
        .contains("appended outside the service"));
    // Reads that need no audit event still answer; /readyz says why.
    t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    let (status, chain) = readyz(t).await;
    assert_eq!(status, 503);
    let reason = chain["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("broken at {broken_at}")) && reason.contains("appended outside"),
        "{reason}"
    );
    // A replica that has not tried to write yet finds it from the database.
    let other = t.successor(None).await;
    let (status, chain) = readyz(&other).await;
    assert_eq!(status, 503);
    assert!(chain["reason"]
        .as_str()
        .unwrap()
        .contains("appended outside"));
    // Nothing the refused writes did was kept.
    assert_eq!(t.audit().await.len() as i64, broken_at);
}

/// What a receiver was sent: (path, witness header, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

async fn witness_receiver() -> (String, Seen) {
    use axum::http::{HeaderMap, StatusCode, Uri};
    let seen: Seen = Default::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(axum::routing::post(
        move |uri: Uri, headers: HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let w = headers
                    .get("x-breakglass-audit-witness")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                s.lock().unwrap().push((uri.path().to_string(), w, body));
                StatusCode::OK
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

async fn every_alert_and_siem_batch_carries_the_witness(b: Backend) {
    use breakglass::config::{AlertChannel, Alerts, AuditSink};
    use std::sync::Arc;
    let (base, seen) = witness_receiver().await;
    let url = base.clone();
    let t = TestApp::start_configured(b, &move |c| {
        let events = |kind: &str| {
            breakglass::config::default_alert_events(kind)
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let secret = |k: &[u8]| Some(Arc::new(zeroize::Zeroizing::new(k.to_vec())));
        c.settings.alerts = Some(Alerts {
            public_url: None,
            max_attempts: 3,
            channels: vec![
                AlertChannel {
                    name: "chat".into(),
                    kind: "slack".into(),
                    url: format!("{url}/slack"),
                    events: events("slack"),
                    secret: None,
                },
                AlertChannel {
                    name: "pager".into(),
                    kind: "pagerduty".into(),
                    url: format!("{url}/pd"),
                    events: events("pagerduty"),
                    secret: secret(b"R0UT1NGKEY0000000000000000000000"),
                },
                AlertChannel {
                    name: "hook".into(),
                    kind: "webhook".into(),
                    url: format!("{url}/hook"),
                    events: events("webhook"),
                    secret: secret(b"0123456789abcdef0123456789abcdef-webhook"),
                },
            ],
        });
        c.settings.audit_sink = Some(AuditSink {
            url: format!("{url}/siem"),
            ocsf: false,
            batch_size: 500,
            hmac_key: None,
            timeout: std::time::Duration::from_secs(5),
        });
    })
    .await;
    let w = World::with(t).await;
    let cp = checkpoint(&w).await;
    w.request().await;
    w.t.app.deliver_alerts().await.unwrap();
    w.t.app.ship_audit_all().await.unwrap();
    let witness = w.t.app.witness.current().unwrap();
    assert!(witness.seq >= cp);
    let seen = seen.lock().unwrap().clone();
    for path in ["/slack", "/pd", "/hook", "/siem"] {
        assert!(
            seen.iter().any(|(p, ..)| p == path),
            "nothing sent to {path}"
        );
    }
    for (path, header, body) in &seen {
        match path.as_str() {
            "/siem" => {
                let h: breakglass::crypto::chain::Checkpoint =
                    serde_json::from_str(header).unwrap();
                assert_eq!(h.seq, witness.seq);
                let key = w.t.app.audit_public_key();
                assert!(
                    h.signature_valid(&key.raw().unwrap()),
                    "a self-proving witness"
                );
            }
            "/slack" => assert!(
                body.contains(&witness.hash) && body.contains(&witness.signature),
                "{body}"
            ),
            "/pd" => {
                let v: Value = serde_json::from_str(body).unwrap();
                if v["event_action"] == "trigger" {
                    assert_eq!(
                        v["payload"]["custom_details"]["audit_witness"]["seq"],
                        witness.seq
                    );
                }
            }
            _ => {
                let v: Value = serde_json::from_str(body).unwrap();
                assert_eq!(v["audit_witness"]["hash"], witness.hash.as_str(), "{v}");
            }
        }
    }
}

async fn release(w: &World, id: &str) -> common::Resp {
    w.t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
}

/// A refused release: its code, nothing changed, the credential not
/// exposed, the refusal audited and naming why.
async fn assert_unproven(w: &World, id: &str, why: &str) {
    let t = &w.t;
    t.assert_refused_and_unchanged(Some(id), 409, "quorum_unproven", || release(w, id))
        .await;
    let last = t.audit().await.pop().unwrap();
    let message = last.details["message"].as_str().unwrap();
    assert!(message.contains(why), "{message} (expected: {why})");
    assert_not_exposed(t).await;
}

/// The review's attack: a pending request set to `approved` with three
/// made-up decisions. Then the same with plausible steps and codes and
/// matching `request.approve` events appended to the chain (recomputed):
/// without the audit key they are covered by no signed checkpoint, and
/// without the seeds the codes are guesses.
async fn a_database_writer_cannot_fake_a_quorum(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let now = t.clock_ms();
    let forge = |id: &str, step: i64, code: &str| {
        let mut sql = format!(
            "UPDATE requests SET state = 'approved', approved_at = {now}, release_deadline = {} WHERE id = '{id}';\n",
            now + 300_000
        );
        for (name, group) in [("ann", "sre"), ("bob", "sre"), ("sec", "security")] {
            sql += &format!(
                "INSERT INTO decisions (request_id, custodian, decision, reason, groups, totp_step, at, totp_code) \
                 VALUES ('{id}', '{name}', 'approve', NULL, '[\"{group}\"]', {step}, {now}, '{code}');\n"
            );
        }
        sql
    };
    // As the review did it: step 1, no code.
    let id = w.request().await;
    t.raw_sql(&forge(&id, 1, "000000").replace(", '000000')", ", NULL)"))
        .await;
    assert!(t.verify().await, "the chain was not touched");
    assert_unproven(&w, &id, "has no event in the signed audit chain").await;

    // With the current step, a guessed code, and the events appended.
    let id = w.request().await;
    let step = t.clock_ms() / 30_000;
    t.raw_sql(&forge(&id, step, "123456")).await;
    let mut events = t.audit().await;
    let mut prev = events.last().unwrap().clone();
    let mut sql = String::new();
    for (name, group) in [("ann", "sre"), ("bob", "sre"), ("sec", "security")] {
        let e = seal(
            AuditEvent {
                seq: prev.seq + 1,
                ts_ms: now,
                actor: name.into(),
                action: "request.approve".into(),
                target: format!("request:{id}"),
                outcome: "success".into(),
                code: None,
                details: json!({ "credential": "aws-prod-root", "step": step, "groups": [group] }),
                prev_hash: String::new(),
                hash: String::new(),
            },
            &prev.hash,
        )
        .unwrap();
        sql += &format!(
            "INSERT INTO audit_events (seq, ts_ms, actor, action, target, outcome, code, details, prev_hash, hash) \
             VALUES ({}, {}, '{}', 'request.approve', '{}', 'success', NULL, '{}', '{}', '{}');\n",
            e.seq, e.ts_ms, e.actor, e.target, serde_json::to_string(&e.details).unwrap(), e.prev_hash, e.hash
        );
        events.push(e.clone());
        prev = e;
    }
    sql += &format!(
        "UPDATE audit_head SET seq = {}, hash = '{}';",
        prev.seq, prev.hash
    );
    t.raw_sql(&sql).await;
    assert!(t.verify().await, "a consistent chain, unsigned at its tail");
    assert_unproven(&w, &id, "has no event in the signed audit chain").await;

    // A real quorum whose kept code was changed: the chain agrees, the
    // seed does not. (On a fresh step: the forged rows above claim this
    // one, and a step counts once.)
    t.next_step();
    let id = w.approved_request().await;
    t.raw_sql(&format!(
        "UPDATE decisions SET totp_code = '{}' WHERE request_id = '{id}' AND custodian = 'bob'",
        t.wrong_code("bob")
    ))
    .await;
    assert_unproven(&w, &id, "is not bob's TOTP code at its recorded step").await;
    // And a real one releases.
    let id = w.approved_request().await;
    release(&w, &id).await.ok();
}

/// A real request, tampered with after the fact: a weaker policy
/// snapshot, approvals regrouped, another credential, a veto removed.
async fn a_database_writer_cannot_weaken_move_or_unveto_a_real_request(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    // Weaker snapshot: one SRE is enough, and one SRE approved.
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    t.next_step();
    let weaker = r#"{"name":"default","description":"x","require":[{"group":"sre","count":1}],"deny_vetoes":true,"request_ttl_secs":3600,"release_window_secs":900,"release_hours":[],"ticket_pattern":null,"max_open_releases":null,"max_age_secs":null}"#;
    let now = t.clock_ms();
    t.raw_sql(&format!(
        "UPDATE requests SET policy = '{weaker}', state = 'approved', approved_at = {now}, release_deadline = {} WHERE id = '{id}'",
        now + 300_000
    ))
    .await;
    assert_unproven(
        &w,
        &id,
        "requester, credential, policy or expiry was changed",
    )
    .await;

    // Regrouped: bob's SRE approval recorded as security's (sec never
    // approved).
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    w.approve(&id, "bob", &w.bob).await.ok();
    t.next_step();
    t.raw_sql(&format!(
        "UPDATE decisions SET groups = '[\"security\"]' WHERE request_id = '{id}' AND custodian = 'bob';
         INSERT INTO decisions (request_id, custodian, decision, reason, groups, totp_step, at, totp_code)
           SELECT request_id, 'cat', decision, reason, '[\"sre\"]', totp_step + 1, at, totp_code FROM decisions WHERE request_id = '{id}' AND custodian = 'ann';
         UPDATE requests SET state = 'approved', approved_at = {now}, release_deadline = {} WHERE id = '{id}';",
        now + 300_000
    ))
    .await;
    assert_unproven(
        &w,
        &id,
        "has no event in the signed audit chain, or differs from it",
    )
    .await;

    // Another credential: approvals for a sandbox released the root.
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "aws-sandbox", "account_id": "210987654321", "policy": "one-sre", "fields": { "password": "sandbox" } }),
    )
    .await
    .ok();
    let r = t
        .post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "aws-sandbox", "reason": "sandbox" }),
        )
        .await
        .ok();
    let sandbox = r["id"].as_str().unwrap().to_string();
    w.approve(&sandbox, "ann", &w.ann).await.ok();
    t.next_step();
    let mut tx = t.app.store.begin_read().await.unwrap();
    let root = tx
        .credential_by_name("aws-prod-root")
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    t.raw_sql(&format!(
        "UPDATE requests SET credential_id = '{}', credential_name = 'aws-prod-root' WHERE id = '{sandbox}'",
        root.id
    ))
    .await;
    assert_unproven(
        &w,
        &sandbox,
        "requester, credential, policy or expiry was changed",
    )
    .await;

    // A veto removed: sec denied; the writer deletes the denial and
    // approves in sec's name.
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    w.approve(&id, "bob", &w.bob).await.ok();
    t.post(
        format!("/v1/requests/{id}/deny"),
        &w.sec,
        json!({ "code": t.code("sec"), "reason": "not an incident" }),
    )
    .await
    .ok();
    t.next_step();
    t.raw_sql(&format!(
        "UPDATE decisions SET decision = 'approve', reason = NULL WHERE request_id = '{id}' AND custodian = 'sec';
         UPDATE requests SET state = 'approved', approved_at = {now}, release_deadline = {}, denied_at = NULL, denied_by = NULL WHERE id = '{id}';",
        now + 300_000
    ))
    .await;
    assert_unproven(&w, &id, "by sec").await;
    assert!(t.verify().await, "none of this touched the chain");
}

/// A TCP relay in front of the moto server that can hold every byte sent
/// to it: the key service stalls for real (the SDK waits on a live
/// connection), and the test knows when a call is waiting.
struct Stall {
    endpoint: String,
    open: tokio::sync::watch::Sender<bool>,
    waiting: std::sync::Arc<tokio::sync::Notify>,
}

async fn stall_in_front_of(upstream: &str) -> Stall {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (open, gate) = tokio::sync::watch::channel(true);
    let waiting = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = waiting.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let mut gate = gate.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if !*gate.borrow() {
                        notify.notify_one();
                        if gate.wait_for(|open| *open).await.is_err() {
                            break;
                        }
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    Stall {
        endpoint,
        open,
        waiting,
    }
}

/// Approving opens the custodian's seed with the key service; while that
/// call hangs, no lock is held, so an unrelated audited write goes through
/// (on SQLite every write transaction takes the one write lock).
async fn a_slow_key_service_stalls_only_the_approval_that_waits_for_it(b: Backend) {
    use std::time::Duration;
    let moto = common::Moto::own().await;
    let stall = stall_in_front_of(&moto.endpoint).await;
    let mut aws = moto.setup(Duration::from_secs(120)).await;
    aws.secrets_manager = false;
    aws.endpoint = stall.endpoint.clone();
    let w = World::with(TestApp::start_with(b, Some(aws)).await).await;
    let t = std::sync::Arc::new(w);
    let id = t.request().await;
    // Hold every call to KMS; ann approves, and waits for KMS.
    stall.open.send(true).unwrap();
    let _ = stall.open.send(false);
    let waiting = stall.waiting.notified();
    let approving = {
        let w = t.clone();
        let id = id.clone();
        tokio::spawn(async move { w.approve(&id, "ann", &w.ann).await })
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the approval reaches the key service");
    // Meanwhile, an audited write that needs no key service completes.
    let added = tokio::time::timeout(
        Duration::from_secs(60),
        t.t.post(
            "/v1/custodians",
            &t.admin,
            json!({ "name": "dora", "groups": ["sre"] }),
        ),
    )
    .await
    .expect("the unrelated write did not wait for the key service");
    added.ok();
    assert!(
        !approving.is_finished(),
        "the write completed while the approval still waits for KMS"
    );
    // KMS answers; the approval completes as if nothing happened.
    stall.open.send(true).unwrap();
    let r = approving.await.unwrap().ok();
    assert_eq!(r["approvals"], 1);
    assert!(t.t.verify().await);
}

/// A weaker policy for the requests to come: a credential pointed at
/// another policy, or a policy version inserted, around the service. Both
/// lack the audit key's seal; nothing is decided under them, and the review
/// says why.
async fn a_database_writer_cannot_weaken_the_policy_of_future_requests(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let file = || {
        t.post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "aws-prod-root", "reason": "prod is down", "ticket": "INC-1" }),
        )
    };
    // Through the service, a move is sealed and requests go on.
    t.raw_sql("UPDATE credentials SET policy = 'one-sre' WHERE name = 'aws-prod-root'")
        .await;
    t.assert_refused_and_unchanged(None, 409, "policy_unproven", file)
        .await;
    let doctor = t.get("/v1/hygiene", &w.auditor).await.ok();
    assert!(
        doctor["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "policy.unsealed" && f["subject"] == "credential:aws-prod-root"),
        "{doctor}"
    );
    t.raw_sql("UPDATE credentials SET policy = 'default' WHERE name = 'aws-prod-root'")
        .await;
    file().await.ok();

    // A version of the default policy: one SRE, inserted by hand.
    let weaker = r#"{"name":"default","description":"x","require":[{"group":"sre","count":1}],"deny_vetoes":true,"request_ttl_secs":3600,"release_window_secs":900,"release_hours":[],"ticket_pattern":null,"max_open_releases":null,"max_age_secs":null}"#;
    t.raw_sql(&format!(
        "INSERT INTO policy_versions (name, version, body, created_at, created_by, change_id) \
         VALUES ('default', 1, '{weaker}', 0, 'mallory', 'none')"
    ))
    .await;
    t.assert_refused_and_unchanged(None, 409, "policy_unproven", file)
        .await;
    let r = t.get("/v1/policies", &w.admin).await;
    r.refused(409, "policy_unproven");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("version 1 of policy default"));
    let doctor = t.get("/v1/hygiene", &w.auditor).await.ok();
    assert!(
        doctor["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "policy.unsealed" && f["subject"] == "policies"),
        "{doctor}"
    );
}

/// A request whose stored state is set to a value outside the closed set
/// (`releasable`). Both databases refuse the write (a CHECK constraint); a
/// writer who gets around it (SQLite's `ignore_check_constraints`, or the
/// constraint dropped on PostgreSQL) gets a row the service refuses to read:
/// the request is not released, the credential not exposed, and the value
/// is not echoed.
async fn a_state_outside_its_closed_set_is_never_acted_on(b: Backend) {
    let w = World::new(b).await;
    let t = &w.t;
    let id = w.request().await;
    let forge = format!(
        "UPDATE requests SET state = 'releasable', release_deadline = {} WHERE id = '{id}'",
        t.clock_ms() + 300_000
    );
    let e = t
        .try_raw_sql(&forge)
        .await
        .expect_err("the database keeps states in their closed set");
    assert!(e.to_lowercase().contains("check constraint"), "{e}");
    let around = match b {
        Backend::Sqlite => format!("PRAGMA ignore_check_constraints = ON; {forge}"),
        Backend::Postgres => {
            format!("ALTER TABLE requests DROP CONSTRAINT requests_state_check; {forge}")
        }
    };
    t.raw_sql(&around).await;
    let r = release(&w, &id).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.code(), "internal", "{}", r.body);
    assert!(!r.body.to_string().contains("releasable"), "{}", r.body);
    let shown = t.get(format!("/v1/requests/{id}"), &w.requester).await;
    assert_eq!(shown.status, 500, "{}", shown.body);
    assert_not_exposed(t).await;
}

/// The credential was never released: not marked exposed.
async fn assert_not_exposed(t: &TestApp) {
    let mut tx = t.app.store.begin_read().await.unwrap();
    let c = tx
        .credential_by_name("aws-prod-root")
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(!c.exposed, "nothing was released");
}
