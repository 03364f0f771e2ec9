//! Running as containers do: every setting from the environment, secrets
//! from files, replicas that share the signing keys through the database
//! (no key file copied by hand), and a stop (SIGTERM) that ends in-flight
//! work within its bound and hands back the replica's leases. Real server
//! processes on SQLite and on PostgreSQL.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Backend;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

both_backends!(
    replicas_share_the_signing_keys_the_database_keeps,
    sigterm_ends_in_flight_delivery_and_hands_back_the_lease,
    the_healthcheck_command_reads_readiness,
    keys_rewrap_moves_the_signing_keys_the_database_keeps_to_kms,
);

/// A database for the test, and its URL in an owner-only file.
struct Db {
    url: String,
    url_file: PathBuf,
}

async fn database(backend: Backend, dir: &Path) -> Db {
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("shared.db").display()),
        Backend::Postgres => common::fresh_pg_database().await,
    };
    let url_file = dir.join("database-url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    Db { url, url_file }
}

/// `breakglass ARGS` with only `env` for `BREAKGLASS_*`.
fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BREAKGLASS_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn run(args: &[&str], env: &[(String, String)]) -> (bool, String, String) {
    let out = command(args, env).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server process, its URL, and the file its standard error goes to.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    /// Spawn now; `ready` waits for the address line.
    fn spawn(env: &[(String, String)], log: PathBuf) -> Child {
        command(&["serve"], env)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap()
    }

    fn ready(mut child: Child, log: PathBuf) -> Server {
        let url = common::serve_url(
            &mut child,
            &std::fs::read_to_string(&log).unwrap_or_default(),
        );
        Server { child, url, log }
    }

    fn start(env: &[(String, String)], log: PathBuf) -> Server {
        Self::ready(Self::spawn(env, log.clone()), log)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait up to `bound` for the exit: whether it exited
    /// successfully.
    fn terminate(&mut self, bound: Duration) -> bool {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let until = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > until {
                panic!(
                    "the server was still running {bound:?} after SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server's environment: its data directory, the database URL from its
/// file, a free port, the shipped policies, and `extra`.
fn server_env(data: &Path, db: &Db, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let mut e = env(&[
        ("BREAKGLASS_DATA_DIR", data.to_str().unwrap()),
        (
            "BREAKGLASS_DATABASE_URL_FILE",
            db.url_file.to_str().unwrap(),
        ),
        ("BREAKGLASS_LISTEN", "127.0.0.1:0"),
        ("BREAKGLASS_POLICIES_DIR", policies),
    ]);
    e.extend(env(extra));
    e
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(url: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// One text column of the first row `sql` selects.
async fn select_text(backend: Backend, url: &str, sql: &str) -> Vec<Option<String>> {
    use sqlx::{Connection, Row};
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<Option<String>, _>(0))
                .collect()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<Option<String>, _>(0))
                .collect()
        }
    }
}

async fn replicas_share_the_signing_keys_the_database_keeps(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let key = dir.path().join("local.key");
    let (ok, out, err) = run(
        &["keys", "create-local", "--out", key.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{out}{err}");
    let replica_env = |data: &Path| {
        server_env(
            data,
            &db,
            &[
                ("BREAKGLASS_KEYS_SIGNING_KEYS", "database"),
                ("BREAKGLASS_KEYS_LOCAL_KEY_FILE", key.to_str().unwrap()),
                ("BREAKGLASS_AUDIT_CHECKPOINT_EVERY_EVENTS", "1"),
            ],
        )
    };
    let (d1, d2, d3) = (
        dir.path().join("one"),
        dir.path().join("two"),
        dir.path().join("host"),
    );
    if backend == Backend::Postgres {
        // The schema first, as the chart's migration job does; then both
        // replicas start at once and race to seal the keys.
        let (ok, out, err) = run(&["migrate"], &replica_env(&d1));
        assert!(ok, "{out}{err}");
    }
    let c1 = Server::spawn(&replica_env(&d1), dir.path().join("one.log"));
    let c2 = if backend == Backend::Postgres {
        Some(Server::spawn(&replica_env(&d2), dir.path().join("two.log")))
    } else {
        None
    };
    let mut r1 = Server::ready(c1, dir.path().join("one.log"));
    let mut r2 = match c2 {
        Some(c) => Server::ready(c, dir.path().join("two.log")),
        None => Server::start(&replica_env(&d2), dir.path().join("two.log")),
    };
    for d in [&d1, &d2] {
        for f in ["signing.key", "audit.key", "local.key"] {
            assert!(!d.join(f).exists(), "{} was created", d.join(f).display());
        }
    }
    let sealed = select_text(
        backend,
        &db.url,
        "SELECT envelope FROM service_keys ORDER BY name",
    )
    .await;
    assert_eq!(sealed.len(), 2, "the token and the audit keys are kept");
    for e in sealed.iter().flatten() {
        let e: Value = serde_json::from_str(e).unwrap();
        assert!(
            e["kid"].as_str().unwrap().starts_with("local:"),
            "sealed under the shared local key: {e}"
        );
        assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
    }
    // A host command with a data directory of its own mints a token that
    // both replicas accept.
    let (ok, admin, err) = run(
        &[
            "token",
            "issue",
            "--subject",
            "root-admin",
            "--role",
            "admin",
            "--role",
            "auditor",
        ],
        &replica_env(&d3),
    );
    assert!(ok, "{err}");
    let admin = admin.trim().to_string();
    for r in [&r1, &r2] {
        let (status, who) = get(&format!("{}/v1/whoami", r.url), &admin).await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(who["subject"], "root-admin", "{who}");
    }
    // Checkpoints signed by either replica verify on the other.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let n = select_text(
            backend,
            &db.url,
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_checkpoints",
        )
        .await;
        if n[0].as_deref().unwrap_or("0") != "0" {
            break;
        }
        assert!(Instant::now() < until, "no checkpoint was signed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for r in [&r1, &r2] {
        let (status, v) = post(&format!("{}/v1/audit/verify", r.url), &admin).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["ok"], true, "{v}");
    }
    // A data directory holding another signing key stops that replica: two
    // keys would sign for one service.
    let d4 = dir.path().join("stray");
    breakglass::datadir::DataDir::new(&d4)
        .ensure(false, true)
        .unwrap();
    let (ok, out, err) = run(&["serve"], &replica_env(&d4));
    assert!(!ok, "a replica with a stray key started: {out}");
    assert!(
        err.contains("is not the token-signing key the database keeps"),
        "{err}"
    );
    assert!(r1.terminate(Duration::from_secs(10)), "{}", r1.log());
    assert!(r2.terminate(Duration::from_secs(10)), "{}", r2.log());
}

/// An alert receiver that takes the request and never answers.
fn silent_receiver() -> (String, std::sync::mpsc::Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = tx.send(());
            held.push(s);
        }
    });
    (url, rx)
}

