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
