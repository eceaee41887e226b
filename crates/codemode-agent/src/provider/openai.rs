//! Any OpenAI-compatible chat completions API: `POST {base}/chat/completions`
//! with a bearer key. OpenAI itself, and the local servers that copy its
//! shape (Ollama at http://localhost:11434/v1, vLLM, llama.cpp, LM Studio).

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};

use super::{usage, Client, Completion, LlmError, Message};

pub async fn complete(
    client: &Client,
    system: &str,
    messages: &[Message],
) -> Result<Completion, LlmError> {
    let url = format!("{}/chat/completions", client.base);
    let mut wire = vec![json!({"role": "system", "content": system})];
    wire.extend(
        messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
    );
    // No max_tokens: OpenAI's newer models refuse it (they want
    // max_completion_tokens) while compatible servers often ignore that one.
    let body = json!({
        "model": client.model,
        "messages": wire,
        "temperature": client.temperature,
    });
    let mut headers = HeaderMap::new();
    // No key means a loopback server (Client::new allows nothing else): an
    // empty `Bearer ` would be rejected by servers started with a key.
    if let Some(key) = &client.key {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            LlmError::Failed(format!(
                "{} holds characters a header cannot",
                client.key_var
            ))
        })?;
        bearer.set_sensitive(true);
        headers.insert(AUTHORIZATION, bearer);
    }
    let reply = client.post(&url, headers, &body).await?;
    let text = reply
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            LlmError::Failed(format!(
                "{url}: the reply has no choices[0].message.content: {}",
                super::snippet(&reply.to_string())
            ))
        })?;
    Ok(Completion {
        text: text.to_string(),
        input_tokens: usage(&reply, "prompt_tokens"),
        output_tokens: usage(&reply, "completion_tokens"),
    })
}
