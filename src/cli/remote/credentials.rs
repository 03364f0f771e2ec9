//! The client commands for credentials: deposit, rotate, rotate keys, list, show.

use super::*;

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
                say!(
                    "deposited {name} v{}; it is no longer marked exposed",
                    cell(&v["current_version"])
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
                say!(
                    "rotation of {name}: {} (old key {}, new key {}); ran: {}",
                    cell(&v["state"]),
                    cell(&v["old_key_id"]),
                    cell(&v["new_key_id"]),
                    v["steps"]
                        .as_array()
                        .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                );
            }
        }
        CredentialCmd::List => {
            let v: Vec<Value> = c.get("/v1/credentials").await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
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
                        v.iter()
                            .map(|x| vec![
                                cell(&x["name"]),
                                cell(&x["account_id"]),
                                cell(&x["policy"]),
                                cell(&x["current_version"]),
                                if x["exposed"] == Value::Bool(true) {
                                    "YES".to_string()
                                } else {
                                    "no".to_string()
                                },
                                cell(&x["last_released_at"])
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
                say!("{}", output::credential_summary(&v))
            }
        }
    }
    Ok(())
}
