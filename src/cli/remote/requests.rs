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
