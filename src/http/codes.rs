//! The code table written for people, from [`Code`]: the OpenAPI
//! document's `ErrorDetail.code` enum and description, and the README's
//! table (a test keeps the README in step).

use crate::domain::Code;

/// Every code, as the API writes it.
pub fn names() -> Vec<&'static str> {
    Code::all().map(Code::as_str).collect()
}

/// `400/422`: the statuses a code is answered with, in order.
fn statuses(code: Code) -> String {
    let mut s = code.statuses().to_vec();
    s.sort_unstable();
    s.iter().map(u16::to_string).collect::<Vec<_>>().join("/")
}

/// A list of every code with its statuses and meaning (the OpenAPI
/// description of `ErrorDetail.code`).
pub fn described() -> String {
    Code::all()
        .map(|c| format!("- `{c}`: {}: {}\n", statuses(c), c.meaning()))
        .collect()
}

/// The README's table of codes.
pub fn readme_table() -> String {
    let mut t = String::from("| code | status | meaning |\n| --- | --- | --- |\n");
    for c in Code::all() {
        let meaning = c.meaning().replace('|', "\\|");
        t.push_str(&format!("| `{c}` | {} | {meaning} |\n", statuses(c)));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- The table of codes is generated from src/domain/code.rs. -->\n";
    const END: &str = "<!-- End of the table of codes. -->\n";

    /// The README's table is the one generated from the enum; run with
    /// `BREAKGLASS_WRITE_README=1` to write it after changing a code.
    #[test]
    fn the_readme_lists_every_code_with_its_status_and_meaning() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let start = readme
            .find(BEGIN)
            .expect("the README marks its table of codes")
            + BEGIN.len();
        let end = start + readme[start..].find(END).expect("the table of codes ends");
        let table = readme_table();
        if std::env::var_os("BREAKGLASS_WRITE_README").is_some() {
            std::fs::write(
                &path,
                format!("{}{table}{}", &readme[..start], &readme[end..]),
            )
            .unwrap();
            return;
        }
        assert!(
            readme[start..end] == table,
            "the README's table of codes is out of date: run this test with BREAKGLASS_WRITE_README=1"
        );
    }

    /// Each code is answered somewhere in the source, and each is named
    /// once.
    #[test]
    fn every_code_is_used_and_named_once() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut text = String::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("domain/code.rs")
                {
                    text.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let unused: Vec<_> = Code::all()
            .filter(|c| !text.contains(&format!("Code::{c:?}")))
            .collect();
        assert!(unused.is_empty(), "codes no longer used: {unused:?}");
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::all() {
            assert!(seen.insert(c.as_str()), "{c} is named twice");
            assert_eq!(c.as_str().parse::<Code>().ok(), Some(c));
            assert!(!c.statuses().is_empty() && !c.meaning().is_empty());
        }
    }
}
