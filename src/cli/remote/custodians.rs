//! The client commands for custodians: add, list, enrol, confirm.

use super::*;

pub(super) async fn run(c: &Client, cmd: &CustodianCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        CustodianCmd::Add { name, groups } => {
            let v: Value = c
                .post("/v1/custodians", &json!({ "name": name, "groups": groups }))
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!("custodian {name} added to {}; next, they run `breakglass custodian enroll {name}` with their own token", groups.join(", "));
            }
        }
        CustodianCmd::List => {
            let v: Vec<Value> = c.get("/v1/custodians").await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &["custodian", "groups", "status", "locked until", "enrolled"],
                        v.iter()
                            .map(|x| vec![
                                cell(&x["name"]),
                                cell(&x["groups"]),
                                cell(&x["status"]),
                                cell(&x["locked_until"]),
                                cell(&x["enrolled_at"])
                            ])
                            .collect(),
                    )
                );
            }
        }
        CustodianCmd::Enroll { name } => {
            let v: Value = c
                .post(&format!("/v1/custodians/{}/enroll", seg(name)), &json!({}))
                .await?;
            let uri = Zeroizing::new(v["otpauth_uri"].as_str().unwrap_or_default().to_string());
            if json_out {
                print_json(&v)
            } else {
                if let Some(q) = qr(&uri) {
                    say!("{q}");
                }
                say!("Scan the QR code with your authenticator app, or add this URI (shown only now):\n\n  {}\n", uri.as_str());
                say!("Then confirm with the code it shows:  breakglass custodian confirm {name} --code CODE");
            }
        }
        CustodianCmd::Confirm { name, code } => {
            let code = code_or_prompt(code)?;
            let v: Value = c
                .post(
                    &format!("/v1/custodians/{}/confirm", seg(name)),
                    &json!({ "code": code.as_str() }),
                )
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!("custodian {name} is enrolled and can approve requests")
            }
        }
    }
    Ok(())
}
