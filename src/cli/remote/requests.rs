//! The client commands for break-glass requests: create, show, list.

use serde_json::{json, Value};

use super::{print_json, seg, view};
use crate::app::views::RequestView;
use crate::cli::args::RequestCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, table};
use crate::cli::Failure;
use crate::{esay, say};
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &RequestCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        RequestCmd::Create {
            credential,
            reason,
            ticket,
        } => {
            let v: Value = c
                .post(
                    "/v1/requests",
                    &json!({ "credential": credential, "reason": reason, "ticket": ticket }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                let r: RequestView = view(&v)?;
                say!("{}", r.id.cell());
                esay!(
                    "request filed; it needs {} before {}",
                    r.quorum.cell(),
                    r.expires_at.cell()
                );
            }
        }
        RequestCmd::Show { id } => {
            let v: Value = c.get(&format!("/v1/requests/{}", seg(id))).await?;
            if json_out {
                print_json(&v)
            } else {
                say!("{}", output::request_summary(&view(&v)?))
            }
        }
        RequestCmd::List { limit } => {
            let v: Value = c.get(&format!("/v1/requests?limit={limit}")).await?;
            if json_out {
                print_json(&v)
            } else {
                let list: Vec<RequestView> = view(&v)?;
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
                        list.iter()
                            .map(|x| vec![
                                x.id.cell(),
                                x.credential.cell(),
                                x.requester.cell(),
                                x.state.cell(),
                                format!("{}/{}", x.approvals, x.approvals_needed),
                                x.created_at.cell()
                            ])
                            .collect(),
                    )
                );
            }
        }
    }
    Ok(())
}

/// How long `approve --webauthn` waits for the decision in the browser: a
/// ceremony's lifetime, and a little more for the page to be opened.
const CONSOLE_WAIT: std::time::Duration = std::time::Duration::from_secs(6 * 60);

/// `approve --webauthn`: the request's console page (printed, and opened
/// unless `no_open`), where the custodian approves with a security key;
/// then the outcome, once the server records the decision.
pub(super) async fn approve_in_console(
    c: &Client,
    id: &str,
    no_open: bool,
    json_out: bool,
) -> Result<(), Failure> {
    let me: crate::app::views::WhoAmI = view(&c.get::<Value>("/v1/whoami").await?)?;
    let Some(console) = me.console_url else {
        return Err(Failure::Input(
            "the server has no console address ([console] public_url), which security keys need: approve with a TOTP code (--code) instead".into(),
        ));
    };
    let path = format!("/v1/requests/{}", seg(id));
    let r: RequestView = view(&c.get::<Value>(&path).await?)?;
    if r.decisions.iter().any(|d| d.custodian == me.subject) {
        return Err(Failure::Input(format!(
            "you have already decided on request {}",
            r.id
        )));
    }
    if r.state != crate::domain::RequestState::Pending {
        return Err(Failure::Input(format!(
            "request {} is {}: there is nothing to approve",
            r.id,
            r.state.as_str()
        )));
    }
    let link = format!("{console}/console/requests/{}", r.id);
    say!("{link}");
    esay!(
        "approve with your security key on that page; waiting for your decision (up to 6 minutes)"
    );
    if !no_open && !open_in_browser(&link) {
        esay!("(no browser could be opened here: open the link yourself)");
    }
    let until = std::time::Instant::now() + CONSOLE_WAIT;
    let mut told = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let v: Value = c.get(&path).await?;
        let r: RequestView = view(&v)?;
        if let Some(d) = r.decisions.iter().find(|d| d.custodian == me.subject) {
            if json_out {
                print_json(&v);
            } else {
                say!(
                    "{} with your {}: {} of {} approvals; request is {}",
                    if d.decision == "approve" {
                        "approved"
                    } else {
                        "denied"
                    },
                    match d.presence {
                        crate::domain::Factor::Webauthn => "security key",
                        crate::domain::Factor::Totp => "TOTP code",
                    },
                    r.approvals,
                    r.approvals_needed,
                    r.state.cell()
                );
            }
            return Ok(());
        }
        if r.state != crate::domain::RequestState::Pending {
            return Err(Failure::Input(format!(
                "request {} became {} before you decided",
                r.id,
                r.state.as_str()
            )));
        }
        let now = std::time::Instant::now();
        if now >= until {
            return Err(Failure::Input(format!(
                "no decision of yours on request {} after {} minutes: run approve --webauthn again",
                r.id,
                CONSOLE_WAIT.as_secs() / 60
            )));
        }
        if now.duration_since(told) >= std::time::Duration::from_secs(30) {
            told = now;
            esay!(
                "still waiting for your decision in the browser ({} s left)",
                until.duration_since(now).as_secs()
            );
        }
    }
}

/// Open `link` with the desktop's browser; whether one started.
fn open_in_browser(link: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
