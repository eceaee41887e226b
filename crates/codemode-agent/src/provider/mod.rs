//! The LLM providers `ask` talks to: any OpenAI-compatible chat completions
//! API (OpenAI, Ollama, vLLM, …) and Anthropic's Messages API. Both are plain
//! JSON over HTTPS; what they share (the retry policy, error classes, key
//! handling) lives here, what differs (request and reply shapes) in their files.

mod anthropic;
mod openai;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;

use codemode_config::LlmConfig;

/// Attempts after the first on 429, 5xx and timeouts.
const RETRIES: u32 = 4;
/// The longest wait between attempts, whatever Retry-After says: past this
/// a user is better served by an error than by a silent hang.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// One reply, with the token counts the API reported (absent when it did not).
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("unknown LLM provider `{provider}` in `{model}`: use openai/MODEL (any OpenAI-compatible API, e.g. Ollama) or anthropic/MODEL")]
    UnknownProvider { provider: String, model: String },
    #[error("{var} is not set: `{model}` at {base} needs an API key (a server on localhost or a loopback address needs none)")]
    MissingKey {
        var: &'static str,
        model: String,
        base: String,
    },
    #[error("model `{model}` not found at {url}: {message}")]
    UnknownModel {
        model: String,
        url: String,
        message: String,
    },
    #[error("{url} rejected the API key from {var} (HTTP {status}): {message}")]
    Auth {
        url: String,
        var: &'static str,
        status: u16,
        message: String,
    },
    /// A 401/403 when no key was sent: the loopback server wants one after all.
    #[error("{url} wants an API key (HTTP {status}): set {var}: {message}")]
    KeyRequired {
        url: String,
        var: &'static str,
        status: u16,
        message: String,
    },
    #[error("the conversation no longer fits `{model}`'s context window: {message}")]
    ContextTooLong { model: String, message: String },
    #[error("LLM provider failed: {0}")]
    Failed(String),
}

impl LlmError {
    /// Errors the user fixes in their setup rather than by retrying.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            LlmError::UnknownProvider { .. }
                | LlmError::MissingKey { .. }
                | LlmError::UnknownModel { .. }
                | LlmError::Auth { .. }
                | LlmError::KeyRequired { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OpenAi,
    Anthropic,
}

/// A configured provider: where to send requests, with which key and model.
pub struct Client {
    kind: Kind,
    /// As the user named it: `openai/gpt-4o-mini`.
    spec: String,
    model: String,
    base: String,
    /// None only for a loopback server: then no key header is sent at all.
    key: Option<String>,
    key_var: &'static str,
    temperature: f64,
    max_tokens: u32,
    http: reqwest::Client,
    quiet: bool,
}

impl Client {
    /// Resolves `provider/model`, the base URL and the key. Fails before any
    /// request when the provider is unknown or its key is missing.
    pub fn new(
        spec: &str,
        llm: &LlmConfig,
        temperature: f64,
        quiet: bool,
    ) -> Result<Client, LlmError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Client::with_env(spec, llm, temperature, quiet, &env)
    }

