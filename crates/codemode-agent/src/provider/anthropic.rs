//! Anthropic's Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version`; the system prompt is a top-level field, not a message.

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::{usage, Client, Completion, LlmError, Message};

/// The API version the request and reply shapes here follow.
const VERSION: &str = "2023-06-01";

pub async fn complete(
    client: &Client,
    system: &str,
    messages: &[Message],
) -> Result<Completion, LlmError> {
    let url = format!("{}/v1/messages", client.base);
    let wire: Vec<Value> = messages
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let body = json!({
        "model": client.model,
        "system": system,
        "messages": wire,
        "max_tokens": client.max_tokens,
        // The Messages API takes 0 to 1.
        "temperature": client.temperature.clamp(0.0, 1.0),
    });
    let mut headers = HeaderMap::new();
    // No key means a loopback server (Client::new allows nothing else).
    if let Some(key) = &client.key {
        let mut key = HeaderValue::from_str(key).map_err(|_| {
            LlmError::Failed(format!(
                "{} holds characters a header cannot",
                client.key_var
            ))
        })?;
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
    }
    headers.insert("anthropic-version", HeaderValue::from_static(VERSION));
    let reply = client.post(&url, headers, &body).await?;
    let blocks = reply
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            LlmError::Failed(format!(
                "{url}: the reply has no content: {}",
                super::snippet(&reply.to_string())
            ))
        })?;
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("");
    Ok(Completion {
        text,
        input_tokens: usage(&reply, "input_tokens"),
        output_tokens: usage(&reply, "output_tokens"),
    })
}
