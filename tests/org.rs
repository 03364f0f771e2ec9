//! AWS Organizations: `org sync` over an organisation of 20 member
//! accounts in moto, AssumeRoot and the IAM calls of root sessions answered
//! by the stand-alone responder (tests/aws_root/responder.py, itself
//! checked against botocore), the inventory, the review of every account's
//! root posture, and outages, throttling and refusals. Both backends.

mod common;

use breakglass::domain::Role;
use common::{Backend, RootResponder, TestApp};
use serde_json::{json, Value};

both_backends!(
    a_sync_inventories_the_organisation_and_the_review_lists_the_members_with_root_credentials,
    outages_throttling_and_refusals_of_a_sync,
    the_scheduled_sync_runs_once_per_interval_and_keeps_postures_current,
    a_delete_credentials_request_runs_once_behind_its_quorum_and_the_re_audit_shows_root_gone,
    refusals_of_a_root_session_request_are_precise_audited_and_change_nothing,
    an_interrupted_deletion_is_re_audited_and_resumed,
    unlock_tasks_delete_the_bucket_and_queue_policies_and_a_session_is_handed_over_once,
);

/// Five members whose root user holds credentials, each a different mix.
fn five_with_root(members: &[String]) -> (Vec<String>, Value) {
    let picked: Vec<String> = [1, 4, 7, 12, 19]
        .iter()
        .map(|&i| members[i].clone())
        .collect();
    let mut root = serde_json::Map::new();
    for (n, id) in picked.iter().enumerate() {
        root.insert(
            id.clone(),
            match n {
                0 => json!({ "password": true }),
                1 => json!({ "access_keys": [format!("AKIA{:016}", n)] }),
                2 => json!({ "password": true, "mfa_devices": [format!("arn:aws:iam::{id}:mfa/root-account-mfa-device")] }),
                3 => json!({ "signing_certificates": ["CERTID0000000000000000001"] }),
                _ => json!({ "password": true, "access_keys": ["AKIA0000000000000009", "AKIA0000000000000010"] }),
            },
        );
    }
    let mut sorted = picked.clone();
    sorted.sort();
    (sorted, json!({ "root": root }))
}

fn findings(report: &Value, check: &str) -> Vec<String> {
    let mut subjects: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| f["subject"].as_str().unwrap().to_string())
        .collect();
    subjects.sort();
    subjects
}

