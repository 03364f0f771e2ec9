//! Several server processes on one PostgreSQL database: the promises hold
//! across replicas, and a replica killed mid-stream leaves nothing
//! half-done. Real processes, the real clock; codes from `oathtool` for the
//! step the server will see.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use breakglass::auth::TokenService;
use breakglass::crypto::signing::SigningKey;
use breakglass::domain::Role;
use futures_util::future::join_all;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

struct Replica {
    child: Child,
    url: String,
}

impl Replica {
    fn start(data_dir: &Path, db: &str, log: &Path) -> Replica {
        // Every custodian of these tests calls from the one test address:
        // the per-address limits would throttle an organisation's load.
        let config = log.with_file_name("replica.toml");
        std::fs::write(
            &config,
            "[limits]\nrequests_per_minute_per_address = 1000000\n\
             totp_attempts_per_minute_per_address = 1000000\n",
        )
        .unwrap();
        let (child, url) = common::spawn_serve(
            Command::new(BIN)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .args(["--listen", "127.0.0.1:0", "--policies-dir"])
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--database-url")
                .arg(db)
                .stderr(Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .unwrap(),
                )),
        );
        Replica { child, url }
    }

    fn kill9(&mut self) {
        Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two replicas sharing a data directory's keys and one fresh database.
struct Cluster {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    log: PathBuf,
    db: String,
    replicas: Vec<Replica>,
    tokens: TokenService,
    http: reqwest::Client,
    admin: String,
    auditor: String,
}

async fn fresh_db() -> String {
    use sqlx::Connection;
    let name = format!("bgtest_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", common::pg_base_url()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .unwrap();
    format!("{}/{name}", common::pg_base_url())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The code for the step `offset_steps` away from now.
fn code(secret: &str, offset_steps: i64) -> String {
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-b",
            secret,
            "--now",
            &format!("{:+} seconds", offset_steps * 30),
        ])
        .output()
        .expect("oathtool must be installed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Resp {
    status: u16,
    body: Value,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let log = dir.path().join("replicas.log");
        let db = fresh_db().await;
        let mut replicas = vec![Replica::start(&data_dir, &db, &log)];
        for _ in 1..n {
            replicas.push(Replica::start(&data_dir, &db, &log));
        }
        let key = SigningKey::load(&data_dir.join("signing.key")).unwrap();
        let tokens = TokenService::new(&key, "breakglass", "breakglass-api", 30 * 86400);
        let admin = tokens
            .issue("root-admin", &[Role::Admin], 3600, now_secs())
            .unwrap()
            .0;
        let auditor = tokens
            .issue("audrey", &[Role::Auditor], 3600, now_secs())
            .unwrap()
            .0;
        Cluster {
            _dir: dir,
            data_dir,
            log,
            db,
            replicas,
            tokens,
            http: reqwest::Client::new(),
            admin,
            auditor,
        }
    }

    fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.tokens.issue(sub, roles, 3600, now_secs()).unwrap().0
    }

    async fn call(
        &self,
        replica: usize,
        method: &str,
        path: String,
        token: &str,
        body: Value,
    ) -> Resp {
        let url = format!(
            "{}{}",
            self.replicas[replica % self.replicas.len()].url,
            path
        );
        let req = if method == "GET" {
            self.http.get(url)
        } else {
            self.http.post(url).json(&body)
        };
        match req.bearer_auth(token).send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.json().await.unwrap_or(Value::Null);
                Resp { status, body }
            }
            Err(_) => Resp {
                status: 0,
                body: Value::Null,
            },
        }
    }

    /// Add and enrol a custodian; the confirmation spends the previous
    /// step, so the current and next steps remain for approvals.
    async fn custodian(&self, name: &str, group: &str) -> (String, String) {
        let r = self
            .call(
                0,
                "POST",
                "/v1/custodians".into(),
                &self.admin,
                json!({ "name": name, "groups": [group] }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let tok = self.token(name, &[Role::Custodian]);
        let e = self
            .call(
                1,
                "POST",
                format!("/v1/custodians/{name}/enroll"),
                &tok,
                json!({}),
            )
            .await;
        let uri = e.body["otpauth_uri"].as_str().unwrap().to_string();
        let secret = common::secret_of(&uri);
        let c = self
            .call(
                0,
                "POST",
                format!("/v1/custodians/{name}/confirm"),
                &tok,
                json!({ "code": code(&secret, -1) }),
            )
            .await;
        assert_eq!(c.status, 200, "{}", c.body);
        (tok, secret)
    }

    async fn audit(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let r = self
                .call(
                    0,
                    "GET",
                    format!("/v1/audit/events?after={after}&limit=1000"),
                    &self.auditor,
                    json!({}),
                )
                .await;
            let page = r.body.as_array().cloned().unwrap_or_default();
            let Some(last) = page.last() else { break };
            after = last["seq"].as_i64().unwrap();
            let full = page.len() == 1000;
            out.extend(page);
            // Each read appends its own `audit.list` event: stop at the
            // first short page rather than chase it.
            if !full {
                break;
            }
        }
        out
    }

    async fn verify(&self) -> Value {
        self.call(
            1,
            "POST",
            "/v1/audit/verify".into(),
            &self.auditor,
            json!({}),
        )
        .await
        .body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_custodians_and_ten_releases_across_two_replicas_release_exactly_once() {
    let c = Cluster::start(2).await;
    let requester = c.token("oncall", &[Role::Requester]);
    let mut first = true;
    const ROUNDS: usize = 6;
    let mut custodians: Vec<(String, String)> = Vec::new();
    for round in 0..ROUNDS {
        // Each set of custodians serves two rounds: the current step, then
        // the next one (the replay guard refuses a step used before).
        let offset = (round % 2) as i64;
        if offset == 0 {
            custodians.clear();
            for i in 0..20 {
                let group = if i % 3 == 0 { "security" } else { "sre" };
                custodians.push(c.custodian(&format!("c{round}-{i}"), group).await);
            }
        }
        if first {
            let r = c
                .call(
                    0,
                    "POST",
                    "/v1/credentials".into(),
                    &c.admin,
                    json!({
                    "name": "aws-prod-root", "account_id": "123456789012", "policy": "default",
                    "fields": { "password": "pw", "mfa_seed": "seed" } }),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            first = false;
        }
        let r = c
            .call(
                round,
                "POST",
                "/v1/requests".into(),
                &requester,
                json!({ "credential": "aws-prod-root", "reason": format!("round {round}") }),
            )
            .await;
        let id = r.body["id"].as_str().unwrap().to_string();

        // 20 approvals at once, alternating replicas.
        let approvals = custodians.iter().enumerate().map(|(i, (tok, secret))| {
            c.call(
                i,
                "POST",
                format!("/v1/requests/{id}/approve"),
                tok,
                json!({ "code": code(secret, offset) }),
            )
        });
        let approvals = join_all(approvals).await;
        let accepted = approvals.iter().filter(|r| r.status == 200).count();
        for r in approvals.iter().filter(|r| r.status != 200) {
            assert!(
                ["approval_not_needed", "request_already_approved"].contains(&r.code()),
                "round {round}: {} {}",
                r.status,
                r.body
            );
        }
        let shown = c
            .call(
                round + 1,
                "GET",
                format!("/v1/requests/{id}"),
                &requester,
                json!({}),
            )
            .await
            .body;
        assert_eq!(shown["state"], "approved", "round {round}: {shown}");
        assert_eq!(
            accepted, 3,
            "round {round}: the approvals recorded are exactly what the policy needs"
        );
        assert_eq!(shown["approvals"], 3);

        // 10 releases at once, alternating replicas.
        let releases = (0..10).map(|i| {
            c.call(
                i,
                "POST",
                format!("/v1/requests/{id}/release"),
                &requester,
                json!({}),
            )
        });
        let releases = join_all(releases).await;
        assert_eq!(
            releases.iter().filter(|r| r.status == 200).count(),
            1,
            "round {round}: exactly one release"
        );
        for r in releases.iter().filter(|r| r.status != 200) {
            assert_eq!(
                (r.status, r.code()),
                (409, "request_released"),
                "round {round}: {}",
                r.body
            );
        }

        // Every refused attempt is audited.
        let events = c.audit().await;
        let target = format!("request:{id}");
        let refused = events
            .iter()
            .filter(|e| e["target"] == target && e["outcome"] == "refused")
            .count();
        let expected = approvals
            .iter()
            .chain(releases.iter())
            .filter(|r| r.status != 200)
            .count();
        assert_eq!(
            refused, expected,
            "round {round}: every refused attempt is audited"
        );
    }
    let v = c.verify().await;
    assert_eq!(v["ok"], true, "{v}");
    // One linear chain.
    let events = c.audit().await;
    let parents: std::collections::HashSet<_> = events
        .iter()
        .map(|e| e["prev_hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(parents.len(), events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_code_sent_to_both_replicas_at_once_is_accepted_once() {
    let c = Cluster::start(2).await;
    let requester = c.token("oncall", &[Role::Requester]);
    let mut cast = Vec::new();
    for (i, g) in ["sre", "sre", "security"].iter().enumerate() {
        cast.push(c.custodian(&format!("k{i}"), g).await);
    }
    let r = c
        .call(0, "POST", "/v1/credentials".into(), &c.admin, json!({
            "name": "aws-prod-root", "account_id": "123456789012", "policy": "default", "fields": { "password": "pw" } }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for round in 0..8 {
        let (tok, secret) = cast[round % 2].clone();
        // Fresh custodians after the two steps each one has.
        let (tok, secret) = if round >= 2 {
            c.custodian(&format!("r{round}"), "sre").await
        } else {
            (tok, secret)
        };
        let a = c
            .call(
                0,
                "POST",
                "/v1/requests".into(),
                &requester,
                json!({ "credential": "aws-prod-root", "reason": "a" }),
            )
            .await;
        let b = c
            .call(
                1,
                "POST",
                "/v1/requests".into(),
                &requester,
                json!({ "credential": "aws-prod-root", "reason": "b" }),
            )
            .await;
        let (a, b) = (
            a.body["id"].as_str().unwrap().to_string(),
            b.body["id"].as_str().unwrap().to_string(),
        );
        let the_code = code(&secret, 0);
        let (x, y) = tokio::join!(
            c.call(
                0,
                "POST",
                format!("/v1/requests/{a}/approve"),
                &tok,
                json!({ "code": the_code })
            ),
            c.call(
                1,
                "POST",
                format!("/v1/requests/{b}/approve"),
                &tok,
                json!({ "code": the_code })
            ),
        );
        let ok = [&x, &y].iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok, 1,
            "round {round}: {} {} / {} {}",
            x.status, x.body, y.status, y.body
        );
        let refused = if x.status == 200 { &y } else { &x };
        assert_eq!(
            (refused.status, refused.code()),
            (409, "totp_replayed"),
            "{}",
            refused.body
        );
    }
    assert_eq!(c.verify().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_stream_leaves_nothing_half_done() {
    let mut c = Cluster::start(2).await;
    let requester = c.token("oncall", &[Role::Requester]);
    for (i, g) in ["sre", "sre", "security"].iter().enumerate() {
        c.custodian(&format!("k{i}"), g).await;
    }
    let r = c
        .call(0, "POST", "/v1/credentials".into(), &c.admin, json!({
            "name": "aws-prod-root", "account_id": "123456789012", "policy": "default", "fields": { "password": "pw" } }))
        .await;
    assert_eq!(r.status, 200);

    // A stream of writes to replica 0 from 8 clients; kill it with SIGKILL
    // while they run.
    let succeeded = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let url0 = c.replicas[0].url.clone();
    let mut tasks = Vec::new();
    for client in 0..8 {
        let (http, url, requester, admin, succeeded) = (
            c.http.clone(),
            url0.clone(),
            requester.clone(),
            c.admin.clone(),
            succeeded.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in 0..400 {
                let (path, token, body, kind) = if n % 2 == 0 {
                    (
                        "/v1/requests",
                        &requester,
                        json!({ "credential": "aws-prod-root", "reason": format!("{client}-{n}") }),
                        "request",
                    )
                } else {
                    (
                        "/v1/custodians",
                        &admin,
                        json!({ "name": format!("s{client}-{n}"), "groups": ["sre"] }),
                        "custodian",
                    )
                };
                match http
                    .post(format!("{url}{path}"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(res) if res.status() == 200 => {
                        let v: Value = res.json().await.unwrap_or(Value::Null);
                        let key = if kind == "request" {
                            v["id"].as_str().unwrap_or_default().to_string()
                        } else {
                            v["name"].as_str().unwrap_or_default().to_string()
                        };
                        if !key.is_empty() {
                            succeeded.lock().unwrap().push((kind.to_string(), key));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return, // the replica is gone
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while succeeded.lock().unwrap().len() < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "60 operations did not succeed before the replica was to be killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    c.replicas[0].kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let succeeded = succeeded.lock().unwrap().clone();

    // Restart the killed replica; read everything back through both.
    c.replicas[0] = Replica::start(&c.data_dir, &c.db, &c.log);
    let events = c.audit().await;
    let audited = |action: &str, target: &str| {
        events
            .iter()
            .any(|e| e["action"] == action && e["target"] == target && e["outcome"] == "success")
    };
    for (kind, key) in &succeeded {
        if kind == "request" {
            let r = c
                .call(
                    1,
                    "GET",
                    format!("/v1/requests/{key}"),
                    &requester,
                    json!({}),
                )
                .await;
            assert_eq!(r.status, 200, "a request that returned success is present");
            assert!(
                audited("request.create", &format!("request:{key}")),
                "request {key} is audited"
            );
        } else {
            assert!(
                audited("custodian.add", &format!("custodian:{key}")),
                "custodian {key} is audited"
            );
        }
    }
    // Nothing half-done: every stored row has its audit event, and the
    // reverse.
    let requests = c
        .call(
            0,
            "GET",
            "/v1/requests?limit=500".into(),
            &c.admin,
            json!({}),
        )
        .await
        .body;
    let stored_requests = requests.as_array().unwrap().len();
    assert!(
        stored_requests < 500,
        "the listing limit must not hide rows"
    );
    let audited_requests = events
        .iter()
        .filter(|e| e["action"] == "request.create" && e["outcome"] == "success")
        .count();
    assert_eq!(stored_requests, audited_requests);
    let custodians = c
        .call(0, "GET", "/v1/custodians".into(), &c.admin, json!({}))
        .await
        .body;
    let audited_custodians = events
        .iter()
        .filter(|e| e["action"] == "custodian.add" && e["outcome"] == "success")
        .count();
    assert_eq!(custodians.as_array().unwrap().len(), audited_custodians);
    assert_eq!(c.verify().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_the_schema_and_serve_can_skip_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_db().await;
    let data_dir = dir.path().join("data");
    // Without migrations a server refuses to be ready: nothing to read.
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", &db, "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    assert!(
        !data_dir.join("local.key").exists(),
        "migrate creates no keys"
    );
    // Twice is fine: migrations are idempotent.
    assert!(Command::new(BIN)
        .args(["migrate", "--database-url", &db])
        .arg("--data-dir")
        .arg(&data_dir)
        .status()
        .unwrap()
        .success());

    let (mut child, url) = common::spawn_serve(
        Command::new(BIN)
            .args([
                "serve",
                "--no-migrate",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &db,
                "--policies-dir",
            ])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
            .arg("--data-dir")
            .arg(&data_dir)
            .stderr(Stdio::null()),
    );
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let key = SigningKey::load(&data_dir.join("signing.key")).unwrap();
    let tokens = TokenService::new(&key, "breakglass", "breakglass-api", 86400);
    let admin = tokens
        .issue("root-admin", &[Role::Admin], 600, now_secs())
        .unwrap()
        .0;
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/custodians"))
        .bearer_auth(admin)
        .json(&json!({ "name": "ann", "groups": ["sre"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
}
