//! `org sync` over a large organisation: BENCH_ACCOUNTS member accounts
//! (default 1000) in moto, AssumeRoot and the root sessions' IAM calls
//! answered by the stand-alone responder (tests/aws_root/responder.py),
//! 5% of the members with root credentials. For each backend and each
//! posture concurrency (1, 8, 32): the whole sync (inventory, then one
//! audit-task session per member: AssumeRoot and four IAM list calls),
//! then the review of the result.
//!
//! Run: `cargo bench --bench org_sync`. Method and results:
//! docs/benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use breakglass::domain::Role;
use common::{Backend, RootResponder};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let r = RootResponder::start().await;
    let started = Instant::now();
    let (_, members) = r.organization(n).await;
    let seeded: serde_json::Map<String, serde_json::Value> = members
        .iter()
        .step_by(20)
        .map(|id| {
            (
                id.clone(),
                json!({ "password": true, "access_keys": ["AKIA0000000000000001"] }),
            )
        })
        .collect();
    let with_root = seeded.len();
    r.control(json!({ "root": seeded })).await;
    println!(
        "organisation: {n} member accounts, {with_root} with root credentials, created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("| backend | concurrency | sync (s) | accounts/s | AWS calls | review (ms) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for concurrency in [1, 8, 32] {
            let t = r.app(backend, concurrency).await;
            let calls_before = r.state().await["call_count"].as_u64().unwrap();
            let began = Instant::now();
            let report = t.app.run_org_sync("bench").await.unwrap();
            let secs = began.elapsed().as_secs_f64();
            assert_eq!(report.postures_read, n, "every posture read");
            assert_eq!(report.root_credentials_present.len(), with_root);
            let calls = r.state().await["call_count"].as_u64().unwrap() - calls_before;
            let auditor = t.token("bench-auditor", &[Role::Auditor]);
            let began = Instant::now();
            let review = t.get("/v1/hygiene", &auditor).await.ok();
            let review_ms = began.elapsed().as_millis();
            let present = review["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["check"] == "org.root_credentials_present")
                .count();
            assert_eq!(present, with_root);
            println!(
                "| {} | {concurrency} | {secs:.1} | {:.0} | {calls} | {review_ms} |",
                match backend {
                    Backend::Sqlite => "SQLite",
                    Backend::Postgres => "PostgreSQL",
                },
                n as f64 / secs,
            );
            t.stop().await;
        }
    }
}
