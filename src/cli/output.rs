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

/// `println!`, with every character a terminal could act on escaped (line
/// feeds of the layout kept): for everything printed from the server.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::domain::text::escape_lines(&format!($($arg)*)))
    };
}

/// `eprintln!`, escaped like `say!`.
#[macro_export]
macro_rules! esay {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::domain::text::escape_lines(&format!($($arg)*)))
    };
}

/// A JSON value as a table cell; a string from the server is escaped whole
/// (a line feed in it cannot fake a line of the table).
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => crate::domain::text::escape(s).into_owned(),
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

/// Pretty JSON in which every character a terminal could act on is written
/// as a `\uXXXX` escape: the same JSON value, safe to print.
pub fn json_text(v: &Value) -> String {
    use serde::Serialize;
    struct Safe(serde_json::ser::PrettyFormatter<'static>);
    impl serde_json::ser::Formatter for Safe {
        fn write_string_fragment<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            fragment: &str,
        ) -> std::io::Result<()> {
            for c in fragment.chars() {
                if crate::domain::text::must_escape(c) {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        write!(w, "\\u{:04x}", u)?;
                    }
                } else {
                    let mut b = [0u8; 4];
                    w.write_all(c.encode_utf8(&mut b).as_bytes())?;
                }
            }
            Ok(())
        }
        fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            self.0.begin_array(w)
        }
        fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            self.0.end_array(w)
        }
        fn begin_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            self.0.begin_array_value(w, first)
        }
        fn end_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
        ) -> std::io::Result<()> {
            self.0.end_array_value(w)
        }
        fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            self.0.begin_object(w)
        }
        fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            self.0.end_object(w)
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            self.0.begin_object_key(w, first)
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
        ) -> std::io::Result<()> {
            self.0.begin_object_value(w)
        }
        fn end_object_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
        ) -> std::io::Result<()> {
            self.0.end_object_value(w)
        }
    }
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        Safe(serde_json::ser::PrettyFormatter::new()),
    );
    v.serialize(&mut ser)
        .expect("a JSON value always serialises");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_escapes_what_a_terminal_acts_on_and_stays_the_same_value() {
        let v = serde_json::json!({ "reason": "ok\u{1b}[2K\u{202e}x\u{e0041}", "n": [1, 2] });
        let text = json_text(&v);
        assert!(
            !text
                .chars()
                .any(|c| crate::domain::text::must_escape(c) && c != '\n'),
            "{text}"
        );
        assert!(
            text.contains("\\u202e") && text.contains("\\udb40\\udc41"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn a_cell_from_the_server_cannot_drive_the_terminal() {
        let c = cell(&Value::String(
            "aws-prod-root\u{1b}]0;pwned\u{7}\nfake line".into(),
        ));
        assert_eq!(
            c,
            "aws-prod-root\\u{001b}]0;pwned\\u{0007}\\u{000a}fake line"
        );
    }
}