async fn sigterm_ends_in_flight_delivery_and_hands_back_the_lease(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let (hook, arrived) = silent_receiver();
    let hook_file = dir.path().join("hook-url");
    std::fs::write(&hook_file, &hook).unwrap();
    std::fs::set_permissions(&hook_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let vars = server_env(
        &dir.path().join("data"),
        &db,
        &[
            ("BREAKGLASS_SHUTDOWN_TIMEOUT", "2s"),
            ("BREAKGLASS_ALERTS_CHANNEL_0_NAME", "chat"),
            ("BREAKGLASS_ALERTS_CHANNEL_0_KIND", "slack"),
            (
                "BREAKGLASS_ALERTS_CHANNEL_0_URL_FILE",
                hook_file.to_str().unwrap(),
            ),
            ("BREAKGLASS_ALERTS_CHANNEL_0_EVENTS", "token.issue"),
        ],
    );
    let mut server = Server::start(&vars, dir.path().join("serve.log"));
    // An audited token announces itself to the channel; the server takes
    // the channel's lease and posts to a receiver that never answers.
    let (ok, _, err) = run(
        &["token", "issue", "--subject", "ops", "--role", "auditor"],
        &vars,
    );
    assert!(ok, "{err}");
    arrived
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no delivery was attempted:\n{}", server.log()));
    let held = select_text(
        backend,
        &db.url,
        "SELECT lease_owner FROM alert_channels WHERE name = 'chat'",
    )
    .await;
    assert!(held[0].is_some(), "the delivery holds the lease");
    // The stop's bound is 2 s; the kubelet's or podman's is 10 s.
    assert!(
        server.terminate(Duration::from_secs(10)),
        "a stop is a clean exit:\n{}",
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("did not finish within the shutdown timeout"),
        "{log}"
    );
    assert!(
        log.contains("released the delivery leases") && log.contains("stopped cleanly"),
        "{log}"
    );
    let held = select_text(
        backend,
        &db.url,
        "SELECT lease_owner FROM alert_channels WHERE name = 'chat'",
    )
    .await;
    assert_eq!(held, vec![None], "the lease is handed back");
    let state = select_text(
        backend,
        &db.url,
        "SELECT state FROM alert_outbox WHERE channel = 'chat'",
    )
    .await;
    assert_eq!(
        state,
        vec![Some("pending".to_string())],
        "the alert waits for the next replica, not lost"
    );
}

/// `breakglass healthcheck`, as the image's HEALTHCHECK runs it: exit 0 and
/// one line when the server is ready; 3, naming what failed, when it is not
/// (the database dropped under it) or when nothing answers.
async fn the_healthcheck_command_reads_readiness(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let server = Server::start(
        &server_env(&dir.path().join("data"), &db, &[]),
        dir.path().join("server.log"),
    );
    let url = server.url.clone();
    let probe = |extra: &[&str]| {
        let mut args = vec!["healthcheck", "--server", &url];
        args.extend_from_slice(extra);
        let out = command(&args, &[]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = probe(&[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "readyz: ok");
    let (code, out, err) = probe(&["--live", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let live: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(live["status"], "ok", "{live}");

    if backend == Backend::Postgres {
        // The database goes away under the running server: not ready, and
        // the line names the check; liveness still answers.
        use sqlx::Connection;
        let name = db.url.rsplit('/').next().unwrap().to_string();
        let admin = format!("{}/postgres", common::pg_base_url());
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        let (code, out, err) = probe(&[]);
        assert_eq!(code, Some(3), "{out}{err}");
        assert!(err.contains("not ready: database"), "{err}");
        assert!(!err.contains("postgres://"), "no URL in the answer: {err}");
        let (code, out, err) = probe(&["--live"]);
        assert_eq!(code, Some(0), "{out}{err}");
    }
    drop(server);
    let (code, _, err) = probe(&[]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cannot reach the server"), "{err}");
}

/// `keys rewrap --to aws-kms` moves the token and audit keys the database
/// keeps sealed, like every other envelope: afterwards a server on KMS
/// alone, with no local key file, unseals them and accepts the tokens
/// issued before; a second run finds nothing to do.
async fn keys_rewrap_moves_the_signing_keys_the_database_keeps_to_kms(backend: Backend) {
    let moto = common::Moto::shared_or_own().await;
    let arn = moto.create_key().await;
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let key = dir.path().join("local.key");
    let (ok, out, err) = run(
        &["keys", "create-local", "--out", key.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{out}{err}");
    let base = server_env(
        &dir.path().join("data"),
        &db,
        &[("BREAKGLASS_KEYS_SIGNING_KEYS", "database")],
    );
    let on_local = [
        base.clone(),
        env(&[("BREAKGLASS_KEYS_LOCAL_KEY_FILE", key.to_str().unwrap())]),
    ]
    .concat();
    let mut first = Server::start(&on_local, dir.path().join("first.log"));
    let (ok, admin, err) = run(
        &[
            "token",
            "issue",
            "--subject",
            "root-admin",
            "--role",
            "admin",
        ],
        &on_local,
    );
    assert!(ok, "{err}");
    let admin = admin.trim().to_string();
    assert!(first.terminate(Duration::from_secs(10)), "{}", first.log());

    // As the README says: KMS configured first (the local key file stays
    // in the key ring for what it wrapped), then the re-wrap.
    let kms = env(&[
        ("BREAKGLASS_KEYS_SERVICE", "aws-kms"),
        ("BREAKGLASS_KEYS_KMS_KEY_ID", &arn),
        ("BREAKGLASS_AWS_ENDPOINT_URL", &moto.endpoint),
        ("BREAKGLASS_AWS_REGION", "us-east-1"),
    ]);
    let moving = [on_local.clone(), kms.clone()].concat();
    let rewrap = || run(&["keys", "rewrap", "--to", "aws-kms"], &moving);
    let (ok, out, err) = rewrap();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("0 TOTP seeds and 2 service keys under"),
        "{out}"
    );
    assert!(err.contains("the token-signing key: re-wrapped"), "{err}");
    for e in select_text(backend, &db.url, "SELECT envelope FROM service_keys")
        .await
        .iter()
        .flatten()
    {
        let e: Value = serde_json::from_str(e).unwrap();
        assert_eq!(e["kid"].as_str(), Some(arn.as_str()), "{e}");
    }
    let audited = select_text(
        backend,
        &db.url,
        "SELECT target FROM audit_events WHERE action = 'keys.rewrap' ORDER BY target",
    )
    .await;
    assert_eq!(
        audited,
        vec![
            Some("service_key:audit-checkpoint".to_string()),
            Some("service_key:token-signing".to_string())
        ]
    );
    let (ok, out, err) = rewrap();
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("and 0 service keys under") && out.contains("(2 already there)"),
        "{out}"
    );

    // The local key file retired: KMS alone opens the signing keys.
    std::fs::rename(&key, dir.path().join("local.key.retired")).unwrap();
    let on_kms = [base, kms].concat();
    let mut second = Server::start(&on_kms, dir.path().join("second.log"));
    let (status, who) = get(&format!("{}/v1/whoami", second.url), &admin).await;
    assert_eq!(status, 200, "the token issued before the move: {who}");
    assert!(
        second.terminate(Duration::from_secs(10)),
        "{}",
        second.log()
    );
}
