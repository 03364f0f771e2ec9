//! Text that people type and other people read: which characters are
//! refused, and how text from elsewhere is made safe to print.
//!
//! Refused in every id, name, reason, ticket and other string that names or
//! explains something: control characters (C0 including NUL, DEL, C1),
//! the bidirectional formatting characters (U+061C, U+200E, U+200F,
//! U+202A–U+202E, U+2066–U+2069; the "Trojan Source" set) and the Unicode
//! line and paragraph separators. They can rewrite what a terminal or a page
//! shows (an escape sequence in a reason can repaint the credential name a
//! custodian approves), reorder it, or break a store (PostgreSQL refuses
//! NUL in text).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is refused in text (`multiline`: tab, line feed and carriage
/// return are allowed, as in a policy file).
pub fn is_refused(c: char, multiline: bool) -> bool {
    match c {
        '\t' | '\n' | '\r' => !multiline,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{61c}' | '\u{200e}' | '\u{200f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

/// The first refused character of `s`: its position (in characters, from
/// 0) and the character.
pub fn first_refused(s: &str, multiline: bool) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|(_, c)| is_refused(*c, multiline))
}

/// A refused character as people read it, e.g. `U+0000 (NUL)` or `U+202E
/// (RIGHT-TO-LEFT OVERRIDE)`.
pub fn describe(c: char) -> String {
    let name = match c {
        '\u{0}' => "NUL",
        '\t' => "TAB",
        '\n' => "LINE FEED",
        '\r' => "CARRIAGE RETURN",
        '\u{1b}' => "ESCAPE",
        '\u{7f}' => "DELETE",
        '\u{80}'..='\u{9f}' => "C1 CONTROL",
        '\u{0}'..='\u{1f}' => "C0 CONTROL",
        '\u{61c}' => "ARABIC LETTER MARK",
        '\u{200e}' => "LEFT-TO-RIGHT MARK",
        '\u{200f}' => "RIGHT-TO-LEFT MARK",
        '\u{202a}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202b}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202c}' => "POP DIRECTIONAL FORMATTING",
        '\u{202d}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202e}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        _ => "character",
    };
    format!("U+{:04X} ({name})", c as u32)
}

/// Why `what` is refused, or `None` if it holds no refused character.
pub fn check(what: &str, s: &str, multiline: bool) -> Option<String> {
    first_refused(s, multiline).map(|(at, c)| {
        format!(
            "{what} contains {} at character {}: control, bidirectional-override and line-separator characters are not accepted",
            describe(c),
            at + 1
        )
    })
}

/// `s` with every refused character (line breaks included) and every other
/// non-printing character written as `\u{XXXX}`, so that text from the
/// server or the audit log cannot drive the terminal it is printed on.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(must_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if must_escape(c) {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `escape`, but for text that is laid out in lines on purpose (a table, a
/// summary): line feeds are kept, everything else is escaped. Strings from
/// elsewhere are escaped whole (line feeds included) before they are put
/// into such text.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && must_escape(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.split('\n').map(escape).collect::<Vec<_>>().join("\n"))
}

/// Refused characters, plus the other invisible formatting characters a
/// terminal may act on (zero-width, soft hyphen, byte order mark,
/// interlinear annotation, tag characters).
pub fn must_escape(c: char) -> bool {
    is_refused(c, false)
        || matches!(c,
            '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2065}' | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_refused_and_named() {
        for c in [
            '\u{0}', '\u{1b}', '\u{7}', '\u{7f}', '\u{85}', '\u{9b}', '\u{202a}', '\u{202e}',
            '\u{2066}', '\u{2069}', '\u{200f}', '\u{2028}', '\n',
        ] {
            let s = format!("ok{c}ok");
            assert_eq!(first_refused(&s, false), Some((2, c)), "{c:?}");
            assert!(check("reason", &s, false)
                .unwrap()
                .contains("at character 3"));
        }
        assert_eq!(first_refused("line\nnext\tcol\r\n", true), None);
        assert!(first_refused("a\u{0}b", true).is_some());
        for fine in ["prod is down", "Ünïcödé ✓ 日本", "INC-42", "a-b_c.d"] {
            assert_eq!(first_refused(fine, false), None, "{fine}");
        }
        assert_eq!(describe('\u{0}'), "U+0000 (NUL)");
        assert_eq!(describe('\u{202e}'), "U+202E (RIGHT-TO-LEFT OVERRIDE)");
    }

    #[test]
    fn escaping_leaves_nothing_a_terminal_acts_on() {
        let hostile = "aws-prod-root\u{1b}[2K\r\u{1b}[1Aaws-dev\u{202e}txt.exe\u{200b}";
        let safe = escape(hostile);
        assert!(
            !safe.chars().any(|c| c.is_control() || must_escape(c)),
            "{safe}"
        );
        assert_eq!(
            safe,
            "aws-prod-root\\u{001b}[2K\\u{000d}\\u{001b}[1Aaws-dev\\u{202e}txt.exe\\u{200b}"
        );
        assert!(matches!(escape("plain ✓"), Cow::Borrowed(_)));
    }
}
