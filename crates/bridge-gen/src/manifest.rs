//! The manifest: one `# codemode-tool: server.tool FINGERPRINT` comment per
//! tool in the generated module, so `gen-bridge --check` can tell which tools
//! were added, removed or changed since the module was written.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{ManifestDiff, ToolSpec};

pub(crate) const PREFIX: &str = "# codemode-tool: ";

/// JSON with object keys sorted at every level, so the same schema always
/// serializes the same way whatever map type or key order it arrived with.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    push_canonical(&mut out, value);
    out
}

fn push_canonical(out: &mut String, value: &Value) {
    // An explicit stack rather than recursion: fingerprints are taken of
    // schemas nobody has vetted, and a deeply nested one must not overflow.
    enum Step<'a> {
        Value(&'a Value),
        Text(&'static str),
        Key(&'a str),
    }
    let mut stack = vec![Step::Value(value)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Text(t) => out.push_str(t),
            Step::Key(k) => {
                out.push_str(&json_string(k));
                out.push(':');
            }
            Step::Value(Value::Array(items)) => {
                out.push('[');
                stack.push(Step::Text("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push(Step::Value(item));
                    if i > 0 {
                        stack.push(Step::Text(","));
                    }
                }
            }
            Step::Value(Value::Object(map)) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                stack.push(Step::Text("}"));
                for (i, (key, item)) in entries.into_iter().enumerate().rev() {
                    stack.push(Step::Value(item));
                    stack.push(Step::Key(key));
                    if i > 0 {
                        stack.push(Step::Text(","));
                    }
                }
            }
            Step::Value(scalar) => out.push_str(&scalar.to_string()),
        }
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// 64-bit FNV-1a: tiny, dependency-free and stable across platforms and
/// releases, which is all a change detector needs.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The fingerprint of everything about a tool that shapes its generated code.
pub(crate) fn fingerprint(tool: &ToolSpec) -> String {
    let mut text = String::new();
    text.push_str(&json_string(&tool.name));
    text.push('\n');
    text.push_str(
        &tool
            .description
            .as_deref()
            .map(json_string)
            .unwrap_or_default(),
    );
    text.push('\n');
    text.push_str(&canonical_json(&tool.input_schema));
    text.push('\n');
    text.push_str(
        &tool
            .output_schema
            .as_ref()
            .map(canonical_json)
            .unwrap_or_default(),
    );
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

/// The manifest line of one tool. The key is written bare when it is plain
/// (the common case, easy to read in a diff) and as a JSON string when it
/// holds spaces, quotes or anything unusual, so every name survives the
/// round trip.
pub(crate) fn line(server: &str, tool: &str, fingerprint: &str) -> String {
    let key = format!("{server}.{tool}");
    let plain = !key.is_empty()
        && !key.starts_with('"')
        && key
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '\\' && c != '"');
    if plain {
        format!("{PREFIX}{key} {fingerprint}")
    } else {
        // serde_json escapes control characters but leaves other non-ASCII
        // as is; escape everything outside ASCII so the line stays one safe
        // comment line.
        let mut quoted = String::new();
        for c in json_string(&key).chars() {
            if c.is_ascii() && !c.is_ascii_control() {
                quoted.push(c);
            } else {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    quoted.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        format!("{PREFIX}{quoted} {fingerprint}")
    }
}

pub(crate) fn parse(module_text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for raw in module_text.lines() {
        let Some(rest) = raw.strip_prefix(PREFIX) else {
            continue;
        };
        let rest = rest.trim_end();
        let Some((key, fp)) = rest.rsplit_once(' ') else {
            continue;
        };
        if fp.len() != 16 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let key = if key.starts_with('"') {
            match serde_json::from_str::<String>(key) {
                Ok(k) => k,
                Err(_) => continue,
            }
        } else {
            key.to_string()
        };
        out.insert(key, fp.to_ascii_lowercase());
    }
    out
}

pub(crate) fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> ManifestDiff {
    let mut result = ManifestDiff::default();
    for (key, fp) in new {
        match old.get(key) {
            None => result.added.push(key.clone()),
            Some(old_fp) if old_fp != fp => result.changed.push(key.clone()),
            Some(_) => {}
        }
    }
    result.removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, schema: Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: Some("d".into()),
            input_schema: schema,
            output_schema: None,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": {"y": 1, "x": [{"d": 0, "c": 1}]}, "a": "\n"});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"\n","b":{"x":[{"c":1,"d":0}],"y":1}}"#
        );
    }

    #[test]
    fn canonical_json_survives_deep_nesting() {
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(canonical_json(&v).len(), 200_001);
        // Dropping a deeply nested Value recurses in serde_json; leak it.
        std::mem::forget(v);
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn fingerprints_ignore_key_order_but_see_every_change() {
        let a = tool(
            "t",
            json!({"type": "object", "properties": {"x": {}, "y": {}}}),
        );
        let b = tool(
            "t",
            json!({"properties": {"y": {}, "x": {}}, "type": "object"}),
        );
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let mut c = a.clone();
        c.description = Some("other".into());
        assert_ne!(fingerprint(&a), fingerprint(&c));
        let mut d = a.clone();
        d.output_schema = Some(json!({}));
        assert_ne!(fingerprint(&a), fingerprint(&d));
    }

    #[test]
    fn plain_keys_are_written_bare() {
        assert_eq!(
            line("news_api", "fetch_latest", "0123456789abcdef"),
            "# codemode-tool: news_api.fetch_latest 0123456789abcdef"
        );
    }

    #[test]
    fn odd_keys_round_trip_through_a_json_string() {
        let names = ["a b", "x\ny", "quote\"s", "ünï", "\u{0}", "", "\"", "#"];
        for server in names {
            for tool in names {
                let text = format!("x = 1\n{}\n", line(server, tool, "00000000000000ff"));
                assert!(text.lines().count() == 2, "{text:?}");
                let parsed = parse(&text);
                assert_eq!(
                    parsed.get(&format!("{server}.{tool}")).map(String::as_str),
                    Some("00000000000000ff"),
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn parse_ignores_lines_that_only_look_similar() {
        let text = "    # codemode-tool: a.b 0123456789abcdef\n# codemode-tool: a.b nothex\n";
        assert!(parse(text).is_empty());
    }

    #[test]
    fn diff_reports_added_removed_and_changed_sorted() {
        let old: BTreeMap<String, String> = [("a.x", "1"), ("a.y", "2"), ("b.z", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let new: BTreeMap<String, String> = [("a.y", "9"), ("b.z", "3"), ("c.new", "4")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let d = diff(&old, &new);
        assert_eq!(d.added, ["c.new"]);
        assert_eq!(d.removed, ["a.x"]);
        assert_eq!(d.changed, ["a.y"]);
    }
}
