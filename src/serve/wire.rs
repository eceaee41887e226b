//! The JSON-RPC errors a client is owed where rmcp gives none or the wrong
//! one, fixed in front of it on both transports rather than per method:
//!
//! - A request whose `params` do not fit its method is not recognized as
//!   that method: rmcp's `ClientRequest` is an untagged union whose last
//!   member, `CustomRequest`, takes any method, and its default
//!   `on_custom_request` answers -32601. [`unmatched_request`] tells a known
//!   method with bad params (-32602) from an unknown one (-32601).
//!   Before a session exists rmcp refuses such an `initialize` for other
//!   reasons; [`bad_initialize`] answers it as -32602 too.
//! - A message that is not JSON, or JSON that is not one JSON-RPC message:
//!   over HTTP rmcp answers 415 with a text body, on stdio it says nothing
//!   to unparsable lines. [`refusal`] is the JSON-RPC error instead (-32700
//!   or -32600), sent by [`reject_bad_bodies`] and by [`LineTransport`].
//! - A DELETE of a session rmcp does not know answers 202 as if it had ended
//!   one; [`reject_bad_bodies`] answers 404, and 204 for a live one.
// Logging and resource subscriptions are deprecated for the newest
// protocol, but handshake-era clients still send them, and their params
// are checked like any other.
#![allow(deprecated)]

use std::future::Future;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequest, CancelTaskRequest, ClientJsonRpcMessage, ClientRequest, CompleteRequest,
    ConstString, DiscoverRequest, ErrorCode, ErrorData, GetPromptRequest, GetSkillRequest,
    GetTaskRequest, InitializeRequest, InitializeResultMethod, ListPromptsRequest,
    ListResourceTemplatesRequest, ListResourcesRequest, ListSkillsRequest, ListToolsRequest,
    PingRequest, ReadResourceDirectoryRequest, ReadResourceRequest, ServerJsonRpcMessage,
    SetLevelRequest, SubscribeRequest, SubscriptionsListenRequest, UnsubscribeRequest,
    UpdateTaskRequest,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::RoleServer;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The largest request body over HTTP: rmcp's default, set on its service
/// too, so this layer and rmcp refuse the same bodies.
pub(super) const MAX_BODY: usize = 4 * 1024 * 1024;
/// The longest line on stdio: rmcp's default for its own stdio transport.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// The error for a request rmcp could only read as a custom one: -32602
/// when the method is one MCP defines (so its params are what failed),
/// else -32601.
pub(super) fn unmatched_request(method: &str, params: Option<Value>) -> ErrorData {
    match params_error(method, params) {
        Some(why) => ErrorData::invalid_params(format!("invalid params for {method}: {why}"), None),
        None => ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("no method `{method}`"),
            None,
        ),
    }
}

/// Why `params` do not fit `method`, if it is a request MCP defines: the
/// error rmcp's own type for that request gives.
fn params_error(method: &str, params: Option<Value>) -> Option<String> {
    let mut request = serde_json::Map::new();
    request.insert("method".into(), Value::String(method.to_string()));
    if let Some(params) = params {
        request.insert("params".into(), params);
    }
    let request = Value::Object(request);
    macro_rules! typed {
        ($($method:ident => $request:ty),+ $(,)?) => {
            $(
                if method == <rmcp::model::$method as ConstString>::VALUE {
                    return serde_json::from_value::<$request>(request)
                        .err()
                        .map(|e| e.to_string());
                }
            )+
        };
    }
    typed!(
        InitializeResultMethod => InitializeRequest,
        DiscoverRequestMethod => DiscoverRequest,
        PingRequestMethod => PingRequest,
        CompleteRequestMethod => CompleteRequest,
        SetLevelRequestMethod => SetLevelRequest,
        GetPromptRequestMethod => GetPromptRequest,
        ListPromptsRequestMethod => ListPromptsRequest,
        ListResourcesRequestMethod => ListResourcesRequest,
        ListResourceTemplatesRequestMethod => ListResourceTemplatesRequest,
        ReadResourceRequestMethod => ReadResourceRequest,
        SubscriptionsListenRequestMethod => SubscriptionsListenRequest,
        SubscribeRequestMethod => SubscribeRequest,
        UnsubscribeRequestMethod => UnsubscribeRequest,
        CallToolRequestMethod => CallToolRequest,
        ListToolsRequestMethod => ListToolsRequest,
        GetTaskMethod => GetTaskRequest,
        UpdateTaskMethod => UpdateTaskRequest,
        CancelTaskMethod => CancelTaskRequest,
        ListSkillsRequestMethod => ListSkillsRequest,
        GetSkillRequestMethod => GetSkillRequest,
        ReadResourceDirectoryRequestMethod => ReadResourceDirectoryRequest,
    );
    None
}

