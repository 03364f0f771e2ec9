//! The audit chain pinpoints tampering through the API; the OpenAPI
//! document describes the API; the server refuses to start on a bad policy.

mod common;

use common::{Backend, World};
use serde_json::json;

both_backends!(
    audit_verify_pinpoints_an_edited_event,
    audit_verify_pinpoints_a_deleted_event,
    audit_verify_detects_a_truncated_tail,
    reading_the_audit_log_is_itself_audited,
    a_request_forged_as_approved_in_the_database_is_not_released,
);

async fn a_request_forged_as_approved_in_the_database_is_not_released(b: Backend) {
    let w = World::new(b).await;
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    let deadline = w.t.now_secs() * 1000 + 600_000;
    w.t.raw_sql(&format!(
        "UPDATE requests SET state = 'approved', release_deadline = {deadline} WHERE id = '{id}'"
    ))
    .await;
    w.t.assert_refused_and_unchanged(Some(&id), 409, "quorum_not_met", || {
        w.t.post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
    })
    .await;
    let c =
        w.t.get("/v1/credentials/aws-prod-root", &w.admin)
            .await
            .ok();
    assert_eq!(c["exposed"], false);
}

async fn verify_says(w: &World) -> serde_json::Value {
    w.t.post("/v1/audit/verify", &w.auditor, json!({}))
        .await
        .ok()
}

async fn audit_verify_pinpoints_an_edited_event(b: Backend) {
    let w = World::new(b).await;
    assert_eq!(verify_says(&w).await["ok"], true);
    w.t.raw_sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5")
        .await;
    let v = verify_says(&w).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"]["seq"], 5, "{v}");
    assert!(
        v["first_break"]["reason"]
            .as_str()
            .unwrap()
            .contains("altered"),
        "{v}"
    );
}

async fn audit_verify_pinpoints_a_deleted_event(b: Backend) {
    let w = World::new(b).await;
    w.t.raw_sql("DELETE FROM audit_events WHERE seq = 7").await;
    let v = verify_says(&w).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"]["seq"], 7, "{v}");
    assert!(
        v["first_break"]["reason"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{v}"
    );
}

async fn audit_verify_detects_a_truncated_tail(b: Backend) {
    let w = World::new(b).await;
    let n = w.t.audit().await.len();
    w.t.raw_sql(&format!("DELETE FROM audit_events WHERE seq > {}", n - 2))
        .await;
    let v = verify_says(&w).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_break"]["seq"], n - 1, "{v}");
    assert!(
        v["first_break"]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{v}"
    );
}

async fn reading_the_audit_log_is_itself_audited(b: Backend) {
    let w = World::new(b).await;
    let page =
        w.t.get("/v1/audit/events?after=0&limit=3", &w.auditor)
            .await
            .ok();
    assert_eq!(page.as_array().unwrap().len(), 3);
    assert_eq!(page[0]["seq"], 1);
    let next =
        w.t.get("/v1/audit/events?after=3&limit=2", &w.auditor)
            .await
            .ok();
    assert_eq!(next[0]["seq"], 4);
    let last = w.t.audit().await.pop().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.action.as_str()),
        ("audrey", "audit.list")
    );
    w.t.get("/v1/audit/events?limit=many", &w.auditor)
        .await
        .refused(400, "invalid_query");
}

#[tokio::test]
async fn the_openapi_document_describes_every_operation_and_the_bearer_scheme() {
    let t = common::TestApp::start(Backend::Sqlite).await;
    let doc = t.call("GET", "/openapi.json", None, None).await.ok();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/custodians", "post"),
        ("/v1/custodians/{name}/enroll", "post"),
        ("/v1/custodians/{name}/confirm", "post"),
        ("/v1/credentials", "post"),
        ("/v1/credentials/{name}", "get"),
        ("/v1/credentials/{name}/versions", "post"),
        ("/v1/requests", "post"),
        ("/v1/requests/{id}", "get"),
        ("/v1/requests/{id}/approve", "post"),
        ("/v1/requests/{id}/deny", "post"),
        ("/v1/requests/{id}/release", "post"),
        ("/v1/audit/events", "get"),
        ("/v1/audit/verify", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    // Every operation under /v1 documents the error body.
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/v1")) {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("401"),
                "{method} {path} does not document 401"
            );
        }
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[test]
fn the_server_refuses_to_start_on_an_invalid_policy_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("broken.toml"),
        "[[policy]]\nname = \"broken\"\nrequire = [{ group = \"sre\", count = 2 }]\nrelease_window = \"forever\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--policies-dir")
        .arg(&policies)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.toml:4:") && err.contains("release_window"),
        "{err}"
    );
}

#[test]
fn the_cli_reads_a_field_from_standard_input_without_it_on_the_command_line() {
    use std::io::Write;
    // Against a port nobody listens on: the value is read before the call,
    // and the call fails with the "unreachable" exit code.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args([
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "x",
            "credential",
            "deposit",
            "c",
            "--account",
            "123456789012",
        ])
        .args(["--field", "password=-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"typed-not-echoed\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("typed-not-echoed"));
}

#[test]
fn a_token_is_never_minted_from_a_data_directory_without_a_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args([
            "token",
            "issue",
            "--subject",
            "alice",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no signing key"));
    assert!(out.stdout.is_empty());
    assert!(!missing.exists(), "nothing is created");
}
