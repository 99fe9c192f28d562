//! Untrusted text → text that is safe and honest to draw.
//!
//! Everything that comes from a log (types, streams, keys, string values,
//! reducer messages) passes through [`sanitize`] before it reaches a cell.
//! A log can hold bytes aimed at the terminal (an OSC 52 clipboard write, a
//! title change, a screen clear) or at the reader (a right-to-left override
//! that makes `invoice_<RLO>gpj.exe` read as `invoice_exe.jpg`, a zero-width
//! space inside an e-mail address). ratatui already drops control
//! characters, but silently: the reader would not know they were there. So
//! each such character is replaced by a visible escape instead:
//!
//! - C0 controls and DEL in caret notation: ESC → `^[`, BEL → `^G`,
//!   CR → `^M`, LF → `^J`, DEL → `^?`;
//! - tabs expanded to spaces (to the next multiple of [`TAB_WIDTH`]);
//! - C1 controls, bidi controls, zero-width and other invisible format
//!   characters, and the line/paragraph separators as `<U+XXXX>`.

use crate::value::PVal;
use std::borrow::Cow;

/// Columns between tab stops.
pub const TAB_WIDTH: usize = 4;

/// True for characters drawn as `<U+XXXX>`: invisible or direction-changing
/// characters that would make the text on screen differ from the data.
fn needs_codepoint_escape(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'            // C1 controls (CSI U+009B, OSC U+009D, NEL U+0085...)
        | '\u{ad}'                     // soft hyphen
        | '\u{34f}'                    // combining grapheme joiner
        | '\u{61c}'                    // arabic letter mark
        | '\u{115f}' | '\u{1160}'      // hangul fillers (render blank)
        | '\u{180e}'                   // mongolian vowel separator
        | '\u{200b}'..='\u{200f}'      // ZWSP, ZWNJ, ZWJ, LRM, RLM
        | '\u{2028}' | '\u{2029}'      // line and paragraph separators
        | '\u{202a}'..='\u{202e}'      // LRE RLE PDF LRO RLO
        | '\u{2060}'..='\u{2064}'      // word joiner, invisible operators
        | '\u{2066}'..='\u{206f}'      // LRI RLI FSI PDI and deprecated format chars
        | '\u{3164}' | '\u{ffa0}'      // hangul fillers
        | '\u{feff}'                   // BOM / zero-width no-break space
        | '\u{fff9}'..='\u{fffb}'      // interlinear annotation
        | '\u{e0000}'..='\u{e007f}' // tag characters (invisible "ASCII smuggling")
    )
}

/// True when `s` can be drawn as it is.
fn is_clean(s: &str) -> bool {
    s.chars().all(|c| !c.is_control() && !needs_codepoint_escape(c))
}

/// Make untrusted text safe to draw (see the module comment).
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if is_clean(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_sanitized(&mut out, s, usize::MAX);
    Cow::Owned(out)
}

/// Sanitize at most about `max_chars` characters of `s`, ending with `…`
/// when it was cut (a 20k-character string need not be escaped in full to
/// fill one line).
pub fn sanitize_max(s: &str, max_chars: usize) -> Cow<'_, str> {
    if s.len() <= max_chars && is_clean(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max_chars * 4) + 8);
    if !push_sanitized(&mut out, s, max_chars) {
        out.push('…');
    }
    Cow::Owned(out)
}

/// Append the sanitized form of `s` to `out`, stopping after about `max`
/// characters; returns false when it stopped early.
fn push_sanitized(out: &mut String, s: &str, max: usize) -> bool {
    let mut col = 0usize;
    for c in s.chars() {
        if col >= max {
            return false;
        }
        match c {
            '\t' => {
                let n = TAB_WIDTH - col % TAB_WIDTH;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            '\0'..='\u{1f}' => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
                col += 2;
            }
            '\u{7f}' => {
                out.push_str("^?");
                col += 2;
            }
            c if needs_codepoint_escape(c) || c.is_control() => {
                let esc = format!("<U+{:04X}>", c as u32);
                col += esc.len();
                out.push_str(&esc);
            }
            c => {
                out.push(c);
                col += 1;
            }
        }
    }
    true
}

