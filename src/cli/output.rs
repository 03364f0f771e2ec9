//! Human output: tables and one-line summaries, from the API's own view
//! types. `--json` prints the server's JSON instead.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use serde_json::Value;

use crate::app::views::{CredentialView, RequestView};

/// The widest a table is drawn on a terminal: long cells wrap inside their
/// column.
pub const TABLE_WIDTH: u16 = 100;

/// A table for standard output: at most `TABLE_WIDTH` columns on a
/// terminal; piped, its lines are not wrapped, so a search through the
/// output never misses a value split across two lines.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    use std::io::IsTerminal;
    let width = std::io::stdout().is_terminal().then_some(TABLE_WIDTH);
    table_within(headers, rows, width)
}

/// A table at most `width` columns wide (`None`: as wide as its cells).
pub fn table_within(headers: &[&str], rows: Vec<Vec<String>>, width: Option<u16>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    if let Some(w) = width {
        t.set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(w);
    }
    t.set_header(headers.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// A value from the server as a table cell or summary field: a string is
/// escaped whole (a line feed in it cannot fake a line of the table),
/// nothing is `-`, a list is joined.
pub trait Cell {
    fn cell(&self) -> String;
}

impl Cell for str {
    fn cell(&self) -> String {
        crate::domain::text::escape(self).into_owned()
    }
}

impl Cell for String {
    fn cell(&self) -> String {
        self.as_str().cell()
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        match self {
            Some(v) => v.cell(),
            None => "-".into(),
        }
    }
}

impl<T: Cell> Cell for [T] {
    fn cell(&self) -> String {
        self.iter().map(Cell::cell).collect::<Vec<_>>().join(", ")
    }
}

impl<T: Cell> Cell for Vec<T> {
    fn cell(&self) -> String {
        self.as_slice().cell()
    }
}

macro_rules! number_cells {
    ($($t:ty),*) => {
        $(impl Cell for $t {
            fn cell(&self) -> String {
                self.to_string()
            }
        })*
    };
}

number_cells!(i64, u64, u32, u8, usize, bool);

impl Cell for crate::domain::Role {
    fn cell(&self) -> String {
        self.as_str().into()
    }
}

impl Cell for crate::domain::RequestState {
    fn cell(&self) -> String {
        self.as_str().into()
    }
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

pub fn kv(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn request_summary(r: &RequestView) -> String {
    let mut out = kv(&[
        ("request", r.id.cell()),
        ("credential", r.credential.cell()),
        ("requester", r.requester.cell()),
        ("reason", r.reason.cell()),
        ("ticket", r.ticket.cell()),
        ("state", r.state.cell()),
        (
            "quorum",
            format!(
                "{} ({} of {} approvals)",
                r.quorum.cell(),
                r.approvals,
                r.approvals_needed
            ),
        ),
        ("expires", r.expires_at.cell()),
        ("release by", r.release_deadline.cell()),
        ("released", r.released_at.cell()),
    ]);
    if !r.decisions.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &["custodian", "decision", "reason", "at"],
            r.decisions
                .iter()
                .map(|d| {
                    vec![
                        d.custodian.cell(),
                        d.decision.cell(),
                        d.reason.cell(),
                        d.at.cell(),
                    ]
                })
                .collect(),
        ));
    }
    out
}

pub fn credential_summary(c: &CredentialView) -> String {
    let mut out = kv(&[
        ("credential", c.name.cell()),
        ("account", c.account_id.cell()),
        ("policy", c.policy.cell()),
        ("version", c.current_version.cell()),
        (
            "exposed",
            if c.exposed {
                format!("YES since {} — rotate it", c.exposed_at.cell())
            } else {
                "no".into()
            },
        ),
        ("last release", c.last_released_at.cell()),
    ]);
    out.push('\n');
    out.push_str(&table(
        &["version", "fields", "key", "store", "created", "by"],
        c.versions
            .iter()
            .map(|v| {
                vec![
                    v.version.cell(),
                    v.field_names.cell(),
                    v.key_id.cell(),
                    v.secret_store.cell(),
                    v.created_at.cell(),
                    v.created_by.cell(),
                ]
            })
            .collect(),
    ));
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
        let c = "aws-prod-root\u{1b}]0;pwned\u{7}\nfake line".cell();
        assert_eq!(
            c,
            "aws-prod-root\\u{001b}]0;pwned\\u{0007}\\u{000a}fake line"
        );
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn a_table_fits_the_width_whatever_its_cells_hold() {
        let long = "x".repeat(300);
        let words = "a reason of many words that goes on and on ".repeat(6);
        let rows = vec![
            vec![
                long.clone(),
                "aws-prod-root".into(),
                words.clone(),
                "pending".into(),
            ],
            vec!["short".into(), long.clone(), words, "released".into()],
        ];
        let headers = ["request", "credential", "reason", "state"];
        let t = table_within(&headers, rows.clone(), Some(TABLE_WIDTH));
        for line in t.lines() {
            assert!(
                line.chars().count() <= TABLE_WIDTH as usize,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(t.contains("pending") && t.contains("released"), "{t}");
        // Unbounded (piped), a value is never split across lines.
        let piped = table_within(&headers, rows, None);
        assert!(piped.lines().any(|l| l.contains(&long)), "{piped}");
    }

    #[test]
    fn cells_of_the_typed_views() {
        assert_eq!(None::<String>.cell(), "-");
        assert_eq!(
            vec!["sre".to_string(), "security".into()].cell(),
            "sre, security"
        );
        assert_eq!(Some(3i64).cell(), "3");
        assert_eq!(
            crate::domain::RequestState::ReleaseWindowClosed.cell(),
            "release_window_closed"
        );
    }
}
