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
    breakglass::datadir::DataDir::new(&data).ensure().unwrap();
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
