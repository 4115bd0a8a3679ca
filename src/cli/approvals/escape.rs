//! Printing what an agent chose without letting it drive the approver's terminal.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every character that could move the cursor, recolour, retitle or reorder the
/// terminal written as a visible escape instead: C0 controls (ESC, CR, BEL, ...), DEL, C1
/// controls (U+0080–U+009F, e.g. the 8-bit CSI U+009B), bidirectional overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C), zero-width and invisible
/// characters, and line/paragraph separators. A backslash is doubled so an escape in the
/// output cannot be mistaken for one an agent typed.
pub fn escape_for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_invisible_format(c)
}

/// Format characters that change how text is ordered or hide that it is there.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                  // soft hyphen
        | '\u{061C}'                // Arabic letter mark
        | '\u{115F}' | '\u{1160}'   // Hangul fillers
        | '\u{180E}'                // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
        | '\u{2028}' | '\u{2029}'   // line and paragraph separators
        | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}'   // word joiner, invisible operators, bidi isolates
        | '\u{3164}'                // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'   // variation selectors
        | '\u{FEFF}'                // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
        | '\u{E0000}'..='\u{E007F}' // tags
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let name = "web-0.default/pods_ä€日本";
        assert!(matches!(escape_for_terminal(name), Cow::Borrowed(n) if n == name));
    }

    #[test]
    fn escape_sequences_cannot_reach_the_terminal() {
        // Clear screen, move home, retitle the window, then ring the bell.
        let hostile = "x\x1b[2J\x1b[H\x1b]0;pwned\x07y";
        let shown = escape_for_terminal(hostile);
        assert_eq!(shown, "x\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07y");
        assert!(!shown.chars().any(|c| c.is_control()));
    }

    #[test]
    fn carriage_returns_and_newlines_cannot_overwrite_a_line() {
        assert_eq!(
            escape_for_terminal("kube-system\rdefault"),
            "kube-system\\rdefault"
        );
        assert_eq!(escape_for_terminal("a\nb\tc\x7f"), "a\\nb\\tc\\x7f");
    }

    #[test]
    fn c1_controls_are_escaped() {
        // U+009B is an 8-bit CSI on terminals that honour C1; U+0085 is NEL.
        assert_eq!(escape_for_terminal("a\u{9b}31mb\u{85}"), "a\\x9b31mb\\x85");
    }

    #[test]
    fn bidi_overrides_and_invisible_characters_are_shown() {
        // "txt.exe" rendered right-to-left would read "exe.txt".
        assert_eq!(
            escape_for_terminal("cfg\u{202E}lmay.exe"),
            "cfg\\u{202e}lmay.exe"
        );
        assert_eq!(
            escape_for_terminal("a\u{2066}b\u{2069}"),
            "a\\u{2066}b\\u{2069}"
        );
        assert_eq!(escape_for_terminal("de\u{200B}fault"), "de\\u{200b}fault");
        assert_eq!(
            escape_for_terminal("\u{FEFF}x\u{2028}"),
            "\\u{feff}x\\u{2028}"
        );
    }

    #[test]
    fn a_backslash_is_doubled_so_escapes_are_unambiguous() {
        assert_eq!(escape_for_terminal("a\\x1bb"), "a\\\\x1bb");
    }
}