/// The answer to an `initialize` whose params do not fit: rmcp reads it as
/// a custom request, which before a session exists it refuses for other
/// reasons (a missing session id over HTTP, missing `_meta` on stdio).
fn bad_initialize(message: &ClientJsonRpcMessage) -> Option<ServerJsonRpcMessage> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    match &request.request {
        ClientRequest::CustomRequest(custom)
            if custom.method == <InitializeResultMethod as ConstString>::VALUE =>
        {
            Some(ServerJsonRpcMessage::error(
                unmatched_request(&custom.method, custom.params.clone()),
                Some(request.id.clone()),
            ))
        }
        _ => None,
    }
}

/// A message refused before rmcp sees it.
#[derive(Debug, PartialEq)]
pub(super) struct Refusal {
    code: ErrorCode,
    message: String,
    /// The message's own id when it has a usable one, else null.
    id: Value,
    /// A notification or a response: JSON-RPC never answers those, so on
    /// stdio the refusal is only logged. (Over HTTP the POST still needs an
    /// answer.)
    unanswered: bool,
}

impl Refusal {
    fn parse(error: impl std::fmt::Display) -> Refusal {
        Refusal {
            code: ErrorCode::PARSE_ERROR,
            message: format!("not JSON: {error}"),
            id: Value::Null,
            unanswered: false,
        }
    }

    fn invalid(message: impl Into<String>, id: Value, unanswered: bool) -> Refusal {
        Refusal {
            code: ErrorCode::INVALID_REQUEST,
            message: message.into(),
            id,
            unanswered,
        }
    }

    /// The JSON-RPC error response, `id` null when the message's is unknown.
    pub(super) fn to_json(&self) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code.0, "message": self.message},
        })
    }
}

/// Why `bytes`, which rmcp could not read as a message, are refused.
pub(super) fn refusal(bytes: &[u8]) -> Refusal {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(err) => return Refusal::parse(err),
    };
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Refusal::invalid(
                "batches are not supported: send one JSON-RPC message at a time",
                Value::Null,
                false,
            )
        }
        _ => return Refusal::invalid("a JSON-RPC message is an object", Value::Null, false),
    };
    let id = match object.get("id") {
        Some(id @ Value::String(_)) => id.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
        _ => Value::Null,
    };
    if !object.contains_key("method")
        && (object.contains_key("result") || object.contains_key("error"))
    {
        return Refusal::invalid("not a valid response", id, true);
    }
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Refusal::invalid("`jsonrpc` must be \"2.0\"", id, false);
    }
    if object.contains_key("id") && id.is_null() {
        return Refusal::invalid("`id` must be a string or an integer", id, false);
    }
    match object.get("method") {
        Some(Value::String(method)) if !object.contains_key("id") => {
            Refusal::invalid(format!("not a valid `{method}` notification"), id, true)
        }
        Some(Value::String(method)) => {
            Refusal::invalid(format!("not a valid `{method}` request"), id, false)
        }
        Some(_) => Refusal::invalid("`method` must be a string", id, false),
        None => Refusal::invalid(
            "no `method`: neither a request nor a notification",
            id,
            false,
        ),
    }
}

// ---------------------------------------------------------------------------
// Streamable HTTP
// ---------------------------------------------------------------------------

/// In front of rmcp's `StreamableHttpService`. POST: the body is read here
/// (at most `MAX_BODY`) and passed on whole; where rmcp refuses it for not
/// being a message, the answer becomes 400 with a JSON-RPC error. rmcp's
/// header checks (Host, Origin, Accept, Content-Type) run before it reads
/// the body, so their answers stay as they are. DELETE: 404 for a session
/// rmcp does not hold, 204 when it ends one.
pub(super) async fn reject_bad_bodies(
    axum::extract::State(sessions): axum::extract::State<Arc<LocalSessionManager>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    match *request.method() {
        Method::POST => post(request, next).await,
        Method::DELETE => delete(&sessions, request, next).await,
        _ => next.run(request).await,
    }
}

