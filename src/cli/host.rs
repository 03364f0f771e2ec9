//! The host commands: they run on the server's host, against its
//! configuration, database and keys (`serve`, `migrate`, `token issue`, the
//! recovery ceremony, `recover`, `backup export`, `keys rewrap`, `audit
//! archive`).

use std::path::PathBuf;

use anyhow::Context;

use zeroize::Zeroizing;

use super::args::{ServeArgs, ServerConfigArgs};
use super::output::table;
use super::remote::{print_json, SecretFields};
use super::Failure;
use crate::config::{Config, Overrides};
use crate::domain::Role;
use crate::wiring::{Purpose, Wiring};

pub(super) fn config_from(base: &ServerConfigArgs, extra: Overrides) -> anyhow::Result<Config> {
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
    Ok(config)
}

/// The application a host command runs through: wired from the
/// configuration like the server's, on the data directory's existing keys.
/// Its events are audited, and alerted, as the server's are.
pub(super) async fn host_app(
    config: &Config,
    migrate: bool,
) -> anyhow::Result<std::sync::Arc<crate::app::App>> {
    host_app_of(&Wiring::new(config), migrate).await
}

/// `host_app`, from wiring the command also takes other pieces from.
pub(super) async fn host_app_of(
    wiring: &Wiring<'_>,
    migrate: bool,
) -> anyhow::Result<std::sync::Arc<crate::app::App>> {
    wiring
        .app(
            std::sync::Arc::new(crate::clock::SystemClock),
            Purpose::Host { migrate },
        )
        .await
}

pub(super) async fn serve(a: ServeArgs) -> anyhow::Result<()> {
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

pub(super) async fn migrate(a: ServerConfigArgs) -> anyhow::Result<()> {
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
    let store = Wiring::new(&config).store(true).await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

/// `keys create-local`: a new local key-encryption key in its own file.
pub(super) fn create_local_key(out: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use crate::keys::KeyService;
    let key = crate::keys::local::LocalKeyService::create(out).with_context(|| {
        format!(
            "{} was not created (an existing file is never replaced)",
            out.display()
        )
    })?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "file": out.display().to_string(), "key_id": key.key_id() })
        );
    } else {
        println!(
            "created {} (key id {}): keep it secret and backed up, give every replica the same file (e.g. a mounted Secret) and set keys.local_key_file to its path",
            out.display(),
            key.key_id()
        );
    }
    Ok(())
}

