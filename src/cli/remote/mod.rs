//! The client commands: each calls the server over HTTP and prints its
//! answer as a table or a summary, or as JSON with `--json`.

mod alerts;
mod audit;
mod credentials;
mod custodians;
mod org;
mod policies;
mod recovery;
mod requests;
mod watch;

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;

use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::args::{Command, ShareCmd, TokenCmd};
use super::client::{CallError, Client};
use super::host::open_share;
use super::output::{self, table};
use super::Failure;
use crate::app::hygiene::HygieneReport;
use crate::app::views::{
    CredentialView, CustodianView, PolicyChangeView, RecoverySessionView, ReleaseView, RequestView,
    ShareCheckView, WhoAmI,
};
use crate::crypto::chain::Verdict;
use crate::domain::states::CustodianStatus;
use crate::{esay, say};
use output::Cell;

/// Read a secret without echo: from the terminal, or a line of stdin.
pub(super) fn read_secret(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    // Wrapped the moment it exists, and trimmed in place: no copy of the
    // secret is left behind unzeroized.
    let mut s = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(prompt)
                .map_err(|e| Failure::Input(format!("cannot read from the terminal: {e}")))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Input(e.to_string()))?;
        line
    };
    trim_line_end(&mut s);
    Ok(s)
}

/// Drop a trailing line break in place (truncating never reallocates).
pub(super) fn trim_line_end(s: &mut Zeroizing<String>) {
    let keep = s.trim_end_matches(['\r', '\n']).len();
    s.truncate(keep);
}

