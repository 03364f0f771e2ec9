//! `TestApp`: a real server on port 0 with a fresh database (an SQLite file
//! or a PostgreSQL database of its own), a clock the test sets, and typed
//! calls. TOTP codes come from `oathtool`, an independent implementation.
#![allow(dead_code)]

pub mod provider;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use breakglass::app::App;
use breakglass::clock::{Clock, ManualClock};
use breakglass::config::{Config, Overrides};
use breakglass::crypto::chain::AuditEvent;
use breakglass::domain::Role;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Run each listed test function once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

pub const EXTRA_POLICIES: &str = r#"
[[policy]]
name = "one-sre"
description = "tests: one SRE, denials do not veto"
deny_vetoes = false
request_ttl = "30m"
release_window = "5m"
require = [{ group = "sre", count = 1 }]

[[policy]]
name = "needs-dba"
description = "tests: a group nobody is in"
require = [{ group = "dba", count = 1 }]

[[policy]]
name = "incident-only"
description = "tests: releases only in a declared incident, on weekday office hours, one at a time"
ticket_pattern = "INC-[0-9]{3,}"
release_hours = ["Mon-Fri 08:00-18:00"]
max_open_releases = 1
require = [{ group = "sre", count = 1 }]

[[policy]]
name = "rotated-monthly"
description = "tests: credentials rotated at least every 30 days"
max_age = "30d"
require = [{ group = "sre", count = 1 }]
"#;

/// The root-session policies of the organisation tests: auditing a member
/// account's root with one SRE; deleting its credentials or allowing its
/// password's recovery with two SREs and a security engineer; unlocking a
/// bucket or queue with one SRE, who may take the session instead.
pub const ROOT_POLICIES: &str = r#"
[[policy]]
name = "root-audit"
description = "tests: audit a member account's root, one SRE"
request_ttl = "30m"
release_window = "10m"
require = [{ group = "sre", count = 1 }]
root_sessions = { tasks = ["IAMAuditRootUserCredentials"], accounts = ["*"] }

[[policy]]
name = "root-delete"
description = "tests: delete a member account's root credentials, 2 of sre AND 1 of security"
require = [{ group = "sre", count = 2 }, { group = "security", count = 1 }]
root_sessions = { tasks = ["IAMDeleteRootUserCredentials", "IAMCreateRootUserPassword"], accounts = ["*"] }

[[policy]]
name = "root-unlock"
description = "tests: unlock a bucket or queue policy, one SRE, the session may be handed over"
require = [{ group = "sre", count = 1 }]
root_sessions = { tasks = ["S3UnlockBucketPolicy", "SQSUnlockQueuePolicy"], accounts = ["*"], hand_over = true }
"#;

/// Stands for the server's address, as a browser reaches it, in a test's
/// configuration (`localhost`: a browser keeps `Secure` cookies there).
pub const PUBLIC_URL_OF_THIS_SERVER: &str = "http://this-server.invalid";

pub fn pg_base_url() -> String {
    std::env::var("BREAKGLASS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApp {
    pub base: String,
    pub app: Arc<App>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub data_dir: std::path::PathBuf,
    pub backend: Backend,
    pub database_url: String,
    http: reqwest::Client,
    shutdown: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Base32 TOTP secrets of enrolled custodians, by name.
    pub secrets: Mutex<HashMap<String, String>>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        self.body
    }
    #[track_caller]
    pub fn refused(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected answer: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "no message: {}",
            self.body
        );
    }
}

pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let name = format!("bgtest_{}", uuid::Uuid::new_v4().simple());
    let admin_url = format!("{}/postgres", pg_base_url());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL must be reachable at {admin_url} (scripts/test starts it): {e}")
        });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", pg_base_url())
}

