//! The client commands for policies and policy changes.

use serde_json::{json, Value};

use super::{code_or_prompt, policy_check, print_change, print_json, seg, view};
use crate::app::views::{PolicyChangeView, PolicyView};
use crate::cli::args::PolicyCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, table};
use crate::cli::Failure;
use crate::say;
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &PolicyCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        PolicyCmd::Propose { file, reason } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::Input(format!("cannot read {}: {e}", file.display())))?;
            let v: Value = c
                .post(
                    "/v1/policy-changes",
                    &json!({ "policy_toml": text, "reason": reason }),
                )
                .await?;
            print_change(&v, json_out)?;
        }
        PolicyCmd::Move {
            credential,
            to_policy,
            reason,
        } => {
            let v: Value = c
                .post(
                    "/v1/policy-changes",
                    &json!({ "credential": credential, "to_policy": to_policy, "reason": reason }),
                )
                .await?;
            print_change(&v, json_out)?;
        }
        PolicyCmd::Changes => {
            let v: Value = c.get("/v1/policy-changes").await?;
            if json_out {
                print_json(&v)
            } else {
                let list: Vec<PolicyChangeView> = view(&v)?;
                say!(
                    "{}",
                    table(
                        &["id", "policy", "state", "changes", "approvals", "proposer"],
                        list.iter()
                            .map(|x| {
                                vec![
                                    x.id.cell(),
                                    x.policy.cell(),
                                    x.state.cell(),
                                    x.changes
                                        .iter()
                                        .map(|c| c.cell())
                                        .collect::<Vec<_>>()
                                        .join("; "),
                                    x.approvals.cell(),
                                    x.proposer.cell(),
                                ]
                            })
                            .collect(),
                    )
                );
            }
        }
        PolicyCmd::Approve { id, code } => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/policy-changes/{}/approve", seg(id)),
                    &json!({ "code": code.as_str() }),
                )
                .await?;
            print_change(&v, json_out)?;
        }
        PolicyCmd::Deny { id, reason, code } => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/policy-changes/{}/deny", seg(id)),
                    &json!({ "code": code.as_str(), "reason": reason }),
                )
                .await?;
            print_change(&v, json_out)?;
        }
        PolicyCmd::Check { dir } => policy_check(c, dir.as_deref(), json_out).await?,
        PolicyCmd::List => {
            let v: Value = c.get("/v1/policies").await?;
            if json_out {
                print_json(&v)
            } else {
                let list: Vec<PolicyView> = view(&v)?;
                for p in &list {
                    say!("{}", p.satisfiability.explanation.cell());
                }
            }
        }
    }
    Ok(())
}