    fn with_env(
        spec: &str,
        llm: &LlmConfig,
        temperature: f64,
        quiet: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Client, LlmError> {
        let (provider, model) = spec.split_once('/').unwrap_or(("", spec));
        let unknown = || LlmError::UnknownProvider {
            provider: provider.to_string(),
            model: spec.to_string(),
        };
        if model.is_empty() {
            return Err(unknown());
        }
        let (kind, key_var, base_var, default_base) = match provider {
            "openai" => (
                Kind::OpenAi,
                "OPENAI_API_KEY",
                "OPENAI_BASE_URL",
                "https://api.openai.com/v1",
            ),
            "anthropic" => (
                Kind::Anthropic,
                "ANTHROPIC_API_KEY",
                "ANTHROPIC_BASE_URL",
                "https://api.anthropic.com",
            ),
            _ => return Err(unknown()),
        };
        let base = env(base_var)
            .or_else(|| llm.api_base.clone())
            .unwrap_or_else(|| default_base.to_string())
            .trim_end_matches('/')
            .to_string();
        // Ollama, llama.cpp and vLLM on this machine take no key, and a key
        // sent over loopback reaches no one else; anywhere else a missing key
        // is a mistake worth stopping for before any request.
        let key = env(key_var);
        if key.is_none() && !is_loopback(&base) {
            return Err(LlmError::MissingKey {
                var: key_var,
                model: spec.to_string(),
                base: hide_password(&base),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(llm.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("codemode/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Failed(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            kind,
            spec: spec.to_string(),
            model: model.to_string(),
            base,
            key,
            key_var,
            temperature,
            max_tokens: llm.max_tokens,
            http,
            quiet,
        })
    }

    /// `provider/model`, as the user named it.
    pub fn name(&self) -> &str {
        &self.spec
    }

    /// One completion of the conversation `messages` under `system`.
    pub async fn complete(
        &self,
        system: &str,
        messages: &[Message],
    ) -> Result<Completion, LlmError> {
        match self.kind {
            Kind::OpenAi => openai::complete(self, system, messages).await,
            Kind::Anthropic => anthropic::complete(self, system, messages).await,
        }
    }

    /// POSTs `body` as JSON and returns the JSON reply, retrying 429, 5xx and
    /// timeouts with backoff (Retry-After when the server names a wait).
    async fn post(&self, url: &str, headers: HeaderMap, body: &Value) -> Result<Value, LlmError> {
        // Messages name the URL; a password in it stays out of them.
        let shown = hide_password(url);
        let mut attempt = 0;
        loop {
            let sent = self
                .http
                .post(url)
                .headers(headers.clone())
                .json(body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(err) if err.is_timeout() && attempt < RETRIES => {
                    attempt += 1;
                    self.wait(backoff(attempt), "timed out", attempt).await;
                    continue;
                }
                Err(err) => {
                    // reqwest's message names the URL, never the headers.
                    let reason = if err.is_timeout() {
                        "timed out (raise [llm] timeout?)".to_string()
                    } else if err.is_connect() {
                        "cannot connect (is the server running? is the base URL right?)".into()
                    } else {
                        error_chain(&err)
                    };
                    return Err(LlmError::Failed(self.redact(&format!("{shown}: {reason}"))));
                }
            };
            let status = response.status();
            if (status.as_u16() == 429 || status.is_server_error()) && attempt < RETRIES {
                attempt += 1;
                let wait = retry_after(response.headers()).unwrap_or_else(|| backoff(attempt));
                self.wait(wait, &format!("answered HTTP {}", status.as_u16()), attempt)
                    .await;
                continue;
            }
            let text = response.text().await.map_err(|e| {
                LlmError::Failed(self.redact(&format!("{shown}: reading the reply: {e}")))
            })?;
            if status.is_success() {
                return serde_json::from_str(&text).map_err(|e| {
                    LlmError::Failed(format!(
                        "{shown}: the reply is not JSON ({e}): {}",
                        self.redact(&snippet(&text))
                    ))
                });
            }
            return Err(self.classify(&shown, status.as_u16(), &text));
        }
    }

    async fn wait(&self, wait: Duration, why: &str, attempt: u32) {
        if !self.quiet {
            eprintln!(
                "codemode: {} {why}; retrying in {} (retry {attempt} of {RETRIES})",
                self.spec,
                humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
            );
        }
        tokio::time::sleep(wait).await;
    }

    /// Turns an error reply into the error a user can act on. Both APIs put
    /// the reason in `error.message`; OpenAI adds `error.code`, Anthropic
    /// `error.type`.
    fn classify(&self, url: &str, status: u16, body: &str) -> LlmError {
        let json: Option<Value> = serde_json::from_str(body).ok();
        let error = json.as_ref().and_then(|j| j.get("error"));
        let message = error
            .and_then(|e| e.get("message").or(Some(e)))
            .and_then(|m| m.as_str().map(str::to_string))
            .unwrap_or_else(|| snippet(body));
        let message = self.redact(&message);
        let code = error
            .and_then(|e| e.get("code").and_then(Value::as_str))
            .unwrap_or("");
        let lower = message.to_lowercase();
        if (status == 401 || status == 403) && self.key.is_none() {
            return LlmError::KeyRequired {
                url: url.to_string(),
                var: self.key_var,
                status,
                message,
            };
        }
        if status == 401 || status == 403 {
            return LlmError::Auth {
                url: url.to_string(),
                var: self.key_var,
                status,
                message,
            };
        }
        if code == "context_length_exceeded"
            || lower.contains("context length")
            || lower.contains("context window")
            || lower.contains("maximum context")
            || lower.contains("prompt is too long")
        {
            return LlmError::ContextTooLong {
                model: self.spec.clone(),
                message,
            };
        }
        if status == 404 || code == "model_not_found" {
            return LlmError::UnknownModel {
                model: self.model.clone(),
                url: url.to_string(),
                message: format!("HTTP {status}: {message}"),
            };
        }
        LlmError::Failed(format!("{url}: HTTP {status}: {message}"))
    }

    /// Servers sometimes echo the key (or part of it) in an error: it must
    /// not reach the terminal, a log or a trace.
    /// `text` without the key or the base URL's password (reqwest's own
    /// messages may quote the URL as given).
    fn redact(&self, text: &str) -> String {
        let password = reqwest::Url::parse(&self.base)
            .ok()
            .and_then(|u| u.password().map(str::to_string));
        [self.key.as_deref(), password.as_deref()]
            .into_iter()
            .flatten()
            .filter(|secret| secret.len() >= 4)
            .fold(text.to_string(), |text, secret| {
                text.replace(secret, "[redacted]")
            })
    }
}

/// `url` as messages show it: a password in it (`https://user:pw@host`)
/// replaced, so that an error line never carries it.
fn hide_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Whether `base` names this machine: `localhost` or a loopback IP. Only the
/// host decides, so a remote URL with `localhost` in its path still needs a
/// key; `0.0.0.0` and LAN addresses may be other machines, so they do too.
fn is_loopback(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    // The URL parser has already normalised IPs (`127.1` is `127.0.0.1`) and
    // lowercased names; IPv6 keeps its brackets.
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => host.trim_end_matches('.') == "localhost",
    }
}

/// 1 s, 2 s, 4 s, … capped at MAX_WAIT.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(MAX_WAIT)
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 allows both, and
/// proxies in front of local servers send dates). A date already past means
/// now; either form is capped at MAX_WAIT. Anything else: None, so backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    retry_after_at(value, SystemTime::now())
}

fn retry_after_at(value: &str, now: SystemTime) -> Option<Duration> {
    let wait = match value.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Duration::from_secs_f64(seconds),
        Ok(_) => return None,
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_WAIT))
}

