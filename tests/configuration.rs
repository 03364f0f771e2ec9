//! Starting the service: the data directory protects its keys, every
//! documented setting is honoured (from the file or the environment), a
//! misspelt one stops the start, and nothing secret shows in `Debug`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// `breakglass ARGS` with a clean `BREAKGLASS_*` environment: exit code
/// and standard error.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BREAKGLASS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A data directory as the first start leaves it.
fn data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    breakglass::datadir::DataDir::new(&data)
        .ensure(true, true)
        .unwrap();
    (dir, data)
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `serve` and a host command (`token issue`) on `data`: both refused,
/// naming `words`.
fn assert_refused(data: &Path, words: &str) {
    let d = data.to_str().unwrap();
    let (code, out) = run(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"], &[]);
    assert_ne!(code, 0, "serve started: {out}");
    assert!(out.contains(words), "serve: {out}");
    let (code, out) = run(
        &[
            "token",
            "issue",
            "--data-dir",
            d,
            "--subject",
            "mallory",
            "--role",
            "admin",
        ],
        &[],
    );
    assert_ne!(code, 0, "a token was minted: {out}");
    assert!(out.contains(words), "token issue: {out}");
    assert!(!out.contains("eyJ"), "no token printed: {out}");
}

#[test]
fn a_data_directory_others_can_enter_stops_the_start_and_host_commands() {
    let (_dir, data) = data_dir();
    chmod(&data, 0o777);
    assert_refused(&data, &format!("run `chmod 700 {}`", data.display()));
    chmod(&data, 0o750);
    assert_refused(&data, "accessible to group or others (mode 750)");
}

#[test]
fn a_key_file_others_can_read_stops_the_start_and_host_commands() {
    let (_dir, data) = data_dir();
    chmod(&data.join("signing.key"), 0o644);
    assert_refused(&data, "signing.key is readable by others (mode 644)");
}

#[test]
fn a_key_file_that_is_a_symbolic_link_stops_the_start_and_host_commands() {
    // Another user's key, linked in place of the service's.
    let (_dir, data) = data_dir();
    let (_other, theirs) = data_dir();
    std::fs::remove_file(data.join("signing.key")).unwrap();
    std::os::unix::fs::symlink(theirs.join("signing.key"), data.join("signing.key")).unwrap();
    assert_refused(&data, "signing.key is a symbolic link");
}

#[test]
fn a_key_file_owned_by_another_user_stops_the_start_and_host_commands() {
    let (_dir, data) = data_dir();
    let key = data.join("audit.key");
    // Only root can give a file away; elsewhere there is nothing to test.
    if std::os::unix::fs::chown(&key, Some(65534), Some(65534)).is_err() {
        eprintln!("not root: cannot hand a file to another user here");
        return;
    }
    assert_refused(&data, "audit.key is owned by uid 65534");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_reports_a_data_directory_opened_after_the_start() {
    let t = common::TestApp::start(common::Backend::Sqlite).await;
    let admin = t.token("root-admin", &[breakglass::domain::Role::Admin]);
    let before = t.get("/v1/hygiene", &admin).await.ok();
    assert!(
        !before["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "datadir.exposed"),
        "{before}"
    );
    chmod(&t.data_dir, 0o755);
    chmod(&t.data_dir.join("local.key"), 0o640);
    let after = t.get("/v1/hygiene", &admin).await.ok();
    let found: Vec<_> = after["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "datadir.exposed")
        .collect();
    assert!(found.iter().all(|f| f["severity"] == "high"), "{after}");
    let text = serde_json::to_string(&found).unwrap();
    assert!(
        text.contains("chmod 700") && text.contains("local.key is readable by others"),
        "{text}"
    );
    // `doctor` prints it.
    let (code, out) = run(&["--server", &t.base, "--token", &admin, "doctor"], &[]);
    assert_ne!(code, 0, "a high finding fails doctor: {out}");
    assert!(out.contains("accessible to group or others"), "{out}");
    chmod(&t.data_dir, 0o700);
    chmod(&t.data_dir.join("local.key"), 0o600);
}

/// The settings the README's configuration table documents, as paths of
/// the schema (`[tls] cert_file` is `tls.cert_file`, `[[oidc]] issuer` is
/// `oidc[].issuer`, `[oidc.roles]` is `oidc[].roles.*`).
fn documented_settings() -> std::collections::BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let lists = ["oidc", "alerts.channel"];
    let mut out = std::collections::BTreeSet::new();
    for line in section.lines() {
        let Some(cell) = line.strip_prefix("| `") else {
            continue;
        };
        let key = cell.split('`').next().unwrap();
        if key.starts_with("BREAKGLASS_") || key == "key" {
            continue;
        }
        let path = if let Some(rest) = key.strip_prefix("[[") {
            let (table, field) = rest.split_once("]] ").unwrap();
            format!("{table}[].{field}")
        } else if let Some(rest) = key.strip_prefix('[') {
            match rest.split_once("] ") {
                Some((table, field)) => format!("{table}.{field}"),
                // A map: `[oidc.roles]`.
                None => {
                    let table = rest.trim_end_matches(']');
                    let (list, map) = table.rsplit_once('.').unwrap();
                    assert!(lists.contains(&list), "{key}");
                    format!("{list}[].{map}.*")
                }
            }
        } else {
            key.to_owned()
        };
        out.insert(path);
    }
    out
}

#[test]
fn the_readme_documents_every_setting_and_only_settings() {
    let documented = documented_settings();
    let code: std::collections::BTreeSet<String> = breakglass::config::schema::SETTINGS
        .iter()
        .map(|s| s.path.to_owned())
        .collect();
    let missing: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        missing.is_empty(),
        "settings the README does not document: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "the README documents settings the code does not read: {unknown:?}"
    );
    // Every variable the README names is read (but the misspelt example).
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let re =
        regex::Regex::new(r"(unknown environment variable\s+)?(BREAKGLASS_[A-Z0-9_]*[A-Z0-9])")
            .unwrap();
    for c in re.captures_iter(&readme) {
        let var = &c[2];
        if c.get(1).is_some() {
            continue;
        }
        let known = breakglass::config::schema::OTHER_VARIABLES.contains(&var)
            || breakglass::config::schema::locate(var).is_some()
            || var.ends_with("_OIDC")
            || var.ends_with("_ALERTS_CHANNEL");
        assert!(known, "the README names {var}, which nothing reads");
    }
}

#[test]
fn every_setting_of_the_file_can_come_from_the_environment_and_the_environment_wins() {
    use breakglass::config::{Config, KeyServiceChoice, Overrides, SecretStoreChoice};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("breakglass.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n[totp]\nmax_failures = 9\n",
    )
    .unwrap();
    let hook = dir.path().join("slack-webhook");
    std::fs::write(&hook, "https://hooks.example/T0/B0/s3cr3t-hook\n").unwrap();
    chmod(&hook, 0o600);
    let env: Vec<(String, String)> = [
        ("BREAKGLASS_TOTP_MAX_FAILURES", "3"),
        ("BREAKGLASS_TOTP_LOCKOUT", "45m"),
        ("BREAKGLASS_KEYS_SERVICE", "aws-kms"),
        ("BREAKGLASS_KEYS_KMS_KEY_ID", "alias/breakglass"),
        ("BREAKGLASS_SECRETS_STORE", "aws-secretsmanager"),
        ("BREAKGLASS_SECRETS_NAME_PREFIX", "bg/"),
        ("BREAKGLASS_AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ("BREAKGLASS_AWS_REGION", "eu-west-1"),
        ("BREAKGLASS_ALLOW_PLAIN_HTTP", "true"),
        ("BREAKGLASS_AUDIT_SINK_URL", "https://siem.example/ingest"),
        ("BREAKGLASS_AUDIT_SINK_BATCH_SIZE", "50"),
        ("BREAKGLASS_LIMITS_MAX_BODY_BYTES", "4096"),
        ("BREAKGLASS_ALERTS_PUBLIC_URL", "https://bg.example"),
        ("BREAKGLASS_ALERTS_CHANNEL_0_NAME", "chat"),
        ("BREAKGLASS_ALERTS_CHANNEL_0_KIND", "slack"),
        (
            "BREAKGLASS_ALERTS_CHANNEL_0_URL_FILE",
            hook.to_str().unwrap(),
        ),
        ("BREAKGLASS_SHUTDOWN_TIMEOUT", "3s"),
        ("BREAKGLASS_KEYS_SIGNING_KEYS", "database"),
        (
            "BREAKGLASS_ALERTS_CHANNEL_0_EVENTS",
            "request.create, request.release",
        ),
        ("BREAKGLASS_OIDC_0_ISSUER", "https://login.example"),
        ("BREAKGLASS_OIDC_0_AUDIENCE", "breakglass"),
        ("BREAKGLASS_OIDC_0_ALGORITHMS", "ES256"),
        ("BREAKGLASS_OIDC_0_ROLES_ADMIN", "bg-admins,root-admins"),
        ("BREAKGLASS_OIDC_0_CUSTODIAN_GROUPS_SRE", "sre-oncall"),
        ("BREAKGLASS_SERVER", "http://ignored-by-the-server"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let flags = Overrides {
        listen: Some("127.0.0.1:9100".into()),
        ..Default::default()
    };
    let c = Config::load_from(Some(&file), flags, env).unwrap();
    assert_eq!(
        c.listen.to_string(),
        "127.0.0.1:9100",
        "a flag wins over the file"
    );
    assert_eq!(
        c.settings.totp_max_failures, 3,
        "the environment wins over the file"
    );
    assert_eq!(c.settings.totp_lockout.as_secs(), 45 * 60);
    assert_eq!(
        c.key_service,
        KeyServiceChoice::AwsKms {
            key_id: "alias/breakglass".into()
        }
    );
    assert_eq!(
        c.secret_store,
        SecretStoreChoice::AwsSecretsManager {
            name_prefix: "bg/".into(),
            recovery_window_days: 30
        }
    );
    assert_eq!(c.aws.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
    assert!(c.allow_plain_http);
    let sink = c.settings.audit_sink.as_ref().unwrap();
    assert_eq!(
        (sink.url.as_str(), sink.batch_size),
        ("https://siem.example/ingest", 50)
    );
    assert_eq!(c.settings.limits.max_body_bytes, 4096);
    let alerts = c.settings.alerts.as_ref().unwrap();
    assert_eq!(alerts.public_url.as_deref(), Some("https://bg.example"));
    assert_eq!(alerts.channels[0].name, "chat");
    assert!(alerts.channels[0].events.contains("request.release"));
    assert_eq!(
        alerts.channels[0].url, "https://hooks.example/T0/B0/s3cr3t-hook",
        "the webhook URL is read from its file, trimmed"
    );
    assert_eq!(c.settings.shutdown_timeout.as_secs(), 3);
    assert_eq!(c.signing_keys, breakglass::config::SigningKeysAt::Database);
    assert_eq!(c.oidc[0].issuer, "https://login.example");
    assert_eq!(c.oidc[0].algorithms, vec![jsonwebtoken::Algorithm::ES256]);
    assert_eq!(
        c.oidc[0].roles[&breakglass::domain::Role::Admin],
        vec!["bg-admins".to_string(), "root-admins".into()]
    );
    assert_eq!(
        c.oidc[0].custodian_groups["sre"],
        vec!["sre-oncall".to_string()]
    );
}

#[test]
fn a_misspelt_setting_stops_the_start_with_the_nearest_valid_name() {
    let (_dir, data) = data_dir();
    let d = data.to_str().unwrap();
    // The names the README used to give, and a typo.
    for (var, nearest) in [
        ("BREAKGLASS_KEY_SERVICE", "BREAKGLASS_KEYS_SERVICE"),
        ("BREAKGLASS_SECRET_STORE", "BREAKGLASS_SECRETS_STORE"),
        ("BREAKGLASS_KMS_KEY_ID", "BREAKGLASS_KEYS_KMS_KEY_ID"),
        (
            "BREAKGLASS_AUDIT_CHECKPOINT_EVERY_EVENT",
            "BREAKGLASS_AUDIT_CHECKPOINT_EVERY_EVENTS",
        ),
    ] {
        let (code, out) = run(
            &["serve", "--data-dir", d, "--listen", "127.0.0.1:0"],
            &[(var, "aws-kms")],
        );
        assert_eq!(code, 2, "{var}: {out}");
        assert!(
            out.contains(&format!("did you mean {nearest}?")),
            "{var}: {out}"
        );
        // Client commands too: nothing falls back to a default unnoticed.
        let (code, out) = run(&["whoami"], &[(var, "x")]);
        assert_eq!(code, 2, "{out}");
    }
    let (code, out) = run(&["serve", "--data-dir", d], &[("BREAKGLASS_ZZZ", "1")]);
    assert_eq!(code, 2);
    assert!(
        out.contains("unknown environment variable BREAKGLASS_ZZZ"),
        "{out}"
    );
    // A value of the wrong kind names the variable.
    let (code, out) = run(
        &["serve", "--data-dir", d, "--listen", "127.0.0.1:0"],
        &[("BREAKGLASS_TOTP_MAX_FAILURES", "five")],
    );
    assert_ne!(code, 0);
    assert!(
        out.contains("BREAKGLASS_TOTP_MAX_FAILURES: \"five\" is not a whole number"),
        "{out}"
    );
    // A misspelt key of the file.
    let file = data.parent().unwrap().join("bg.toml");
    std::fs::write(&file, "[audit]\ncheckpoint_every_event = 5\n").unwrap();
    let (code, out) = run(
        &["serve", "--data-dir", d, "--config", file.to_str().unwrap()],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        out.contains("unknown setting `audit.checkpoint_every_event`: did you mean `audit.checkpoint_every_events`?"),
        "{out}"
    );
    std::fs::write(
        &file,
        "[[alerts.channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://x\"\nevnets = []\n",
    )
    .unwrap();
    let (_, out) = run(
        &["serve", "--data-dir", d, "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(
        out.contains("did you mean `alerts.channel.events`?"),
        "{out}"
    );
}

/// The review's finding: an operator who configures AWS through the
/// environment, as every container platform does, got the local key file
/// and the database store. Now the server runs on KMS and Secrets Manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_configured_through_the_environment_uses_kms_and_secrets_manager() {
    let moto = common::Moto::shared_or_own().await;
    let key = moto.create_key().await;
    let (_dir, data) = data_dir();
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BREAKGLASS_") {
            cmd.env_remove(k);
        }
    }
    cmd.args([
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .env("BREAKGLASS_KEYS_SERVICE", "aws-kms")
    .env("BREAKGLASS_KEYS_KMS_KEY_ID", &key)
    .env("BREAKGLASS_SECRETS_STORE", "aws-secretsmanager")
    .env(
        "BREAKGLASS_SECRETS_NAME_PREFIX",
        format!("bgtest/{}/", uuid::Uuid::new_v4().simple()),
    )
    .env("BREAKGLASS_AWS_ENDPOINT_URL", &moto.endpoint)
    .env("BREAKGLASS_AWS_REGION", "us-east-1");
    let (mut child, url) = common::spawn_serve(&mut cmd);
    let ready: serde_json::Value = reqwest::get(format!("{url}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"key_service:aws-kms"), "{ready}");
    assert!(
        names.contains(&"secret_store:aws-secretsmanager"),
        "{ready}"
    );
    assert_eq!(ready["status"], "ready", "{ready}");
}

#[test]
fn the_configuration_shows_no_password_in_debug_output() {
    use breakglass::config::{Config, Overrides};
    let url = "postgres://breakglass:s3cr3t-Pa55@db.internal:5432/breakglass?sslpassword=k3y-Pa55";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("database-url");
    std::fs::write(&file, url).unwrap();
    chmod(&file, 0o600);
    let o = Overrides::default();
    let shown = format!("{o:?}");
    let env = vec![(
        "BREAKGLASS_DATABASE_URL_FILE".to_string(),
        file.display().to_string(),
    )];
    let c = Config::load_from(None, o, env).unwrap();
    assert_eq!(c.database_url, url, "the URL is read from its file");
    let shown = shown + &format!("{c:?}") + &format!("{c:#?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("k3y-Pa55"),
        "{shown}"
    );
    assert!(
        shown.contains("db.internal"),
        "the rest is still shown: {shown}"
    );
    assert_eq!(
        breakglass::config::redacted_url(url),
        "postgres://breakglass:***@db.internal:5432/breakglass?***"
    );
}

/// `Config::load_from` with only these variables.
fn load_env(vars: &[(&str, &str)]) -> Result<breakglass::config::Config, String> {
    breakglass::config::Config::load_from(
        None,
        breakglass::config::Overrides::default(),
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| format!("{e:#}"))
}

#[test]
fn a_secret_in_an_environment_variable_is_refused_naming_the_file_setting() {
    for (var, value, names) in [
        (
            "BREAKGLASS_DATABASE_URL",
            "postgres://bg:s3cr3t-Pa55@db:5432/bg",
            "BREAKGLASS_DATABASE_URL_FILE",
        ),
        (
            "BREAKGLASS_DATABASE_URL",
            "postgres://bg@db:5432/bg?password=s3cr3t-Pa55",
            "BREAKGLASS_DATABASE_URL_FILE",
        ),
        (
            "BREAKGLASS_AUDIT_SINK_URL",
            "https://siem.example/ingest?token=s3cr3t-Pa55",
            "BREAKGLASS_AUDIT_SINK_URL_FILE",
        ),
        (
            "BREAKGLASS_ALERTS_CHANNEL_0_URL",
            "https://hooks.example/T0/B0/s3cr3t-Pa55",
            "BREAKGLASS_ALERTS_CHANNEL_0_URL_FILE",
        ),
    ] {
        let mut vars = vec![(var, value)];
        if var.contains("CHANNEL") {
            vars.push(("BREAKGLASS_ALERTS_CHANNEL_0_NAME", "chat"));
            vars.push(("BREAKGLASS_ALERTS_CHANNEL_0_KIND", "slack"));
        }
        let err = load_env(&vars).expect_err(var);
        assert!(err.contains(names), "{var}: {err}");
        assert!(
            !err.contains("s3cr3t"),
            "the refusal shows no secret: {err}"
        );
    }
    // The same on the command line, where every user can read it.
    let (code, out) = run(
        &[
            "migrate",
            "--database-url",
            "postgres://bg:s3cr3t-Pa55@127.0.0.1:1/bg",
        ],
        &[],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("database_url_file") && !out.contains("s3cr3t"),
        "{out}"
    );
    // A URL without a password is no secret.
    let c = load_env(&[("BREAKGLASS_DATABASE_URL", "postgres://bg@db:5432/bg")]).unwrap();
    assert_eq!(c.database_url, "postgres://bg@db:5432/bg");
}

#[test]
fn a_secret_file_must_be_private_or_readable_by_this_service_s_group_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("database-url");
    std::fs::write(&file, "postgres://bg:s3cr3t-Pa55@db:5432/bg\n").unwrap();
    let var = [("BREAKGLASS_DATABASE_URL_FILE", file.to_str().unwrap())];
    // Owner-only, and a mounted Kubernetes Secret's 0440 in our own group.
    for mode in [0o600, 0o400, 0o440, 0o640] {
        chmod(&file, mode);
        let c = load_env(&var).unwrap_or_else(|e| panic!("mode {mode:o}: {e}"));
        assert_eq!(c.database_url, "postgres://bg:s3cr3t-Pa55@db:5432/bg");
    }
    // Readable by others, or writable by the group: refused, naming the fix.
    for mode in [0o644, 0o604, 0o660, 0o620] {
        chmod(&file, mode);
        let err = load_env(&var).expect_err(&format!("mode {mode:o}"));
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    // A link to the file (as a mounted Secret's files are) is followed.
    chmod(&file, 0o600);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    load_env(&[("BREAKGLASS_DATABASE_URL_FILE", link.to_str().unwrap())]).unwrap();
    // Both forms, a missing file, an empty one: each named.
    let err = load_env(&[
        ("BREAKGLASS_DATABASE_URL_FILE", file.to_str().unwrap()),
        ("BREAKGLASS_DATABASE_URL", "postgres://bg@db/bg"),
    ])
    .unwrap_err();
    assert!(err.contains("both set"), "{err}");
    let missing = dir.path().join("nothing-here");
    let err = load_env(&[("BREAKGLASS_DATABASE_URL_FILE", missing.to_str().unwrap())]).unwrap_err();
    assert!(err.contains("nothing-here"), "{err}");
    std::fs::write(&file, "\n").unwrap();
    let err = load_env(&var).unwrap_err();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn a_configured_local_key_file_is_never_created_and_keys_create_local_makes_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("shared-local.key");
    let data = dir.path().join("data");
    let env = [
        ("BREAKGLASS_KEYS_LOCAL_KEY_FILE", key.to_str().unwrap()),
        ("BREAKGLASS_DATA_DIR", data.to_str().unwrap()),
        ("BREAKGLASS_LISTEN", "127.0.0.1:0"),
    ];
    let (code, out) = run(&["serve"], &env);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("keys create-local") && out.contains("shared-local.key"),
        "{out}"
    );
    assert!(!key.exists(), "the start created no key");
    let (code, out) = run(
        &["keys", "create-local", "--out", key.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("key id local:"), "{out}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never overwritten.
    let before = std::fs::read(&key).unwrap();
    let (code, out) = run(
        &["keys", "create-local", "--out", key.to_str().unwrap()],
        &[],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("never replaced"), "{out}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn root_watch_settings_are_checked_and_each_refusal_says_what_to_give() {
    let on = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![("BREAKGLASS_ROOT_WATCH_ENABLED", "true")];
        v.extend_from_slice(extra);
        load_env(&v)
    };
    let c = on(&[("BREAKGLASS_ROOT_WATCH_BUCKET", "acme-org-trail")]).unwrap();
    let w = c.settings.root_watch.unwrap();
    assert_eq!(
        (w.bucket.as_str(), w.prefix.as_str()),
        ("acme-org-trail", "")
    );
    assert_eq!(w.poll_interval, std::time::Duration::from_secs(300));
    assert_eq!(w.release_window, std::time::Duration::from_secs(12 * 3600));
    for (vars, words) in [
        (vec![], "root_watch.bucket is missing"),
        (
            vec![("BREAKGLASS_ROOT_WATCH_BUCKET", "s3://acme/trail")],
            "is not an S3 bucket name",
        ),
        (
            vec![
                ("BREAKGLASS_ROOT_WATCH_BUCKET", "acme"),
                ("BREAKGLASS_ROOT_WATCH_PREFIX", "trail"),
            ],
            "must end with /",
        ),
        (
            vec![
                ("BREAKGLASS_ROOT_WATCH_BUCKET", "acme"),
                ("BREAKGLASS_ROOT_WATCH_PREFIX", "AWSLogs/"),
            ],
            "leave AWSLogs/ out",
        ),
        (
            vec![
                ("BREAKGLASS_ROOT_WATCH_BUCKET", "acme"),
                ("BREAKGLASS_ROOT_WATCH_QUEUE_URL", "trail-files"),
            ],
            "is not an SQS queue URL",
        ),
        (
            vec![
                ("BREAKGLASS_ROOT_WATCH_BUCKET", "acme"),
                ("BREAKGLASS_ROOT_WATCH_POLL_INTERVAL", "1s"),
            ],
            "at least 10s",
        ),
        (
            vec![
                ("BREAKGLASS_ROOT_WATCH_BUCKET", "acme"),
                ("BREAKGLASS_ROOT_WATCH_RELEASE_WINDOW", "30d"),
            ],
            "between 1m and 7d",
        ),
    ] {
        let e = on(&vars).unwrap_err();
        assert!(e.contains(words), "{vars:?}: {e}");
    }
    let e = load_env(&[("BREAKGLASS_ROOT_WATCH_BUCKET", "acme")]).unwrap_err();
    assert!(e.contains("root_watch.enabled is not true"), "{e}");
}