/// How a test reaches AWS (the moto server).
#[derive(Debug, Clone)]
pub struct AwsSetup {
    /// Envelopes in Secrets Manager too (otherwise KMS with the database store).
    pub secrets_manager: bool,
    pub endpoint: String,
    pub kms_key_id: String,
    pub secret_prefix: String,
    pub call_timeout: std::time::Duration,
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, None).await
    }

    pub async fn start_with(backend: Backend, aws: Option<AwsSetup>) -> TestApp {
        Self::start_on(backend, aws, None, &|_| {}).await
    }

    /// A server whose configuration `tweak` adjusts before it starts.
    pub async fn start_configured(backend: Backend, tweak: &dyn Fn(&mut Config)) -> TestApp {
        Self::start_on(backend, None, None, tweak).await
    }

    /// A second server on this one's data directory and database (so the
    /// same signing key and data), sharing its clock, configured with `aws`.
    pub async fn successor(&self, aws: Option<AwsSetup>) -> TestApp {
        let t = Self::start_on(
            self.backend,
            aws,
            Some((
                self.data_dir.clone(),
                self.database_url.clone(),
                self.clock.clone(),
            )),
            &|_| {},
        )
        .await;
        *t.secrets.lock().unwrap() = self.secrets.lock().unwrap().clone();
        t
    }

    /// Like `successor`, with the configuration adjusted by `tweak`.
    pub async fn successor_configured(&self, tweak: &dyn Fn(&mut Config)) -> TestApp {
        let t = Self::start_on(
            self.backend,
            None,
            Some((
                self.data_dir.clone(),
                self.database_url.clone(),
                self.clock.clone(),
            )),
            tweak,
        )
        .await;
        *t.secrets.lock().unwrap() = self.secrets.lock().unwrap().clone();
        t
    }

    async fn start_on(
        backend: Backend,
        aws: Option<AwsSetup>,
        existing: Option<(std::path::PathBuf, String, Arc<ManualClock>)>,
        tweak: &dyn Fn(&mut Config),
    ) -> TestApp {
        // TEST_SERVER_LOG=1: the server's log on the test's output.
        if std::env::var_os("TEST_SERVER_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("breakglass=debug")
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies/default.toml"),
            policies.join("default.toml"),
        )
        .unwrap();
        std::fs::write(policies.join("tests.toml"), EXTRA_POLICIES).unwrap();
        let (data_dir, database_url, clock) = match existing {
            Some(e) => e,
            None => {
                let data_dir = dir.path().join("data");
                let url = match backend {
                    Backend::Sqlite => {
                        format!("sqlite://{}", data_dir.join("breakglass.db").display())
                    }
                    Backend::Postgres => fresh_pg_database().await,
                };
                (data_dir, url, Arc::new(ManualClock::starting_now()))
            }
        };
        let mut overrides = Overrides {
            data_dir: Some(data_dir.clone()),
            database_url: Some(database_url.clone()),
            policies_dir: Some(policies),
            ..Default::default()
        };
        if let Some(a) = &aws {
            overrides.key_service = Some("aws-kms".into());
            overrides.kms_key_id = Some(a.kms_key_id.clone());
            if a.secrets_manager {
                overrides.secret_store = Some("aws-secretsmanager".into());
            }
            overrides.aws_endpoint_url = Some(a.endpoint.clone());
        }
        let mut config = Config::load(None, overrides).unwrap();
        if let Some(a) = &aws {
            if let breakglass::config::SecretStoreChoice::AwsSecretsManager {
                name_prefix, ..
            } = &mut config.secret_store
            {
                *name_prefix = a.secret_prefix.clone();
            }
            config.aws.call_timeout = a.call_timeout;
            config.aws.region = Some("us-east-1".into());
        }
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // A test that needs the server's own address in its configuration
        // (links in alerts) writes PUBLIC_URL_OF_THIS_SERVER.
        if let Some(a) = config.settings.alerts.as_mut() {
            if a.public_url.as_deref() == Some(PUBLIC_URL_OF_THIS_SERVER) {
                a.public_url = Some(base.replace("127.0.0.1", "localhost"));
            }
        }
        if config.settings.console.public_url.as_deref() == Some(PUBLIC_URL_OF_THIS_SERVER) {
            config.settings.console.public_url = Some(base.replace("127.0.0.1", "localhost"));
        }
        let app = breakglass::server::build(&config, clock.clone())
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(breakglass::server::serve(listener, app.clone(), async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            app,
            clock,
            dir,
            data_dir,
            backend,
            database_url,
            http: reqwest::Client::new(),
            shutdown: Mutex::new(Some(tx)),
            secrets: Mutex::new(HashMap::new()),
        }
    }

    pub fn clock_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn now_secs(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Move to the start of the next TOTP step (so a custodian may use a
    /// new code) plus a second.
    pub fn next_step(&self) {
        let now = self.clock.now_ms();
        let next = (now / 30_000 + 1) * 30_000 + 1_000;
        self.clock.set_ms(next);
    }

    pub fn advance_mins(&self, m: i64) {
        self.clock.advance_secs(m * 60);
    }

    pub fn token(&self, subject: &str, roles: &[Role]) -> String {
        self.app
            .tokens
            .issue(subject, roles, 8 * 3600, self.now_secs())
            .unwrap()
            .0
    }

    pub async fn call(
        &self,
        method: &str,
        path: impl Into<String>,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}{}", self.base, path.into());
        let mut req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            "DELETE" => self.http.delete(url),
            other => panic!("unsupported method {other}"),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp { status, body }
    }

    pub async fn get(&self, path: impl Into<String>, token: &str) -> Resp {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: impl Into<String>, token: &str, body: Value) -> Resp {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// POST a body exactly as written (JSON that a `Value` cannot hold,
    /// such as a key given twice).
    pub async fn post_raw(&self, path: impl Into<String>, token: &str, body: &str) -> Resp {
        let res = self
            .http
            .post(format!("{}{}", self.base, path.into()))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp { status, body }
    }

    /// The current code for a custodian, from `oathtool` at the test clock.
    pub fn code(&self, custodian: &str) -> String {
        let secret = self
            .secrets
            .lock()
            .unwrap()
            .get(custodian)
            .cloned()
            .expect("custodian is enrolled");
        oathtool(&secret, self.clock.now_ms())
    }

    /// A code that is certainly wrong now.
    pub fn wrong_code(&self, custodian: &str) -> String {
        let right = self.code(custodian);
        let mut n: u32 = right.parse().unwrap();
        loop {
            n = (n + 500_001) % 1_000_000;
            let c = format!("{n:06}");
            let secret = self
                .secrets
                .lock()
                .unwrap()
                .get(custodian)
                .cloned()
                .unwrap();
            let now = self.clock.now_ms();
            if (-1..=1).all(|d| oathtool(&secret, now + d * 30_000) != c) {
                return c;
            }
        }
    }

    /// Admin adds a custodian; the custodian enrols and confirms with a
    /// code from oathtool. Returns the custodian's token.
    pub async fn enrolled_custodian(
        &self,
        admin: &str,
        name: &str,
        groups: &[&str],
        extra_roles: &[Role],
    ) -> String {
        self.post(
            "/v1/custodians",
            admin,
            json!({ "name": name, "groups": groups }),
        )
        .await
        .ok();
        let mut roles = vec![Role::Custodian];
        roles.extend_from_slice(extra_roles);
        let token = self.token(name, &roles);
        let e = self
            .post(format!("/v1/custodians/{name}/enroll"), &token, json!({}))
            .await
            .ok();
        let uri = e["otpauth_uri"].as_str().unwrap().to_string();
        let secret = secret_of(&uri);
        self.secrets.lock().unwrap().insert(name.into(), secret);
        let code = self.code(name);
        self.post(
            format!("/v1/custodians/{name}/confirm"),
            &token,
            json!({ "code": code }),
        )
        .await
        .ok();
        token
    }

    /// Every audit event, read directly (reading through the API would
    /// itself append an event).
    pub async fn audit(&self) -> Vec<AuditEvent> {
        let mut tx = self.app.store.begin().await.unwrap();
        let e = tx.audit_events(0, 1_000_000).await.unwrap();
        tx.rollback().await.unwrap();
        e
    }

    /// Everything a refused action must leave unchanged, as text: the
    /// request and its decisions, the credentials, the custodians' replay
    /// guards and lockouts.
    pub async fn state(&self, request_id: Option<&str>) -> String {
        let mut tx = self.app.store.begin().await.unwrap();
        let mut out = String::new();
        if let Some(id) = request_id {
            out += &format!(
                "{:?}\n{:?}\n",
                tx.request(id).await.unwrap(),
                tx.decisions(id).await.unwrap()
            );
        }
        out += &format!("{:?}\n", tx.credentials().await.unwrap());
        for c in tx.custodians().await.unwrap() {
            out += &format!(
                "{} {} {:?} {:?}\n",
                c.name, c.status, c.last_totp_step, c.locked_until
            );
        }
        tx.rollback().await.unwrap();
        out
    }

    pub async fn verify(&self) -> bool {
        let mut v = breakglass::crypto::chain::Verifier::new();
        self.audit().await.iter().for_each(|e| v.push(e));
        let mut tx = self.app.store.begin().await.unwrap();
        let head = tx.audit_head().await.unwrap();
        tx.rollback().await.unwrap();
        v.finish(Some(head)).ok
    }

    /// Run `act`, then assert it was refused with `status`/`code`, that the
    /// state is unchanged, and that exactly one event was appended: the
    /// refusal, with its code.
    pub async fn assert_refused_and_unchanged<F, Fut>(
        &self,
        request_id: Option<&str>,
        status: u16,
        code: &str,
        act: F,
    ) where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Resp>,
    {
        let before = self.state(request_id).await;
        let audit_before = self.audit().await;
        let r = act().await;
        r.refused(status, code);
        assert_eq!(
            self.state(request_id).await,
            before,
            "a refused action changed state"
        );
        let audit_after = self.audit().await;
        assert_eq!(
            audit_after[..audit_before.len()],
            audit_before[..],
            "earlier events changed"
        );
        let new: Vec<_> = audit_after[audit_before.len()..].iter().collect();
        assert_eq!(
            new.len(),
            1,
            "expected exactly the refusal event, got {new:#?}"
        );
        assert_eq!(new[0].outcome, "refused");
        assert_eq!(new[0].code.as_deref(), Some(code));
        assert!(self.verify().await, "the audit chain must still verify");
    }

    pub async fn stop(&self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

pub fn secret_of(otpauth_uri: &str) -> String {
    let q = otpauth_uri
        .split_once('?')
        .expect("otpauth URI has a query")
        .1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("otpauth URI has a secret")
        .to_string()
}

/// The CLI against `server` with `token`: (exit code, stdout, stderr).
pub fn cli(args: &[&str], server: &str, token: &str) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(args)
        .env("BREAKGLASS_SERVER", server)
        .env("BREAKGLASS_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `oathtool --totp -b SECRET --now TIME`.
pub fn oathtool(secret_b32: &str, at_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(at_ms / 1000).unwrap();
    let now = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret_b32, "--now", &now])
        .output()
        .expect("oathtool must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The usual cast: an admin, a requester, three SREs, one security
/// engineer, and `aws-prod-root` deposited under the default policy.
pub struct World {
    pub t: TestApp,
    pub admin: String,
    pub auditor: String,
    pub requester: String,
    pub ann: String,
    pub bob: String,
    pub cat: String,
    pub sec: String,
}

pub const PASSWORD: &str = "correct-horse-battery-staple-9c1f";
pub const MFA_SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

impl World {
    pub async fn new(backend: Backend) -> World {
        World::with(TestApp::start(backend).await).await
    }

    pub async fn with(t: TestApp) -> World {
        let admin = t.token("root-admin", &[Role::Admin]);
        let auditor = t.token("audrey", &[Role::Auditor]);
        let requester = t.token("oncall", &[Role::Requester]);
        let ann = t.enrolled_custodian(&admin, "ann", &["sre"], &[]).await;
        let bob = t.enrolled_custodian(&admin, "bob", &["sre"], &[]).await;
        let cat = t
            .enrolled_custodian(&admin, "cat", &["sre"], &[Role::Requester])
            .await;
        let sec = t
            .enrolled_custodian(&admin, "sec", &["security"], &[])
            .await;
        t.post(
            "/v1/credentials",
            &admin,
            json!({
                "name": "aws-prod-root",
                "account_id": "123456789012",
                "policy": "default",
                "fields": { "password": PASSWORD, "mfa_seed": MFA_SEED },
            }),
        )
        .await
        .ok();
        // The confirmation codes are spent; start approvals on a fresh step.
        t.next_step();
        World {
            t,
            admin,
            auditor,
            requester,
            ann,
            bob,
            cat,
            sec,
        }
    }

    pub async fn request(&self) -> String {
        let r = self
            .t
            .post("/v1/requests", &self.requester, json!({ "credential": "aws-prod-root", "reason": "prod is down", "ticket": "INC-42" }))
            .await
            .ok();
        r["id"].as_str().unwrap().to_string()
    }

    pub async fn approve(&self, id: &str, who: &str, token: &str) -> Resp {
        let code = self.t.code(who);
        self.t
            .post(
                format!("/v1/requests/{id}/approve"),
                token,
                json!({ "code": code }),
            )
            .await
    }

    /// A request with its full quorum (ann, bob, sec).
    pub async fn approved_request(&self) -> String {
        let id = self.request().await;
        self.approve(&id, "ann", &self.ann).await.ok();
        self.approve(&id, "bob", &self.bob).await.ok();
        let r = self.approve(&id, "sec", &self.sec).await.ok();
        assert_eq!(r["state"], "approved");
        self.t.next_step();
        id
    }
}

impl TestApp {
    /// Run raw SQL against the test's database, bypassing the service: how
    /// an attacker with database access would tamper.
    pub async fn raw_sql(&self, sql: &str) {
        if let Err(e) = self.try_raw_sql(sql).await {
            panic!("{sql}: {e}");
        }
    }

    /// `raw_sql`, returning the database's refusal instead of failing.
    pub async fn try_raw_sql(&self, sql: &str) -> Result<(), String> {
        use sqlx::Connection;
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let done = match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.map(drop)
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.database_url)
                    .await
                    .unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.map(drop)
            }
        };
        done.map_err(|e| e.to_string())
    }
}

/// A moto server on a free loopback port, stopped when dropped.
pub struct Moto {
    pub endpoint: String,
    child: Option<std::process::Child>,
}

impl Moto {
    /// The shared server the test command started, or a new one.
    pub async fn shared_or_own() -> Moto {
        aws_test_credentials();
        match std::env::var("BREAKGLASS_TEST_AWS_ENDPOINT") {
            Ok(e) if !e.is_empty() => Moto {
                endpoint: e,
                child: None,
            },
            _ => Moto::own().await,
        }
    }

    /// A server of the test's own (for outages: pausing it disturbs no one).
    pub async fn own() -> Moto {
        aws_test_credentials();
        // A free port is free only until someone binds it: another test's
        // server may take it before moto does. Then moto exits (or the port
        // answers as something else), and we start again on a new port.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = std::process::Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("moto_server must be installed (scripts/test installs moto[server])");
            // Owned by the guard from here on: dropped (and killed) on any exit.
            let mut moto = Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                child: Some(child),
            };
            for _ in 0..200 {
                let exited = moto
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited {
                    break;
                }
                match reqwest::get(format!("{}/moto-api/", moto.endpoint)).await {
                    Ok(r) if r.status().is_success() => return moto,
                    // Another process holds the port.
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
        }
        panic!("moto_server did not start on a free port in five attempts");
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("only an own server can be paused")
            .id()
    }

    pub fn signal(&self, sig: &str) {
        std::process::Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        breakglass::aws::sdk_config(&breakglass::aws::AwsSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.endpoint.clone()),
            call_timeout: std::time::Duration::from_secs(10),
        })
        .await
    }

    /// A fresh KMS key for one test; returns its ARN.
    pub async fn create_key(&self) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk().await);
        let k = kms
            .create_key()
            .description("breakglass test")
            .send()
            .await
            .unwrap();
        k.key_metadata().unwrap().arn().unwrap().to_string()
    }

    pub async fn setup(&self, call_timeout: std::time::Duration) -> AwsSetup {
        AwsSetup {
            secrets_manager: true,
            endpoint: self.endpoint.clone(),
            kms_key_id: self.create_key().await,
            secret_prefix: format!("bgtest/{}/", uuid::Uuid::new_v4().simple()),
            call_timeout,
        }
    }

    /// `aws --endpoint-url E ARGS... --output json`, parsed.
    pub fn aws_cli(&self, args: &[&str]) -> Value {
        let out = std::process::Command::new("aws")
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .args(["--output", "json"])
            .output()
            .expect("the AWS CLI must be installed (scripts/test installs awscli)");
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// moto accepts any credentials; the SDK and the CLI need some.
pub fn aws_test_credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ] {
            if std::env::var_os(k).is_none() {
                // Set before any AWS client exists, once per test process.
                std::env::set_var(k, v);
            }
        }
    });
}

