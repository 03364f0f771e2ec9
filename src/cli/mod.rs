//! The `breakglass` command: the server (`serve`, `migrate`, `token issue`)
//! and a client for every user action, speaking to the server over HTTP.

use crate::domain::Action;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::{Config, Overrides};
use crate::domain::Role;
use crate::{esay, say};

mod client;
mod output;

use client::{CallError, Client};
use output::{cell, table};

#[derive(Parser)]
#[command(
    name = "breakglass",
    version,
    about = "Break-glass custody of cloud root credentials"
)]
pub struct Cli {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "BREAKGLASS_SERVER",
        default_value = "http://127.0.0.1:8200"
    )]
    server: String,
    /// Bearer token (see `breakglass token issue`).
    #[arg(long, global = true, env = "BREAKGLASS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(ServerConfigArgs),
    /// Mint or revoke tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Show who the token belongs to.
    Whoami,
    /// Manage custodians and their TOTP enrolment.
    #[command(subcommand)]
    Custodian(CustodianCmd),
    /// Deposit, rotate and inspect credentials (values are never shown).
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Show the loaded quorum policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// File and inspect break-glass requests.
    #[command(subcommand)]
    Request(RequestCmd),
    /// Approve a request with a fresh TOTP code (custodian).
    Approve {
        id: String,
        /// The current TOTP code; asked for without echo when omitted.
        #[arg(long)]
        code: Option<String>,
    },
    /// Deny a request with a fresh TOTP code and a reason (custodian).
    Deny {
        id: String,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Release an approved request's credential, once (the requester).
    Release { id: String },
    /// Read and verify the audit log (auditor).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Key management on the server's host (host operator).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The recovery key ceremony (host operator): split a new recovery key
    /// among the custodians, one age-encrypted share file each.
    Init {
        #[command(flatten)]
        base: ServerConfigArgs,
        /// How many shares rebuild the recovery key.
        #[arg(long)]
        threshold: u8,
        /// NAME=AGE_RECIPIENT (age1…), once per custodian.
        #[arg(long = "custodian", required = true)]
        custodians: Vec<String>,
        /// Where to write the share files (NAME.share.age).
        #[arg(long)]
        out: PathBuf,
    },
    /// Recovery shares (custodian).
    #[command(subcommand)]
    Share(ShareCmd),
    /// The security review: findings with their severity and fix; exits
    /// non-zero on any high finding (auditor or admin).
    Doctor,
    /// Alert deliveries: list them, retry dead letters (admin).
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// Online recovery: custodians submit their shares to the server for
    /// one request, which is then released without the key service or the
    /// secret store.
    #[command(subcommand)]
    Recovery(RecoveryCmd),
    /// Re-split the recovery key for a new custodian set or threshold, with
    /// k decrypted shares of the current set (host operator). Atomic.
    Rekey {
        #[command(flatten)]
        base: ServerConfigArgs,
        /// A decrypted share of the current set (repeat, k of them).
        #[arg(long = "share", required = true)]
        shares: Vec<PathBuf>,
        /// The new threshold.
        #[arg(long)]
        threshold: u8,
        /// NAME=AGE_RECIPIENT of the new set (repeat).
        #[arg(long = "custodian", required = true)]
        custodians: Vec<String>,
        /// Where to write the new share files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Recover one credential with k custodians' shares, on the host,
    /// without the key service or the secret store (the shares are the
    /// custodians' decrypted share files: `age -d -i KEY NAME.share.age`).
    Recover {
        #[command(flatten)]
        base: ServerConfigArgs,
        /// The credential to recover.
        #[arg(long)]
        credential: String,
        /// A decrypted share file (repeat, one per custodian).
        #[arg(long = "share", required = true)]
        shares: Vec<PathBuf>,
        /// Recover from an exported backup file instead of the database
        /// (no database, no server, no network).
        #[arg(long)]
        backup: Option<PathBuf>,
    },
    /// Signed backups for recovery without the database (host operator).
    #[command(subcommand)]
    Backup(BackupCmd),
}

#[derive(Subcommand)]
enum BackupCmd {
    /// Write every credential's recovery wrap and envelope, the share set's
    /// public parts, the custodians and the audit chain head, signed.
    Export {
        #[command(flatten)]
        base: ServerConfigArgs,
        /// The backup file to create.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ShareCmd {
    /// Confirm your share is valid, without revealing or combining it: it is
    /// decrypted here and only its commitment is sent.
    Check {
        /// Your share file (NAME.share.age).
        file: PathBuf,
        /// Your age identity file (from age-keygen).
        #[arg(long)]
        identity: PathBuf,
    },
}

#[derive(Subcommand)]
enum AlertsCmd {
    /// Deliveries, newest first.
    List {
        /// pending, delivered or dead.
        #[arg(long)]
        state: Option<String>,
    },
    /// Send a dead-lettered alert again.
    Retry { id: String },
}

#[derive(Subcommand)]
enum RecoveryCmd {
    /// Open a session for your request (requester); prints its id.
    Open { request: String },
    /// Show a session: who has submitted, how many more are needed.
    Show { session: String },
    /// Submit your share (custodian): decrypted here with your age
    /// identity, sealed to the session's key, sent with a TOTP code.
    Submit {
        session: String,
        /// Your share file (NAME.share.age).
        file: PathBuf,
        /// Your age identity file (from age-keygen).
        #[arg(long)]
        identity: PathBuf,
        /// The current TOTP code; asked for without echo when omitted.
        #[arg(long)]
        code: Option<String>,
    },
    /// Release the credential with the submitted shares, once (requester).
    Release { session: String },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Re-wrap every data key (credentials and TOTP seeds) under another key
    /// service or KMS key. In memory only; resumable; audited.
    Rewrap {
        #[command(flatten)]
        base: ServerConfigArgs,
        /// Target key service: local or aws-kms.
        #[arg(long)]
        to: String,
        /// Target KMS key id, ARN or alias/NAME (with --to aws-kms).
        #[arg(long)]
        kms_key_id: Option<String>,
        /// AWS endpoint override (VPC endpoint or emulator).
        #[arg(long, env = "BREAKGLASS_AWS_ENDPOINT_URL")]
        aws_endpoint_url: Option<String>,
    },
}

#[derive(Args, Clone)]
struct ServerConfigArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "BREAKGLASS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, key file, signing key) [default: ./breakglass-data].
    #[arg(long, env = "BREAKGLASS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL (sqlite:… or postgres:…) [default: the data directory's SQLite file].
    #[arg(long, env = "BREAKGLASS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    base: ServerConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8200].
    #[arg(long, env = "BREAKGLASS_LISTEN")]
    listen: Option<String>,
    /// Directory of policy files [default: ./policies].
    #[arg(long, env = "BREAKGLASS_POLICIES_DIR")]
    policies_dir: Option<PathBuf>,
    /// Do not apply migrations on start.
    #[arg(long)]
    no_migrate: bool,
    /// Log format: text or json.
    #[arg(long, env = "BREAKGLASS_LOG_FORMAT")]
    log_format: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "BREAKGLASS_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BREAKGLASS_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (only behind a
    /// TLS-terminating proxy).
    #[arg(long)]
    allow_plain_http: bool,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Mint a token from the data directory's signing key (host operator).
    Issue {
        #[command(flatten)]
        base: ServerConfigArgs,
        /// Who the token is for (a custodian's token subject is their name).
        #[arg(long)]
        subject: String,
        /// A role: admin, requester, custodian or auditor (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        /// Lifetime, e.g. 8h.
        #[arg(long, default_value = "8h")]
        ttl: humantime::Duration,
    },
    /// Revoke a token by its id (admin).
    Revoke { jti: String },
}

#[derive(Subcommand)]
enum CustodianCmd {
    /// Add a custodian (admin).
    Add {
        name: String,
        /// A group the custodian belongs to (repeatable).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
    },
    /// List custodians.
    List,
    /// Start TOTP enrolment (the custodian themselves): shows a QR code.
    Enroll { name: String },
    /// Confirm TOTP enrolment with a first code.
    Confirm {
        name: String,
        #[arg(long)]
        code: Option<String>,
    },
}

#[derive(Subcommand)]
enum CredentialCmd {
    /// Deposit a new credential (admin).
    Deposit {
        name: String,
        /// 12-digit AWS account id.
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "default")]
        policy: String,
        /// KEY=VALUE, KEY=- (ask without echo) or KEY=@FILE (repeatable).
        #[arg(long = "field")]
        fields: Vec<String>,
        /// A file of KEY=VALUE lines (`-` for standard input).
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// A field holding a TOTP seed, released only as its current code
        /// (repeatable).
        #[arg(long = "code-only")]
        code_only: Vec<String>,
        /// The id (AKIA…) of root access keys deposited in the fields, for
        /// the review.
        #[arg(long)]
        access_key_id: Option<String>,
        /// A drill credential (no real secret), to rehearse the policy.
        #[arg(long)]
        drill: bool,
    },
    /// Deposit a new version of a credential (admin); clears `exposed`.
    Rotate {
        name: String,
        #[arg(long = "field")]
        fields: Vec<String>,
        #[arg(long)]
        from_file: Option<PathBuf>,
        #[arg(long = "code-only")]
        code_only: Vec<String>,
        #[arg(long)]
        access_key_id: Option<String>,
    },
    /// Rotate the root access keys deposited in a credential (admin):
    /// create, deposit, verify, delete the old; resumes where it stopped.
    RotateKeys {
        name: String,
        /// Run at most this many steps (1 to 3).
        #[arg(long, default_value_t = 3)]
        steps: u8,
    },
    /// List credentials (metadata only).
    List,
    /// Show one credential's metadata.
    Show { name: String },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// List policies and whether the enrolled custodians can satisfy them.
    List,
    /// Validate a directory of policy files (policies as code) and explain
    /// each policy against the custodians the server has enrolled (with a
    /// token that may list custodians and credentials). Exits non-zero on
    /// an invalid file, an unsatisfiable policy, or a credential whose
    /// policy the directory does not define.
    Check {
        /// The policy directory [default: ./policies].
        dir: Option<PathBuf>,
    },
    /// Propose a changed policy (admin): a file with one [[policy]] naming
    /// an existing policy. It takes effect once that policy's quorum
    /// approves it.
    Propose {
        file: PathBuf,
        #[arg(long)]
        reason: String,
    },
    /// Propose moving a credential to another policy (admin); its current
    /// policy's quorum must approve.
    Move {
        credential: String,
        #[arg(long = "to")]
        to_policy: String,
        #[arg(long)]
        reason: String,
    },
    /// Policy changes and their state.
    Changes,
    /// Approve a policy change with a fresh TOTP code (custodian).
    Approve {
        id: String,
        #[arg(long)]
        code: Option<String>,
    },
    /// Deny a policy change with a TOTP code and a reason (custodian).
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        code: Option<String>,
    },
}

