//! Audited operations per second, on SQLite and PostgreSQL, at 1, 16 and 64
//! concurrent clients, beside `pgbench`'s single-row insert rate measured in
//! the same run (the ceiling an audited write is compared with).
//!
//! Run: `cargo bench --bench audited_ops` (PostgreSQL at
//! BREAKGLASS_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432;
//! BENCH_SECS seconds per cell, default 5). Method and results:
//! docs/benchmarks.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakglass::config::{Config, Overrides};
use breakglass::domain::Role;
use serde_json::json;

const CLIENTS: [usize; 3] = [1, 16, 64];

fn pg_base() -> String {
    std::env::var("BREAKGLASS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn fresh_pg(prefix: &str) -> (String, String) {
    use sqlx::Connection;
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .unwrap();
    (format!("{}/{name}", pg_base()), name)
}

async fn drop_pg(name: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base()))
        .await
        .unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await;
}

struct Cell {
    ops: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// N clients each adding custodians (one row and one audit event per call,
/// in one transaction) over HTTP for `secs`.
async fn run_cell(base: &str, token: &str, clients: usize, secs: u64, tag: &str) -> Cell {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token, counter, tag) = (
            http.clone(),
            base.to_string(),
            token.to_string(),
            counter.clone(),
            tag.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/v1/custodians"))
                    .bearer_auth(&token)
                    .json(&json!({ "name": format!("{tag}-{c}-{n}"), "groups": ["sre"] }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                counter.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            lat
        }));
    }
    let mut lat: Vec<f64> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    Cell {
        ops: counter.load(Ordering::Relaxed),
        secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

async fn bench_backend(label: &str, secs: u64) -> Vec<(usize, Cell)> {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_name) = if label == "sqlite" {
        (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            None,
        )
    } else {
        let (u, n) = fresh_pg("bgbench").await;
        (u, Some(n))
    };
    let config = Config::load(
        None,
        Overrides {
            data_dir: Some(dir.path().join("data")),
            database_url: Some(url),
            policies_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into()),
            ..Default::default()
        },
    )
    .unwrap();
    // One token sends every request: the per-identity and per-address
    // limits would answer 429 long before the database is the limit.
    let mut config = config;
    config.settings.limits.requests_per_minute_per_identity = u32::MAX;
    config.settings.limits.requests_per_minute_per_address = u32::MAX;
    if std::env::var_os("BENCH_NO_CHECKPOINTS").is_some() {
        config.settings.audit_checkpoint_every_events = i64::MAX;
    }
    let app = breakglass::server::build(&config, Arc::new(breakglass::clock::SystemClock))
        .await
        .unwrap();
    let token = app
        .tokens
        .issue(
            "bench-admin",
            &[Role::Admin],
            3600,
            breakglass::clock::Clock::now_ms(&breakglass::clock::SystemClock) / 1000,
        )
        .unwrap()
        .0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(breakglass::server::serve(listener, app.clone(), async {
        let _ = rx.await;
    }));
    // Warm up connections and caches.
    run_cell(&base, &token, 4, 1, &format!("{label}-warm")).await;
    let mut out = Vec::new();
    for clients in CLIENTS {
        let cell = run_cell(&base, &token, clients, secs, &format!("{label}-{clients}")).await;
        out.push((clients, cell));
    }
    // The chain is still one verified chain after all of it.
    let mut txn = app.store.begin_snapshot().await.unwrap();
    let head = txn.audit_head_peek().await.unwrap();
    let mut v = breakglass::crypto::chain::Verifier::new();
    let mut after = 0;
    loop {
        let batch = txn.audit_events(after, 10_000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.seq;
        batch.iter().for_each(|e| v.push(e));
    }
    txn.rollback().await.unwrap();
    let verdict = v.finish(Some(head));
    assert!(verdict.ok, "{verdict:?}");
    eprintln!(
        "{label}: audit chain of {} events verifies",
        verdict.events_checked
    );
    let _ = tx.send(());
    let _ = server.await;
    app.store.close().await;
    if let Some(n) = pg_name {
        drop_pg(&n).await;
    }
    out
}

/// pgbench, custom script: one single-row INSERT per transaction.
async fn pgbench(secs: u64) -> Vec<(usize, f64)> {
    let (url, name) = fresh_pg("bgbench_pgbench").await;
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), "INSERT INTO t (v) VALUES ('x');\n").unwrap();
    let mut out = Vec::new();
    for clients in CLIENTS {
        let o = std::process::Command::new("pgbench")
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &secs.to_string(),
                "-f",
            ])
            .arg(script.path())
            .arg(&url)
            .output()
            .expect("pgbench is installed with PostgreSQL");
        let text = String::from_utf8_lossy(&o.stdout);
        let tps = text
            .lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "pgbench output without tps: {text}{}",
                    String::from_utf8_lossy(&o.stderr)
                )
            });
        out.push((clients, tps));
    }
    drop_pg(&name).await;
    out
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let pg = pgbench(secs).await;
    let mut rows = Vec::new();
    for backend in ["sqlite", "postgres"] {
        for (clients, c) in bench_backend(backend, secs).await {
            rows.push((backend, clients, c));
        }
    }
    println!(
        "| backend | clients | audited ops/s | p50 ms | p99 ms | pgbench single-row inserts/s |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (backend, clients, c) in rows {
        let ceiling = if backend == "postgres" {
            pg.iter()
                .find(|(n, _)| *n == clients)
                .map(|(_, t)| format!("{t:.0}"))
                .unwrap_or_default()
        } else {
            "-".into()
        };
        println!(
            "| {backend} | {clients} | {:.0} | {:.1} | {:.1} | {ceiling} |",
            c.ops as f64 / c.secs,
            c.p50_ms,
            c.p99_ms
        );
    }
}
