//! Start-up: resolve configuration, open the data directory and the store,
//! load policies, and serve on whatever listener we are given (tests bind
//! port 0 and run many servers at once).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::auth::{SigningKey, TokenService};
use crate::clock::Clock;
use crate::config::Config;
use crate::config::{KeyServiceChoice, SecretStoreChoice};
use crate::datadir::DataDir;
use crate::domain::PolicySet;
use crate::keys::kms::KmsKeyService;
use crate::keys::local::LocalKeyService;
use crate::keys::{KeyRing, KeyService};
use crate::secrets::aws::SecretsManagerStore;
use crate::secrets::database::DatabaseSecretStore;
use crate::secrets::SecretStore;

pub fn token_service(config: &Config, key: &SigningKey) -> TokenService {
    TokenService::new(
        key,
        &config.token_issuer,
        &config.token_audience,
        config.token_max_ttl.as_secs() as i64,
    )
}

/// The configured key service: the local key file, or AWS KMS with the
/// local key file kept readable for envelopes wrapped before the move.
pub async fn key_service(config: &Config) -> anyhow::Result<Arc<dyn KeyService>> {
    let dir = DataDir::new(&config.data_dir);
    let local: Arc<dyn KeyService> = Arc::new(
        LocalKeyService::load(&dir.key_file()).context("while loading the local key file")?,
    );
    Ok(match &config.key_service {
        KeyServiceChoice::AwsKms { key_id } => {
            let sdk = crate::aws::sdk_config(&config.aws).await;
            Arc::new(KeyRing::new(
                Arc::new(KmsKeyService::new(&sdk, key_id)),
                vec![local],
            ))
        }
        KeyServiceChoice::Local => Arc::new(KeyRing::new(local, vec![])),
    })
}