/// `healthcheck`: one probe, a line per check, and the exit code a
/// container runtime reads (0 ok; 3 not ready or unreachable).
pub(super) async fn healthcheck(
    c: &Client,
    live: bool,
    timeout_secs: u64,
    json_out: bool,
) -> Result<(), Failure> {
    let path = if live { "/healthz" } else { "/readyz" };
    let (status, body) = c
        .probe(path, std::time::Duration::from_secs(timeout_secs))
        .await?;
    let failing: Vec<String> = body["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ch| ch["ok"] != Value::Bool(true))
        .map(|ch| {
            let name = ch["name"].as_str().unwrap_or("?");
            match ch["reason"].as_str() {
                Some(r) => format!("{name} ({r})"),
                None => name.to_string(),
            }
        })
        .collect();
    if json_out {
        print_json(&body);
    } else if status == 200 {
        say!("{}: ok", path.trim_start_matches('/'));
    }
    if status == 200 {
        return Ok(());
    }
    Err(Failure::Call(CallError {
        status: Some(status),
        code: "not_ready".into(),
        message: format!("not ready: {}", failing.join(", ")),
    }))
}

/// `policy check`: the files first (no server needed), then each policy
/// against the enrolled custodians and the deposited credentials.
pub(super) async fn policy_check(
    c: &Client,
    dir: Option<&std::path::Path>,
    json_out: bool,
) -> Result<(), Failure> {
    use crate::domain::{GroupName, PolicySet};
    let dir = dir.unwrap_or(std::path::Path::new("policies"));
    let set =
        PolicySet::load_dir(dir).map_err(|e| Failure::Input(format!("invalid policy: {e}")))?;
    let custodians: Result<Vec<CustodianView>, CallError> = c.get("/v1/custodians").await;
    let credentials: Result<Vec<CredentialView>, CallError> = c.get("/v1/credentials").await;
    let mut problems = Vec::new();
    let mut report = Vec::new();
    let enrolled: Option<Vec<Vec<GroupName>>> = custodians.as_ref().ok().map(|cs| {
        cs.iter()
            .filter(|c| c.status == CustodianStatus::Active.as_str())
            .map(|c| {
                c.groups
                    .iter()
                    .filter_map(|g| GroupName::parse(g).ok())
                    .collect()
            })
            .collect()
    });
    for p in set.iter() {
        let mut line = match &enrolled {
            Some(e) => {
                let s = p.satisfiability(e);
                if !s.satisfiable {
                    problems.push(format!("policy {} cannot be satisfied", p.name));
                }
                s.explanation
            }
            None => format!("policy {} needs {}", p.name, p.describe()),
        };
        let conditions = p.conditions();
        if !conditions.is_empty() {
            line.push_str(&format!("; and {}", conditions.join(", ")));
        }
        report.push((p.name.to_string(), line));
    }
    if let Ok(creds) = &credentials {
        for cr in creds {
            if set.get(&cr.policy).is_none() {
                problems.push(format!(
                    "credential {} uses policy {}, which {} does not define",
                    cr.name.cell(),
                    cr.policy.cell(),
                    dir.display()
                ));
            }
        }
    }
    let unexplained = custodians.err().map(|e| e.to_string());
    if json_out {
        print_json(&json!({
            "dir": dir,
            "policies": report
                .iter()
                .map(|(policy, explanation)| json!({ "policy": policy, "explanation": explanation }))
                .collect::<Vec<_>>(),
            "problems": problems,
            "not_explained": unexplained,
        }));
    } else {
        say!("{}: {} valid policies", dir.display(), set.len());
        for (_, explanation) in &report {
            say!("  {}", explanation.cell());
        }
        if let Some(why) = &unexplained {
            say!("(not checked against the enrolled custodians and credentials: {why})");
        }
        for p in &problems {
            say!("problem: {p}");
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Input(format!(
            "{} problem(s) in {}",
            problems.len(),
            dir.display()
        )))
    }
}

/// The server's answer read as the API's own view type (a field renamed
/// or retyped there fails to compile here); `--json` prints the answer as
/// it came.
pub(super) fn view<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Failure> {
    T::deserialize(v).map_err(|e| {
        Failure::Input(format!(
            "the server's answer is not what this client reads ({e}): run a client of the server's version, or use --json"
        ))
    })
}

pub(super) fn print_change(v: &Value, json_out: bool) -> Result<(), Failure> {
    if json_out {
        print_json(v);
        return Ok(());
    }
    let c: PolicyChangeView = view(v)?;
    say!(
        "policy change {} ({} of policy {}): {}",
        c.id.cell(),
        c.kind.cell(),
        c.policy.cell(),
        c.state.cell()
    );
    for ch in &c.changes {
        say!("  {}", ch.cell());
    }
    if let Some(w) = &c.waiting_for {
        say!("needs {}; waiting for {w}", c.quorum.cell());
    }
    Ok(())
}

/// The one-line verdict of a verification.
pub(super) fn verdict_line(v: &Verdict) -> String {
    let signed = match v.signed_through {
        Some(s) => format!(
            "signed through event {s} ({} checkpoints)",
            v.checkpoints_checked
        ),
        None => "no signed checkpoint yet".into(),
    };
    match (&v.first_break, v.ok) {
        (None, true) => format!(
            "audit chain OK: {} events, head {} at event {}; {signed}",
            v.events_checked,
            v.head_hash.cell(),
            v.head_seq
        ),
        (Some(b), _) => format!("audit chain BROKEN at event {}: {}", b.seq, b.reason.cell()),
        (None, false) => "audit chain BROKEN".into(),
    }
}

/// `audit verify --file`: offline, on an export, with progress.
pub(super) fn verify_export(
    file: &std::path::Path,
    public_key: Option<&std::path::Path>,
    json_out: bool,
) -> Result<(), Failure> {
    let trusted = match public_key {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::Input(format!("cannot read {}: {e}", p.display())))?;
            let key: crate::crypto::chain::AuditKey = serde_json::from_str(&text).map_err(|e| {
                Failure::Input(format!(
                    "{} is not an audit key (the JSON of /.well-known/breakglass-audit-key): {e}",
                    p.display()
                ))
            })?;
            if key.raw().is_none() {
                return Err(Failure::Input(format!(
                    "{}: the key does not match its kid, or is not a 32-byte Ed25519 key",
                    p.display()
                )));
            }
            Some(vec![key])
        }
    };
    let f = std::fs::File::open(file)
        .map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?;
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let r = crate::crypto::chain::verify_jsonl(std::io::BufReader::new(f), trusted, |n| {
        if tty {
            eprint!("\rverified {n} events…");
        }
    })
    .map_err(|e| Failure::Input(format!("{}: {e}", file.display())))?;
    if tty {
        esay!(
            "\rverified {} events in {:.1} s",
            r.verdict.events_checked,
            started.elapsed().as_secs_f64()
        );
    }
    let v = serde_json::to_value(&r).expect("a verdict serialises");
    if json_out {
        print_json(&v);
    } else {
        say!("{}", verdict_line(&r.verdict));
        if r.keys_from_file && r.verdict.ok {
            let kids: Vec<&str> = r.keys.iter().map(|k| k.kid.as_str()).collect();
            say!(
                "checkpoints were checked with the key named in the file ({}): compare it with the key the service publishes, or pass --public-key",
                kids.join(", ")
            );
        }
    }
    if !r.verdict.ok {
        return Err(Failure::Input("the audit export does not verify".into()));
    }
    Ok(())
}