/// Spawn `breakglass serve …` (the command as built by the test) and wait
/// for the line that names its address; returns the child and its URL.
pub fn spawn_serve(cmd: &mut std::process::Command) -> (std::process::Child, String) {
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let url = serve_url(&mut child, "");
    (child, url)
}

/// The URL a spawned `serve` (stdout piped) prints when it listens;
/// `context` is shown if it did not start.
pub fn serve_url(child: &mut std::process::Child, context: &str) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "the server did not start: {line:?}\n{context}"
    );
    url
}

/// The stand-alone responder for what no emulator here has (AssumeRoot,
/// the organisation features, IAM inside a root session), in front of a
/// moto server of its own (an organisation per test), stopped when
/// dropped. One endpoint serves both.
pub struct RootResponder {
    pub endpoint: String,
    child: std::process::Child,
    pub moto: Moto,
}

impl Drop for RootResponder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RootResponder {
    pub async fn start() -> RootResponder {
        use std::io::BufRead;
        let moto = Moto::own().await;
        let mut child = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/aws_root/responder.py"
            ))
            .args(["--port", "0", "--upstream", &moto.endpoint])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the responder (scripts/test installs boto3 with moto)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the responder did not start: {line:?}"))
            .to_string();
        RootResponder {
            endpoint,
            child,
            moto,
        }
    }

    /// Change what it answers (`/_responder/state`), e.g. root credentials
    /// of an account, the features, an outage.
    pub async fn control(&self, body: serde_json::Value) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}/_responder/state", self.endpoint))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A server that knows this organisation (`[org]`), on `backend`.
    pub async fn app(&self, backend: Backend, posture_concurrency: usize) -> TestApp {
        self.app_with(backend, posture_concurrency, None).await
    }

    /// The same, with the scheduled sync every `sync_interval`.
    pub async fn app_with(
        &self,
        backend: Backend,
        posture_concurrency: usize,
        sync_interval: Option<std::time::Duration>,
    ) -> TestApp {
        self.app_as(backend, posture_concurrency, sync_interval, None, &|_| {})
            .await
    }

    /// A server that calls AssumeRoot through `broker_role_arn` (each
    /// session's SourceIdentity is then the request id), with the root
    /// policies of `ROOT_POLICIES`.
    pub async fn app_with_broker(&self, backend: Backend, broker_role_arn: &str) -> TestApp {
        self.app_as(backend, 4, None, Some(broker_role_arn.to_string()), &|_| {})
            .await
    }

    /// `app_with_broker`, its configuration then adjusted by `tweak`.
    pub async fn app_with_broker_and(
        &self,
        backend: Backend,
        broker_role_arn: &str,
        tweak: &dyn Fn(&mut Config),
    ) -> TestApp {
        self.app_as(backend, 4, None, Some(broker_role_arn.to_string()), tweak)
            .await
    }

    async fn app_as(
        &self,
        backend: Backend,
        posture_concurrency: usize,
        sync_interval: Option<std::time::Duration>,
        broker_role_arn: Option<String>,
        tweak: &dyn Fn(&mut Config),
    ) -> TestApp {
        let endpoint = self.endpoint.clone();
        TestApp::start_configured(backend, &move |c| {
            std::fs::write(c.policies_dir.join("root.toml"), ROOT_POLICIES).unwrap();
            c.settings.org = Some(breakglass::config::OrgSettings {
                broker_role_arn: broker_role_arn.clone(),
                sync_interval,
                posture_concurrency,
            });
            c.aws.endpoint_url = Some(endpoint.clone());
            c.aws.region = Some("us-east-1".into());
            c.aws.call_timeout = std::time::Duration::from_secs(10);
            tweak(c);
        })
        .await
    }

    /// A call in moto as the member `account` (`/_responder/as_account`):
    /// boto3's `operation` of `service` with `params`; its answer, or
    /// `{"error": CODE, ...}`.
    pub async fn as_account(
        &self,
        account: &str,
        service: &str,
        operation: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}/_responder/as_account", self.endpoint))
            .json(&serde_json::json!({
                "account": account, "service": service, "operation": operation, "params": params,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn state(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_responder/state", self.endpoint))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        breakglass::aws::sdk_config(&breakglass::aws::AwsSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.endpoint.clone()),
            call_timeout: std::time::Duration::from_secs(30),
        })
        .await
    }

    /// An organisation (all features) of `members` member accounts, with
    /// IAM's trusted access and both centralized-root features on; returns
    /// the management account and the members, in creation order.
    pub async fn organization(&self, members: usize) -> (String, Vec<String>) {
        let org = aws_sdk_organizations::Client::new(&self.sdk().await);
        org.create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await
            .unwrap();
        let master = org
            .describe_organization()
            .send()
            .await
            .unwrap()
            .organization()
            .unwrap()
            .master_account_id()
            .unwrap()
            .to_string();
        let mut ids = Vec::new();
        for i in 0..members {
            let r = org
                .create_account()
                .email(format!("member-{i}@example.com"))
                .account_name(format!("member-{i:04}"))
                .send()
                .await
                .unwrap();
            ids.push(
                r.create_account_status()
                    .unwrap()
                    .account_id()
                    .unwrap()
                    .to_string(),
            );
        }
        org.enable_aws_service_access()
            .service_principal("iam.amazonaws.com")
            .send()
            .await
            .unwrap();
        self.control(serde_json::json!({
            "features": ["RootCredentialsManagement", "RootSessions"]
        }))
        .await;
        (master, ids)
    }
}
