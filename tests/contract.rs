//! The API contract under generated, hostile input: schemathesis (an
//! independent OpenAPI fuzzer) runs every operation of `/openapi.json`
//! against a live server, once per role with a valid token, with examples,
//! boundary-value coverage, random fuzzing and stateful sequences that
//! follow the document's links. Its checks, and ours:
//!
//! - no 5xx;
//! - every response conforms to the document: status code, content type,
//!   headers, body schema (error codes included: `ErrorDetail.code` is an
//!   enum of the code table);
//! - invalid input is rejected, unauthenticated requests too;
//! - no request answered 4xx changes state (`tests/contract/hooks.py`).
//!
//! Cases per operation: `BREAKGLASS_CONTRACT_EXAMPLES` (CI runs 10; the
//! README documents a longer run).

mod common;

use breakglass::config::Config;
use common::{Backend, TestApp, World};
use serde_json::{json, Value};

struct Totals {
    role: &'static str,
    operations: u64,
    cases: u64,
    failures: u64,
    report: Value,
    output: String,
}

async fn run_schemathesis(t: &TestApp, role: &'static str, token: &str, examples: u32) -> Totals {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    // The hooks read the database the server uses.
    let db = match t.database_url.strip_prefix("sqlite://") {
        Some(file) => file.to_owned(),
        None => t.database_url.clone(),
    };
    let out = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(format!("{}/openapi.json", t.base))
        .args(["--checks", "all"])
        // Valid input is not always accepted here by design: a random
        // request id names no request (404), a role may not act (403).
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--workers", "1"])
        .args(["--seed", "20261128"])
        .args(["--request-timeout", "30"])
        .args(["--suppress-health-check", "all"])
        // Strings with NUL and every other control character, on both
        // databases (PostgreSQL refuses NUL in text: the edge must first).
        .args(["--generation-allow-x00", "true"])
        .args(["--generation-codec", "utf-8"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--report", "json"])
        .arg("--report-json-path")
        .arg(&report)
        .args(["--output-sanitize", "true"])
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract"),
        )
        .env("BREAKGLASS_CONTRACT_DB", &db)
        .env("NO_COLOR", "1")
        // schemathesis keeps a cache of failures in its working directory.
        .current_dir(dir.path())
        .output()
        .await
        .expect("schemathesis (scripts/test installs it)");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("schemathesis wrote no report:\n{output}"));
    let n = |p: &str| report.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Totals {
        role,
        operations: n("/operations/tested"),
        cases: n("/test_cases/generated"),
        failures: n("/test_cases/with_failures")
            + report["errors"].as_array().map_or(0, |e| e.len() as u64),
        report,
        output,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_no_contract_violation_and_no_change_on_refusal_on_sqlite(
) {
    contract(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_no_contract_violation_and_no_change_on_refusal_on_postgres(
) {
    contract(Backend::Postgres).await
}

async fn contract(backend: Backend) {
    let examples: u32 = std::env::var("BREAKGLASS_CONTRACT_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // The rate limits are the subject of their own tests; here they would
    // only slow the fuzzer down.
    let t = TestApp::start_configured(backend, &|c: &mut Config| {
        c.settings.limits.requests_per_minute_per_address = 1_000_000;
        c.settings.limits.requests_per_minute_per_identity = 1_000_000;
        // Security keys on, so their endpoints are reached past the check
        // that they are configured.
        c.settings.console.public_url = Some(common::PUBLIC_URL_OF_THIS_SERVER.into());
    })
    .await;
    let w = World::with(t).await;
    // Something of each kind for the fuzzer to find: a pending request, an
    // approved one, a released one, a proposed policy change.
    w.request().await;
    w.approved_request().await;
    let released = w.approved_request().await;
    w.t.post(
        format!("/v1/requests/{released}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    w.t.post(
        "/v1/policy-changes",
        &w.admin,
        json!({
            "credential": "aws-prod-root",
            "to_policy": "one-sre",
            "reason": "contract test",
        }),
    )
    .await
    .ok();

    let mut all = vec![];
    for (role, token) in [
        ("admin", w.admin.clone()),
        ("requester", w.requester.clone()),
        ("custodian", w.ann.clone()),
        ("auditor", w.auditor.clone()),
    ] {
        let started = std::time::Instant::now();
        let totals = run_schemathesis(&w.t, role, &token, examples).await;
        eprintln!(
            "schemathesis on {backend:?} as {:<9}: {} operations, {} cases, {} failures ({:.0} s)",
            totals.role,
            totals.operations,
            totals.cases,
            totals.failures,
            started.elapsed().as_secs_f64()
        );
        if std::env::var_os("BREAKGLASS_CONTRACT_VERBOSE").is_some() {
            eprintln!("{}", totals.output);
        }
        all.push(totals);
    }
    let operations: u64 = all.iter().map(|t| t.operations).sum();
    let cases: u64 = all.iter().map(|t| t.cases).sum();
    let failures: u64 = all.iter().map(|t| t.failures).sum();
    eprintln!("schemathesis on {backend:?} in all: {operations} operations, {cases} cases, {failures} failures");
    for t in &all {
        assert!(
            t.failures == 0,
            "schemathesis as {} found failures: {:#}\n{}",
            t.role,
            json!({ "failures": t.report["failures"], "errors": t.report["errors"] }),
            t.output
        );
        let documented = w.t.call("GET", "/openapi.json", None, None).await.body["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len() as u64)
            .sum::<u64>();
        assert_eq!(
            t.operations, documented,
            "as {}: every documented operation is exercised\n{}",
            t.role, t.output
        );
        assert!(t.cases >= t.operations, "as {}: {}", t.role, t.output);
    }
}