async fn post(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use futures::StreamExt;

    // The same test rmcp makes: with any other type, its 415 is about the type.
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        });
    let (parts, body) = request.into_parts();
    let mut bytes = Vec::new();
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let Ok(frame) = frame else {
            return (
                StatusCode::BAD_REQUEST,
                "Bad Request: the body could not be read",
            )
                .into_response();
        };
        if bytes.len() + frame.len() > MAX_BODY {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Payload Too Large: request body exceeds {MAX_BODY} bytes"),
            )
                .into_response();
        }
        bytes.extend_from_slice(&frame);
    }
    let passed = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
    let response = next.run(passed).await;
    if response.status() == StatusCode::BAD_REQUEST {
        let initialize = serde_json::from_slice::<ClientJsonRpcMessage>(&bytes)
            .ok()
            .and_then(|message| bad_initialize(&message));
        if let Some(answer) = initialize {
            return (StatusCode::BAD_REQUEST, axum::Json(answer)).into_response();
        }
    }
    if response.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE || !json {
        return response;
    }
    (
        StatusCode::BAD_REQUEST,
        axum::Json(refusal(&bytes).to_json()),
    )
        .into_response()
}

async fn delete(
    sessions: &LocalSessionManager,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let id = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok());
    let known = match id {
        Some(id) => sessions.has_session(&id.into()).await.unwrap_or(false),
        // rmcp answers a DELETE without a session itself.
        None => true,
    };
    let mut response = next.run(request).await;
    // rmcp answers 202 once past its own checks, whether or not the session
    // existed; the other answers are its refusals and stay.
    if response.status() == StatusCode::ACCEPTED {
        if !known {
            return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        }
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

// ---------------------------------------------------------------------------
// stdio
// ---------------------------------------------------------------------------

/// Newline-delimited JSON-RPC over a reader and a writer, as rmcp's
/// `AsyncRwTransport` but answering what it cannot read (see [`refusal`]);
/// a message it can read is the one rmcp's types give.
pub(super) struct LineTransport<R, W> {
    read: BufReader<R>,
    /// The line read so far: kept here, not in `receive`, because `receive`
    /// is polled in a `select!` and may be dropped halfway through a line.
    line: Vec<u8>,
    /// Skipping the rest of a line over `MAX_LINE`.
    discarding: bool,
    /// Whole lines only: each write holds the lock from first byte to flush.
    write: Arc<tokio::sync::Mutex<Option<W>>>,
}

impl<R: AsyncRead + Unpin, W> LineTransport<R, W> {
    pub(super) fn new(read: R, write: W) -> LineTransport<R, W> {
        LineTransport {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            write: Arc::new(tokio::sync::Mutex::new(Some(write))),
        }
    }

    /// The next whole line into `self.line` (true), or the end of input
    /// (false). Lines over `MAX_LINE` are skipped without being held.
    async fn read_line(&mut self) -> bool {
        loop {
            let (taken, complete) = {
                let available = match self.read.fill_buf().await {
                    Ok([]) => return false,
                    Ok(available) => available,
                    Err(err) => {
                        tracing::warn!("reading stdin: {err}");
                        return false;
                    }
                };
                let newline = available.iter().position(|&b| b == b'\n');
                let take = newline.map_or(available.len(), |at| at + 1);
                if !self.discarding {
                    if self.line.len() + take > MAX_LINE {
                        tracing::warn!("a message over {MAX_LINE} bytes was dropped");
                        self.line.clear();
                        self.discarding = true;
                    } else {
                        self.line.extend_from_slice(&available[..take]);
                    }
                }
                (take, newline.is_some())
            };
            self.read.consume(taken);
            if complete {
                if std::mem::take(&mut self.discarding) {
                    continue;
                }
                return true;
            }
        }
    }
}

async fn write_line<W: AsyncWrite + Unpin>(
    write: &tokio::sync::Mutex<Option<W>>,
    line: &[u8],
) -> std::io::Result<()> {
    let mut write = write.lock().await;
    let Some(write) = write.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the transport is closed",
        ));
    };
    write.write_all(line).await?;
    write.flush().await
}

