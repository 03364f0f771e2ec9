//! The client commands for the AWS organisation: sync, accounts, root-session
//! requests.

use serde_json::{json, Value};

use super::{print_json, view};
use crate::app::org::{OrgInventory, SyncReport};
use crate::app::views::RequestView;
use crate::cli::args::OrgCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, kv, table};
use crate::cli::Failure;
use crate::{esay, say};
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &OrgCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        OrgCmd::Sync => {
            if !json_out {
                esay!("syncing the organisation: its accounts, then each member account's root posture (one audit session each)…");
            }
            let v: Value = c.post("/v1/org/sync", &json!({})).await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let r: SyncReport = view(&v)?;
            let on = |b: bool| if b { "on" } else { "OFF" }.to_string();
            say!(
                "{}",
                kv(&[
                    ("organisation", r.organization_id.cell()),
                    ("management account", r.management_account_id.cell()),
                    (
                        "accounts",
                        format!(
                            "{} ({} active members, {} gone)",
                            r.accounts, r.members, r.gone
                        )
                    ),
                    ("trusted access (IAM)", on(r.trusted_access)),
                    (
                        "root credentials management",
                        on(r.root_credentials_management)
                    ),
                    ("root sessions", on(r.root_sessions)),
                    (
                        "postures read",
                        format!("{} in {} ms", r.postures_read, r.elapsed_ms)
                    ),
                ])
            );
            if let Some(why) = &r.posture_skipped {
                say!("no root posture read: {}", why.cell());
            }
            if !r.root_credentials_present.is_empty() {
                say!(
                    "\nmember accounts whose root user holds credentials:\n{}",
                    table(
                        &["account", "name", "root credentials"],
                        r.root_credentials_present
                            .iter()
                            .map(|a| vec![a.account_id.cell(), a.name.cell(), a.posture.describe()])
                            .collect(),
                    )
                );
            }
            if !r.posture_failures.is_empty() {
                say!(
                    "\nposture not read:\n{}",
                    table(
                        &["account", "why"],
                        r.posture_failures
                            .iter()
                            .map(|f| vec![f.account_id.cell(), f.error.cell()])
                            .collect(),
                    )
                );
            }
        }
        OrgCmd::Request {
            account,
            task,
            duration,
            bucket,
            queue_url,
            hand_over,
            reason,
            ticket,
        } => {
            let v: Value = c
                .post(
                    "/v1/org/root-requests",
                    &json!({
                        "account_id": account,
                        "task": task,
                        "duration_secs": duration,
                        "bucket": bucket,
                        "queue_url": queue_url,
                        "hand_over": hand_over,
                        "reason": reason,
                        "ticket": ticket,
                    }),
                )
                .await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let r: RequestView = view(&v)?;
            say!("{}", r.id.cell());
            if let Some(root) = &r.root_session {
                esay!(
                    "root-session request filed: {} in account {} for {} s ({}); it needs {} before {}",
                    root.task.cell(),
                    root.account_id.cell(),
                    root.duration_secs,
                    if root.delivery == "hand_over" { "the session handed to you" } else { "executed by the service" },
                    r.quorum.cell(),
                    r.expires_at.cell()
                );
            }
        }
        OrgCmd::Accounts => {
            let v: Value = c.get("/v1/org/accounts").await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let inv: OrgInventory = view(&v)?;
            let Some(org) = &inv.organization_id else {
                say!("the organisation has not been synced yet: `breakglass org sync`");
                return Ok(());
            };
            say!(
                "organisation {} (management account {}), synced {}",
                org.cell(),
                inv.management_account_id.cell(),
                inv.synced_at.cell()
            );
            say!(
                "{}",
                table(
                    &["account", "name", "status", "root credentials", "read"],
                    inv.accounts
                        .iter()
                        .map(|a| {
                            let root = match (&a.posture, &a.posture_error, a.management) {
                                (_, _, true) if a.in_custody => {
                                    "management account: kept by a credential".to_string()
                                }
                                (_, _, true) => {
                                    "management account: NOT under custody (deposit it)".to_string()
                                }
                                (_, Some(e), _) => format!("unknown: {}", e.cell()),
                                (Some(p), None, _) => p.describe(),
                                (None, None, _) => "not read yet".into(),
                            };
                            vec![
                                a.account_id.cell(),
                                a.name.cell(),
                                a.status.cell(),
                                root,
                                a.posture_read_at.cell(),
                            ]
                        })
                        .collect(),
                )
            );
        }
    }
    Ok(())
}
