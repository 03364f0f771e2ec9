//! The client commands for break-glass requests: create, show, list.

use super::*;

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
                say!("{}", cell(&v["id"]));
                esay!(
                    "request filed; it needs {} before {}",
                    cell(&v["quorum"]),
                    cell(&v["expires_at"])
                );
            }
        }
        RequestCmd::Show { id } => {
            let v: Value = c.get(&format!("/v1/requests/{}", seg(id))).await?;
            if json_out {
                print_json(&v)
            } else {
                say!("{}", output::request_summary(&v))
            }
        }
        RequestCmd::List { limit } => {
            let v: Vec<Value> = c.get(&format!("/v1/requests?limit={limit}")).await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
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
                        v.iter()
                            .map(|x| vec![
                                cell(&x["id"]),
                                cell(&x["credential"]),
                                cell(&x["requester"]),
                                cell(&x["state"]),
                                format!("{}/{}", x["approvals"], x["approvals_needed"]),
                                cell(&x["created_at"])
                            ])
                            .collect(),
                    )
                );
            }
        }
    }
    Ok(())
}