/// Compact JSON for display: like `to_json`, but string contents are
/// sanitized rather than JSON-escaped (so an escape looks the same in a
/// value as in a key or a type: `^[`, `<U+202E>`), and the writing stops
/// after about `max_chars` characters, so showing the first line of a huge
/// value does not print all of it.
pub fn json_text(v: &PVal, max_chars: usize) -> String {
    let mut out = String::new();
    if !write_json(&mut out, v, max_chars) {
        out.push('…');
    }
    out
}

/// Returns false when it stopped early.
fn write_json(out: &mut String, v: &PVal, max: usize) -> bool {
    if out.len() >= max {
        return false;
    }
    match v {
        PVal::Str(s) => {
            out.push('"');
            let room = max.saturating_sub(out.len());
            let done = push_sanitized(out, s, room);
            out.push('"');
            done
        }
        PVal::Arr(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_json(out, x, max) {
                    return false;
                }
            }
            out.push(']');
            true
        }
        PVal::Obj(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                let room = max.saturating_sub(out.len());
                if !push_sanitized(out, k, room) {
                    return false;
                }
                out.push_str("\":");
                if !write_json(out, x, max) {
                    return false;
                }
            }
            out.push('}');
            true
        }
        scalar => {
            out.push_str(&scalar.to_json());
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(sanitize("Zoë García 東京 🚀"), Cow::Borrowed(_)));
    }

    #[test]
    fn terminal_sequences_are_visible() {
        assert_eq!(
            sanitize("copy \u{1b}]52;c;aGVsbG8=\u{7} please"),
            "copy ^[]52;c;aGVsbG8=^G please"
        );
        assert_eq!(sanitize("\u{1b}[2J\u{1b}[H"), "^[[2J^[[H");
        assert_eq!(sanitize("a\r\nb\u{7f}\u{8}\0"), "a^M^Jb^?^H^@");
        assert_eq!(sanitize("\u{9b}31m \u{85}"), "<U+009B>31m <U+0085>");
    }

    #[test]
    fn invisible_and_bidi_are_escaped() {
        assert_eq!(sanitize("invoice_\u{202e}gpj.exe"), "invoice_<U+202E>gpj.exe");
        assert_eq!(sanitize("admin\u{200b}@x"), "admin<U+200B>@x");
        assert_eq!(sanitize("\u{2066}abc\u{2069}"), "<U+2066>abc<U+2069>");
        assert_eq!(sanitize("one\u{2028}two\u{2029}"), "one<U+2028>two<U+2029>");
        assert_eq!(sanitize("\u{feff}BOM"), "<U+FEFF>BOM");
        assert_eq!(sanitize("x\u{e0041}"), "x<U+E0041>");
    }

    #[test]
    fn tabs_expand_to_stops() {
        assert_eq!(sanitize("a\tb"), "a   b");
        assert_eq!(sanitize("abcd\te"), "abcd    e");
    }

    #[test]
    fn no_output_char_is_control_or_invisible() {
        let nasty: String = (0u32..0x3000)
            .chain(0xe0000..0xe0080)
            .filter_map(char::from_u32)
            .collect();
        let out = sanitize(&nasty);
        assert!(out.chars().all(|c| !c.is_control() && !needs_codepoint_escape(c)));
    }

    #[test]
    fn json_text_sanitizes_and_stops() {
        let v = PVal::from_json(r#"{"a\u001b":"x\u001b]52;y","b":[1,2.5,null,true]}"#).expect("json");
        assert_eq!(json_text(&v, 100), r#"{"a^[":"x^[]52;y","b":[1,2.5,null,true]}"#);
        let big = PVal::arr((0..100_000).map(PVal::Int));
        assert!(json_text(&big, 50).len() < 70);
    }

    #[test]
    fn long_text_is_cut() {
        let long = "\u{1b}".repeat(10_000);
        let out = sanitize_max(&long, 10);
        assert!(out.len() < 20 && out.ends_with('…'), "{out}");
        assert_eq!(sanitize_max("short", 10), "short");
    }
}
