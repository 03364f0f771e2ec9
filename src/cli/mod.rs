//! The `breakglass` command: the server (`serve`, `migrate`, `token issue`)
//! and a client for every user action, speaking to the server over HTTP.
//!
//! `args.rs` is the argument tree; `host.rs` the commands that run on the
//! server's host; `remote/` the client commands, one module per resource (`client.rs` speaks HTTP,
//! `output.rs` prints). This file dispatches; each module names its own
//! imports.

use std::process::ExitCode;

mod args;
mod client;
mod host;
mod login;
mod output;
mod remote;

use args::*;
use client::{CallError, Client};
use host::*;
use remote::*;

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
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let server_given =
        matches.value_source("server") != Some(clap::parser::ValueSource::DefaultValue);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let cli = Cli {
        server_given,
        ..cli
    };
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
        Command::Healthcheck { live, timeout } => {
            // No token: the probes are open, and a container's probe must
            // not depend on a login file.
            let server = match cli.server_given {
                true => cli.server.clone(),
                false => match probe_url(
                    std::env::var("BREAKGLASS_LISTEN").ok().as_deref(),
                    std::env::var_os("BREAKGLASS_TLS_CERT").is_some(),
                ) {
                    Ok(url) => url,
                    Err(m) => {
                        eprintln!("error: {m}");
                        return ExitCode::from(1);
                    }
                },
            };
            let client = Client::new(&server, None);
            healthcheck(&client, live, timeout, cli.json).await
        }
        Command::Keys(KeysCmd::CreateLocal { out }) => {
            return local(create_local_key(&out, cli.json));
        }
        Command::Token(TokenCmd::Issue {
            base,
            subject,
            roles,
            ttl,
            link,
        }) => {
            return local(match link {
                true => issue_link(base, &subject, &roles).await,
                false => issue_token(base, &subject, &roles, ttl.into()).await,
            })
        }
        Command::Audit(AuditCmd::Archive {
            base,
            through,
            out,
            prune,
        }) => return local(archive(base, through, &out, prune, cli.json).await),
        Command::Login {
            ref issuer,
            ref client_id,
            ref client_secret_file,
        } => {
            return local(
                login::login(login::LoginArgs {
                    issuer,
                    client_id,
                    client_secret_file: client_secret_file.as_deref(),
                })
                .await,
            )
        }
        ref cmd => {
            let token = match cli.token.clone() {
                Some(t) => Some(t),
                None => match login::stored_token() {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: the token kept by `breakglass login`: {e:#}");
                        return ExitCode::from(1);
                    }
                },
            };
            let client = Client::new(&cli.server, token);
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

/// Where `healthcheck` probes when no server is named: the port the server
/// listens on (`BREAKGLASS_LISTEN`, as the image sets it), on loopback;
/// plain HTTP only.
fn probe_url(listen: Option<&str>, tls: bool) -> Result<String, String> {
    if tls {
        // Its certificate names the service, not loopback: the probe must
        // verify it as any client does.
        return Err("the server serves HTTPS: name it with --server https://NAME:PORT (BREAKGLASS_SERVER), a name its certificate holds".into());
    }
    let Some(listen) = listen else {
        return Ok("http://127.0.0.1:8200".into());
    };
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        format!("BREAKGLASS_LISTEN={listen:?} is not an address and port; name the server with --server")
    })?;
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    Ok(format!("http://{host}:{}", addr.port()))
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

#[cfg(test)]
mod tests {
    use super::probe_url;

    #[test]
    fn the_healthcheck_probes_the_listening_port_on_loopback() {
        assert_eq!(probe_url(None, false).unwrap(), "http://127.0.0.1:8200");
        assert_eq!(
            probe_url(Some("0.0.0.0:8300"), false).unwrap(),
            "http://127.0.0.1:8300"
        );
        assert_eq!(
            probe_url(Some("[::]:8200"), false).unwrap(),
            "http://[::1]:8200"
        );
        assert_eq!(
            probe_url(Some("10.0.0.5:8200"), false).unwrap(),
            "http://10.0.0.5:8200"
        );
        let e = probe_url(Some("localhost"), false).unwrap_err();
        assert!(e.contains("--server"), "{e}");
        let e = probe_url(Some("0.0.0.0:8200"), true).unwrap_err();
        assert!(e.contains("https://"), "{e}");
    }
}
