//! The client commands for the alert outbox: list, retry.

use serde_json::{json, Value};

use super::{print_json, seg, view};
use crate::app::alerts::AlertView;
use crate::cli::args::AlertsCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, table};
use crate::cli::Failure;
use crate::say;
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &AlertsCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        AlertsCmd::List { state } => {
            let path = match state {
                Some(st) => format!("/v1/alerts?state={}", seg(st)),
                None => "/v1/alerts".into(),
            };
            let v: Value = c.get(&path).await?;
            if json_out {
                print_json(&v)
            } else {
                let list: Vec<AlertView> = view(&v)?;
                say!(
                    "{}",
                    table(
                        &["id", "event", "channel", "state", "attempts", "last error"],
                        list.iter()
                            .map(|a| {
                                vec![
                                    a.id.cell(),
                                    a.seq.cell(),
                                    a.channel.cell(),
                                    a.state.cell(),
                                    a.attempts.cell(),
                                    a.last_error.cell(),
                                ]
                            })
                            .collect(),
                    )
                );
            }
        }
        AlertsCmd::Retry { id } => {
            let v: Value = c
                .post(&format!("/v1/alerts/{}/retry", seg(id)), &json!({}))
                .await?;
            if json_out {
                print_json(&v)
            } else {
                say!("alert {} will be sent again", id.cell());
            }
        }
    }
    Ok(())
}
