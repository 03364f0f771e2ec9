//! The client commands for the alert outbox: list, retry.

use super::*;

pub(super) async fn run(c: &Client, cmd: &AlertsCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        AlertsCmd::List { state } => {
            let path = match state {
                Some(st) => format!("/v1/alerts?state={}", seg(st)),
                None => "/v1/alerts".into(),
            };
            let v: Vec<Value> = c.get(&path).await?;
            if json_out {
                print_json(&Value::Array(v))
            } else {
                say!(
                    "{}",
                    table(
                        &["id", "event", "channel", "state", "attempts", "last error"],
                        v.iter()
                            .map(|a| {
                                vec![
                                    cell(&a["id"]),
                                    a["seq"].to_string(),
                                    cell(&a["channel"]),
                                    cell(&a["state"]),
                                    a["attempts"].to_string(),
                                    cell(&a["last_error"]),
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
                say!("alert {} will be sent again", cell(&v["id"]));
            }
        }
    }
    Ok(())
}
