//! `breakglass login`: sign in through the organisation's OIDC provider
//! with the authorization code flow, PKCE and a loopback redirect (RFC 8252),
//! and keep the ID token in an owner-only file that the other commands read
//! when no `--token` or `BREAKGLASS_TOKEN` is given.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use zeroize::Zeroizing;

/// How long the command waits for the browser to come back.
const WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the token is kept: `$BREAKGLASS_TOKEN_FILE`, else
/// `$XDG_CONFIG_HOME/breakglass/token`, else `~/.config/breakglass/token`.
pub fn token_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BREAKGLASS_TOKEN_FILE") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("breakglass").join("token"))
}

/// The token `login` kept, if there is one and it is the user's own,
/// readable by nobody else.
pub fn stored_token() -> anyhow::Result<Option<String>> {
    let Some(path) = token_file() else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    crate::crypto::private_file::check_private(&path)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("while reading {}", path.display()))?;
    let t = text.trim();
    Ok((!t.is_empty()).then(|| t.to_owned()))
}

fn random() -> String {
    URL_SAFE_NO_PAD.encode(crate::crypto::random_bytes::<32>())
}

/// Write `token` to `path`, owner-only from its creation.
fn keep(path: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("while creating {}", tmp.display()))?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}

pub struct LoginArgs<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret_file: Option<&'a Path>,
}

/// Sign in and keep the token.
pub async fn login(a: LoginArgs<'_>) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let discovery = crate::oidc::discover(&http, a.issuer)
        .await
        .with_context(|| format!("the provider {}", a.issuer))?;
    let endpoints = crate::oidc::endpoints_in(&discovery)
        .context("the provider names no authorization or token endpoint")?;
    let secret = match a.client_secret_file {
        Some(p) => Some(crate::config::read_secret_file(p, "client secret")?),
        None => None,
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let redirect_uri = format!("http://{}/callback", listener.local_addr()?);
    let (state, verifier, nonce) = (random(), Zeroizing::new(random()), random());
    let url = crate::oidc::authorize_url(&crate::oidc::Authorize {
        endpoint: &endpoints.authorization,
        client_id: a.client_id,
        redirect_uri: &redirect_uri,
        state: &state,
        nonce: &nonce,
        verifier: &verifier,
    })
    .context("the provider's authorization endpoint is not a URL")?;
    println!("Open this address in your browser to sign in:\n\n  {url}\n");
    eprintln!(
        "waiting for the provider to send you back to {redirect_uri} (up to {} s)…",
        WAIT.as_secs()
    );

    let code = Zeroizing::new(wait_for_code(listener, &state).await?);
    let res = crate::oidc::redeem_code(
        &http,
        &endpoints.token,
        &crate::oidc::CodeGrant {
            code: &code,
            redirect_uri: &redirect_uri,
            client_id: a.client_id,
            client_secret: secret.as_ref().map(|s| &s[..]),
            verifier: &verifier,
        },
    )
    .await
    .context("the provider's token endpoint cannot be reached")?;
    let status = res.status();
    let v: Value = res.json().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "the provider refused the code ({status}: {}): run `breakglass login` again",
        v["error"].as_str().unwrap_or("no reason given")
    );
    let id_token = Zeroizing::new(
        v["id_token"]
            .as_str()
            .context("the provider answered no id_token")?
            .to_owned(),
    );
    // The server verifies the signature; here the nonce binds the token to
    // this sign-in.
    let claims = payload(&id_token).context("the provider's id_token is malformed")?;
    anyhow::ensure!(
        claims["nonce"].as_str() == Some(nonce.as_str()),
        "the provider's id_token is not for this sign-in (its nonce differs)"
    );
    let path = token_file().context("no place for the token: set BREAKGLASS_TOKEN_FILE or HOME")?;
    keep(&path, &id_token)?;
    let exp = claims["exp"].as_i64().unwrap_or(0);
    eprintln!(
        "signed in as {}; the token is kept in {} (owner-only) until {}",
        claims["sub"].as_str().unwrap_or("?"),
        path.display(),
        crate::clock::rfc3339(exp * 1000)
    );
    Ok(())
}

/// The payload of a JWT, read without checking its signature.
fn payload(token: &str) -> Option<Value> {
    let p = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?).ok()
}

/// Serve the loopback redirect until the provider sends the browser back
/// with this sign-in's state; its code.
async fn wait_for_code(listener: tokio::net::TcpListener, state: &str) -> anyhow::Result<String> {
    use axum::extract::Query;
    use std::collections::HashMap;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<String, String>>(1);
    let expected = state.to_owned();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
            let tx = tx.clone();
            let expected = expected.clone();
            async move {
                let outcome = match (q.get("state"), q.get("code"), q.get("error")) {
                    (_, _, Some(e)) => Err(format!("the provider refused the sign-in: {e}")),
                    (Some(s), Some(c), None) if *s == expected => Ok(c.clone()),
                    (Some(_), Some(_), None) => {
                        // Not this sign-in's return: ignore it, keep waiting.
                        return axum::response::Html(
                            "<!doctype html><p>This is not the sign-in breakglass is waiting for.</p>",
                        );
                    }
                    _ => Err("the provider's return carries no code".to_owned()),
                };
                let _ = tx.send(outcome).await;
                axum::response::Html(
                    "<!doctype html><p>breakglass: you may close this tab and go back to the terminal.</p>",
                )
            }
        }),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let got = tokio::time::timeout(WAIT, rx.recv()).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    match got {
        Err(_) => anyhow::bail!(
            "no sign-in came back within {} s: run `breakglass login` again",
            WAIT.as_secs()
        ),
        Ok(None) => anyhow::bail!("the loopback listener stopped"),
        Ok(Some(Err(e))) => anyhow::bail!("{e}"),
        Ok(Some(Ok(code))) => Ok(code),
    }
}