/// Mint a token with the data directory's key, and audit it: a token is
/// the one thing the host operator can create without the API.
pub(super) async fn issue_token(
    base: ServerConfigArgs,
    subject: &str,
    roles: &[Role],
    ttl: std::time::Duration,
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    // Never create keys here: a mistyped --data-dir would mint tokens the
    // server rejects and audit them into a stray database (the host
    // application requires the server's keys).
    let app = host_app(&config, true).await?;
    let issued = app
        .issue_host_token(&operator(), subject, roles, ttl.as_secs() as i64)
        .await;
    app.store.close().await;
    let (token, claims) = issued?;
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

/// Mint a one-time sign-in link for the console, audited as a token is.
pub(super) async fn issue_link(
    base: ServerConfigArgs,
    subject: &str,
    roles: &[Role],
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    let app = host_app(&config, true).await?;
    let issued = app.issue_sign_in_link(&operator(), subject, roles).await;
    app.store.close().await;
    let link = issued?;
    // The console's address, else the one alerts link to, else where the
    // server listens.
    let public = config.settings.console.public_url.clone().or_else(|| {
        config
            .settings
            .alerts
            .as_ref()
            .and_then(|a| a.public_url.clone())
    });
    let origin = match public {
        Some(u) => u,
        None => format!(
            "{}://{}",
            if config.tls.is_some() {
                "https"
            } else {
                "http"
            },
            config.listen
        ),
    };
    println!("{origin}/console/signin/link?s={}", link.secret.reveal());
    eprintln!(
        "sign-in link for {subject} ({}): one use, until {}; id {}",
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        crate::clock::rfc3339(link.expires_at),
        link.jti
    );
    Ok(())
}

pub(super) fn custodian_pairs(custodians: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    custodians
        .iter()
        .map(|c| {
            c.split_once('=')
                .map(|(n, r)| (n.trim().to_string(), r.trim().to_string()))
                .ok_or_else(|| anyhow::anyhow!("--custodian {c:?} is not NAME=AGE_RECIPIENT"))
        })
        .collect()
}

pub(super) fn read_shares(
    files: &[PathBuf],
) -> anyhow::Result<Vec<crate::crypto::shamir::ShareData>> {
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

pub(super) fn print_set(
    report: &crate::app::recovery::InitReport,
    json_out: bool,
) -> anyhow::Result<()> {
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
pub(super) fn operator() -> String {
    format!(
        "host-operator:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

pub(super) async fn init(
    base: ServerConfigArgs,
    threshold: u8,
    custodians: &[String],
    out: &std::path::Path,
    json_out: bool,
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    let pairs = custodian_pairs(custodians)?;
    let app = host_app(&config, true).await?;
    let report = app.recovery_init(&operator(), threshold, &pairs, out).await;
    app.store.close().await;
    print_set(&report?, json_out)
}

pub(super) async fn rekey(
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
    let app = host_app(&config, false).await?;
    let report = app
        .recovery_rekey(&operator(), &shares, threshold, &pairs, out)
        .await;
    app.store.close().await;
    print_set(&report?, json_out)
}

pub(super) async fn archive(
    base: ServerConfigArgs,
    through: i64,
    out: &std::path::Path,
    prune: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let config = config_from(&base, Overrides::default())?;
    let app = host_app(&config, false).await?;
    let result = app
        .archive(
            &operator(),
            &crate::app::audit::Archive {
                through,
                out,
                prune,
            },
        )
        .await;
    app.store.close().await;
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

pub(super) async fn export_backup(
    base: ServerConfigArgs,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let config = config_from(&base, Overrides::default())?;
    let app = host_app(&config, false).await?;
    let file = app.export_backup(&app.token_key, &operator()).await;
    app.store.close().await;
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

pub(super) async fn recover(
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
            let app = host_app(&config, false).await?;
            let r = match read_shares(files) {
                Ok(shares) => app.recover_offline(&operator(), credential, &shares).await,
                Err(e) => {
                    let message = format!("{e:#}");
                    app.refuse_offline(&operator(), credential, "share_unreadable", &message)
                        .await
                        .and(Err(e))
                }
            };
            app.store.close().await;
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
pub(super) fn open_share(
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
pub(super) async fn rewrap(
    base: ServerConfigArgs,
    to: &str,
    kms_key_id: Option<String>,
    aws_endpoint_url: Option<String>,
    json_out: bool,
) -> anyhow::Result<()> {
    use std::sync::Arc;

    use crate::config::KeyServiceChoice;
    use crate::keys::{kms::KmsKeyService, KeyRing, KeyService};

    let config = config_from(
        &base,
        Overrides {
            aws_endpoint_url,
            ..Default::default()
        },
    )?;
    let wiring = Wiring::new(&config);
    anyhow::ensure!(
        wiring.local_key_path().exists(),
        "there is no local key file at {}: give the data directory (or keys.local_key_file) the server uses",
        wiring.local_key_path().display()
    );
    let app = host_app_of(&wiring, false).await?;
    let local = wiring.local_keys()?;
    let sdk = wiring.sdk().await;
    let mut sources: Vec<Arc<dyn KeyService>> = Vec::new();
    if let KeyServiceChoice::AwsKms { key_id } = &config.key_service {
        sources.push(Arc::new(KmsKeyService::new(sdk, key_id)));
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
            let kms = KmsKeyService::new(sdk, &id);
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
    let job = crate::app::rewrap::Rewrap {
        app: &app,
        source: &source,
        target: target.as_ref(),
        target_key_id,
        actor: operator(),
    };
    let report = job.run(&mut |line| eprintln!("{line}")).await;
    app.store.close().await;
    let report = report?;
    if json_out {
        print_json(&serde_json::to_value(&report)?);
    } else {
        println!(
            "re-wrapped {} credential versions, {} TOTP seeds and {} service keys under {} ({} already there)",
            report.credential_versions_rewrapped,
            report.seeds_rewrapped,
            report.service_keys_rewrapped,
            report.target_key,
            report.already_under_target
        );
    }
    Ok(())
}
