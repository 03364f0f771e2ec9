//! The real binary, end to end through its CLI, with debug logging on: no
//! deposited value, no TOTP seed, no sign-in link and no console session
//! cookie appears in anything the server logged, in the audit table, or
//! anywhere in the database files.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_breakglass");
const PASSWORD: &str = "pw-6f1d0c9e-never-log-me";
const MFA_SEED: &str = "MFASEEDQ7W2XK4NEVERLOGME";
const ACCESS_KEY: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

struct Server {
    child: Child,
    url: String,
    data_dir: std::path::PathBuf,
}

fn start(dir: &Path) -> Server {
    let data_dir = dir.join("data");
    let (child, url) = common::spawn_serve(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--policies-dir"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
            .arg("--data-dir")
            .arg(&data_dir)
            .env("BREAKGLASS_LOG", "trace")
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.log")).unwrap(),
            )),
    );
    Server {
        child,
        url,
        data_dir,
    }
}

/// Run the CLI; returns (exit code, stdout, stderr).
fn cli(s: &Server, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("BREAKGLASS_SERVER", &s.url)
        .env_remove("BREAKGLASS_TOKEN")
        .stdin(Stdio::null());
    if let Some(t) = token {
        c.env("BREAKGLASS_TOKEN", t);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(r: (i32, String, String)) -> String {
    assert_eq!(r.0, 0, "command failed: {}{}", r.1, r.2);
    r.1
}

fn token(s: &Server, subject: &str, roles: &[&str]) -> String {
    let dd = s.data_dir.to_str().unwrap().to_string();
    let mut args = vec!["token", "issue", "--data-dir", &dd, "--subject", subject];
    for r in roles {
        args.push("--role");
        args.push(r);
    }
    ok(cli(s, None, &args)).trim().to_string()
}

fn oathtool(secret: &str, offset_secs: i64) -> String {
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-b",
            secret,
            "--now",
            &format!("{offset_secs:+} seconds"),
        ])
        .output()
        .expect("oathtool must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn base32_decode(s: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => continue,
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_reaches_the_logs_the_audit_table_or_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());

    // Set up through the CLI, exactly as an operator would.
    let admin = token(&s, "root-admin", &["admin", "auditor"]);
    let requester = token(&s, "oncall", &["requester"]);
    let mut secrets = Vec::new();
    let mut tokens = Vec::new();
    for (name, group) in [("ann", "sre"), ("bob", "sre"), ("sec", "security")] {
        ok(cli(
            &s,
            Some(&admin),
            &["custodian", "add", name, "--group", group],
        ));
        let t = token(&s, name, &["custodian"]);
        let e: serde_json::Value = serde_json::from_str(&ok(cli(
            &s,
            Some(&t),
            &["--json", "custodian", "enroll", name],
        )))
        .unwrap();
        let uri = e["otpauth_uri"].as_str().unwrap();
        let secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        // Confirm with the previous step's code, approve later with the
        // current one: no waiting for a new step.
        ok(cli(
            &s,
            Some(&t),
            &[
                "custodian",
                "confirm",
                name,
                "--code",
                &oathtool(&secret, -30),
            ],
        ));
        secrets.push(secret);
        tokens.push(t);
    }
    ok(cli(
        &s,
        Some(&admin),
        &[
            "credential",
            "deposit",
            "aws-prod-root",
            "--account",
            "123456789012",
            "--field",
            &format!("password={PASSWORD}"),
            "--field",
            &format!("mfa_seed={MFA_SEED}"),
            "--field",
            &format!("secret_access_key={ACCESS_KEY}"),
        ],
    ));
    let id = ok(cli(
        &s,
        Some(&requester),
        &[
            "request",
            "create",
            "aws-prod-root",
            "--reason",
            "prod down",
            "--ticket",
            "INC-7",
        ],
    ))
    .trim()
    .to_string();
    // A wrong code, refused and audited, then the quorum.
    let (code, _, err) = cli(&s, Some(&tokens[0]), &["approve", &id, "--code", "000000"]);
    assert_eq!(code, 1, "a refusal exits non-zero: {err}");
    assert!(err.contains("invalid_totp"), "{err}");
    for (t, secret) in tokens.iter().zip(&secrets) {
        ok(cli(
            &s,
            Some(t),
            &["approve", &id, "--code", &oathtool(secret, 0)],
        ));
    }
    let shown = ok(cli(&s, Some(&requester), &["request", "show", &id]));
    assert!(shown.contains("approved"), "{shown}");
    let released = ok(cli(&s, Some(&requester), &["--json", "release", &id]));
    let released: serde_json::Value = serde_json::from_str(&released).unwrap();
    assert_eq!(released["fields"]["password"], PASSWORD);
    assert_eq!(released["fields"]["secret_access_key"], ACCESS_KEY);
    let (code, _, err) = cli(&s, Some(&requester), &["release", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("request_released"), "{err}");
    let listing = ok(cli(&s, Some(&admin), &["audit", "list", "--limit", "1000"]));
    assert!(listing.contains("request.release"));
    let verified = ok(cli(&s, Some(&admin), &["audit", "verify"]));
    assert!(verified.contains("audit chain OK"), "{verified}");
    let shown = ok(cli(
        &s,
        Some(&admin),
        &["credential", "show", "aws-prod-root"],
    ));
    assert!(shown.contains("YES since"), "exposed is shown: {shown}");

    // The console: a one-time sign-in link minted on the host, used once,
    // and the session it opens.
    let dd = s.data_dir.to_str().unwrap().to_string();
    let link = ok(cli(
        &s,
        None,
        &[
            "token",
            "issue",
            "--link",
            "--data-dir",
            &dd,
            "--subject",
            "ann",
            "--role",
            "custodian",
        ],
    ));
    let link_secret = link.trim().split("s=").nth(1).unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let session = rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = http
            .post(format!("{}/console/signin/link", s.url))
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("link={link_secret}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let cookie = res.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let page = http
            .get(format!("{}/console/requests/{id}", s.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        cookie.split_once('=').unwrap().1.to_string()
    });

    // Stop the server (SIGTERM) so everything is flushed.
    Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    let mut child = s.child;
    child.wait().unwrap();
    let mut log = String::new();
    std::fs::File::open(dir.path().join("server.log"))
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("request"), "the server logged its requests");

    // The database files as they rest on disk, before anything else opens them.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for f in std::fs::read_dir(&s.data_dir).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().contains("breakglass.db") {
            files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    assert!(!files.is_empty());

    // The audit table as text.
    let audit_rows: Vec<String> = rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut c = sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            s.data_dir.join("breakglass.db").display()
        ))
        .await
        .unwrap();
        sqlx::query("SELECT actor, action, target, outcome, code, details FROM audit_events")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (0..6)
                    .map(|i| {
                        r.try_get::<Option<String>, _>(i)
                            .unwrap()
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    });
    assert!(audit_rows.len() > 15, "the flow was audited");
    let audit = audit_rows.join("\n");
    files.push(("server log".into(), log.into_bytes()));
    files.push(("audit table".into(), audit.into_bytes()));

    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("password".into(), PASSWORD.as_bytes().to_vec()),
        ("mfa seed".into(), MFA_SEED.as_bytes().to_vec()),
        ("access key".into(), ACCESS_KEY.as_bytes().to_vec()),
        (
            "sign-in link's secret".into(),
            link_secret.as_bytes().to_vec(),
        ),
        (
            "console session's cookie".into(),
            session.as_bytes().to_vec(),
        ),
    ];
    for (i, secret) in secrets.iter().enumerate() {
        needles.push((
            format!("TOTP seed {i} (base32)"),
            secret.as_bytes().to_vec(),
        ));
        needles.push((format!("TOTP seed {i} (raw)"), base32_decode(secret)));
    }
    // Control: the search finds a value where it legitimately is.
    assert!(contains(
        released.to_string().as_bytes(),
        PASSWORD.as_bytes()
    ));
    for (what, hay) in &files {
        for (name, needle) in &needles {
            assert!(!contains(hay, needle), "the {name} appears in {what}");
        }
    }
}

#[test]
fn debug_output_redacts_secret_values() {
    use breakglass::app::views::{EnrollmentView, ReleaseView};
    use secrecy::SecretString;
    let r = ReleaseView {
        request_id: "r".into(),
        credential: "c".into(),
        account_id: "123456789012".into(),
        version: 1,
        fields: [("password".to_string(), SecretString::from(PASSWORD))]
            .into_iter()
            .collect(),
        codes: vec![],
        codes_valid_until: None,
        root_task: None,
    };
    let e = EnrollmentView {
        custodian: "ann".into(),
        otpauth_uri: SecretString::from(format!("otpauth://totp/x:ann?secret={MFA_SEED}")),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
    };
    let dbg = format!("{r:?} {e:?} {:?}", SecretString::from(PASSWORD));
    assert!(!dbg.contains(PASSWORD) && !dbg.contains(MFA_SEED), "{dbg}");
    assert!(dbg.contains("password"), "field names are fine: {dbg}");
}