async fn a_sync_inventories_the_organisation_and_the_review_lists_the_members_with_root_credentials(
    b: Backend,
) {
    let r = RootResponder::start().await;
    let (master, members) = r.organization(20).await;
    let (five, seeded) = five_with_root(&members);
    r.control(seeded).await;
    let t = r.app(b, 4).await;
    let admin = t.token("root-admin", &[Role::Admin]);
    let auditor = t.token("audrey", &[Role::Auditor]);

    // Before any sync the review says so.
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    assert_eq!(findings(&review, "org.never_synced").len(), 1, "{review}");

    let report = t.post("/v1/org/sync", &admin, json!({})).await.ok();
    assert_eq!(report["management_account_id"], master.as_str(), "{report}");
    assert_eq!(report["accounts"], 21, "{report}");
    assert_eq!(report["members"], 20, "{report}");
    assert_eq!(report["postures_read"], 20, "{report}");
    assert_eq!(report["posture_failures"], json!([]), "{report}");
    let present: Vec<&str> = report["root_credentials_present"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(present, five.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(report["trusted_access"], true);
    assert_eq!(report["root_sessions"], true);

    // The review lists exactly those five, and the management account's
    // root, which no credential keeps.
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    let expected: Vec<String> = five.iter().map(|a| format!("account:{a}")).collect();
    assert_eq!(
        findings(&review, "org.root_credentials_present"),
        expected,
        "{review}"
    );
    assert_eq!(
        findings(&review, "org.management_root_not_in_custody"),
        vec![format!("account:{master}")]
    );
    for check in [
        "org.never_synced",
        "org.posture_unknown",
        "org.root_sessions_off",
        "org.trusted_access_off",
    ] {
        assert!(findings(&review, check).is_empty(), "{check}: {review}");
    }
    let password_and_mfa = review["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == format!("account:{}", members[7]).as_str())
        .unwrap();
    assert!(
        password_and_mfa["finding"]
            .as_str()
            .unwrap()
            .ends_with("the root user has a password, 1 MFA device"),
        "{password_and_mfa}"
    );

    // The inventory, for an auditor.
    let inv = t.get("/v1/org/accounts", &auditor).await.ok();
    let accounts = inv["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 21);
    let management: Vec<&Value> = accounts
        .iter()
        .filter(|a| a["management"] == true)
        .collect();
    assert_eq!(management.len(), 1);
    assert_eq!(management[0]["account_id"], master.as_str());
    assert_eq!(
        management[0]["in_custody"], false,
        "no credential keeps it yet"
    );
    assert!(accounts
        .iter()
        .filter(|a| a["management"] == false)
        .all(|a| a["posture"].is_object() && a["posture_error"].is_null()));

    // Every root session is audited with its key id and expiry only.
    let sessions: Vec<_> = t
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "org.root_session")
        .collect();
    assert_eq!(sessions.len(), 20);
    for e in &sessions {
        assert_eq!(e.outcome, "success");
        assert_eq!(e.details["task"], "IAMAuditRootUserCredentials");
        assert!(
            e.details["session_key_id"]
                .as_str()
                .unwrap()
                .starts_with("ASIA"),
            "{:?}",
            e.details
        );
        assert!(e.details["session_expires_at"].is_string());
        let text = e.details.to_string();
        assert!(
            !text.contains("SecretAccessKey") && !text.contains("secret"),
            "{text}"
        );
    }
    assert_eq!(
        t.audit()
            .await
            .iter()
            .filter(|e| e.action == "org.sync")
            .count(),
        1
    );
    // What the responder saw: one AssumeRoot per member, never the
    // management account.
    let calls = r.state().await["calls"].as_array().unwrap().clone();
    let assumed: Vec<&str> = calls
        .iter()
        .filter(|c| c[1] == "AssumeRoot")
        .map(|c| c[2].as_str().unwrap())
        .collect();
    assert_eq!(assumed.len(), 20);
    assert!(!assumed.contains(&master.as_str()));

    // The management account's root deposited (moto's management account
    // is the one the test world deposits): that finding is gone.
    assert_eq!(master, "123456789012");
    let w = common::World::with(t).await;
    let t = &w.t;
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    assert!(findings(&review, "org.management_root_not_in_custody").is_empty());
    let inv = t.get("/v1/org/accounts", &auditor).await.ok();
    let management: Vec<&Value> = inv["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["management"] == true)
        .collect();
    assert_eq!(management[0]["in_custody"], true);
    assert!(t.verify().await);
}

async fn outages_throttling_and_refusals_of_a_sync(b: Backend) {
    // Without [org], the sync is refused, audited.
    let plain = TestApp::start(b).await;
    let admin = plain.token("root-admin", &[Role::Admin]);
    plain
        .post("/v1/org/sync", &admin, json!({}))
        .await
        .refused(409, "org_not_configured");
    let last = plain.audit().await.pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.outcome.as_str()),
        ("org.sync", "refused")
    );
    assert_eq!(last.code.as_deref(), Some("org_not_configured"));

    let r = RootResponder::start().await;
    let (_, members) = r.organization(20).await;
    let (five, seeded) = five_with_root(&members);
    r.control(seeded).await;
    let t = r.app(b, 8).await;
    let admin = t.token("root-admin", &[Role::Admin]);
    let auditor = t.token("audrey", &[Role::Auditor]);
    let requester = t.token("oncall", &[Role::Requester]);

    // Without a broker role there is no SourceIdentity: no root-session
    // request.
    t.post(
        "/v1/org/root-requests",
        &requester,
        root_request(&members[0], "IAMAuditRootUserCredentials"),
    )
    .await
    .refused(409, "org_not_configured");

    // Only an admin syncs; an auditor reads.
    t.post("/v1/org/sync", &requester, json!({}))
        .await
        .refused(403, "forbidden_role");
    t.get("/v1/org/accounts", &requester)
        .await
        .refused(403, "forbidden_role");

    // Throttled STS and Organizations: retried with back-off, and the
    // sync completes.
    r.control(json!({ "fail": { "service": "sts", "mode": "throttle", "count": 4 } }))
        .await;
    let report = t.post("/v1/org/sync", &admin, json!({})).await.ok();
    assert_eq!(report["postures_read"], 20, "{report}");
    let assume_roots = r.state().await["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c[1] == "AssumeRoot")
        .count();
    assert_eq!(assume_roots, 24, "20 sessions and the 4 throttled attempts");
    r.control(json!({ "fail": { "service": "organizations", "mode": "throttle", "count": 2 } }))
        .await;
    let report = t.post("/v1/org/sync", &admin, json!({})).await.ok();
    assert_eq!(report["accounts"], 21, "{report}");

    // STS down: 503 with its own code, audited; the inventory and the
    // postures read before stay, each account says why it is unknown now.
    r.control(json!({ "fail": { "service": "sts", "mode": "unavailable" } }))
        .await;
    let before = t.get("/v1/org/accounts", &auditor).await.ok();
    t.post("/v1/org/sync", &admin, json!({}))
        .await
        .refused(503, "org_unavailable");
    let refused: Vec<_> = t
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "org.sync" && e.outcome == "refused")
        .collect();
    assert_eq!(
        refused.last().unwrap().code.as_deref(),
        Some("org_unavailable")
    );
    let after = t.get("/v1/org/accounts", &auditor).await.ok();
    for (x, y) in before["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["accounts"].as_array().unwrap())
    {
        assert_eq!(
            x["posture"], y["posture"],
            "the posture read before is kept"
        );
        if y["management"] == false {
            assert!(
                y["posture_error"]
                    .as_str()
                    .unwrap()
                    .contains("sts is unavailable"),
                "{y}"
            );
        }
    }
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    assert_eq!(
        findings(&review, "org.posture_unknown").len(),
        20,
        "{review}"
    );
    assert!(
        findings(&review, "org.root_credentials_present").is_empty(),
        "unknown, not clean"
    );

    // Organizations down: 503 before anything is written.
    r.control(json!({ "fail": { "service": "organizations", "mode": "unavailable" } }))
        .await;
    t.post("/v1/org/sync", &admin, json!({}))
        .await
        .refused(503, "org_unavailable");
    assert_eq!(
        t.get("/v1/org/accounts", &auditor).await.ok()["synced_at"],
        after["synced_at"]
    );

    // Back: one sync clears every error.
    r.control(json!({ "fail": null })).await;
    let report = t.post("/v1/org/sync", &admin, json!({})).await.ok();
    assert_eq!(
        report["root_credentials_present"].as_array().unwrap().len(),
        five.len()
    );
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    assert!(
        findings(&review, "org.posture_unknown").is_empty(),
        "{review}"
    );

    // The features off: no root session is tried; the review names them.
    r.control(json!({ "features": [] })).await;
    let report = t.post("/v1/org/sync", &admin, json!({})).await.ok();
    assert!(
        report["posture_skipped"]
            .as_str()
            .unwrap()
            .contains("RootSessions"),
        "{report}"
    );
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    assert_eq!(findings(&review, "org.root_sessions_off").len(), 1);
    assert_eq!(
        findings(&review, "org.root_credentials_management_off").len(),
        1
    );
    // The postures of the last good sync still stand.
    assert_eq!(
        findings(&review, "org.root_credentials_present").len(),
        five.len()
    );
    assert!(t.verify().await);
}

/// The scheduled sync: due at once on a new installation, then once per
/// interval (a replica that finds it claimed or not due does nothing), and
/// each run reads every posture again, so a root credential added since
/// shows in the review.
async fn the_scheduled_sync_runs_once_per_interval_and_keeps_postures_current(b: Backend) {
    let r = RootResponder::start().await;
    let (_, members) = r.organization(3).await;
    let t = r
        .app_with(b, 2, Some(std::time::Duration::from_secs(3600)))
        .await;
    let auditor = t.token("audrey", &[Role::Auditor]);
    let first = t
        .app
        .scheduled_org_sync()
        .await
        .unwrap()
        .expect("due at once");
    assert_eq!(first.postures_read, 3);
    assert!(first.root_credentials_present.is_empty());
    assert!(
        t.app.scheduled_org_sync().await.unwrap().is_none(),
        "not due yet"
    );
    let synced = t
        .audit()
        .await
        .iter()
        .filter(|e| e.action == "org.sync")
        .count();
    assert_eq!(synced, 1);
    assert_eq!(
        t.audit()
            .await
            .iter()
            .find(|e| e.action == "org.sync")
            .unwrap()
            .actor,
        "breakglass"
    );

    // Someone recovers a member's root password outside breakglass.
    r.control(json!({ "root": { members[2].clone(): { "password": true } } }))
        .await;
    t.advance_mins(30);
    assert!(t.app.scheduled_org_sync().await.unwrap().is_none());
    t.advance_mins(31);
    let second = t
        .app
        .scheduled_org_sync()
        .await
        .unwrap()
        .expect("due after an hour");
    assert_eq!(second.root_credentials_present.len(), 1);
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    assert_eq!(
        findings(&review, "org.root_credentials_present"),
        vec![format!("account:{}", members[2])]
    );
    // Claimed for a quarter of an hour: another replica's round finds it
    // neither due nor free.
    assert!(t.app.scheduled_org_sync().await.unwrap().is_none());
}

// --- Root-session requests ---------------------------------------------

const BROKER: &str = "arn:aws:iam::123456789012:role/breakglass-root-broker";

/// An organisation of 20, synced, with the usual custodians.
async fn root_world(b: Backend) -> (RootResponder, common::World, Vec<String>, String) {
    let r = RootResponder::start().await;
    let (master, members) = r.organization(20).await;
    let t = r.app_with_broker(b, BROKER).await;
    let w = common::World::with(t).await;
    w.t.post("/v1/org/sync", &w.admin, json!({})).await.ok();
    (r, w, members, master)
}

fn root_request(account: &str, task: &str) -> Value {
    json!({
        "account_id": account,
        "task": task,
        "duration_secs": 300,
        "reason": "the account's root must be cleaned up",
        "ticket": "INC-7",
    })
}

/// File a root-session request as the requester; its id.
async fn file(w: &common::World, body: Value) -> String {
    w.t.post("/v1/org/root-requests", &w.requester, body)
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Release request `id` as its requester.
async fn release(w: &common::World, id: &str) -> common::Resp {
    w.t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
}

/// How many requests the service holds.
async fn request_count(w: &common::World) -> usize {
    w.t.get("/v1/requests", &w.admin)
        .await
        .ok()
        .as_array()
        .unwrap()
        .len()
}

async fn approve_all(w: &common::World, id: &str, who: &[(&str, &str)]) -> Value {
    let mut last = Value::Null;
    for (name, token) in who {
        last = w.approve(id, name, token).await.ok();
    }
    last
}

async fn a_delete_credentials_request_runs_once_behind_its_quorum_and_the_re_audit_shows_root_gone(
    b: Backend,
) {
    let (r, w, members, _) = root_world(b).await;
    let t = &w.t;
    let account = members[3].clone();
    r.control(json!({ "root": { account.clone(): {
        "password": true,
        "access_keys": ["AKIA0000000000000001", "AKIA0000000000000002"],
        "mfa_devices": [format!("arn:aws:iam::{account}:mfa/root-account-mfa-device")],
        "signing_certificates": ["CERTID0000000000000000001"],
    } } }))
    .await;

    let v = t
        .post(
            "/v1/org/root-requests",
            &w.requester,
            root_request(&account, "IAMDeleteRootUserCredentials"),
        )
        .await
        .ok();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["policy"], "root-delete", "{v}");
    assert_eq!(v["quorum"], "2 of sre AND 1 of security");
    assert_eq!(v["credential"], format!("root:{account}").as_str());
    let tuple = v["root_session"]["tuple_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["root_session"]["delivery"], "execute");
    assert_eq!(v["root_session"]["duration_secs"], 300);
    // The quorum's tuple is in the signed event.
    let created = t
        .audit()
        .await
        .into_iter()
        .find(|e| e.action == "request.create" && e.target == format!("request:{id}"))
        .unwrap();
    assert_eq!(created.details["tuple_sha256"], tuple.as_str());
    assert_eq!(
        created.details["root_session"]["task"],
        "IAMDeleteRootUserCredentials"
    );

    // Not before the quorum: nothing reaches AWS.
    release(&w, &id).await.refused(409, "request_not_approved");
    let approved = approve_all(
        &w,
        &id,
        &[("ann", &w.ann), ("bob", &w.bob), ("sec", &w.sec)],
    )
    .await;
    assert_eq!(approved["state"], "approved", "{approved}");
    assert!(
        !r.state().await["session_log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source_identity"] == id.as_str()),
        "no root session before the release"
    );

    // Only the requester releases.
    t.post(format!("/v1/requests/{id}/release"), &w.admin, json!({}))
        .await
        .refused(403, "forbidden_role");
    let rel = release(&w, &id).await.ok();
    let task = &rel["root_task"];
    assert_eq!(task["task"], "IAMDeleteRootUserCredentials", "{rel}");
    assert_eq!(rel["fields"], json!({}), "nothing is handed over: {rel}");
    let steps: Vec<&str> = task["run"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        vec![
            "DeleteLoginProfile".to_string(),
            "DeleteAccessKey AKIA0000000000000001".into(),
            "DeleteAccessKey AKIA0000000000000002".into(),
            "DeleteSigningCertificate CERTID0000000000000000001".into(),
            format!("DeactivateMFADevice arn:aws:iam::{account}:mfa/root-account-mfa-device"),
        ],
        "the documented order"
    );
    assert_eq!(task["run"]["before"]["password"], true);
    assert_eq!(
        task["run"]["after"],
        json!({ "password": false, "access_keys": [], "mfa_devices": [], "signing_certificates": [] })
    );
    let key_id = task["session_key_id"].as_str().unwrap().to_string();
    assert!(key_id.starts_with("ASIA"), "{key_id}");

    // The responder agrees, and its session carried the request id.
    let state = r.state().await;
    assert_eq!(
        state["root"][&account],
        json!({ "password": false, "access_keys": [], "mfa_devices": [], "signing_certificates": [] })
    );
    let session = state["session_log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["access_key_id"] == key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(session["source_identity"], id.as_str());
    assert_eq!(session["account"], account.as_str());
    assert_eq!(session["task"], "IAMDeleteRootUserCredentials");

    // The inventory's posture is the re-audit's; the review is clean.
    let inv = t.get("/v1/org/accounts", &w.auditor).await.ok();
    let row = inv["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account_id"] == account.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["posture"]["password"], false, "{row}");
    let shown = t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    assert_eq!(shown["state"], "released");
    assert_eq!(shown["root_session"]["attempts"], 1);

    // Once: a second release is refused, and opens no session.
    let sessions_before = r.state().await["session_log"].as_array().unwrap().len();
    release(&w, &id).await.refused(409, "request_released");
    assert_eq!(
        r.state().await["session_log"].as_array().unwrap().len(),
        sessions_before
    );

    // Audited: the session (key id and expiry only), the task's steps,
    // the release; no secret of the session anywhere.
    let events = t.audit().await;
    let of = |action: &str| -> Vec<&breakglass::crypto::chain::AuditEvent> {
        events
            .iter()
            .filter(|e| e.action == action && e.details.to_string().contains(&id))
            .collect()
    };
    let opened = of("org.root_session");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].details["purpose"], "release");
    assert_eq!(opened[0].details["session_key_id"], key_id.as_str());
    assert!(opened[0].details["session_expires_at"].is_string());
    let ran = of("org.root_task");
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].outcome, "success");
    assert_eq!(ran[0].details["run"]["steps"].as_array().unwrap().len(), 5);
    let released: Vec<_> = events
        .iter()
        .filter(|e| e.action == "request.release" && e.outcome == "success")
        .collect();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].details["tuple_sha256"], tuple.as_str());
    for e in &events {
        let text = e.details.to_string().to_lowercase();
        assert!(
            !text.contains("secret_access_key") && !text.contains("session_token\":\""),
            "{text}"
        );
    }
    assert!(t.verify().await);
}