impl<R, W> rmcp::transport::Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = Arc::clone(&self.write);
        async move {
            let mut line = serde_json::to_vec(&item)?;
            line.push(b'\n');
            write_line(&write, &line).await
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            if !self.read_line().await {
                return None;
            }
            let line = std::mem::take(&mut self.line);
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            if text.trim_ascii().is_empty() {
                continue;
            }
            let answer = match serde_json::from_slice::<ClientJsonRpcMessage>(text) {
                Ok(message) => match bad_initialize(&message) {
                    Some(answer) => serde_json::to_value(answer).unwrap_or_default(),
                    None => return Some(message),
                },
                Err(_) => {
                    let refused = refusal(text);
                    if refused.unanswered {
                        tracing::debug!("ignored a message: {}", refused.message);
                        continue;
                    }
                    tracing::debug!("refused a message: {}", refused.message);
                    refused.to_json()
                }
            };
            let mut answer = answer.to_string().into_bytes();
            answer.push(b'\n');
            // Written apart from this future: `receive` may be dropped at
            // any await, and a reply cut off there would corrupt the next
            // line on stdout.
            let write = Arc::clone(&self.write);
            tokio::spawn(async move {
                if let Err(err) = write_line(&write, &answer).await {
                    tracing::debug!("answering a refused message: {err}");
                }
            });
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        if let Some(mut write) = self.write.lock().await.take() {
            write.shutdown().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(bytes: &[u8]) -> i32 {
        refusal(bytes).code.0
    }

    #[test]
    fn known_methods_with_bad_params_are_invalid_params() {
        for (method, params) in [
            ("tools/call", Some(json!({}))),
            ("tools/call", None),
            ("tools/call", Some(json!({"name": "x", "arguments": "{}"}))),
            ("resources/read", Some(json!({}))),
            ("logging/setLevel", Some(json!({"level": "loud"}))),
        ] {
            let error = unmatched_request(method, params.clone());
            assert_eq!(error.code, ErrorCode::INVALID_PARAMS, "{method} {params:?}");
            assert!(error
                .message
                .starts_with(&format!("invalid params for {method}: ")));
        }
    }

    #[test]
    fn an_initialize_with_bad_params_is_answered_with_its_id() {
        let message: ClientJsonRpcMessage = serde_json::from_value(
            json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {}}),
        )
        .unwrap();
        let answer = serde_json::to_value(bad_initialize(&message).unwrap()).unwrap();
        assert_eq!(answer["id"], 3);
        assert_eq!(answer["error"]["code"], -32602);
        let ping: ClientJsonRpcMessage =
            serde_json::from_value(json!({"jsonrpc": "2.0", "id": 4, "method": "ping"})).unwrap();
        assert!(bad_initialize(&ping).is_none());
    }

    #[test]
    fn unknown_methods_are_method_not_found() {
        let error = unmatched_request("tools/frobnicate", Some(json!({})));
        assert_eq!(error.code, ErrorCode::METHOD_NOT_FOUND);
        assert!(error.message.contains("tools/frobnicate"));
    }

    #[test]
    fn what_is_not_json_is_a_parse_error_without_an_id() {
        let refused = refusal(b"{\"jsonrpc\": \"2.0\", \"id\": 1,");
        assert_eq!(refused.code, ErrorCode::PARSE_ERROR);
        assert_eq!(refused.to_json()["id"], Value::Null);
        assert_eq!(code(b"\xff\xfe"), -32700);
    }

    #[test]
    fn json_that_is_not_one_message_is_an_invalid_request() {
        assert_eq!(
            code(br#"[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]"#),
            -32600
        );
        assert_eq!(code(b"42"), -32600);
        let refused = refusal(br#"{"jsonrpc": "1.0", "id": 7, "method": "ping"}"#);
        assert_eq!(refused.code, ErrorCode::INVALID_REQUEST);
        assert_eq!(refused.id, json!(7), "a usable id is kept");
        let refused = refusal(br#"{"jsonrpc": "2.0", "id": null, "method": "ping"}"#);
        assert_eq!(refused.code, ErrorCode::INVALID_REQUEST);
        assert!(!refused.unanswered);
    }

    #[test]
    fn notifications_and_responses_are_not_answered() {
        assert!(
            refusal(br#"{"jsonrpc": "2.0", "method": "notifications/progress", "params": 1}"#)
                .unanswered
        );
        assert!(refusal(br#"{"jsonrpc": "2.0", "id": null, "error": {"code": 1}}"#).unanswered);
    }
}
