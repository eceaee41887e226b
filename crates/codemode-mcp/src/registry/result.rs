//! What a tool call returns to Python: one JSON value, mapped from MCP's
//! `CallToolResult` by the contract in docs/ARCHITECTURE.md ("Result mapping").

use rmcp::model::CallToolResult;
use serde_json::{json, Map, Value};

/// The value a script receives, or the message of the tool's own error.
pub fn map_result(result: &CallToolResult, fastmcp_wrapped: bool) -> Result<Value, String> {
    // Work on the wire form: it is stable across rmcp's content types, which
    // grow with each protocol revision.
    let wire = serde_json::to_value(result).unwrap_or(Value::Null);
    let blocks: Vec<Value> = wire
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();

    if result.is_error == Some(true) {
        return Err(error_message(&blocks, result.structured_content.as_ref()));
    }
    if let Some(structured) = &result.structured_content {
        return Ok(unwrap_fastmcp(structured.clone(), fastmcp_wrapped));
    }
    let mut values: Vec<Value> = blocks.iter().map(map_block).collect();
    Ok(match values.len() {
        0 => Value::Null,
        1 => values.remove(0),
        _ => Value::Array(values),
    })
}

/// FastMCP wraps a primitive return value as `{"result": value}` and marks the
/// output schema; the script wants the value itself.
fn unwrap_fastmcp(value: Value, wrapped: bool) -> Value {
    match value {
        Value::Object(mut map) if wrapped && map.len() == 1 && map.contains_key("result") => {
            map.remove("result").unwrap_or(Value::Null)
        }
        other => other,
    }
}

fn map_block(block: &Value) -> Value {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => {
            let text = block.get("text").and_then(Value::as_str).unwrap_or("");
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        "image" | "audio" => json!({
            "type": kind,
            "mime_type": block.get("mimeType").cloned().unwrap_or(Value::Null),
            "data": block.get("data").cloned().unwrap_or(Value::Null),
        }),
        "resource" => {
            let resource = block.get("resource").cloned().unwrap_or(Value::Null);
            let mut out = Map::new();
            out.insert("type".into(), "resource".into());
            for (from, to) in [
                ("uri", "uri"),
                ("mimeType", "mime_type"),
                ("text", "text"),
                ("blob", "blob"),
            ] {
                if let Some(v) = resource.get(from) {
                    out.insert(to.into(), v.clone());
                }
            }
            Value::Object(out)
        }
        _ => {
            // resource_link and anything newer: keep it whole, in snake_case
            // where it matters to Python readers.
            let mut out = block.as_object().cloned().unwrap_or_default();
            if let Some(mime) = out.remove("mimeType") {
                out.insert("mime_type".into(), mime);
            }
            Value::Object(out)
        }
    }
}

fn error_message(blocks: &[Value], structured: Option<&Value>) -> String {
    let texts: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .filter(|t| !t.trim().is_empty())
        .collect();
    if !texts.is_empty() {
        return texts.join("\n");
    }
    match structured {
        Some(value) => value.to_string(),
        None => "the tool reported an error without a message".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock as Content;

    fn text_result(texts: &[&str]) -> CallToolResult {
        CallToolResult::success(texts.iter().map(|t| Content::text(*t)).collect())
    }

    #[test]
    fn structured_content_wins() {
        let result = CallToolResult::structured(json!({"articles": [1, 2]}));
        assert_eq!(
            map_result(&result, false).unwrap(),
            json!({"articles": [1, 2]})
        );
    }

    #[test]
    fn a_fastmcp_wrapped_result_is_unwrapped_only_when_marked() {
        let result = CallToolResult::structured(json!({"result": 42}));
        assert_eq!(map_result(&result, true).unwrap(), json!(42));
        assert_eq!(map_result(&result, false).unwrap(), json!({"result": 42}));
    }

    #[test]
    fn one_text_block_is_parsed_as_json_when_it_parses() {
        assert_eq!(
            map_result(&text_result(&["{\"a\": 1}"]), false).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            map_result(&text_result(&["hello"]), false).unwrap(),
            json!("hello")
        );
    }

    #[test]
    fn several_blocks_become_a_list() {
        assert_eq!(
            map_result(&text_result(&["1", "two"]), false).unwrap(),
            json!([1, "two"])
        );
    }

    #[test]
    fn no_content_is_none() {
        assert_eq!(map_result(&text_result(&[]), false).unwrap(), Value::Null);
    }

    #[test]
    fn an_image_keeps_its_type_mime_type_and_data() {
        let result = CallToolResult::success(vec![Content::image("aGk=", "image/png")]);
        assert_eq!(
            map_result(&result, false).unwrap(),
            json!({"type": "image", "mime_type": "image/png", "data": "aGk="})
        );
    }

    #[test]
    fn an_error_result_carries_its_text() {
        let result = CallToolResult::error(vec![Content::text("no article with id 7")]);
        assert_eq!(
            map_result(&result, false).unwrap_err(),
            "no article with id 7"
        );
    }
}
