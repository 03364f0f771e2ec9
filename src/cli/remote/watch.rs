//! The client commands for the root watch: status, run, ack.

use serde_json::{json, Value};

use super::{print_json, seg, view};
use crate::app::watch::{FindingView, WatchReport, WatchView};
use crate::cli::args::WatchCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, kv, table};
use crate::cli::Failure;
use crate::{esay, say};
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &WatchCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        WatchCmd::Status { all } => {
            let path = if *all {
                "/v1/watch?all=true"
            } else {
                "/v1/watch"
            };
            let v: Value = c.get(path).await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let w: WatchView = view(&v)?;
            say!(
                "{}",
                kv(&[
                    ("bucket", w.bucket.cell()),
                    (
                        "files read",
                        format!("{} ({} rejected)", w.files_read, w.files_rejected)
                    ),
                    (
                        "events",
                        format!("{} ({} root activity)", w.events_read, w.root_events)
                    ),
                    ("newest file", w.newest_file_at.cell()),
                    ("open findings", w.open_findings.cell()),
                ])
            );
            if !w.findings.is_empty() {
                say!(
                    "\n{}",
                    table(
                        &[
                            "finding",
                            "account",
                            "what",
                            "first",
                            "events",
                            "acknowledged"
                        ],
                        w.findings
                            .iter()
                            .map(|f| {
                                vec![
                                    f.id.cell(),
                                    f.account_id.cell(),
                                    f.what.cell(),
                                    f.first_at.cell(),
                                    f.events.cell(),
                                    f.acknowledged_by.cell(),
                                ]
                            })
                            .collect(),
                    )
                );
            }
            if !w.rejected_files.is_empty() {
                say!(
                    "\nfiles that were not CloudTrail log files:\n{}",
                    table(
                        &["file", "why"],
                        w.rejected_files
                            .iter()
                            .map(|f| vec![f.key.cell(), f.why.cell()])
                            .collect(),
                    )
                );
            }
        }
        WatchCmd::Run => {
            if !json_out {
                esay!("reading CloudTrail: the queue's notifications, then every log prefix's new files…");
            }
            let v: Value = c.post("/v1/watch/run", &json!({})).await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let r: WatchReport = view(&v)?;
            say!(
                "{}",
                kv(&[
                    ("prefixes listed", r.prefixes.cell()),
                    (
                        "files",
                        format!(
                            "{} read, {} rejected, {} already handled",
                            r.files_read, r.files_rejected, r.files_skipped
                        )
                    ),
                    (
                        "events",
                        format!("{} ({} root activity)", r.events, r.root_events)
                    ),
                    ("matched to a release or session", r.matched.cell()),
                    ("new findings (alerted)", r.unmatched.cell()),
                    ("in findings already open", r.repeated.cell()),
                    ("took", format!("{} ms", r.elapsed_ms)),
                ])
            );
            if r.unmatched > 0 {
                esay!("root activity that no release accounts for: `breakglass watch status` lists it");
            }
        }
        WatchCmd::Ack { finding, reason } => {
            let v: Value = c
                .post(
                    &format!("/v1/watch/findings/{}/acknowledge", seg(finding)),
                    &json!({ "reason": reason }),
                )
                .await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let f: FindingView = view(&v)?;
            say!(
                "finding {} ({} in account {}) acknowledged",
                f.id.cell(),
                f.what.cell(),
                f.account_id.cell()
            );
        }
    }
    Ok(())
}