/// A released credential: a summary and its fields, or the JSON.
pub(super) fn print_release(v: &Value, json_out: bool, how: &str) -> Result<(), Failure> {
    use secrecy::ExposeSecret;
    if json_out {
        print_json(v);
        return Ok(());
    }
    let r: ReleaseView = view(v)?;
    if let Some(t) = &r.root_task {
        return print_root_task(&r, t);
    }
    say!(
        "{} (account {}, version {}) — {how}; it is now marked exposed:",
        r.credential.cell(),
        r.account_id.cell(),
        r.version
    );
    // The released values themselves, exactly as deposited (escaping would
    // change a password); every name around them is escaped.
    for (k, val) in &r.fields {
        println!("  {}: {}", k.cell(), val.expose_secret());
    }
    Ok(())
}

/// What a root-session release did: the task's steps, or the session's
/// credentials handed over (printed as they are, once).
fn print_root_task(r: &ReleaseView, t: &crate::app::views::RootTaskView) -> Result<(), Failure> {
    use secrecy::ExposeSecret;
    say!(
        "{} in account {}: root session {} (until {})",
        t.task.cell(),
        t.account_id.cell(),
        t.session_key_id.cell(),
        t.session_expires_at.cell()
    );
    match &t.run {
        None => {
            say!("the session is yours, once (export these as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN):");
            for (k, val) in &r.fields {
                println!("  {}: {}", k.cell(), val.expose_secret());
            }
        }
        Some(run) => {
            if let Some(b) = &run.before {
                say!("  before: {}", b.describe());
            }
            for step in &run.steps {
                say!("  done: {}", step.cell());
            }
            for a in &run.already {
                say!("  already: {}", a.cell());
            }
            if let Some(a) = &run.after {
                say!("  after: {}", a.describe());
            }
            say!("executed once; the request is released");
        }
    }
    Ok(())
}

pub(super) fn print_session(v: &Value, json_out: bool) -> Result<(), Failure> {
    if json_out {
        print_json(v);
        return Ok(());
    }
    let s: RecoverySessionView = view(v)?;
    say!(
        "recovery session {} for request {} ({}): {}, expires {}",
        s.id.cell(),
        s.request_id.cell(),
        s.credential.cell(),
        s.state.cell(),
        s.expires_at.cell()
    );
    say!(
        "set {}: {} of {} shares needed; {} more needed",
        s.set_id.cell(),
        s.threshold,
        s.share_holders.len(),
        s.needed
    );
    if !s.submitted.is_empty() {
        let rows = s
            .submitted
            .iter()
            .map(|x| vec![x.index.cell(), x.custodian.cell(), x.submitted_at.cell()])
            .collect();
        say!("{}", table(&["share", "custodian", "submitted"], rows));
    }
    Ok(())
}

pub(super) fn code_or_prompt(code: &Option<String>) -> Result<Zeroizing<String>, Failure> {
    match code {
        Some(c) => Ok(Zeroizing::new(c.clone())),
        None => read_secret("TOTP code: "),
    }
}

