//! Text a client chose (a certificate's names, its reverse DNS name) made safe for one log line,
//! one row of tool output or one terminal line.
//!
//! PostgreSQL's own rule for such text (`pg_clean_ascii`, used for `application_name` and the
//! startup packet's options) is that no control character passes through: 16 and later print
//! a byte outside printable ASCII as `\xNN`. Here ASCII control characters become `\xNN` the
//! same way; the Unicode characters that move or hide text on a terminal or in a log viewer
//! (other control characters, the bidirectional overrides and isolates, line and paragraph
//! separators) become `\u{NNNN}`; `"` and `\` get a backslash, so a quoted name cannot end its
//! quotes early. Everything else, letters of any script included, is kept: a login named
//! `Иван` stays readable.

/// Whether `c` is shown escaped.
fn hides_text(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200e}' | '\u{200f}'            // left-to-right and right-to-left marks
            | '\u{2028}' | '\u{2029}'          // line and paragraph separators
            | '\u{202a}'..='\u{202e}'          // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}'          // bidirectional isolates
            | '\u{feff}'                       // zero-width no-break space (BOM)
        )
}

/// `text` with every character that could forge or hide a line escaped (see the module).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hides_text(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_never_pass_through() {
        assert_eq!(
            printable("x\nLOG:  forged\r\x1b[2J\x07\x7f"),
            "x\\x0aLOG:  forged\\x0d\\x1b[2J\\x07\\x7f"
        );
        assert_eq!(
            printable("\u{85}a\u{202e}b\u{2028}"),
            "\\u{0085}a\\u{202e}b\\u{2028}"
        );
        for c in (0u32..0x20).chain([0x7f]).filter_map(char::from_u32) {
            assert!(
                !printable(&c.to_string()).chars().any(|o| o.is_control()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn quotes_and_backslashes_are_escaped_letters_kept() {
        assert_eq!(printable("Иван \"x\"\\"), "Иван \\\"x\\\"\\\\");
        assert_eq!(printable("db01.example.com"), "db01.example.com");
    }
}