#[derive(Subcommand)]
enum RequestCmd {
    /// File a break-glass request (requester).
    Create {
        credential: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
    Show {
        id: String,
    },
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// List audit events in chain order, filtered (the last seq shown is
    /// the cursor for --after).
    List {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Events at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Events before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        /// E.g. request.release.
        #[arg(long)]
        action: Option<String>,
        /// success, refused or error.
        #[arg(long)]
        outcome: Option<String>,
        /// Events about this credential.
        #[arg(long)]
        credential: Option<String>,
    },
    /// Verify the hash chain and its signed checkpoints: on the server, or
    /// offline on an export (--file). Exits non-zero if anything is wrong.
    Verify {
        /// An export (`audit export --format jsonl`) to verify offline.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The audit public key to trust (the JSON of
        /// /.well-known/breakglass-audit-key, saved earlier); without it the
        /// key named in the export is used and its id printed.
        #[arg(long, requires = "file")]
        public_key: Option<PathBuf>,
    },
    /// Export the log for a SIEM or an offline verification.
    Export {
        /// jsonl (verifiable: events, signed checkpoints, head) or ocsf.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Events after this sequence number.
        #[arg(long)]
        after: Option<i64>,
        /// Events from this time on (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Where to write (a new file).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a checkpoint of the chain head now (auditor or admin).
    Checkpoint,
    /// Show the delivery state of the SIEM sink (auditor).
    Sink,
    /// Retention (host operator): archive the oldest events to a verifiable
    /// file and, with --prune, delete them from the database.
    Archive {
        #[command(flatten)]
        base: ServerConfigArgs,
        /// The last event to archive.
        #[arg(long)]
        through: i64,
        /// Where to write the archive (a new file).
        #[arg(long)]
        out: PathBuf,
        /// Delete the archived events (audited; the log stays verifiable).
        #[arg(long)]
        prune: bool,
    },
}

/// Exit codes: 0 done, 1 refused by the server or bad input, 2 usage, 3
/// server unreachable or unavailable.
fn exit_for(e: &CallError) -> ExitCode {
    match e.status {
        Some(s) if (400..500).contains(&s) => ExitCode::from(1),
        _ => ExitCode::from(3),
    }
}

pub fn main() -> ExitCode {
    // A misspelt setting must not fall back to a default unnoticed.
    if let Err(e) = crate::config::check_environment(std::env::vars()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(a) => return local(serve(a).await),
        Command::Migrate(a) => return local(migrate(a).await),
        Command::Recover {
            base,
            credential,
            shares,
            backup,
        } => return local(recover(base, &credential, &shares, backup.as_deref(), cli.json).await),
        Command::Backup(BackupCmd::Export { base, out }) => {
            return local(export_backup(base, &out).await)
        }
        Command::Init {
            base,
            threshold,
            custodians,
            out,
        } => return local(init(base, threshold, &custodians, &out, cli.json).await),
        Command::Rekey {
            base,
            shares,
            threshold,
            custodians,
            out,
        } => return local(rekey(base, &shares, threshold, &custodians, &out, cli.json).await),
        Command::Keys(KeysCmd::Rewrap {
            base,
            to,
            kms_key_id,
            aws_endpoint_url,
        }) => return local(rewrap(base, &to, kms_key_id, aws_endpoint_url, cli.json).await),
        Command::Token(TokenCmd::Issue {
            base,
            subject,
            roles,
            ttl,
        }) => return local(issue_token(base, &subject, &roles, ttl.into()).await),
        Command::Audit(AuditCmd::Archive {
            base,
            through,
            out,
            prune,
        }) => return local(archive(base, through, &out, prune, cli.json).await),
        ref cmd => {
            let client = Client::new(&cli.server, cli.token.clone());
            remote(&client, cmd, cli.json).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Call(e)) => {
            eprintln!("error: {e}");
            exit_for(&e)
        }
        Err(Failure::Input(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}

fn local(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Call(CallError),
    Input(String),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Failure::Call(e)
    }
}

fn config_from(base: &ServerConfigArgs, extra: Overrides) -> anyhow::Result<Config> {
    let config = Config::load(
        base.config.as_deref(),
        Overrides {
            data_dir: base.data_dir.clone(),
            database_url: base.database_url.clone(),
            ..extra
        },
    )?;
    // Every host command refuses a data directory whose keys another user
    // could read or swap, as `serve` does.
    crate::datadir::check_all(&config.data_dir)?;
    // Events appended on the host alert like the server's.
    if let Some(a) = &config.settings.alerts {
        let _ = crate::app::alerts::HOST_ALERTS.set(a.clone());
    }
    Ok(config)
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let config = config_from(
        &a.base,
        Overrides {
            listen: a.listen,
            policies_dir: a.policies_dir,
            no_migrate: a.no_migrate,
            log_format: a.log_format,
            tls_cert_file: a.tls_cert,
            tls_key_file: a.tls_key,
            allow_plain_http: a.allow_plain_http,
            ..Default::default()
        },
    )?;
    crate::server::run(config).await
}

async fn migrate(a: ServerConfigArgs) -> anyhow::Result<()> {
    let config = config_from(&a, Overrides::default())?;
    let dir = crate::datadir::DataDir::new(&config.data_dir);
    if config.database_url == dir.database_url() && !config.data_dir.exists() {
        // The embedded database lives in the data directory; create only the
        // directory (keys are created by `serve`).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)?;
    }
    let store = crate::store::connect(&config.database_url, true).await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

/// Mint a token with the data directory's key, and audit it: a token is
/// the one thing the host operator can create without the API.
async fn issue_token(
    base: ServerConfigArgs,
    subject: &str,
    roles: &[Role],
    ttl: std::time::Duration,
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    let dir = crate::datadir::DataDir::new(&config.data_dir);
    // Never create keys here: a mistyped --data-dir would mint tokens the
    // server rejects and audit them into a stray database.
    anyhow::ensure!(
        dir.signing_key_file().exists(),
        "{} holds no signing key: start the server once with `breakglass serve --data-dir {}`, or fix --data-dir",
        config.data_dir.display(),
        config.data_dir.display()
    );
    let key = crate::auth::SigningKey::load(&dir.signing_key_file())?;
    let svc = crate::server::token_service(&config, &key);
    let now = now_ms();
    let (token, claims) = svc.issue(subject, roles, ttl.as_secs() as i64, now / 1000)?;
    let store = crate::store::connect(&config.database_url, true).await?;
    crate::app::audit::append_standalone(
        store.as_ref(),
        now,
        &operator(),
        crate::app::Event::new(
            Action::TokenIssue,
            format!("token:{}", claims.jti),
            json!({
                "subject": claims.sub,
                "roles": claims.roles,
                "expires_at": crate::clock::rfc3339(claims.exp * 1000),
            }),
        ),
    )
    .await?;
    store.close().await;
    println!("{token}");
    eprintln!(
        "token for {subject} ({}) expires {}; id {}",
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        crate::clock::rfc3339(claims.exp * 1000),
        claims.jti
    );
    Ok(())
}

fn custodian_pairs(custodians: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    custodians
        .iter()
        .map(|c| {
            c.split_once('=')
                .map(|(n, r)| (n.trim().to_string(), r.trim().to_string()))
                .ok_or_else(|| anyhow::anyhow!("--custodian {c:?} is not NAME=AGE_RECIPIENT"))
        })
        .collect()
}

fn read_shares(files: &[PathBuf]) -> anyhow::Result<Vec<crate::crypto::shamir::ShareData>> {
    files
        .iter()
        .map(|f| {
            let text = Zeroizing::new(
                std::fs::read(f)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?,
            );
            serde_json::from_slice(&text).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not a decrypted share (decrypt it first: age -d -i KEY FILE)",
                    f.display()
                )
            })
        })
        .collect()
}

fn print_set(report: &crate::app::recovery::InitReport, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        print_json(&serde_json::to_value(report)?);
    } else {
        println!(
            "recovery share set {}: any {} of {} custodians can rebuild the recovery key",
            report.set_id,
            report.threshold,
            report.files.len()
        );
        println!(
            "{}",
            table(
                &["custodian", "share file (encrypted to their age key)"],
                report
                    .files
                    .iter()
                    .map(|(n, p)| vec![n.clone(), p.display().to_string()])
                    .collect()
            )
        );
        println!("Hand each file to its custodian; each runs `breakglass share check FILE --identity KEY`.");
    }
    Ok(())
}

/// The host operator's name for the audit log.
fn operator() -> String {
    format!(
        "host-operator:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn now_ms() -> i64 {
    crate::clock::Clock::now_ms(&crate::clock::SystemClock)
}

async fn init(
    base: ServerConfigArgs,
    threshold: u8,
    custodians: &[String],
    out: &std::path::Path,
    json_out: bool,
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    let pairs = custodian_pairs(custodians)?;
    let store = crate::store::connect(&config.database_url, true).await?;
    let keys = crate::server::key_service(&config).await?;
    let report = crate::app::recovery::init(
        store.as_ref(),
        keys.as_ref(),
        now_ms(),
        &operator(),
        threshold,
        &pairs,
        out,
    )
    .await;
    store.close().await;
    print_set(&report?, json_out)
}

async fn rekey(
    base: ServerConfigArgs,
    files: &[PathBuf],
    threshold: u8,
    custodians: &[String],
    out: &std::path::Path,
    json_out: bool,
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    let pairs = custodian_pairs(custodians)?;
    let shares = read_shares(files)?;
    let store = crate::store::connect(&config.database_url, false).await?;
    let report = crate::app::recovery::rekey(
        store.as_ref(),
        now_ms(),
        &operator(),
        &shares,
        threshold,
        &pairs,
        out,
    )
    .await;
    store.close().await;
    print_set(&report?, json_out)
}

async fn archive(
    base: ServerConfigArgs,
    through: i64,
    out: &std::path::Path,
    prune: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    let dir = crate::datadir::DataDir::new(&config.data_dir);
    let key = crate::auth::SigningKey::load(&dir.audit_key_file())?;
    let store = crate::store::connect(&config.database_url, false).await?;
    let result = async {
        let sink_cursor = match &config.settings.audit_sink {
            None => None,
            Some(_) => {
                let mut tx = store.begin().await?;
                let c = tx.sink_cursor(crate::app::audit_ship::SINK).await?;
                tx.commit().await?;
                Some(c.events_through)
            }
        };
        crate::app::audit::archive(
            store.as_ref(),
            &key,
            sink_cursor,
            now_ms(),
            &operator(),
            &crate::app::audit::Archive {
                through,
                out,
                prune,
            },
        )
        .await
    }
    .await;
    store.close().await;
    let r = result?;
    if json_out {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!(
            "archived events {} to {} ({} events, sha256 {}) to {}; signed checkpoint at event {}",
            r.from_seq,
            r.through_seq,
            r.events,
            r.file_sha256,
            out.display(),
            r.through_seq
        );
        if r.pruned {
            println!(
                "pruned them from the database; the log now continues from event {}'s hash",
                r.through_seq
            );
        } else {
            println!("nothing was deleted (add --prune to delete the archived events)");
        }
    }
    Ok(())
}

async fn export_backup(base: ServerConfigArgs, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let config = config_from(&base, Overrides::default())?;
    let dir = crate::datadir::DataDir::new(&config.data_dir);
    let signer = crate::auth::SigningKey::load(&dir.signing_key_file())?;
    let store = crate::store::connect(&config.database_url, false).await?;
    let file =
        crate::app::recovery::backup::export_backup(store.as_ref(), &signer, now_ms(), &operator())
            .await;
    store.close().await;
    let file = file?;
    let mut f = crate::crypto::private_file::create_private_file(out)?;
    f.write_all(&serde_json::to_vec_pretty(&file)?)?;
    f.sync_all()?;
    println!(
        "backup {}: {} recoverable credentials, {} not recoverable ({}), audit head at event {}; signed by key {}",
        out.display(),
        file.body.credentials.len(),
        file.body.not_recoverable.len(),
        file.body.not_recoverable.join(", "),
        file.body.audit_head.0,
        file.signer_kid
    );
    Ok(())
}

async fn recover(
    base: ServerConfigArgs,
    credential: &str,
    files: &[PathBuf],
    backup: Option<&std::path::Path>,
    json_out: bool,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let r = match backup {
        Some(path) => {
            let shares = read_shares(files)?;
            let text = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let file: crate::app::recovery::backup::BackupFile = serde_json::from_slice(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a backup file: {e}", path.display()))?;
            eprintln!(
                "backup signed by key {} (compare with the service's key id); not audited: there is no database here",
                file.signer_kid
            );
            crate::app::recovery::backup::recover_from_backup(&file, credential, &shares)?
        }
        None => {
            // The database first: every attempt is audited, one whose share
            // files do not even read included.
            let config = config_from(&base, Overrides::default())?;
            let store = crate::store::connect(&config.database_url, false).await?;
            let r = match read_shares(files) {
                Ok(shares) => {
                    crate::app::recovery::offline::recover_offline(
                        store.as_ref(),
                        now_ms(),
                        &operator(),
                        credential,
                        &shares,
                    )
                    .await
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    crate::app::recovery::offline::refuse_offline(
                        store.as_ref(),
                        now_ms(),
                        &operator(),
                        credential,
                        "share_unreadable",
                        &message,
                    )
                    .await
                    .and(Err(e))
                }
            };
            store.close().await;
            r?
        }
    };
    if json_out {
        // Written straight from the zeroizing values to standard output.
        #[derive(serde::Serialize)]
        struct Recovered<'a> {
            credential: &'a str,
            account_id: &'a str,
            version: i64,
            fields: SecretFields<'a, secrecy::SecretString>,
        }
        let out = std::io::stdout();
        let mut out = out.lock();
        serde_json::to_writer_pretty(
            &mut out,
            &Recovered {
                credential: &r.credential,
                account_id: &r.account_id,
                version: r.version,
                fields: SecretFields(&r.fields),
            },
        )?;
        use std::io::Write;
        writeln!(out)?;
    } else {
        println!(
            "{} (account {}, version {}) — recovered with {} shares; it is now marked exposed:",
            r.credential,
            r.account_id,
            r.version,
            files.len()
        );
        for (k, v) in &r.fields {
            println!("  {k}: {}", v.expose_secret());
        }
    }
    Ok(())
}

/// Decrypt a share file with an age identity file, locally.
fn open_share(
    file: &std::path::Path,
    identity: &std::path::Path,
) -> Result<crate::crypto::shamir::ShareData, Failure> {
    let text = Zeroizing::new(
        std::fs::read_to_string(identity)
            .map_err(|e| Failure::Input(format!("cannot read {}: {e}", identity.display())))?,
    );
    let id = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .and_then(|l| <age::x25519::Identity as std::str::FromStr>::from_str(l.trim()).ok())
        .ok_or_else(|| {
            Failure::Input(format!(
                "{} holds no age X25519 identity",
                identity.display()
            ))
        })?;
    let sealed = std::fs::read(file)
        .map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?;
    let plain = Zeroizing::new(age::decrypt(&id, &sealed).map_err(|_| {
        Failure::Input(format!(
            "{} does not open with this identity",
            file.display()
        ))
    })?);
    serde_json::from_slice(&plain)
        .map_err(|_| Failure::Input(format!("{} is not a breakglass share", file.display())))
}

/// `keys rewrap`: the configured secret store, every key service the
/// envelopes may name as the source, and the target.
async fn rewrap(
    base: ServerConfigArgs,
    to: &str,
    kms_key_id: Option<String>,
    aws_endpoint_url: Option<String>,
    json_out: bool,
) -> anyhow::Result<()> {
    use std::sync::Arc;

    use crate::config::{KeyServiceChoice, SecretStoreChoice};
    use crate::keys::{kms::KmsKeyService, local::LocalKeyService, KeyRing, KeyService};

    let config = config_from(
        &base,
        Overrides {
            aws_endpoint_url,
            ..Default::default()
        },
    )?;
    let dir = crate::datadir::DataDir::new(&config.data_dir);
    anyhow::ensure!(
        dir.key_file().exists(),
        "{} holds no local key file: give the data directory the server uses",
        config.data_dir.display()
    );
    let local: Arc<dyn KeyService> = Arc::new(LocalKeyService::load(&dir.key_file())?);
    let store = crate::store::connect(&config.database_url, false).await?;
    let sdk = crate::aws::sdk_config(&config.aws).await;
    let mut sources: Vec<Arc<dyn KeyService>> = Vec::new();
    if let KeyServiceChoice::AwsKms { key_id } = &config.key_service {
        sources.push(Arc::new(KmsKeyService::new(&sdk, key_id)));
    }
    let (target, target_key_id): (Arc<dyn KeyService>, String) = match to {
        "local" => (local.clone(), local.key_id().to_string()),
        "aws-kms" => {
            let id = kms_key_id
                .or(match &config.key_service {
                    KeyServiceChoice::AwsKms { key_id } => Some(key_id.clone()),
                    KeyServiceChoice::Local => None,
                })
                .ok_or_else(|| anyhow::anyhow!("--to aws-kms needs --kms-key-id"))?;
            let kms = KmsKeyService::new(&sdk, &id);
            let arn = kms
                .arn()
                .await
                .map_err(|e| anyhow::anyhow!("the target KMS key: {e}"))?;
            let kms: Arc<dyn KeyService> = Arc::new(kms);
            sources.push(kms.clone());
            (kms, arn)
        }
        other => anyhow::bail!("--to {other:?} is not local or aws-kms"),
    };
    let source = KeyRing::new(local, sources);
    let secrets: Arc<dyn crate::secrets::SecretStore> = match &config.secret_store {
        SecretStoreChoice::Database => Arc::new(
            crate::secrets::database::DatabaseSecretStore::new(store.clone()),
        ),
        SecretStoreChoice::AwsSecretsManager {
            name_prefix,
            recovery_window_days,
        } => Arc::new(crate::secrets::aws::SecretsManagerStore::new(
            &sdk,
            name_prefix,
            *recovery_window_days,
        )),
    };
    let now = now_ms;
    let job = crate::app::rewrap::Rewrap {
        store: store.as_ref(),
        secrets: secrets.as_ref(),
        source: &source,
        target: target.as_ref(),
        target_key_id,
        actor: operator(),
        now_ms: &now,
    };
    let report = job.run(&mut |line| eprintln!("{line}")).await;
    store.close().await;
    let report = report?;
    if json_out {
        print_json(&serde_json::to_value(&report)?);
    } else {
        println!(
            "re-wrapped {} credential versions and {} TOTP seeds under {} ({} already there)",
            report.credential_versions_rewrapped,
            report.seeds_rewrapped,
            report.target_key,
            report.already_under_target
        );
    }
    Ok(())
}

/// Read a secret without echo: from the terminal, or a line of stdin.
fn read_secret(prompt: &str) -> Result<Zeroizing<String>, Failure> {
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
fn trim_line_end(s: &mut Zeroizing<String>) {
    let keep = s.trim_end_matches(['\r', '\n']).len();
    s.truncate(keep);
}

/// `policy check`: the files first (no server needed), then each policy
/// against the enrolled custodians and the deposited credentials.
async fn policy_check(
    c: &Client,
    dir: Option<&std::path::Path>,
    json_out: bool,
) -> Result<(), Failure> {
    use crate::domain::{GroupName, PolicySet};
    let dir = dir.unwrap_or(std::path::Path::new("policies"));
    let set =
        PolicySet::load_dir(dir).map_err(|e| Failure::Input(format!("invalid policy: {e}")))?;
    let custodians: Result<Vec<Value>, CallError> = c.get("/v1/custodians").await;
    let credentials: Result<Vec<Value>, CallError> = c.get("/v1/credentials").await;
    let mut problems = Vec::new();
    let mut report = Vec::new();
    let enrolled: Option<Vec<Vec<GroupName>>> = custodians.as_ref().ok().map(|cs| {
        cs.iter()
            .filter(|c| c["status"] == "active")
            .map(|c| {
                c["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().and_then(|g| GroupName::parse(g).ok()))
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
        report.push(json!({ "policy": p.name.to_string(), "explanation": line }));
    }
    if let Ok(creds) = &credentials {
        for cr in creds {
            let policy = cr["policy"].as_str().unwrap_or_default();
            if set.get(policy).is_none() {
                problems.push(format!(
                    "credential {} uses policy {policy}, which {} does not define",
                    cell(&cr["name"]),
                    dir.display()
                ));
            }
        }
    }
    let unexplained = custodians.err().map(|e| e.to_string());
    if json_out {
        print_json(&json!({
            "dir": dir,
            "policies": report,
            "problems": problems,
            "not_explained": unexplained,
        }));
    } else {
        say!("{}: {} valid policies", dir.display(), set.len());
        for r in &report {
            say!("  {}", cell(&r["explanation"]));
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

fn print_change(v: &Value, json_out: bool) {
    if json_out {
        return print_json(v);
    }
    say!(
        "policy change {} ({} of policy {}): {}",
        cell(&v["id"]),
        cell(&v["kind"]),
        cell(&v["policy"]),
        cell(&v["state"])
    );
    for ch in v["changes"].as_array().into_iter().flatten() {
        say!("  {}", cell(ch));
    }
    if let Some(w) = v["waiting_for"].as_str() {
        say!("needs {}; waiting for {w}", cell(&v["quorum"]));
    }
}

/// The one-line verdict of a verification.
fn verdict_line(v: &Value) -> String {
    let signed = match v["signed_through"].as_i64() {
        Some(s) => format!(
            "signed through event {s} ({} checkpoints)",
            v["checkpoints_checked"]
        ),
        None => "no signed checkpoint yet".into(),
    };
    if v["ok"] == Value::Bool(true) {
        format!(
            "audit chain OK: {} events, head {} at event {}; {signed}",
            v["events_checked"],
            cell(&v["head_hash"]),
            v["head_seq"]
        )
    } else {
        format!(
            "audit chain BROKEN at event {}: {}",
            v["first_break"]["seq"],
            cell(&v["first_break"]["reason"])
        )
    }
}

/// `audit verify --file`: offline, on an export, with progress.
fn verify_export(
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
        say!("{}", verdict_line(&v));
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
fn print_release(v: &Value, json_out: bool, how: &str) {
    if json_out {
        return print_json(v);
    }
    say!(
        "{} (account {}, version {}) — {how}; it is now marked exposed:",
        cell(&v["credential"]),
        cell(&v["account_id"]),
        v["version"]
    );
    if let Some(m) = v["fields"].as_object() {
        // The released values themselves, exactly as deposited (escaping
        // would change a password); every name around them is escaped.
        for (k, val) in m {
            println!(
                "  {}: {}",
                crate::domain::text::escape(k),
                val.as_str().unwrap_or_default()
            );
        }
    }
}

fn print_session(v: &Value, json_out: bool) {
    if json_out {
        return print_json(v);
    }
    say!(
        "recovery session {} for request {} ({}): {}, expires {}",
        cell(&v["id"]),
        cell(&v["request_id"]),
        cell(&v["credential"]),
        cell(&v["state"]),
        cell(&v["expires_at"])
    );
    say!(
        "set {}: {} of {} shares needed; {} more needed",
        cell(&v["set_id"]),
        v["threshold"],
        v["share_holders"].as_array().map_or(0, Vec::len),
        v["needed"]
    );
    let rows: Vec<Vec<String>> = v["submitted"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    vec![
                        x["index"].to_string(),
                        cell(&x["custodian"]),
                        cell(&x["submitted_at"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !rows.is_empty() {
        say!("{}", table(&["share", "custodian", "submitted"], rows));
    }
}

fn code_or_prompt(code: &Option<String>) -> Result<Zeroizing<String>, Failure> {
    match code {
        Some(c) => Ok(Zeroizing::new(c.clone())),
        None => read_secret("TOTP code: "),
    }
}

/// Collect `--field` and `--from-file` values into the request body map.
fn collect_fields(
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
struct SecretFields<'a, V>(&'a BTreeMap<String, V>);

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

trait AsSecretStr {
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
fn secret_body(
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

fn print_json(v: &Value) {
    println!("{}", output::json_text(v));
}

fn qr(text: &str) -> Option<String> {
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

fn seg(s: &str) -> String {
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

async fn remote(c: &Client, cmd: &Command, json_out: bool) -> Result<(), Failure> {
    match cmd {
        Command::Whoami => {
            let v: Value = c.get("/v1/whoami").await?;
            if json_out {
                print_json(&v)
            } else {
                say!(
                    "{}",
                    output::kv(&[
                        ("subject", cell(&v["subject"])),
                        ("roles", cell(&v["roles"])),
                        ("token id", cell(&v["token_id"])),
                        ("expires", cell(&v["expires_at"]))
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
        Command::Custodian(CustodianCmd::Add { name, groups }) => {
            let v: Value = c
                .post("/v1/custodians", &json!({ "name": name, "groups": groups }))
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!("custodian {name} added to {}; next, they run `breakglass custodian enroll {name}` with their own token", groups.join(", "));
            }
        }
        Command::Custodian(CustodianCmd::List) => {
            let v: Vec<Value> = c.get("/v1/custodians").await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &["custodian", "groups", "status", "locked until", "enrolled"],
                        v.iter()
                            .map(|x| vec![
                                cell(&x["name"]),
                                cell(&x["groups"]),
                                cell(&x["status"]),
                                cell(&x["locked_until"]),
                                cell(&x["enrolled_at"])
                            ])
                            .collect(),
                    )
                );
            }
        }
        Command::Custodian(CustodianCmd::Enroll { name }) => {
            let v: Value = c
                .post(&format!("/v1/custodians/{}/enroll", seg(name)), &json!({}))
                .await?;
            let uri = Zeroizing::new(v["otpauth_uri"].as_str().unwrap_or_default().to_string());
            if json_out {
                print_json(&v)
            } else {
                if let Some(q) = qr(&uri) {
                    say!("{q}");
                }
                say!("Scan the QR code with your authenticator app, or add this URI (shown only now):\n\n  {}\n", uri.as_str());
                say!("Then confirm with the code it shows:  breakglass custodian confirm {name} --code CODE");
            }
        }
        Command::Custodian(CustodianCmd::Confirm { name, code }) => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/custodians/{}/confirm", seg(name)),
                    &json!({ "code": code.as_str() }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!("custodian {name} is enrolled and can approve requests")
            }
        }
        Command::Credential(CredentialCmd::Deposit {
            name,
            account,
            policy,
            fields,
            from_file,
            code_only,
            access_key_id,
            drill,
        }) => {
            let f = collect_fields(fields, from_file)?;
            let body = json!({ "name": name, "account_id": account, "policy": policy,
                               "code_only": code_only, "access_key_id": access_key_id, "drill": drill });
            let body = secret_body(body.as_object().cloned().unwrap_or_default(), &f)?;
            let v: Value = c.post_secret("/v1/credentials", body).await?;
            if json_out {
                print_json(&v)
            } else {
                say!(
                    "deposited {name} v1 ({} fields) under policy {policy}",
                    f.len()
                );
            }
        }
        Command::Credential(CredentialCmd::Rotate {
            name,
            fields,
            from_file,
            code_only,
            access_key_id,
        }) => {
            let f = collect_fields(fields, from_file)?;
            let body = json!({ "code_only": code_only, "access_key_id": access_key_id });
            let body = secret_body(body.as_object().cloned().unwrap_or_default(), &f)?;
            let v: Value = c
                .post_secret(&format!("/v1/credentials/{}/versions", seg(name)), body)
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!(
                    "deposited {name} v{}; it is no longer marked exposed",
                    cell(&v["current_version"])
                )
            }
        }
        Command::Credential(CredentialCmd::RotateKeys { name, steps }) => {
            let v: Value = c
                .post(
                    &format!("/v1/credentials/{}/rotate-keys", seg(name)),
                    &json!({ "max_steps": steps }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!(
                    "rotation of {name}: {} (old key {}, new key {}); ran: {}",
                    cell(&v["state"]),
                    cell(&v["old_key_id"]),
                    cell(&v["new_key_id"]),
                    v["steps"]
                        .as_array()
                        .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                );
            }
        }
        Command::Credential(CredentialCmd::List) => {
            let v: Vec<Value> = c.get("/v1/credentials").await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &[
                            "credential",
                            "account",
                            "policy",
                            "version",
                            "exposed",
                            "last release"
                        ],
                        v.iter()
                            .map(|x| vec![
                                cell(&x["name"]),
                                cell(&x["account_id"]),
                                cell(&x["policy"]),
                                cell(&x["current_version"]),
                                if x["exposed"] == Value::Bool(true) {
                                    "YES".to_string()
                                } else {
                                    "no".to_string()
                                },
                                cell(&x["last_released_at"])
                            ])
                            .collect(),
                    )
                );
            }
        }
        Command::Credential(CredentialCmd::Show { name }) => {
            let v: Value = c.get(&format!("/v1/credentials/{}", seg(name))).await?;
            if json_out {
                print_json(&v)
            } else {
                say!("{}", output::credential_summary(&v))
            }
        }
        Command::Policy(PolicyCmd::Propose { file, reason }) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?;
            let v: Value = c
                .post(
                    "/v1/policy-changes",
                    &json!({ "policy_toml": text, "reason": reason }),
                )
                .await?;
            print_change(&v, json_out);
        }
        Command::Policy(PolicyCmd::Move {
            credential,
            to_policy,
            reason,
        }) => {
            let v: Value = c
                .post(
                    "/v1/policy-changes",
                    &json!({ "credential": credential, "to_policy": to_policy, "reason": reason }),
                )
                .await?;
            print_change(&v, json_out);
        }
        Command::Policy(PolicyCmd::Changes) => {
            let v: Vec<Value> = c.get("/v1/policy-changes").await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &["id", "policy", "state", "changes", "approvals", "proposer"],
                        v.iter()
                            .map(|x| {
                                vec![
                                    cell(&x["id"]),
                                    cell(&x["policy"]),
                                    cell(&x["state"]),
                                    x["changes"]
                                        .as_array()
                                        .map(|a| a.iter().map(cell).collect::<Vec<_>>().join("; "))
                                        .unwrap_or_default(),
                                    x["approvals"]
                                        .as_array()
                                        .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(", "))
                                        .unwrap_or_default(),
                                    cell(&x["proposer"]),
                                ]
                            })
                            .collect(),
                    )
                );
            }
        }
        Command::Policy(PolicyCmd::Approve { id, code }) => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/policy-changes/{}/approve", seg(id)),
                    &json!({ "code": code.as_str() }),
                )
                .await?;
            print_change(&v, json_out);
        }
        Command::Policy(PolicyCmd::Deny { id, reason, code }) => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/policy-changes/{}/deny", seg(id)),
                    &json!({ "code": code.as_str(), "reason": reason }),
                )
                .await?;
            print_change(&v, json_out);
        }
        Command::Policy(PolicyCmd::Check { dir }) => {
            policy_check(c, dir.as_deref(), json_out).await?
        }
        Command::Policy(PolicyCmd::List) => {
            let v: Vec<Value> = c.get("/v1/policies").await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                for p in &v {
                    say!("{}", cell(&p["satisfiability"]["explanation"]));
                }
            }
        }
        Command::Request(RequestCmd::Create {
            credential,
            reason,
            ticket,
        }) => {
            let v: Value = c
                .post(
                    "/v1/requests",
                    &json!({ "credential": credential, "reason": reason, "ticket": ticket }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!("{}", cell(&v["id"]));
                esay!(
                    "request filed; it needs {} before {}",
                    cell(&v["quorum"]),
                    cell(&v["expires_at"])
                );
            }
        }
        Command::Request(RequestCmd::Show { id }) => {
            let v: Value = c.get(&format!("/v1/requests/{}", seg(id))).await?;
            if json_out {
                print_json(&v)
            } else {
                say!("{}", output::request_summary(&v))
            }
        }
        Command::Request(RequestCmd::List { limit }) => {
            let v: Vec<Value> = c.get(&format!("/v1/requests?limit={limit}")).await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &[
                            "request",
                            "credential",
                            "requester",
                            "state",
                            "approvals",
                            "created"
                        ],
                        v.iter()
                            .map(|x| vec![
                                cell(&x["id"]),
                                cell(&x["credential"]),
                                cell(&x["requester"]),
                                cell(&x["state"]),
                                format!("{}/{}", x["approvals"], x["approvals_needed"]),
                                cell(&x["created_at"])
                            ])
                            .collect(),
                    )
                );
            }
        }
        Command::Approve { id, code } => {
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
                say!(
                    "approved: {} of {} approvals; request is {}",
                    v["approvals"],
                    v["approvals_needed"],
                    cell(&v["state"])
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
                say!("denied; request is {}", cell(&v["state"]))
            }
        }
        Command::Release { id } => {
            let v: Value = c
                .post(&format!("/v1/requests/{}/release", seg(id)), &json!({}))
                .await?;
            print_release(&v, json_out, "released once");
        }
        Command::Doctor => {
            let v: Value = c.get("/v1/hygiene").await?;
            if json_out {
                print_json(&v)
            } else {
                let rows: Vec<Vec<String>> = v["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        vec![
                            cell(&x["severity"]),
                            cell(&x["subject"]),
                            cell(&x["finding"]),
                            cell(&x["fix"]),
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
                    v["high"],
                    v["medium"],
                    v["low"]
                );
            }
            if v["high"].as_u64().unwrap_or(0) > 0 {
                return Err(Failure::Input("the review has high findings".into()));
            }
        }
        Command::Alerts(AlertsCmd::List { state }) => {
            let path = match state {
                Some(st) => format!("/v1/alerts?state={}", seg(st)),
                None => "/v1/alerts".into(),
            };
            let v: Vec<Value> = c.get(&path).await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &["id", "event", "channel", "state", "attempts", "last error"],
                        v.iter()
                            .map(|a| {
                                vec![
                                    cell(&a["id"]),
                                    a["seq"].to_string(),
                                    cell(&a["channel"]),
                                    cell(&a["state"]),
                                    a["attempts"].to_string(),
                                    cell(&a["last_error"]),
                                ]
                            })
                            .collect(),
                    )
                );
            }
        }
        Command::Alerts(AlertsCmd::Retry { id }) => {
            let v: Value = c
                .post(&format!("/v1/alerts/{}/retry", seg(id)), &json!({}))
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!("alert {} will be sent again", cell(&v["id"]));
            }
        }
        Command::Recovery(RecoveryCmd::Open { request }) => {
            let v: Value = c
                .post(
                    &format!("/v1/requests/{}/recovery", seg(request)),
                    &json!({}),
                )
                .await?;
            print_session(&v, json_out);
            if !json_out {
                say!(
                    "Each share holder runs: breakglass recovery submit {} THEIR.share.age --identity THEIR-KEY",
                    cell(&v["id"])
                );
            }
        }
        Command::Recovery(RecoveryCmd::Show { session }) => {
            let v: Value = c
                .get(&format!("/v1/recovery/sessions/{}", seg(session)))
                .await?;
            print_session(&v, json_out);
        }
        Command::Recovery(RecoveryCmd::Submit {
            session,
            file,
            identity,
            code,
        }) => {
            let share = open_share(file, identity)?;
            let s: Value = c
                .get(&format!("/v1/recovery/sessions/{}", seg(session)))
                .await?;
            let recipient = s["recipient"].as_str().unwrap_or_default();
            let sealed = crate::app::recovery::session::seal_share(recipient, &share)
                .map_err(|e| Failure::Input(e.to_string()))?;
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/recovery/sessions/{}/shares", seg(session)),
                    &json!({ "code": code.as_str(), "sealed_share": sealed }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!(
                    "share {} submitted: {} of {} shares; {} more needed",
                    share.index,
                    v["submitted"].as_array().map_or(0, Vec::len),
                    v["threshold"],
                    v["needed"]
                );
            }
        }
        Command::Recovery(RecoveryCmd::Release { session }) => {
            let v: Value = c
                .post(
                    &format!("/v1/recovery/sessions/{}/release", seg(session)),
                    &json!({}),
                )
                .await?;
            print_release(&v, json_out, "released once with the recovery key");
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
                say!(
                    "share {} of set {} is valid (threshold {} of {}); checked {}",
                    v["index"],
                    cell(&v["set_id"]),
                    v["threshold"],
                    v["share_count"],
                    cell(&v["checked_at"])
                );
            }
        }
        Command::Audit(AuditCmd::List {
            after,
            limit,
            since,
            until,
            actor,
            action,
            outcome,
            credential,
        }) => {
            let mut path = format!("/v1/audit/events?after={after}&limit={limit}");
            for (k, v) in [
                ("since", since),
                ("until", until),
                ("actor", actor),
                ("action", action),
                ("outcome", outcome),
                ("credential", credential),
            ] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", seg(v)));
                }
            }
            let v: Vec<Value> = c.get(&path).await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &["seq", "time", "actor", "action", "target", "outcome", "code"],
                        v.iter()
                            .map(|e| {
                                let t = e["ts_ms"]
                                    .as_i64()
                                    .map(crate::clock::rfc3339)
                                    .unwrap_or_default();
                                vec![
                                    cell(&e["seq"]),
                                    t,
                                    cell(&e["actor"]),
                                    cell(&e["action"]),
                                    cell(&e["target"]),
                                    cell(&e["outcome"]),
                                    cell(&e["code"]),
                                ]
                            })
                            .collect(),
                    )
                );
            }
        }
        Command::Audit(AuditCmd::Verify {
            file: Some(file),
            public_key,
        }) => verify_export(file, public_key.as_deref(), json_out)?,
        Command::Audit(AuditCmd::Verify { file: None, .. }) => {
            let v: Value = c.post("/v1/audit/verify", &json!({})).await?;
            if json_out {
                print_json(&v);
            } else {
                say!("{}", verdict_line(&v));
            }
            if v["ok"] != Value::Bool(true) {
                return Err(Failure::Input("the audit chain does not verify".into()));
            }
        }
        Command::Audit(AuditCmd::Export {
            format,
            after,
            since,
            out,
        }) => {
            let mut path = format!("/v1/audit/export?format={}", seg(format));
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            if let Some(t) = since {
                path.push_str(&format!("&since={}", seg(t)));
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .map_err(|e| Failure::Input(format!("cannot create {}: {e}", out.display())))?;
            let tty = std::io::stderr().is_terminal();
            let mut lines = 0u64;
            let mut last = std::time::Instant::now();
            let bytes = c
                .download(&path, |chunk| {
                    use std::io::Write;
                    lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                    if tty && last.elapsed() > std::time::Duration::from_millis(500) {
                        eprint!("\r{lines} records…");
                        last = std::time::Instant::now();
                    }
                    f.write_all(chunk)
                })
                .await?;
            if tty {
                eprint!("\r");
            }
            f.sync_all()
                .map_err(|e| Failure::Input(format!("cannot write {}: {e}", out.display())))?;
            if json_out {
                print_json(&json!({ "file": out, "records": lines, "bytes": bytes }));
            } else {
                say!(
                    "exported {lines} records ({bytes} bytes) to {}",
                    out.display()
                );
            }
        }
        Command::Audit(AuditCmd::Sink) => {
            let v: Value = c.get("/v1/audit/sink").await?;
            if json_out {
                print_json(&v)
            } else if v["configured"] == Value::Bool(false) {
                say!("no audit sink is configured ([audit.sink] in the configuration file)");
            } else {
                say!(
                    "sink {} ({}): delivered through event {} of {}; backlog {}; last delivery {}",
                    cell(&v["endpoint"]),
                    cell(&v["format"]),
                    v["events_through"],
                    v["head_seq"],
                    v["backlog"],
                    cell(&v["delivered_at"])
                );
                if v["attempts"].as_i64().unwrap_or(0) > 0 {
                    say!(
                        "failing: {} attempts, last error: {}; next attempt {}",
                        v["attempts"],
                        cell(&v["last_error"]),
                        cell(&v["next_attempt_at"])
                    );
                }
            }
        }
        Command::Audit(AuditCmd::Checkpoint) => {
            let v: Value = c.post("/v1/audit/checkpoints", &json!({})).await?;
            if json_out {
                print_json(&v)
            } else {
                say!(
                    "checkpoint signed: event {} with hash {}, key {}",
                    v["seq"],
                    cell(&v["hash"]),
                    cell(&v["kid"])
                );
            }
        }
        Command::Serve(_)
        | Command::Migrate(_)
        | Command::Token(TokenCmd::Issue { .. })
        | Command::Keys(_)
        | Command::Init { .. }
        | Command::Recover { .. }
        | Command::Rekey { .. }
        | Command::Backup(_)
        | Command::Audit(AuditCmd::Archive { .. }) => {
            unreachable!("handled locally")
        }
    }
    Ok(())
}