/// Collect `--field` and `--from-file` values into the request body map.
pub(super) fn collect_fields(
    fields: &[String],
    from_file: &Option<PathBuf>,
) -> Result<BTreeMap<String, Zeroizing<String>>, Failure> {
    let mut out = BTreeMap::new();
    if let Some(path) = from_file {
        // Read into zeroizing memory sized up front: a growing buffer would
        // leave copies of the secrets behind as it moves.
        let mut buf = Zeroizing::new(Vec::with_capacity(1024 * 1024));
        let read = if path.as_os_str() == "-" {
            std::io::stdin().take(1024 * 1024).read_to_end(&mut buf)
        } else {
            std::fs::File::open(path).and_then(|f| f.take(1024 * 1024).read_to_end(&mut buf))
        };
        read.map_err(|e| Failure::Input(format!("cannot read {}: {e}", path.display())))?;
        let text = Zeroizing::new(
            String::from_utf8(std::mem::take(&mut *buf))
                .map_err(|_| Failure::Input(format!("{} is not UTF-8 text", path.display())))?,
        );
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(Failure::Input(format!(
                    "{}:{}: expected KEY=VALUE",
                    path.display(),
                    i + 1
                )));
            };
            if out
                .insert(k.trim().to_string(), Zeroizing::new(v.to_string()))
                .is_some()
            {
                return Err(Failure::Input(format!(
                    "{}:{}: field {} is given twice: give each field once",
                    path.display(),
                    i + 1,
                    k.trim()
                )));
            }
        }
    }
    for f in fields {
        let Some((k, v)) = f.split_once('=') else {
            return Err(Failure::Input(format!(
                "--field {k:?} is not KEY=VALUE, KEY=- or KEY=@FILE",
                k = f.split('=').next().unwrap_or("")
            )));
        };
        let value = if v == "-" {
            read_secret(&format!("{k}: "))?
        } else if let Some(p) = v.strip_prefix('@') {
            let mut s = Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| Failure::Input(format!("cannot read {p}: {e}")))?,
            );
            trim_line_end(&mut s);
            s
        } else {
            Zeroizing::new(v.to_string())
        };
        if out.insert(k.to_string(), value).is_some() {
            return Err(Failure::Input(format!("field {k} is given twice")));
        }
    }
    if out.is_empty() {
        return Err(Failure::Input(
            "give at least one --field KEY=VALUE (or KEY=- to type it without echo)".into(),
        ));
    }
    Ok(out)
}

/// Secret fields, serialised straight from their zeroizing strings.
pub(super) struct SecretFields<'a, V>(pub(super) &'a BTreeMap<String, V>);

impl<V: AsSecretStr> serde::Serialize for SecretFields<'_, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v.secret_str())?;
        }
        m.end()
    }
}

pub(super) trait AsSecretStr {
    fn secret_str(&self) -> &str;
}
impl AsSecretStr for Zeroizing<String> {
    fn secret_str(&self) -> &str {
        self.as_str()
    }
}
impl AsSecretStr for secrecy::SecretString {
    fn secret_str(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(self)
    }
}

/// A JSON body with secret `fields`, written into zeroizing memory sized
/// up front (so it never reallocates and leaves a copy behind).
pub(super) fn secret_body(
    mut body: serde_json::Map<String, Value>,
    fields: &BTreeMap<String, Zeroizing<String>>,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    #[derive(serde::Serialize)]
    struct WithFields<'a> {
        #[serde(flatten)]
        rest: &'a serde_json::Map<String, Value>,
        fields: SecretFields<'a, Zeroizing<String>>,
    }
    body.remove("fields");
    let secret_len: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(
        secret_len * 6 + serde_json::to_vec(&body).map_or(0, |b| b.len()) + 1024,
    ));
    serde_json::to_writer(
        &mut *out,
        &WithFields {
            rest: &body,
            fields: SecretFields(fields),
        },
    )
    .map_err(|e| Failure::Input(format!("cannot write the request: {e}")))?;
    Ok(out)
}

pub(super) fn print_json(v: &Value) {
    println!("{}", output::json_text(v));
}

pub(super) fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

