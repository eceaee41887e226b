//! Text → Python source that cannot break the module: string literals,
//! docstring bodies, one-line comments, and JSON values as Python expressions.

use std::fmt::Write as _;

use serde_json::Value;

/// Characters that must not appear raw in the source: control characters
/// (a NUL makes the file uncompilable, a form feed or CR confuses the
/// tokenizer), line separators other tools treat as newlines, and the
/// invisible and bidi-override characters that make source read differently
/// from how it runs.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{FFFE}'
                | '\u{FFFF}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

fn push_escape(out: &mut String, c: char) {
    let code = c as u32;
    let _ = match code {
        0..=0xFF => write!(out, "\\x{code:02x}"),
        0x100..=0xFFFF => write!(out, "\\u{code:04x}"),
        _ => write!(out, "\\U{code:08x}"),
    };
}

/// A double-quoted Python string literal with exactly `s`'s value.
pub(crate) fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The body of a `"""…"""` docstring whose value is `text`, line breaks kept
/// as real line breaks (the caller indents the lines).
///
/// Backslashes are doubled, so nothing in the text can start an escape or a
/// line continuation; a quote is escaped only where it could close the
/// docstring (next to another quote, or at either end), which keeps ordinary
/// prose readable in the source.
pub(crate) fn docstring_body(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => {
                let next_is_quote = chars.get(i + 1) == Some(&'"');
                let at_edge = i == 0 || i + 1 == chars.len();
                if next_is_quote || at_edge {
                    out.push_str("\\\"");
                } else {
                    out.push('"');
                }
            }
            '\n' => out.push('\n'),
            c if is_unsafe(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// Text safe to put after `# ` on one line: unsafe characters and line
/// breaks become spaces.
pub(crate) fn comment(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if is_unsafe(c) { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A JSON value as the equivalent Python expression (`true` → `True`,
/// objects with sorted keys so the output does not depend on map order).
pub(crate) fn value(v: &Value) -> String {
    let mut out = String::new();
    push_value(&mut out, v, 0);
    out
}

fn push_value(out: &mut String, v: &Value, depth: usize) {
    // Defaults are documentation; a pathologically deep one is elided rather
    // than recursed into.
    if depth > 32 {
        out.push_str("...");
        return;
    }
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&string(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_value(out, item, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&string(key));
                out.push_str(": ");
                push_value(out, item, depth + 1);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_literals_escape_quotes_backslashes_and_controls() {
        assert_eq!(string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(string("x\ny\r\tz\0"), r#""x\ny\r\tz\x00""#);
    }

    #[test]
    fn string_literals_keep_printable_unicode_and_escape_invisible_characters() {
        assert_eq!(string("café ✓"), "\"café ✓\"");
        assert_eq!(string("a\u{2028}b\u{202E}"), r#""a\u2028b\u202e""#);
        assert_eq!(string("\u{E0041}"), r#""\U000e0041""#);
    }

    #[test]
    fn docstring_bodies_cannot_close_the_docstring() {
        assert_eq!(docstring_body(r#"say """hi""""#), r#"say \"\""hi\"\"\""#);
        assert!(!docstring_body("x\"\"\"y").contains("\"\"\""));
    }

    #[test]
    fn docstring_bodies_double_backslashes_and_escape_nul() {
        assert_eq!(docstring_body("C:\\path\\\0"), "C:\\\\path\\\\\\x00");
    }

    #[test]
    fn docstring_bodies_keep_lone_quotes_readable() {
        assert_eq!(docstring_body(r#"the "best" one"#), r#"the "best" one"#);
    }

    #[test]
    fn docstring_bodies_escape_quotes_at_either_end() {
        assert_eq!(docstring_body(r#""quoted""#), r#"\"quoted\""#);
    }

    #[test]
    fn comments_are_one_line() {
        assert_eq!(comment("a\nb\r\n  c\u{2028}d\0"), "a b c d");
    }

    #[test]
    fn json_values_render_as_python_with_sorted_keys() {
        let v = json!({"b": [true, null, 1.5], "a": "x"});
        assert_eq!(value(&v), r#"{"a": "x", "b": [True, None, 1.5]}"#);
    }
}
