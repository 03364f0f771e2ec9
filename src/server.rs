//! Start-up: build the application from its configuration (`wiring.rs`)
//! and serve on whatever listener we are given (tests bind port 0 and run
//! many servers at once).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::wiring::{Purpose, Wiring};

/// Build the application from its configuration (`wiring.rs`). Creates
/// the data directory's keys on first start.
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<App>> {
    Wiring::new(config).app(clock, Purpose::Serve).await
}

pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, app, None, shutdown).await
}

/// Serve on `listener`, over TLS when `tls` is given, until `shutdown`;
/// then finish in-flight requests and the background round, hand back
/// the leases, all within `shutdown_timeout`.
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
    let budget = app.settings.shutdown_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    // The background round stops with the requests: it may be waiting on a
    // slow alert receiver, which must not hold the stop up.
    let _ = stop.send(true);
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?budget,
            "in-flight requests did not finish within the shutdown timeout; closing them"
        );
    }
    let abort = ticker.abort_handle();
    if tokio::time::timeout_at(deadline, ticker).await.is_err() {
        abort.abort();
        tracing::warn!(
            timeout = ?budget,
            "the background round did not finish within the shutdown timeout; stopped it"
        );
    }
    match app.release_leases().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(leases = n, "released the delivery leases this replica held"),
        Err(e) => {
            tracing::warn!(error = %e, "could not release the delivery leases; they run out on their own")
        }
    }
    // The minute of refused authentications not yet summarised.
    if let Err(e) = app.flush_auth_refusals(true).await {
        tracing::warn!(error = %e, "could not audit the last refused authentications");
    }
    Ok(())
}

/// Every second, one round of the background work (`app/ticker.rs`).
/// The organisation's scheduled sync runs beside it, checked every minute:
/// it may take minutes, and must not hold up alerts or checkpoints. A stop
/// drops it where it is (each step is committed whole).
async fn background(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = crate::app::ticker::Ticker::default();
    let org = app.settings.org.is_some().then(|| {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                match app.scheduled_org_sync().await {
                    Ok(Some(r)) => tracing::info!(
                        accounts = r.accounts,
                        postures = r.postures_read,
                        root_credentials_present = r.root_credentials_present.len(),
                        "synced the AWS organisation"
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        // Audited once per attempt: a quarter of an hour
                        // apart, not every minute, until AWS answers.
                        tracing::warn!(error = %e, "the scheduled organisation sync failed; will retry in 15 minutes");
                        tokio::time::sleep(std::time::Duration::from_secs(14 * 60)).await;
                    }
                }
            }
        })
    });
    // The root watch: the queue's notifications every 10 s, the bucket
    // listed every poll interval.
    let watch = app.settings.root_watch.clone().map(|w| {
        let app = app.clone();
        tokio::spawn(async move {
            let mut listed: Option<std::time::Instant> = None;
            loop {
                let list = listed.is_none_or(|t| t.elapsed() >= w.poll_interval);
                let round = app.scheduled_watch(list).await;
                // Busy elsewhere or failed: the next listing is a poll
                // interval away all the same.
                if list {
                    listed = Some(std::time::Instant::now());
                }
                if let Some(r) = round {
                    if r.files_read + r.files_rejected > 0 {
                        tracing::info!(
                            files = r.files_read,
                            rejected = r.files_rejected,
                            root_events = r.root_events,
                            matched = r.matched,
                            unmatched = r.unmatched,
                            "read CloudTrail"
                        );
                    }
                }
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            }
        })
    });
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => app.tick(&mut ticker).await,
        }
    }
    if let Some(org) = org {
        org.abort();
    }
    if let Some(watch) = watch {
        watch.abort();
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
    // The first start in a data directory that holds the keys (with the
    // database keeping them, the first replica logs that it sealed them).
    let first_start = config.signing_keys == crate::config::SigningKeysAt::DataDir
        && !dir.signing_key_file().exists();
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
    tracing::info!("stopped cleanly");
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
