//! The `breakglass` command: the server (`serve`, `migrate`, `token issue`)
//! and a client for every user action, speaking to the server over HTTP.
//!
//! `args.rs` is the argument tree; `host.rs` the commands that run on the
//! server's host; `remote/` the client commands, one module per resource (`client.rs` speaks HTTP,
//! `output.rs` prints). This file dispatches; each module names its own
//! imports.

use std::process::ExitCode;

use clap::Parser;

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