/// Build the application from its configuration. Creates the data
/// directory's keys on first start.
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<App>> {
    // Policies first: an invalid policy stops the server before it creates
    // or opens anything.
    let policies = PolicySet::load_dir(&config.policies_dir)
        .map_err(|e| anyhow::anyhow!("invalid policy: {e}"))?;
    let dir = DataDir::new(&config.data_dir);
    dir.ensure()?;
    // Nobody else may read or swap the keys (each key file is checked
    // again as it is opened).
    crate::datadir::check_all(&dir.root)?;
    let store =
        crate::store::connect_with(&config.database_url, config.migrate_on_start, &config.pool)
            .await
            .context("while opening the database")?;
    let keys = key_service(config).await?;
    let signing =
        SigningKey::load(&dir.signing_key_file()).context("while loading the token signing key")?;
    if config.database_url == dir.database_url() {
        // The database holds envelopes and the audit log: owner-only, like the keys.
        use std::os::unix::fs::PermissionsExt;
        for f in [
            dir.db_path(),
            dir.db_path().with_extension("db-wal"),
            dir.db_path().with_extension("db-shm"),
        ] {
            if f.exists() {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    let sdk = if config.secret_store != SecretStoreChoice::Database {
        Some(crate::aws::sdk_config(&config.aws).await)
    } else {
        None
    };
    let secrets: Arc<dyn SecretStore> = match (&config.secret_store, &sdk) {
        (
            SecretStoreChoice::AwsSecretsManager {
                name_prefix,
                recovery_window_days,
            },
            Some(sdk),
        ) => Arc::new(SecretsManagerStore::new(
            sdk,
            name_prefix,
            *recovery_window_days,
        )),
        _ => Arc::new(DatabaseSecretStore::new(store.clone())),
    };
    let audit_key = Arc::new(
        SigningKey::load(&dir.audit_key_file())
            .context("while loading the audit checkpoint key")?,
    );
    let review_sdk = if config.settings.review_aws {
        Some(crate::aws::sdk_config(&config.aws).await)
    } else {
        None
    };
    Ok(Arc::new(App {
        store,
        keys,
        secrets,
        policies: Arc::new(policies),
        clock,
        tokens: Arc::new(token_service(config, &signing)),
        settings: config.settings.clone(),
        oidc: config
            .oidc
            .iter()
            .cloned()
            .map(|c| crate::oidc::OidcIssuer::new(c).map(Arc::new))
            .collect::<anyhow::Result<Vec<_>>>()?,
        fallback_seen: Default::default(),
        aws_review: review_sdk
            .as_ref()
            .map(|sdk| (aws_sdk_iam::Client::new(sdk), aws_sdk_sts::Client::new(sdk))),
        aws_sdk: review_sdk,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("while building the HTTP client")?,
        witness: Arc::new(
            crate::app::witness::Witness::load(
                &dir.witness_file(),
                &crate::crypto::chain::AuditKey::new(audit_key.public_key()),
            )
            .context("while loading the audit witness")?,
        ),
        chain_break: Default::default(),
        data_dir: config.data_dir.clone(),
        auth_refusals: Arc::new(crate::app::auth_refusals::AuthRefusals::new(
            config.settings.limits.auth_refusal_events_per_minute,
        )),
        audit_key,
        replica: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        vault: Arc::default(),
        limiters: Arc::new(crate::limits::Limiters::new(&config.settings.limits)),
        metrics: Arc::default(),
    }))
}

pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, app, None, shutdown).await
}

/// Serve on `listener`, over TLS when `tls` is given, until `shutdown`;
/// then finish in-flight requests (for up to 30 s).
pub async fn serve_with(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<Arc<crate::tls::ReloadingCert>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = crate::http::router(app.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ticker = tokio::spawn(background(app.clone(), stopped));
    let acceptor = match &tls {
        Some(cert) => Some(tokio_rustls::TlsAcceptor::from(cert.server_config()?)),
        None => None,
    };
    let limits = &app.settings.limits;
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // The edge answers an oversized head with `headers_too_large`; hyper's
    // own bounds, a little above ours, stop a client that sends far more.
    let head_room = (limits.max_header_bytes * 2).max(16 * 1024);
    builder
        .http1()
        .max_buf_size(head_room)
        .max_headers(200)
        .header_read_timeout(std::time::Duration::from_secs(10))
        .timer(hyper_util::rt::TokioTimer::new());
    builder
        .http2()
        .max_header_list_size(head_room as u32)
        .max_concurrent_streams(64)
        .timer(hyper_util::rt::TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait, do not spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                use tower::Service;
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                // A Router is always ready: no poll_ready needed.
                router.clone().call(req)
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match acceptor {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    );
                    let stream = match handshake.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection_with_upgrades(
                        hyper_util::rt::TokioIo::new(stream),
                        service,
                    );
                    let _ = watcher.watch(conn).await;
                }
                None => {
                    let conn = builder.serve_connection_with_upgrades(
                        hyper_util::rt::TokioIo::new(stream),
                        service,
                    );
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within 30 s; closing");
    }
    let _ = stop.send(true);
    let _ = ticker.await;
    // The minute of refused authentications not yet summarised.
    if let Err(e) = app.flush_auth_refusals(true).await {
        tracing::warn!(error = %e, "could not audit the last refused authentications");
    }
    Ok(())
}

/// Every second, one round of the background work (`app/ticker.rs`).
async fn background(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = crate::app::ticker::Ticker::default();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => app.tick(&mut ticker).await,
        }
    }
}

pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BREAKGLASS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// `breakglass serve`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(config.log_json);
    let dir = DataDir::new(&config.data_dir);
    let first_start = !dir.signing_key_file().exists();
    config.check_transport()?;
    let tls = match &config.tls {
        Some(t) => {
            let cert = crate::tls::ReloadingCert::load(t).context("while loading TLS")?;
            cert.watch(t.reload_interval);
            Some(cert)
        }
        None => None,
    };
    let app = build(&config, Arc::new(crate::clock::SystemClock)).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("while binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        policies = app.policies.len(),
        key_service = app.keys.kind(),
        secret_store = app.secrets.kind(),
        "breakglass listening"
    );
    if first_start && config.log_json {
        // Keep standard error one JSON object per line.
        tracing::warn!(
            data_dir = %config.data_dir.display(),
            "first start: created the database, the local key file, the token signing key and the audit checkpoint key; back them up, and mint the first admin token with `breakglass token issue --data-dir DIR --subject YOUR-NAME --role admin`"
        );
    } else if first_start {
        eprintln!(
            "\nFirst start: created {dir} with the database, the local key file, the token signing key and the audit checkpoint key.\n\
             Back up {dir} (it holds the keys) and mint the first admin token with:\n\n    \
             breakglass token issue --data-dir {dir} --subject YOUR-NAME --role admin\n",
            dir = config.data_dir.display()
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("breakglass listening on {scheme}://{addr}");
    serve_with(listener, app.clone(), tls, shutdown_signal()).await?;
    app.store.close().await;
    Ok(())
}

/// SIGINT or SIGTERM: finish in-flight requests, then stop.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