pub(super) fn seg(s: &str) -> String {
    // Path segments are names and UUIDs; anything else is escaped so it
    // cannot change the route.
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(super) async fn remote(c: &Client, cmd: &Command, json_out: bool) -> Result<(), Failure> {
    match cmd {
        Command::Custodian(sub) => custodians::run(c, sub, json_out).await?,
        Command::Credential(sub) => credentials::run(c, sub, json_out).await?,
        Command::Policy(sub) => policies::run(c, sub, json_out).await?,
        Command::Request(sub) => requests::run(c, sub, json_out).await?,
        Command::Alerts(sub) => alerts::run(c, sub, json_out).await?,
        Command::Org(sub) => org::run(c, sub, json_out).await?,
        Command::Watch(sub) => watch::run(c, sub, json_out).await?,
        Command::Recovery(sub) => recovery::run(c, sub, json_out).await?,
        Command::Audit(sub) => audit::run(c, sub, json_out).await?,
        Command::Whoami => {
            let v: Value = c.get("/v1/whoami").await?;
            if json_out {
                print_json(&v)
            } else {
                let me: WhoAmI = view(&v)?;
                say!(
                    "{}",
                    output::kv(&[
                        ("subject", me.subject.cell()),
                        ("roles", me.roles.cell()),
                        ("token id", me.token_id.cell()),
                        ("expires", me.expires_at.cell())
                    ])
                );
            }
        }
        Command::Token(TokenCmd::Revoke { jti }) => {
            let v: Value = c.post("/v1/tokens/revoke", &json!({ "jti": jti })).await?;
            if json_out {
                print_json(&v)
            } else {
                say!("token {jti} revoked")
            }
        }
        Command::Approve {
            id,
            webauthn: true,
            no_open,
            ..
        } => requests::approve_in_console(c, id, *no_open, json_out).await?,
        Command::Approve { id, code, .. } => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/requests/{}/approve", seg(id)),
                    &json!({ "code": code.as_str() }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                let r: RequestView = view(&v)?;
                say!(
                    "approved: {} of {} approvals; request is {}",
                    r.approvals,
                    r.approvals_needed,
                    r.state.cell()
                );
            }
        }
        Command::Deny { id, code, reason } => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/requests/{}/deny", seg(id)),
                    &json!({ "code": code.as_str(), "reason": reason }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                let r: RequestView = view(&v)?;
                say!("denied; request is {}", r.state.cell())
            }
        }
        Command::Release { id } => {
            let v: Value = c
                .post(&format!("/v1/requests/{}/release", seg(id)), &json!({}))
                .await?;
            print_release(&v, json_out, "released once")?;
        }
        Command::Doctor => {
            let v: Value = c.get("/v1/hygiene").await?;
            let report: HygieneReport = view(&v)?;
            if json_out {
                print_json(&v)
            } else {
                let rows: Vec<Vec<String>> = report
                    .findings
                    .iter()
                    .map(|x| {
                        vec![
                            x.severity.cell(),
                            x.subject.cell(),
                            x.finding.cell(),
                            x.fix.cell(),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    say!(
                        "{}",
                        table(&["severity", "subject", "finding", "fix"], rows)
                    );
                }
                say!(
                    "{} high, {} medium, {} low finding(s)",
                    report.high,
                    report.medium,
                    report.low
                );
            }
            if report.high > 0 {
                return Err(Failure::Input("the review has high findings".into()));
            }
        }
        Command::Share(ShareCmd::Check { file, identity }) => {
            let share = open_share(file, identity)?;
            let commitment = crate::crypto::shamir::share_commitment(&share)
                .map_err(|e| Failure::Input(format!("{}: {e}", file.display())))?;
            let v: Value = c
                .post(
                    "/v1/recovery/shares/check",
                    &json!({ "set_id": share.set_id, "index": share.index, "commitment": commitment }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                let checked: ShareCheckView = view(&v)?;
                say!(
                    "share {} of set {} is valid (threshold {} of {}); checked {}",
                    checked.index,
                    checked.set_id.cell(),
                    checked.threshold,
                    checked.share_count,
                    checked.checked_at.cell()
                );
            }
        }
        Command::Serve(_)
        | Command::Login { .. }
        | Command::Healthcheck { .. }
        | Command::Migrate(_)
        | Command::Token(TokenCmd::Issue { .. })
        | Command::Keys(_)
        | Command::Init { .. }
        | Command::Recover { .. }
        | Command::Rekey { .. }
        | Command::Backup(_) => {
            unreachable!("handled locally")
        }
    }
    Ok(())
}
