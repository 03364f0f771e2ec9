//! The client commands for custodians: add, list, enrol, confirm.

use serde_json::{json, Value};

use super::{code_or_prompt, print_json, qr, seg, view};
use crate::app::views::{CustodianView, EnrollmentView};
use crate::cli::args::CustodianCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, table};
use crate::cli::Failure;
use crate::say;
use output::Cell;
use secrecy::ExposeSecret;

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
            let v: Value = c.get("/v1/custodians").await?;
            if json_out {
                print_json(&v)
            } else {
                let list: Vec<CustodianView> = view(&v)?;
                say!(
                    "{}",
                    table(
                        &["custodian", "groups", "status", "locked until", "enrolled"],
                        list.iter()
                            .map(|x| vec![
                                x.name.cell(),
                                x.groups.cell(),
                                x.status.cell(),
                                x.locked_until.cell(),
                                x.enrolled_at.cell()
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
            if json_out {
                print_json(&v)
            } else {
                let enrolment: EnrollmentView = view(&v)?;
                let uri = enrolment.otpauth_uri.expose_secret();
                if let Some(q) = qr(uri) {
                    say!("{q}");
                }
                say!("Scan the QR code with your authenticator app, or add this URI (shown only now):\n\n  {uri}\n");
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