fn snippet(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

fn usage(value: &Value, field: &str) -> Option<u64> {
    value.get("usage")?.get(field)?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(spec: &str, vars: &[(&str, &str)]) -> Result<Client, LlmError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Client::with_env(spec, &LlmConfig::default(), 0.0, true, &env)
    }

    #[test]
    fn providers_resolve_their_keys_and_base_urls() {
        let c = client(
            "openai/llama3.1",
            &[
                ("OPENAI_API_KEY", "k"),
                ("OPENAI_BASE_URL", "http://localhost:11434/v1/"),
            ],
        )
        .unwrap();
        assert_eq!(c.base, "http://localhost:11434/v1");
        assert_eq!(c.model, "llama3.1");
        let c = client("anthropic/claude-x", &[("ANTHROPIC_API_KEY", "k")]).unwrap();
        assert_eq!(c.base, "https://api.anthropic.com");
    }

    #[test]
    fn a_password_in_a_url_never_reaches_a_message() {
        let shown = hide_password("https://me:s3cret-pw@llm.example.com/v1/chat/completions");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(
            shown.starts_with("https://me:redacted@llm.example.com/v1/"),
            "{shown}"
        );
        assert_eq!(
            hide_password("http://localhost:11434/v1"),
            "http://localhost:11434/v1"
        );
    }

    #[test]
    fn only_a_loopback_base_url_makes_the_key_optional() {
        for base in [
            "http://localhost:11434/v1",
            "http://LOCALHOST:8080",
            "http://localhost.:8080",
            "http://127.0.0.1:8000/v1",
            "http://127.1.2.3",
            "http://[::1]:8000/v1",
            "http://[::ffff:127.0.0.1]/v1",
        ] {
            assert!(is_loopback(base), "{base}");
            let c = client("openai/m", &[("OPENAI_BASE_URL", base)]).unwrap();
            assert!(c.key.is_none(), "{base}");
        }
        for base in [
            "https://api.openai.com/v1",
            "http://10.0.0.5:11434/v1",
            "http://0.0.0.0:11434/v1",
            "http://localhost.example.com/v1",
            "http://ollama.localhost/v1",
            "http://example.com/localhost",
            "http://user@example.com@localhost.evil/v1",
            "not a url",
        ] {
            assert!(!is_loopback(base), "{base}");
            let err = client("openai/m", &[("OPENAI_BASE_URL", base)])
                .err()
                .unwrap();
            assert!(matches!(err, LlmError::MissingKey { .. }), "{base}: {err}");
        }
        let c = client(
            "openai/m",
            &[
                ("OPENAI_BASE_URL", "http://localhost:8000/v1"),
                ("OPENAI_API_KEY", "k"),
            ],
        )
        .unwrap();
        assert_eq!(c.key.as_deref(), Some("k"), "a key given is still sent");
        let err = c.classify("u", 401, "{}");
        assert!(matches!(err, LlmError::Auth { .. }), "{err}");
    }

    #[test]
    fn a_keyless_loopback_server_asking_for_a_key_says_which_variable() {
        let c = client(
            "openai/m",
            &[("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")],
        )
        .unwrap();
        let err = c.classify("u", 401, r#"{"error": {"message": "Unauthorized"}}"#);
        assert!(err.is_configuration());
        assert!(err.to_string().contains("set OPENAI_API_KEY"), "{err}");
    }

    #[test]
    fn a_missing_key_or_unknown_provider_is_a_configuration_error() {
        let err = client("openai/gpt-4o", &[]).err().unwrap();
        assert!(err.is_configuration());
        assert!(
            err.to_string().contains("OPENAI_API_KEY is not set"),
            "{err}"
        );
        let err = client("mistral/large", &[("OPENAI_API_KEY", "k")])
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("unknown LLM provider `mistral`"),
            "{err}"
        );
        assert!(client("gpt-4o", &[("OPENAI_API_KEY", "k")]).is_err());
    }

    #[test]
    fn error_replies_are_classified() {
        let c = client("openai/m", &[("OPENAI_API_KEY", "sk-secret-123")]).unwrap();
        let too_long = r#"{"error": {"message": "This model's maximum context length is 8192 tokens", "code": "context_length_exceeded"}}"#;
        assert!(matches!(
            c.classify("u", 400, too_long),
            LlmError::ContextTooLong { .. }
        ));
        let missing =
            r#"{"error": {"message": "The model `m` does not exist", "code": "model_not_found"}}"#;
        assert!(matches!(
            c.classify("u", 404, missing),
            LlmError::UnknownModel { .. }
        ));
        let anthropic = r#"{"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert!(matches!(
            c.classify("u", 400, anthropic),
            LlmError::ContextTooLong { .. }
        ));
        let auth = r#"{"error": {"message": "Incorrect API key provided: sk-secret-123"}}"#;
        let err = c.classify("u", 401, auth);
        assert!(err.is_configuration());
        assert!(!err.to_string().contains("sk-secret-123"), "{err}");
    }

    #[test]
    fn retry_after_and_backoff() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "0".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "9999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_WAIT));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "-1".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
    }

    #[test]
    fn retry_after_as_an_http_date() {
        // 1994-11-06T08:49:37Z, RFC 9110's example.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let before = |secs| at - Duration::from_secs(secs);
        assert_eq!(
            retry_after_at(date, before(7)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after_at(date, at), Some(Duration::ZERO));
        assert_eq!(
            retry_after_at(date, at + Duration::from_secs(30)),
            Some(Duration::ZERO),
            "a date past is now"
        );
        assert_eq!(retry_after_at(date, before(3600)), Some(MAX_WAIT));
        // The obsolete forms RFC 9110 still asks recipients to accept.
        assert_eq!(
            retry_after_at("Sunday, 06-Nov-94 08:49:37 GMT", before(2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after_at("Sun Nov  6 08:49:37 1994", before(2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_after_at("Sun, 06 Nov 1994 25:00:00 GMT", at), None);
    }
}
