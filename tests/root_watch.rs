//! The root watch: CloudTrail log files in the documented shape, written
//! by the tests into moto's S3 (one account's layout and an
//! organisation's), read by the service; root activity matched to a
//! release or a brokered session, the rest raised once as a finding and an
//! alert, across restarts and replicas; malformed and foreign files
//! recorded and skipped; files announced on SQS. Both backends.

mod common;

use std::io::Write;

use breakglass::config::{AlertChannel, Alerts, Config, RootWatchSettings};
use breakglass::domain::Role;
use common::{Backend, Moto, RootResponder, TestApp};
use serde_json::{json, Value};

both_backends!(
    a_sign_in_during_a_release_is_linked_to_it_and_one_outside_any_alerts_once,
    brokered_sessions_match_by_key_and_anyone_elses_assume_root_alerts,
    files_announced_on_the_queue_are_read_without_a_listing,
);

const ACCOUNT: &str = "123456789012";

fn bucket_name() -> String {
    format!(
        "bg-trail-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The configuration of a watch on `bucket` (listing every hour: the
/// tests run rounds themselves), alerting a webhook nobody answers (the
/// outbox keeps the alerts).
fn watch_config(bucket: &str, queue: Option<String>) -> impl Fn(&mut Config) {
    let bucket = bucket.to_string();
    move |c: &mut Config| {
        c.settings.root_watch = Some(RootWatchSettings {
            bucket: bucket.clone(),
            prefix: String::new(),
            queue_url: queue.clone(),
            poll_interval: std::time::Duration::from_secs(3600),
            release_window: std::time::Duration::from_secs(12 * 3600),
        });
        c.settings.alerts = Some(Alerts {
            public_url: None,
            max_attempts: 3,
            channels: vec![AlertChannel {
                name: "security".into(),
                kind: "slack".into(),
                url: "http://127.0.0.1:9/slack".into(),
                events: breakglass::config::default_alert_events("slack")
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                secret: None,
            }],
        });
    }
}

async fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    let sdk = breakglass::aws::sdk_config(&breakglass::aws::AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.to_string()),
        call_timeout: std::time::Duration::from_secs(30),
    })
    .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

fn time_of(ms: i64) -> String {
    breakglass::clock::rfc3339(ms / 1000 * 1000)
}

