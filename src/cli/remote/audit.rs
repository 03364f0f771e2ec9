//! The client commands for the audit log: list, verify, export, the SIEM sink, checkpoints.

use std::io::IsTerminal;

use serde_json::{json, Value};

use super::{print_json, seg, verdict_line, verify_export, view};
use crate::app::audit_ship::SinkStatus;
use crate::cli::args::AuditCmd;
use crate::cli::client::Client;
use crate::cli::output::{self, table};
use crate::cli::Failure;
use crate::crypto::chain::{AuditEvent, Checkpoint, Verdict};
use crate::say;
use output::Cell;

pub(super) async fn run(c: &Client, cmd: &AuditCmd, json_out: bool) -> Result<(), Failure> {
    match cmd {
        AuditCmd::List {
            after,
            limit,
            since,
            until,
            actor,
            action,
            outcome,
            credential,
        } => {
            let mut path = format!("/v1/audit/events?after={after}&limit={limit}");
            for (k, v) in [
                ("since", since),
                ("until", until),
                ("actor", actor),
                ("action", action),
                ("outcome", outcome),
                ("credential", credential),
            ] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", seg(v)));
                }
            }
            let v: Value = c.get(&path).await?;
            if json_out {
                print_json(&v)
            } else {
                print_events(&view::<Vec<AuditEvent>>(&v)?);
            }
        }
        AuditCmd::Verify {
            file: Some(file),
            public_key,
        } => verify_export(file, public_key.as_deref(), json_out)?,
        AuditCmd::Verify { file: None, .. } => {
            let v: Value = c.post("/v1/audit/verify", &json!({})).await?;
            let verdict: Verdict = view(&v)?;
            if json_out {
                print_json(&v);
            } else {
                say!("{}", verdict_line(&verdict));
            }
            if !verdict.ok {
                return Err(Failure::Input("the audit chain does not verify".into()));
            }
        }
        AuditCmd::Export {
            format,
            after,
            since,
            out,
        } => {
            let mut path = format!("/v1/audit/export?format={}", seg(format));
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            if let Some(t) = since {
                path.push_str(&format!("&since={}", seg(t)));
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .map_err(|e| Failure::Input(format!("cannot create {}: {e}", out.display())))?;
            let tty = std::io::stderr().is_terminal();
            let mut lines = 0u64;
            let mut last = std::time::Instant::now();
            let bytes = c
                .download(&path, |chunk| {
                    use std::io::Write;
                    lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                    if tty && last.elapsed() > std::time::Duration::from_millis(500) {
                        eprint!("\r{lines} records…");
                        last = std::time::Instant::now();
                    }
                    f.write_all(chunk)
                })
                .await?;
            if tty {
                eprint!("\r");
            }
            f.sync_all()
                .map_err(|e| Failure::Input(format!("cannot write {}: {e}", out.display())))?;
            if json_out {
                print_json(&json!({ "file": out, "records": lines, "bytes": bytes }));
            } else {
                say!(
                    "exported {lines} records ({bytes} bytes) to {}",
                    out.display()
                );
            }
        }
        AuditCmd::Sink => {
            let v: Value = c.get("/v1/audit/sink").await?;
            if json_out {
                print_json(&v)
            } else {
                print_sink(&view(&v)?);
            }
        }
        AuditCmd::Checkpoint => {
            let v: Value = c.post("/v1/audit/checkpoints", &json!({})).await?;
            if json_out {
                print_json(&v)
            } else {
                let cp: Checkpoint = view(&v)?;
                say!(
                    "checkpoint signed: event {} with hash {}, key {}",
                    cp.seq,
                    cp.hash.cell(),
                    cp.kid.cell()
                );
            }
        }
        AuditCmd::Archive { .. } => unreachable!("handled locally"),
    }
    Ok(())
}

fn print_events(events: &[AuditEvent]) {
    say!(
        "{}",
        table(
            &["seq", "time", "actor", "action", "target", "outcome", "code"],
            events
                .iter()
                .map(|e| {
                    vec![
                        e.seq.cell(),
                        crate::clock::rfc3339(e.ts_ms),
                        e.actor.cell(),
                        e.action.cell(),
                        e.target.cell(),
                        e.outcome.cell(),
                        e.code.cell(),
                    ]
                })
                .collect(),
        )
    );
}

fn print_sink(s: &SinkStatus) {
    if !s.configured {
        say!("no audit sink is configured ([audit.sink] in the configuration file)");
        return;
    }
    say!(
        "sink {} ({}): delivered through event {} of {}; backlog {}; last delivery {}",
        s.endpoint.cell(),
        s.format.cell(),
        s.events_through,
        s.head_seq,
        s.backlog,
        s.delivered_at.cell()
    );
    if s.attempts > 0 {
        say!(
            "failing: {} attempts, last error: {}; next attempt {}",
            s.attempts,
            s.last_error.cell(),
            s.next_attempt_at.cell()
        );
    }
}
