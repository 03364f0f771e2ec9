//! The client commands for recovery sessions: open, show, submit a share, release.

use serde_json::{json, Value};

use super::{code_or_prompt, open_share, print_json, print_release, print_session, seg, view};
use crate::app::views::RecoverySessionView;
use crate::cli::args::RecoveryCmd;
use crate::cli::client::Client;
use crate::cli::output;
use crate::cli::Failure;
use crate::say;
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &RecoveryCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        RecoveryCmd::Open { request } => {
            let v: Value = c
                .post(
                    &format!("/v1/requests/{}/recovery", seg(request)),
                    &json!({}),
                )
                .await?;
            print_session(&v, json_out)?;
            if !json_out {
                let session: RecoverySessionView = view(&v)?;
                say!(
                    "Each share holder runs: breakglass recovery submit {} THEIR.share.age --identity THEIR-KEY",
                    session.id.cell()
                );
            }
        }
        RecoveryCmd::Show { session } => {
            let v: Value = c
                .get(&format!("/v1/recovery/sessions/{}", seg(session)))
                .await?;
            print_session(&v, json_out)?;
        }
        RecoveryCmd::Submit {
            session,
            file,
            identity,
            code,
        } => {
            let share = open_share(file, identity)?;
            let s: Value = c
                .get(&format!("/v1/recovery/sessions/{}", seg(session)))
                .await?;
            let s: RecoverySessionView = view(&s)?;
            let sealed = crate::app::recovery::session::seal_share(&s.recipient, &share)
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
                let now: RecoverySessionView = view(&v)?;
                say!(
                    "share {} submitted: {} of {} shares; {} more needed",
                    share.index,
                    now.submitted.len(),
                    now.threshold,
                    now.needed
                );
            }
        }
        RecoveryCmd::Release { session } => {
            let v: Value = c
                .post(
                    &format!("/v1/recovery/sessions/{}/release", seg(session)),
                    &json!({}),
                )
                .await?;
            print_release(&v, json_out, "released once with the recovery key")?;
        }
    }
    Ok(())
}