async fn refusals_of_a_root_session_request_are_precise_audited_and_change_nothing(b: Backend) {
    let (r, w, members, master) = root_world(b).await;
    let t = &w.t;
    let account = members[0].clone();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            root_request(&account, "AdministratorAccess"),
            400,
            "unknown_task",
        ),
        (
            with_fields(
                root_request(&account, "IAMAuditRootUserCredentials"),
                json!({ "duration_secs": 901 }),
            ),
            400,
            "invalid_duration",
        ),
        (
            with_fields(
                root_request(&account, "IAMAuditRootUserCredentials"),
                json!({ "duration_secs": 30 }),
            ),
            400,
            "invalid_duration",
        ),
        (
            root_request("999999999999", "IAMAuditRootUserCredentials"),
            404,
            "account_not_in_organization",
        ),
        (
            root_request(&master, "IAMAuditRootUserCredentials"),
            400,
            "management_account",
        ),
        (
            root_request("12345", "IAMAuditRootUserCredentials"),
            422,
            "invalid_account",
        ),
        (
            root_request(&account, "S3UnlockBucketPolicy"),
            400,
            "invalid_resource",
        ),
        (
            with_fields(
                root_request(&account, "IAMDeleteRootUserCredentials"),
                json!({ "bucket": "logs" }),
            ),
            400,
            "invalid_resource",
        ),
        (
            with_fields(
                root_request(&account, "SQSUnlockQueuePolicy"),
                json!({ "queue_url": format!("https://sqs.us-east-1.amazonaws.com/{}/jobs", members[1]) }),
            ),
            400,
            "invalid_resource",
        ),
        (
            with_fields(
                root_request(&account, "IAMDeleteRootUserCredentials"),
                json!({ "hand_over": true }),
            ),
            403,
            "hand_over_not_allowed",
        ),
    ];
    for (body, status, code) in cases {
        let before = request_count(&w).await;
        let audit_before = t.audit().await.len();
        t.post("/v1/org/root-requests", &w.requester, body.clone())
            .await
            .refused(status, code);
        assert_eq!(request_count(&w).await, before, "{code}: nothing created");
        let new: Vec<_> = t.audit().await.into_iter().skip(audit_before).collect();
        let refusal = new
            .iter()
            .find(|e| e.action == "request.create")
            .unwrap_or_else(|| panic!("{code}: not audited: {new:?}"));
        assert_eq!(refusal.outcome, "refused");
        assert_eq!(refusal.code.as_deref(), Some(code));
    }
    // A custodian cannot file one; an unknown field is refused.
    t.post(
        "/v1/org/root-requests",
        &w.ann,
        root_request(&account, "IAMAuditRootUserCredentials"),
    )
    .await
    .refused(403, "forbidden_role");
    t.post(
        "/v1/org/root-requests",
        &w.requester,
        with_fields(
            root_request(&account, "IAMAuditRootUserCredentials"),
            json!({ "role": "admin" }),
        ),
    )
    .await
    .refused(422, "invalid_body");

    // STS down at release: 503 with its code, audited, the request still
    // approved; once STS answers, the release goes through.
    let id = file(&w, root_request(&account, "IAMAuditRootUserCredentials")).await;
    approve_all(&w, &id, &[("ann", &w.ann)]).await;
    r.control(json!({ "fail": { "service": "sts", "mode": "unavailable" } }))
        .await;
    release(&w, &id).await.refused(503, "org_unavailable");
    let shown = t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    assert_eq!(shown["state"], "approved", "{shown}");
    let stopped = t
        .audit()
        .await
        .into_iter()
        .rfind(|e| e.action == "org.root_task")
        .unwrap();
    assert_eq!(stopped.outcome, "failure");
    assert_eq!(stopped.code.as_deref(), Some("org_unavailable"));
    r.control(json!({ "fail": null })).await;
    let rel = release(&w, &id).await.ok();
    assert_eq!(rel["root_task"]["run"]["after"]["password"], false, "{rel}");
    let shown = t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    assert_eq!(shown["root_session"]["attempts"], 2);

    // A database writer who changes the approved tuple (an audit into a
    // deletion) is caught by the signed tuple's digest before AWS is
    // called; one who holds the row makes a release wait its turn.
    t.next_step();
    let tampered = file(&w, root_request(&account, "IAMAuditRootUserCredentials")).await;
    approve_all(&w, &tampered, &[("ann", &w.ann)]).await;
    t.raw_sql(&format!(
        "UPDATE root_requests SET claimed_until = {} WHERE request_id = '{tampered}'",
        t.clock_ms() + 3_600_000
    ))
    .await;
    release(&w, &tampered)
        .await
        .refused(409, "release_in_progress");
    t.raw_sql(&format!(
        "UPDATE root_requests SET claimed_until = 0, task = 'IAMDeleteRootUserCredentials' WHERE request_id = '{tampered}'"
    ))
    .await;
    let refused = release(&w, &tampered).await;
    refused.refused(409, "quorum_unproven");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("root-session tuple"),
        "{}",
        refused.body
    );
    assert!(
        !r.state().await["session_log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source_identity"] == tampered.as_str()),
        "no root session for a tampered request"
    );

    // Denied and expired as for credentials.
    let denied = file(&w, root_request(&account, "IAMAuditRootUserCredentials")).await;
    let code = t.code("bob");
    t.post(
        format!("/v1/requests/{denied}/deny"),
        &w.bob,
        json!({ "code": code, "reason": "not during the freeze" }),
    )
    .await
    .ok();
    release(&w, &denied).await.refused(409, "request_denied");
    let expired = file(&w, root_request(&account, "IAMAuditRootUserCredentials")).await;
    // Recovery opens stored credentials only: a root task needs AWS.
    approve_all(&w, &expired, &[("cat", &w.cat)]).await;
    t.post(
        format!("/v1/requests/{expired}/recovery"),
        &w.requester,
        json!({}),
    )
    .await
    .refused(409, "root_request_not_recoverable");
    t.advance_mins(41);
    release(&w, &expired)
        .await
        .refused(409, "release_window_closed");
    let pending = file(&w, root_request(&account, "IAMAuditRootUserCredentials")).await;
    t.advance_mins(31);
    release(&w, &pending).await.refused(409, "request_expired");
    assert!(t.verify().await);
}

