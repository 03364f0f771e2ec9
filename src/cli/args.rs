//! The argument tree: every command, subcommand and option.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::domain::Role;

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
    pub(super) server: String,
    /// Bearer token (see `breakglass token issue`); else the one kept by
    /// `breakglass login`.
    #[arg(long, global = true, env = "BREAKGLASS_TOKEN", hide_env_values = true)]
    pub(super) token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(super) json: bool,
    /// Whether `--server` (or `BREAKGLASS_SERVER`) was given, not defaulted.
    #[arg(skip)]
    pub(super) server_given: bool,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(ServerConfigArgs),
    /// Mint or revoke tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Sign in through the organisation's OIDC provider (a browser, PKCE,
    /// a loopback redirect) and keep the token for the other commands.
    Login {
        /// The provider, exactly as its tokens' `iss`.
        #[arg(long, env = "BREAKGLASS_OIDC_ISSUER")]
        issuer: String,
        /// This command's client at the provider.
        #[arg(long, env = "BREAKGLASS_OIDC_CLIENT_ID")]
        client_id: String,
        /// An owner-only file with the client's secret (a confidential
        /// client); none: a public client, PKCE alone.
        #[arg(long)]
        client_secret_file: Option<PathBuf>,
    },
    /// Show who the token belongs to.
    Whoami,
    /// Probe the server's readiness (`GET /readyz`), or with `--live` its
    /// liveness (`GET /healthz`): exit 0 when it answers ok, 3 when it is
    /// unreachable or not ready. Without `--server` it probes the port of
    /// `BREAKGLASS_LISTEN` on loopback. The image's HEALTHCHECK runs this.
    Healthcheck {
        /// Only liveness: the process answers, whatever its dependencies.
        #[arg(long)]
        live: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=60))]
        timeout: u64,
    },
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
    /// Approve a request with a fresh TOTP code, or with a security key in
    /// the console (custodian).
    Approve {
        id: String,
        /// The current TOTP code; asked for without echo when omitted.
        #[arg(long, conflicts_with = "webauthn")]
        code: Option<String>,
        /// Approve with a security key or passkey: prints (and opens) the
        /// request's console page, then waits for your approval there.
        #[arg(long)]
        webauthn: bool,
        /// With --webauthn: print the link without opening a browser.
        #[arg(long, requires = "webauthn")]
        no_open: bool,
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
    /// The AWS organisation: its accounts and their root posture (admin;
    /// `org accounts` also auditor).
    #[command(subcommand)]
    Org(OrgCmd),
    /// The root watch: CloudTrail's root activity, each event matched to a
    /// release or a brokered session; the rest are findings (admin;
    /// `watch status` also auditor).
    #[command(subcommand)]
    Watch(WatchCmd),
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
pub(super) enum BackupCmd {
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
pub(super) enum ShareCmd {
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
pub(super) enum AlertsCmd {
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
pub(super) enum OrgCmd {
    /// List the organisation's accounts, check trusted access and the
    /// centralized-root features, and read every member account's root
    /// posture through an audit-task root session.
    Sync,
    /// The inventory: every account and its root credentials as last read.
    Accounts,
    /// File a root-session request for a member account (requester): the
    /// quorum approves exactly this account, task, duration and bucket or
    /// queue; `breakglass release` then executes the task.
    Request {
        /// The member account (12 digits).
        account: String,
        /// IAMAuditRootUserCredentials, IAMCreateRootUserPassword,
        /// IAMDeleteRootUserCredentials, S3UnlockBucketPolicy or
        /// SQSUnlockQueuePolicy.
        #[arg(long)]
        task: String,
        /// The session's length in seconds (60 to 900; default 300).
        #[arg(long)]
        duration: Option<i64>,
        /// S3UnlockBucketPolicy: the bucket.
        #[arg(long, conflicts_with = "queue_url")]
        bucket: Option<String>,
        /// SQSUnlockQueuePolicy: the queue's URL.
        #[arg(long)]
        queue_url: Option<String>,
        /// Receive the session's credentials instead of having the
        /// service execute the task (where the policy allows it).
        #[arg(long)]
        hand_over: bool,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
}

#[derive(Subcommand)]
pub(super) enum WatchCmd {
    /// Files and events read, how far each log prefix is, rejected files
    /// and the open findings.
    Status {
        /// Acknowledged findings too.
        #[arg(long)]
        all: bool,
    },
    /// Read CloudTrail now: the queue, then every prefix's new files.
    Run,
    /// Acknowledge a finding: the activity is accounted for (audited).
    Ack {
        /// The finding's id (from `watch status`).
        finding: String,
        /// Why, e.g. the incident ticket that covers it.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub(super) enum RecoveryCmd {
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
pub(super) enum KeysCmd {
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
    /// Create a new local key-encryption key file (owner-only), for
    /// `keys.local_key_file`: one file that every replica mounts.
    CreateLocal {
        /// Where to write it; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args, Clone)]
pub(super) struct ServerConfigArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "BREAKGLASS_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Data directory (database, key file, signing key) [default: ./breakglass-data].
    #[arg(long, env = "BREAKGLASS_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// Database URL (sqlite:… or postgres:…) [default: the data directory's SQLite file].
    #[arg(long, env = "BREAKGLASS_DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
}

#[derive(Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    pub(super) base: ServerConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8200].
    #[arg(long, env = "BREAKGLASS_LISTEN")]
    pub(super) listen: Option<String>,
    /// Directory of policy files [default: ./policies].
    #[arg(long, env = "BREAKGLASS_POLICIES_DIR")]
    pub(super) policies_dir: Option<PathBuf>,
    /// Do not apply migrations on start.
    #[arg(long)]
    pub(super) no_migrate: bool,
    /// Log format: text or json.
    #[arg(long, env = "BREAKGLASS_LOG_FORMAT")]
    pub(super) log_format: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "BREAKGLASS_TLS_CERT")]
    pub(super) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BREAKGLASS_TLS_KEY")]
    pub(super) tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (only behind a
    /// TLS-terminating proxy).
    #[arg(long)]
    pub(super) allow_plain_http: bool,
}

#[derive(Subcommand)]
pub(super) enum TokenCmd {
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
        #[arg(long, default_value = "8h", conflicts_with = "link")]
        ttl: humantime::Duration,
        /// Print a one-time sign-in link for the web console instead of a
        /// token: it signs in once, within `[console] link_ttl`.
        #[arg(long)]
        link: bool,
    },
    /// Revoke a token by its id (admin).
    Revoke { jti: String },
}

#[derive(Subcommand)]
pub(super) enum CustodianCmd {
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
pub(super) enum CredentialCmd {
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
pub(super) enum PolicyCmd {
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
pub(super) enum RequestCmd {
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
pub(super) enum AuditCmd {
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
