//! The client commands for credentials: deposit, rotate, rotate keys, list, show.

use serde_json::{json, Value};

use super::{collect_fields, print_json, secret_body, seg, view};
use crate::app::rotation::RotationView;
use crate::app::views::CredentialView;
use crate::cli::args::CredentialCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, table};
use crate::cli::Failure;
use crate::say;
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &CredentialCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        CredentialCmd::Deposit {
            name,
            account,
            policy,
            fields,
            from_file,
            code_only,
            access_key_id,
            drill,
        } => {
            let f = collect_fields(fields, from_file)?;
            let body = json!({ "name": name, "account_id": account, "policy": policy,
                           "code_only": code_only, "access_key_id": access_key_id, "drill": drill });
            let body = secret_body(body.as_object().cloned().unwrap_or_default(), &f)?;
            let v: Value = c.post_secret("/v1/credentials", body).await?;
            if json_out {
                print_json(&v)
            } else {
                say!(
                    "deposited {name} v1 ({} fields) under policy {policy}",
                    f.len()
                );
            }
        }
        CredentialCmd::Rotate {
            name,
            fields,
            from_file,
            code_only,
            access_key_id,
        } => {
            let f = collect_fields(fields, from_file)?;
            let body = json!({ "code_only": code_only, "access_key_id": access_key_id });
            let body = secret_body(body.as_object().cloned().unwrap_or_default(), &f)?;
            let v: Value = c
                .post_secret(&format!("/v1/credentials/{}/versions", seg(name)), body)
                .await?;
            if json_out {
                print_json(&v)
            } else {
                let cred: CredentialView = view(&v)?;
                say!(
                    "deposited {name} v{}; it is no longer marked exposed",
                    cred.current_version
                )
            }
        }
        CredentialCmd::RotateKeys { name, steps } => {
            let v: Value = c
                .post(
                    &format!("/v1/credentials/{}/rotate-keys", seg(name)),
                    &json!({ "max_steps": steps }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                let r: RotationView = view(&v)?;
                say!(
                    "rotation of {name}: {} (old key {}, new key {}); ran: {}",
                    r.state.cell(),
                    r.old_key_id.cell(),
                    r.new_key_id.cell(),
                    r.steps.cell()
                );
            }
        }
        CredentialCmd::List => {
            let v: Value = c.get("/v1/credentials").await?;
            if json_out {
                print_json(&v)
            } else {
                let list: Vec<CredentialView> = view(&v)?;
                say!(
                    "{}",
                    table(
                        &[
                            "credential",
                            "account",
                            "policy",
                            "version",
                            "exposed",
                            "last release"
                        ],
                        list.iter()
                            .map(|x| vec![
                                x.name.cell(),
                                x.account_id.cell(),
                                x.policy.cell(),
                                x.current_version.cell(),
                                if x.exposed { "YES" } else { "no" }.to_string(),
                                x.last_released_at.cell()
                            ])
                            .collect(),
                    )
                );
            }
        }
        CredentialCmd::Show { name } => {
            let v: Value = c.get(&format!("/v1/credentials/{}", seg(name))).await?;
            if json_out {
                print_json(&v)
            } else {
                say!("{}", output::credential_summary(&view(&v)?))
            }
        }
    }
    Ok(())
}