/// `base` with the fields of `extra` added or replaced.
fn with_fields(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

async fn an_interrupted_deletion_is_re_audited_and_resumed(b: Backend) {
    let (r, w, members, _) = root_world(b).await;
    let t = &w.t;
    let account = members[5].clone();
    r.control(json!({ "root": { account.clone(): {
        "password": true,
        "access_keys": ["AKIA0000000000000003", "AKIA0000000000000004"],
    } } }))
    .await;
    let id = file(&w, root_request(&account, "IAMDeleteRootUserCredentials")).await;
    approve_all(
        &w,
        &id,
        &[("ann", &w.ann), ("bob", &w.bob), ("sec", &w.sec)],
    )
    .await;

    // IAM stops answering after the audit's four reads, the password's
    // deletion and the first key's.
    r.control(json!({ "fail": { "service": "iam", "mode": "unavailable", "after": 6 } }))
        .await;
    release(&w, &id).await.refused(503, "org_unavailable");
    let shown = t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    assert_eq!(shown["state"], "approved", "{shown}");
    assert_eq!(shown["root_session"]["attempts"], 1);
    assert_eq!(
        shown["root_session"]["progress"]["run"]["steps"],
        json!(["DeleteLoginProfile", "DeleteAccessKey AKIA0000000000000003"]),
        "{shown}"
    );
    assert!(shown["root_session"]["progress"]["error"]
        .as_str()
        .unwrap()
        .contains("iam is unavailable"));
    let stopped = t
        .audit()
        .await
        .into_iter()
        .rfind(|e| e.action == "org.root_task")
        .unwrap();
    assert_eq!(
        (stopped.outcome.as_str(), stopped.code.as_deref()),
        ("failure", Some("org_unavailable"))
    );
    assert_eq!(
        stopped.details["run"]["steps"].as_array().unwrap().len(),
        2,
        "what was done is on the record"
    );
    assert_eq!(
        r.state().await["root"][&account]["access_keys"],
        json!(["AKIA0000000000000004"])
    );
    // The review says so, high: the root is half-deleted.
    let review = t.get("/v1/hygiene", &w.auditor).await.ok();
    assert_eq!(
        findings(&review, "org.root_task_stopped"),
        vec![format!("request:{id}")],
        "{review}"
    );
    let stopped = review["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "org.root_task_stopped")
        .unwrap();
    assert_eq!(stopped["severity"], "high");
    assert!(stopped["fix"]
        .as_str()
        .unwrap()
        .starts_with("release request"));

    // IAM back: the next release audits again and deletes what is left.
    r.control(json!({ "fail": null })).await;
    let rel = release(&w, &id).await.ok();
    let run = &rel["root_task"]["run"];
    assert_eq!(
        run["before"],
        json!({ "password": false, "access_keys": ["AKIA0000000000000004"], "mfa_devices": [], "signing_certificates": [] })
    );
    assert_eq!(
        run["steps"],
        json!(["DeleteAccessKey AKIA0000000000000004"])
    );
    assert_eq!(run["already"], json!(["no password"]));
    assert_eq!(run["after"]["access_keys"], json!([]));
    let shown = t.get(format!("/v1/requests/{id}"), &w.requester).await.ok();
    assert_eq!(shown["state"], "released");
    assert_eq!(shown["root_session"]["attempts"], 2);
    let review = t.get("/v1/hygiene", &w.auditor).await.ok();
    assert!(
        findings(&review, "org.root_task_stopped").is_empty(),
        "{review}"
    );
    assert!(t.verify().await);
}

async fn unlock_tasks_delete_the_bucket_and_queue_policies_and_a_session_is_handed_over_once(
    b: Backend,
) {
    let (r, w, members, _) = root_world(b).await;
    let t = &w.t;
    let account = members[9].clone();
    let bucket = format!("locked-{}", &account[..6]);
    let deny_all = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*" }],
    })
    .to_string();
    let made = r
        .as_account(&account, "s3", "create_bucket", json!({ "Bucket": bucket }))
        .await;
    assert!(made.get("error").is_none(), "{made}");
    r.as_account(
        &account,
        "s3",
        "put_bucket_policy",
        json!({ "Bucket": bucket, "Policy": deny_all }),
    )
    .await;
    let q = r
        .as_account(
            &account,
            "sqs",
            "create_queue",
            json!({ "QueueName": "jobs", "Attributes": { "Policy": deny_all } }),
        )
        .await;
    let queue_url = q["QueueUrl"].as_str().unwrap().to_string();

    // The bucket: executed by the service, filed and released with the CLI.
    let (code, out, err) = common::cli(
        &[
            "org",
            "request",
            &account,
            "--task",
            "S3UnlockBucketPolicy",
            "--bucket",
            &bucket,
            "--reason",
            "the bucket policy locks everyone out",
        ],
        &t.base,
        &w.requester,
    );
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_string();
    assert!(
        err.contains(&format!(
            "S3UnlockBucketPolicy in account {account} for 300 s (executed by the service)"
        )),
        "{err}"
    );
    approve_all(&w, &id, &[("ann", &w.ann)]).await;
    let (code, out, err) = common::cli(&["release", &id], &t.base, &w.requester);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("done: DeleteBucketPolicy {bucket}"))
            && out.contains("executed once; the request is released"),
        "{out}"
    );
    // A wrong task, named by the CLI, which exits non-zero.
    let (code, _, err) = common::cli(
        &[
            "org", "request", &account, "--task", "S3Unlock", "--reason", "x",
        ],
        &t.base,
        &w.requester,
    );
    assert_ne!(code, 0);
    assert!(err.contains("not a root task"), "{err}");
    let gone = r
        .as_account(
            &account,
            "s3",
            "get_bucket_policy",
            json!({ "Bucket": bucket }),
        )
        .await;
    assert_eq!(gone["error"], "NoSuchBucketPolicy", "{gone}");

    // The queue: executed too.
    let id = file(
        &w,
        with_fields(
            root_request(&account, "SQSUnlockQueuePolicy"),
            json!({ "queue_url": queue_url }),
        ),
    )
    .await;
    approve_all(&w, &id, &[("bob", &w.bob)]).await;
    let rel = release(&w, &id).await.ok();
    assert_eq!(
        rel["root_task"]["run"]["steps"],
        json!([format!("SetQueueAttributes {queue_url} Policy=\"\"")]),
        "{rel}"
    );
    let attrs = r
        .as_account(
            &account,
            "sqs",
            "get_queue_attributes",
            json!({ "QueueUrl": queue_url, "AttributeNames": ["Policy"] }),
        )
        .await;
    assert!(
        attrs["Attributes"]["Policy"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{attrs}"
    );

    // The same task handed over: the requester receives the session once;
    // only its key id is audited.
    t.next_step();
    let id = file(
        &w,
        with_fields(
            root_request(&account, "SQSUnlockQueuePolicy"),
            json!({ "queue_url": queue_url, "hand_over": true }),
        ),
    )
    .await;
    approve_all(&w, &id, &[("ann", &w.ann)]).await;
    let rel = release(&w, &id).await.ok();
    assert!(rel["root_task"]["run"].is_null(), "{rel}");
    let secret = rel["fields"]["secret_access_key"]
        .as_str()
        .unwrap()
        .to_string();
    let token = rel["fields"]["session_token"].as_str().unwrap().to_string();
    assert_eq!(
        rel["fields"]["access_key_id"],
        rel["root_task"]["session_key_id"]
    );
    release(&w, &id).await.refused(409, "request_released");
    for e in t.audit().await {
        let text = e.details.to_string();
        assert!(!text.contains(&secret) && !text.contains(&token), "{text}");
    }
    // The S3 and SQS calls were the sessions', checked against their task.
    let checked = r.state().await["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c[0] == "s3" || c[0] == "sqs")
        .count();
    assert!(
        checked >= 4,
        "the S3 and SQS calls went through the task policy check"
    );
    assert!(t.verify().await);
}
