//! What the edge refuses before any use case runs: strings with control or
//! bidirectional characters in a path segment, a query parameter or a JSON
//! body, and JSON objects that name a key twice. Each refusal has its own
//! code, changes nothing, and is audited as the caller who sent it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::domain::text;

/// What is wrong with a JSON body that parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An object names `key` twice (at `path`): which one would win is a
    /// parser's choice, so neither does.
    DuplicateKey { path: String },
    /// A refused character; the message names where and which.
    RefusedCharacter { message: String },
}

/// How the strings under one key are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Names, ids, reasons: no control characters at all.
    Text,
    /// A file's content (a policy): tab and line breaks allowed.
    Multiline,
    /// Secret values (a credential's fields, a TOTP code): checked by the
    /// use case, never displayed, never stored in plain text.
    Secret,
}

/// The top-level keys whose strings are not names.
fn mode_of(top_level_key: &str) -> Mode {
    match top_level_key {
        "policy_toml" => Mode::Multiline,
        "code" => Mode::Secret,
        _ => Mode::Text,
    }
}

/// Check a JSON body that the parser accepts: `Ok(None)` if it is clean,
/// `Ok(Some(finding))` if not, `Err` if it is not JSON at all (the typed
/// parse reports that).
pub fn check_json(bytes: &[u8]) -> Result<Option<Finding>, serde_json::Error> {
    let finding = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Check {
        path: String::new(),
        depth: 0,
        mode: Mode::Text,
        secret_values: false,
        finding: &finding,
    };
    match seed.deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => Ok(None),
        Err(_) if finding.borrow().is_some() => Ok(finding.into_inner()),
        Err(e) => Err(e),
    }
}

/// Check one path segment or query value (already percent-decoded).
pub fn check_text(what: &str, value: &str) -> Option<Finding> {
    text::check(what, value, false).map(|message| Finding::RefusedCharacter { message })
}

struct Check<'a> {
    path: String,
    depth: usize,
    mode: Mode,
    /// The values of this object are secrets (a credential's `fields`);
    /// its keys are names and are checked.
    secret_values: bool,
    finding: &'a RefCell<Option<Finding>>,
}

impl Check<'_> {
    fn fail<E: serde::de::Error>(&self, f: Finding) -> E {
        *self.finding.borrow_mut() = Some(f);
        E::custom("refused input")
    }

    fn string<E: serde::de::Error>(&self, v: &str) -> Result<(), E> {
        let multiline = match self.mode {
            Mode::Secret => return Ok(()),
            Mode::Multiline => true,
            Mode::Text => false,
        };
        match text::check(&field(&self.path), v, multiline) {
            Some(message) => Err(self.fail(Finding::RefusedCharacter { message })),
            None => Ok(()),
        }
    }

    fn child(&self, path: String, mode: Mode) -> Check<'_> {
        Check {
            path,
            depth: self.depth + 1,
            mode,
            secret_values: false,
            finding: self.finding,
        }
    }
}

fn field(path: &str) -> String {
    if path.is_empty() {
        "the body".into()
    } else {
        format!("field {path}")
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.string(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(self.child(format!("{}[{i}]", self.path), self.mode))?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            // Keys are names (of fields, of policies): always checked.
            if let Some(message) = text::check(
                &format!("the key of field {}", text::escape(&path)),
                &key,
                false,
            ) {
                return Err(self.fail(Finding::RefusedCharacter { message }));
            }
            if !seen.insert(key.clone()) {
                return Err(self.fail(Finding::DuplicateKey { path }));
            }
            let (mode, secret_values) = if self.secret_values {
                (Mode::Secret, false)
            } else if self.depth == 0 {
                (mode_of(&key), key == "fields")
            } else {
                (self.mode, false)
            };
            let mut child = self.child(path, mode);
            child.secret_values = secret_values;
            map.next_value_seed(child)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(body: &str) -> Option<Finding> {
        check_json(body.as_bytes()).expect("valid JSON")
    }

    #[test]
    fn clean_bodies_pass() {
        assert_eq!(
            finding(r#"{"reason":"prod is down ✓","groups":["sre"]}"#),
            None
        );
        assert_eq!(
            finding(r#"{"policy_toml":"[[policy]]\nname = \"x\"\n\trequire = []"}"#),
            None
        );
        // Secret values may hold anything; they are never shown.
        assert_eq!(
            finding(r#"{"name":"x","fields":{"password":"a\u0000\u001bb"},"code":"12\u00003"}"#),
            None
        );
        assert!(check_json(b"{not json").is_err());
    }

    #[test]
    fn control_characters_are_found_where_they_are() {
        for (body, path) in [
            (r#"{"reason":"a\u0000b"}"#, "field reason"),
            (r#"{"ticket":"INC-1\u001b[2K"}"#, "field ticket"),
            (r#"{"groups":["sre","x\u202e"]}"#, "field groups[1]"),
            (
                r#"{"fields":{"pass\u0000word":"x"}}"#,
                "the key of field fields.pass\\u{0000}word",
            ),
            (r#"{"reason":"two\nlines"}"#, "field reason"),
            (r#"{"policy_toml":"a\u0000"}"#, "field policy_toml"),
        ] {
            match finding(body) {
                Some(Finding::RefusedCharacter { message }) => {
                    assert!(message.starts_with(path), "{message} / {path}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_key_named_twice_is_refused() {
        assert_eq!(
            finding(r#"{"name":"x","fields":{"password":"a","password":"b"}}"#),
            Some(Finding::DuplicateKey {
                path: "fields.password".into()
            })
        );
        assert_eq!(
            finding(r#"{"reason":"a","reason":"b"}"#),
            Some(Finding::DuplicateKey {
                path: "reason".into()
            })
        );
    }
}