/// A log file's key as CloudTrail names it, for `account` (under
/// `org`'s folder when given) delivered at `at_ms`.
fn log_key(org: Option<&str>, account: &str, at_ms: i64) -> String {
    let t = time_of(at_ms);
    let (y, m, d) = (&t[0..4], &t[5..7], &t[8..10]);
    let stamp = format!("{y}{m}{d}T{}{}Z", &t[11..13], &t[14..16]);
    let random = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let org = org.map(|o| format!("{o}/")).unwrap_or_default();
    format!(
        "AWSLogs/{org}{account}/CloudTrail/us-east-1/{y}/{m}/{d}/{account}_CloudTrail_us-east-1_{stamp}_{random}.json.gz"
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

/// Write `records` as one log file of `account`; its key.
async fn plant(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    org: Option<&str>,
    account: &str,
    at_ms: i64,
    records: Vec<Value>,
) -> String {
    let key = log_key(org, account, at_ms);
    let body = json!({ "Records": records }).to_string();
    put(s3, bucket, &key, gzip(body.as_bytes())).await;
    key
}

fn record(account: &str, at_ms: i64, source: &str, name: &str, identity: Value) -> Value {
    json!({
        "eventVersion": "1.09",
        "eventID": uuid::Uuid::new_v4().to_string(),
        "eventTime": time_of(at_ms),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "Mozilla/5.0",
        "userIdentity": identity,
        "recipientAccountId": account,
        "eventType": "AwsApiCall",
        "requestParameters": null,
        "responseElements": null,
    })
}

fn root_identity(account: &str, key: Option<&str>) -> Value {
    let mut id = json!({
        "type": "Root",
        "principalId": account,
        "arn": format!("arn:aws:iam::{account}:root"),
        "accountId": account,
    });
    if let Some(k) = key {
        id["accessKeyId"] = json!(k);
    }
    id
}

fn console_login(account: &str, at_ms: i64, mfa: bool) -> Value {
    let mut r = record(
        account,
        at_ms,
        "signin.amazonaws.com",
        "ConsoleLogin",
        root_identity(account, None),
    );
    r["eventType"] = json!("AwsConsoleSignIn");
    r["responseElements"] = json!({ "ConsoleLogin": "Success" });
    r["additionalEventData"] = json!({
        "LoginTo": "https://console.aws.amazon.com/console/home",
        "MobileVersion": "No",
        "MFAUsed": if mfa { "Yes" } else { "No" },
    });
    r
}

fn root_call(account: &str, at_ms: i64, name: &str, key: &str) -> Value {
    record(
        account,
        at_ms,
        "iam.amazonaws.com",
        name,
        root_identity(account, Some(key)),
    )
}

fn assume_root(mgmt: &str, at_ms: i64, caller: &str, target: &str, key: &str) -> Value {
    let mut r = record(
        mgmt,
        at_ms,
        "sts.amazonaws.com",
        "AssumeRoot",
        json!({
            "type": "AssumedRole",
            "arn": caller,
            "accountId": mgmt,
            "accessKeyId": "ASIACALLER0000000001",
        }),
    );
    r["requestParameters"] = json!({
        "targetPrincipal": target,
        "taskPolicyArn": { "arn": "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials" },
        "durationSeconds": 300,
    });
    r["responseElements"] = json!({
        "credentials": { "accessKeyId": key, "sessionToken": "HIDDEN_DUE_TO_SECURITY_REASONS", "expiration": "Dec 4, 2026, 2:10:00 PM" },
    });
    r
}

/// A round now (`watch run` as admin), waiting while the background
/// holds the watch.
async fn watch_run(t: &TestApp, admin: &str) -> Value {
    for _ in 0..100 {
        let r = t.post("/v1/watch/run", admin, json!({})).await;
        if r.status == 409 && r.code() == "watch_busy" {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        return r.ok();
    }
    panic!("the watch stayed busy");
}

async fn events_of(t: &TestApp, action: &str) -> Vec<breakglass::crypto::chain::AuditEvent> {
    t.audit()
        .await
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

fn unmatched_checks(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "root.unmatched_activity")
        .map(|f| f["finding"].as_str().unwrap().to_string())
        .collect()
}

async fn a_sign_in_during_a_release_is_linked_to_it_and_one_outside_any_alerts_once(b: Backend) {
    let moto = Moto::shared_or_own().await;
    let bucket = bucket_name();
    let s3 = s3(&moto.endpoint).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let endpoint = moto.endpoint.clone();
    let config = watch_config(&bucket, None);
    let tweak = move |c: &mut Config| {
        config(c);
        c.aws.endpoint_url = Some(endpoint.clone());
        c.aws.region = Some("us-east-1".into());
    };
    let t = TestApp::start_configured(b, &tweak).await;
    let w = common::World::with(t).await;
    let t = &w.t;

    // Nothing read yet: the review says so.
    let review = t.get("/v1/hygiene", &w.admin).await.ok();
    assert!(
        review["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "watch.trail_silent"),
        "{review}"
    );

    // A release of the account's credential, then its root used in the
    // console within the window: linked to the release, no alarm.
    let id = w.approved_request().await;
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    let released = t.clock_ms();
    let session_key = "ASIACONSOLE000000001";
    plant(
        &s3,
        &bucket,
        None,
        ACCOUNT,
        released + 10 * 60_000,
        vec![
            console_login(ACCOUNT, released + 3 * 60_000, true),
            root_call(
                ACCOUNT,
                released + 5 * 60_000,
                "GetAccountSummary",
                session_key,
            ),
            root_call(
                ACCOUNT,
                released + 9 * 60_000,
                "UpdateLoginProfile",
                session_key,
            ),
        ],
    )
    .await;
    let r = watch_run(t, &w.admin).await;
    assert_eq!(
        (r["files_read"].as_u64(), r["root_events"].as_u64()),
        (Some(1), Some(3)),
        "{r}"
    );
    assert_eq!(
        (r["matched"].as_u64(), r["unmatched"].as_u64()),
        (Some(3), Some(0)),
        "{r}"
    );
    let matched = events_of(t, "watch.matched").await;
    assert_eq!(matched.len(), 1, "one event per release and file");
    let m = &matched[0];
    assert_eq!(m.target, format!("request:{id}"));
    assert_eq!(m.details["released_to"], "oncall");
    assert_eq!(m.details["events"], 3);
    let summary = m.details["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("root used ")
            && summary.ends_with(&format!("during release {id} by oncall")),
        "{summary}"
    );
    assert!(events_of(t, "watch.unmatched").await.is_empty());

    // Two days later, nobody released anything: a console sign-in without
    // MFA and two calls with a root access key.
    t.clock.advance_secs(2 * 86_400);
    // Tokens of two days ago have expired.
    let admin = t.token("root-admin", &[Role::Admin]);
    let auditor = t.token("audrey", &[Role::Auditor]);
    let now = t.clock_ms();
    let key = "AKIAROOTKEY000000009";
    plant(
        &s3,
        &bucket,
        None,
        ACCOUNT,
        now,
        vec![
            console_login(ACCOUNT, now - 4 * 60_000, false),
            record(
                ACCOUNT,
                now - 3 * 60_000,
                "s3.amazonaws.com",
                "ListBuckets",
                root_identity(ACCOUNT, Some(key)),
            ),
            record(
                ACCOUNT,
                now - 2 * 60_000,
                "ec2.amazonaws.com",
                "DescribeInstances",
                root_identity(ACCOUNT, Some(key)),
            ),
        ],
    )
    .await;
    // Two replicas on one database read at once: the findings are raised
    // once.
    let other = t.successor_configured(&tweak).await;
    let (a, b2) = tokio::join!(t.app.watch_round(true), other.app.watch_round(true));
    let (a, b2) = (a.unwrap(), b2.unwrap());
    assert!(a.is_some() || b2.is_some(), "one replica read");
    watch_run(t, &admin).await;
    watch_run(&other, &admin).await;
    let unmatched = events_of(t, "watch.unmatched").await;
    let mut kinds: Vec<&str> = unmatched
        .iter()
        .map(|e| e.details["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["access_key", "console_sign_in"], "{unmatched:?}");
    let signin = unmatched
        .iter()
        .find(|e| e.details["kind"] == "console_sign_in")
        .unwrap();
    assert_eq!(signin.target, format!("account:{ACCOUNT}"));
    assert_eq!(signin.details["mfa_used"], false);
    assert_eq!(signin.details["source_ip"], "203.0.113.9");
    // Each alerted, once.
    let alerts = t.get("/v1/alerts", &admin).await.ok();
    for e in &unmatched {
        let n = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["seq"] == e.seq)
            .count();
        assert_eq!(n, 1, "alert of event {}: {alerts}", e.seq);
    }

    // A lost cursor, then a restart: the files were handled, nothing is
    // raised again.
    t.raw_sql("DELETE FROM trail_cursors").await;
    watch_run(t, &admin).await;
    other.stop().await;
    let restarted = t.successor_configured(&tweak).await;
    let r = watch_run(&restarted, &admin).await;
    assert_eq!(r["files_read"], 0, "{r}");
    assert_eq!(events_of(t, "watch.unmatched").await.len(), 2);

    // The review and the status list both findings, the key's with its
    // two events.
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    let listed = unmatched_checks(&review);
    assert_eq!(listed.len(), 2, "{review}");
    assert!(
        listed
            .iter()
            .any(|f| f.contains("without MFA") && f.contains("203.0.113.9")),
        "{listed:?}"
    );
    let status = t.get("/v1/watch", &auditor).await.ok();
    assert_eq!(status["open_findings"], 2, "{status}");
    assert_eq!(status["files_read"], 2, "{status}");
    let key_finding = status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "access_key")
        .unwrap()
        .clone();
    assert_eq!(key_finding["events"], 2, "{key_finding}");
    let fid = key_finding["id"].as_str().unwrap().to_string();
    let (code, out, _) = common::cli(&["watch", "status"], &t.base, &auditor);
    assert_eq!(code, 0);
    assert!(
        out.contains(&fid) && out.contains("root access key use"),
        "{out}"
    );

    // /metrics counts them.
    let metrics = reqwest::get(format!("{}/metrics", t.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("breakglass_root_unmatched_findings 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("breakglass_cloudtrail_files{status=\"read\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("breakglass_cloudtrail_root_events 6"),
        "{metrics}"
    );

    // Acknowledging: admin only, with a reason, once; audited.
    let path = format!("/v1/watch/findings/{fid}/acknowledge");
    t.post(&path, &auditor, json!({ "reason": "x" }))
        .await
        .refused(403, "forbidden_role");
    t.post(&path, &admin, json!({ "reason": "  " }))
        .await
        .refused(422, "invalid_reason");
    t.post(
        "/v1/watch/findings/nope/acknowledge",
        &admin,
        json!({ "reason": "x" }),
    )
    .await
    .refused(404, "finding_not_found");
    let acked = t
        .post(
            &path,
            &admin,
            json!({ "reason": "INC-9: the key was used by the DR drill" }),
        )
        .await
        .ok();
    assert_eq!(acked["acknowledged_by"], "root-admin", "{acked}");
    t.post(&path, &admin, json!({ "reason": "again" }))
        .await
        .refused(409, "finding_acknowledged");
    // Each refusal is audited; one acknowledgement succeeded.
    let ack: Vec<_> = events_of(t, "watch.acknowledge")
        .await
        .into_iter()
        .filter(|e| e.outcome == "success")
        .collect();
    assert_eq!(ack.len(), 1);
    assert_eq!(
        ack[0].details["reason"],
        "INC-9: the key was used by the DR drill"
    );
    let review = t.get("/v1/hygiene", &auditor).await.ok();
    assert_eq!(unmatched_checks(&review).len(), 1, "{review}");

    // The same key used again after the acknowledgement: a new finding,
    // alerted again.
    t.clock.advance_secs(600);
    let now = t.clock_ms();
    plant(
        &s3,
        &bucket,
        None,
        ACCOUNT,
        now,
        vec![record(
            ACCOUNT,
            now - 60_000,
            "s3.amazonaws.com",
            "ListBuckets",
            root_identity(ACCOUNT, Some(key)),
        )],
    )
    .await;
    watch_run(t, &admin).await;
    let unmatched = events_of(t, "watch.unmatched").await;
    assert_eq!(unmatched.len(), 3);
    assert_ne!(unmatched[2].details["finding"], fid.as_str());
    assert!(t.verify().await, "the audit chain verifies");
}

const BROKER: &str = "arn:aws:iam::123456789012:role/breakglass-root-broker";

async fn brokered_sessions_match_by_key_and_anyone_elses_assume_root_alerts(b: Backend) {
    let r = RootResponder::start().await;
    let (master, members) = r.organization(6).await;
    let bucket = bucket_name();
    let s3 = s3(&r.endpoint).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let t = r
        .app_with_broker_and(b, BROKER, &watch_config(&bucket, None))
        .await;
    let w = common::World::with(t).await;
    let t = &w.t;
    t.post("/v1/org/sync", &w.admin, json!({})).await.ok();
    let org_id = t.get("/v1/org/accounts", &w.admin).await.ok()["organization_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A root-session request, approved and released: the service's own
    // session, with its key id on the record.
    let account = members[2].clone();
    let id = t
        .post(
            "/v1/org/root-requests",
            &w.requester,
            json!({ "account_id": account, "task": "IAMAuditRootUserCredentials",
                    "duration_secs": 300, "reason": "audit the member's root" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.approve(&id, "ann", &w.ann).await.ok();
    t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    let ours = events_of(t, "org.root_session")
        .await
        .into_iter()
        .find(|e| e.details["request"] == id.as_str())
        .unwrap()
        .details["session_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    // And a posture session of the sync, for another member.
    let posture = events_of(t, "org.root_session")
        .await
        .into_iter()
        .find(|e| {
            e.details["purpose"] == "posture" && e.details["account_id"] == members[4].as_str()
        })
        .unwrap()
        .details["session_key_id"]
        .as_str()
        .unwrap()
        .to_string();

    let now = t.clock_ms();
    let theirs = "ASIAMALLORY000000001";
    let broker_session = format!("arn:aws:sts::{master}:assumed-role/breakglass-root-broker/{id}");
    // The management account's log: our AssumeRoot, and someone else's.
    plant(
        &s3,
        &bucket,
        Some(&org_id),
        &master,
        now,
        vec![
            assume_root(&master, now - 60_000, &broker_session, &account, &ours),
            assume_root(
                &master,
                now - 30_000,
                &format!("arn:aws:sts::{master}:assumed-role/Admin/mallory"),
                &members[5],
                theirs,
            ),
        ],
    )
    .await;
    // The members' logs: the calls of each session; first, in the same
    // prefix and sorting before them, a file that is not gzip and one of
    // another account.
    let early = now - 120_000;
    let broken = log_key(Some(&org_id), &account, early);
    put(&s3, &bucket, &broken, b"{\"Records\": []}".to_vec()).await;
    let foreign = plant(
        &s3,
        &bucket,
        Some(&org_id),
        &account,
        early,
        vec![record(
            "999999999999",
            early,
            "s3.amazonaws.com",
            "ListBuckets",
            json!({ "type": "IAMUser" }),
        )],
    )
    .await;
    put(
        &s3,
        &bucket,
        &format!("AWSLogs/{org_id}/{account}/CloudTrail/us-east-1/notes.txt"),
        b"hello".to_vec(),
    )
    .await;
    plant(
        &s3,
        &bucket,
        Some(&org_id),
        &account,
        now,
        vec![
            root_call(&account, now - 50_000, "GetLoginProfile", &ours),
            root_call(&account, now - 40_000, "ListAccessKeys", &ours),
        ],
    )
    .await;
    plant(
        &s3,
        &bucket,
        Some(&org_id),
        &members[4],
        now,
        vec![root_call(
            &members[4],
            now - 20_000,
            "ListMFADevices",
            &posture,
        )],
    )
    .await;
    plant(
        &s3,
        &bucket,
        Some(&org_id),
        &members[5],
        now,
        vec![
            root_call(&members[5], now - 20_000, "DeactivateMFADevice", theirs),
            root_call(&members[5], now - 10_000, "DeleteVirtualMFADevice", theirs),
        ],
    )
    .await;

    let report = watch_run(t, &w.admin).await;
    assert_eq!(report["files_rejected"], 3, "{report}");
    assert_eq!(report["files_read"], 4, "{report}");

    // Ours: the AssumeRoot and the session's calls, linked to the request.
    let matched = events_of(t, "watch.matched").await;
    let of_request: Vec<_> = matched
        .iter()
        .filter(|e| e.target == format!("request:{id}"))
        .collect();
    let n: u64 = of_request
        .iter()
        .map(|e| e.details["events"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 3, "{of_request:?}");
    assert!(of_request
        .iter()
        .all(|e| e.details["session_key_id"] == ours.as_str()));
    assert!(of_request.iter().any(|e| e.details["summary"]
        .as_str()
        .unwrap()
        .contains(&format!("in the root session of request {id}"))));
    // The sync's session: linked to it.
    assert!(
        matched
            .iter()
            .any(|e| e.details["session_key_id"] == posture.as_str()
                && e.details["purpose"] == "posture"),
        "{matched:?}"
    );

    // Theirs: the AssumeRoot, and its session's MFA changes (one finding
    // for the session's key).
    let unmatched = events_of(t, "watch.unmatched").await;
    let mut kinds: Vec<(&str, &str)> = unmatched
        .iter()
        .map(|e| {
            (
                e.details["kind"].as_str().unwrap(),
                e.details["account_id"].as_str().unwrap(),
            )
        })
        .collect();
    kinds.sort();
    let mut want = vec![
        ("assume_root", master.as_str()),
        ("mfa_change", members[5].as_str()),
    ];
    want.sort();
    assert_eq!(kinds, want, "{unmatched:?}");
    let assumed = unmatched
        .iter()
        .find(|e| e.details["kind"] == "assume_root")
        .unwrap();
    assert!(assumed.details["principal"]
        .as_str()
        .unwrap()
        .ends_with("/mallory"));
    assert_eq!(assumed.details["target_account"], members[5].as_str());

    // The rejected files: recorded with why, audited, skipped.
    let rejected = events_of(t, "watch.file_rejected").await;
    assert_eq!(rejected.len(), 3);
    let why = |key: &str| {
        rejected
            .iter()
            .find(|e| e.details["file"] == key)
            .map(|e| e.details["why"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{key} not rejected: {rejected:?}"))
    };
    assert!(why(&broken).starts_with("not gzip"), "{}", why(&broken));
    assert!(
        why(&foreign).contains("of account 999999999999"),
        "{}",
        why(&foreign)
    );
    let status = t.get("/v1/watch", &w.admin).await.ok();
    assert_eq!(
        status["rejected_files"].as_array().unwrap().len(),
        3,
        "{status}"
    );
    // Nothing twice.
    let again = watch_run(t, &w.admin).await;
    assert_eq!(
        (
            again["files_read"].as_u64(),
            again["files_rejected"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    assert!(t.verify().await);
}

async fn files_announced_on_the_queue_are_read_without_a_listing(b: Backend) {
    let moto = Moto::shared_or_own().await;
    let bucket = bucket_name();
    let s3 = s3(&moto.endpoint).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let sdk = moto.sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name(&bucket)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let endpoint = moto.endpoint.clone();
    let config = watch_config(&bucket, Some(queue.clone()));
    let t = TestApp::start_configured(b, &move |c| {
        config(c);
        c.aws.endpoint_url = Some(endpoint.clone());
        c.aws.region = Some("us-east-1".into());
    })
    .await;
    let admin = t.token("root-admin", &[Role::Admin]);
    // The first listing (at the start) is past; the file is announced.
    watch_run(&t, &admin).await;
    let now = t.clock_ms();
    let key = plant(
        &s3,
        &bucket,
        None,
        ACCOUNT,
        now,
        vec![console_login(ACCOUNT, now - 60_000, true)],
    )
    .await;
    let notification = json!({ "Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": { "bucket": { "name": bucket }, "object": { "key": key.replace(' ', "+") } },
    }] });
    sqs.send_message()
        .queue_url(&queue)
        .message_body(notification.to_string())
        .send()
        .await
        .unwrap();
    // The background drains the queue every 10 s; a round without a
    // listing does the same now.
    let mut seen = false;
    for _ in 0..200 {
        t.app.watch_round(false).await.unwrap();
        if !events_of(&t, "watch.unmatched").await.is_empty() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the announced file was read");
    let unmatched = events_of(&t, "watch.unmatched").await;
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].details["file"], key.as_str());
    let left = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap();
    assert!(
        left.messages().is_empty(),
        "the notification was taken off the queue"
    );
}
