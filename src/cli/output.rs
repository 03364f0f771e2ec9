//! Human output: tables and one-line summaries. `--json` prints the
//! server's JSON instead.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::Value;

pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(headers.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// A JSON value as a table cell.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

pub fn kv(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn request_summary(r: &Value) -> String {
    let mut out = kv(&[
        ("request", cell(&r["id"])),
        ("credential", cell(&r["credential"])),
        ("requester", cell(&r["requester"])),
        ("reason", cell(&r["reason"])),
        ("ticket", cell(&r["ticket"])),
        ("state", cell(&r["state"])),
        (
            "quorum",
            format!(
                "{} ({} of {} approvals)",
                cell(&r["quorum"]),
                r["approvals"],
                r["approvals_needed"]
            ),
        ),
        ("expires", cell(&r["expires_at"])),
        ("release by", cell(&r["release_deadline"])),
        ("released", cell(&r["released_at"])),
    ]);
    if let Some(ds) = r["decisions"].as_array().filter(|d| !d.is_empty()) {
        out.push('\n');
        out.push_str(&table(
            &["custodian", "decision", "reason", "at"],
            ds.iter()
                .map(|d| {
                    vec![
                        cell(&d["custodian"]),
                        cell(&d["decision"]),
                        cell(&d["reason"]),
                        cell(&d["at"]),
                    ]
                })
                .collect(),
        ));
    }
    out
}

pub fn credential_summary(c: &Value) -> String {
    let mut out = kv(&[
        ("credential", cell(&c["name"])),
        ("account", cell(&c["account_id"])),
        ("policy", cell(&c["policy"])),
        ("version", cell(&c["current_version"])),
        (
            "exposed",
            if c["exposed"] == Value::Bool(true) {
                format!("YES since {} — rotate it", cell(&c["exposed_at"]))
            } else {
                "no".into()
            },
        ),
        ("last release", cell(&c["last_released_at"])),
    ]);
    if let Some(vs) = c["versions"].as_array() {
        out.push('\n');
        out.push_str(&table(
            &["version", "fields", "key", "store", "created", "by"],
            vs.iter()
                .map(|v| {
                    vec![
                        cell(&v["version"]),
                        cell(&v["field_names"]),
                        cell(&v["key_id"]),
                        cell(&v["secret_store"]),
                        cell(&v["created_at"]),
                        cell(&v["created_by"]),
                    ]
                })
                .collect(),
        ));
    }
    out
}
