//! The RPC wire: what sandboxed code sends and what it gets back. Other parts
//! and users rely on these names and statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The deepest JSON nesting a request may have. serde_json stops at 128 itself;
/// a lower, explicit bound gives a clear error instead of a parser's.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    Unauthorized,
    Forbidden,
    Denied,
    UnknownServer,
    UnknownTool,
    InvalidArguments,
    ToolError,
    UpstreamUnavailable,
    Timeout,
    RateLimited,
    PayloadTooLarge,
    BadRequest,
}

impl ErrorKind {
    /// Every kind, for checks that must cover the whole contract.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::Denied,
        ErrorKind::UnknownServer,
        ErrorKind::UnknownTool,
        ErrorKind::InvalidArguments,
        ErrorKind::ToolError,
        ErrorKind::UpstreamUnavailable,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::PayloadTooLarge,
        ErrorKind::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Denied => "denied",
            ErrorKind::UnknownServer => "unknown_server",
            ErrorKind::UnknownTool => "unknown_tool",
            ErrorKind::InvalidArguments => "invalid_arguments",
            ErrorKind::ToolError => "tool_error",
            ErrorKind::UpstreamUnavailable => "upstream_unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::BadRequest => "bad_request",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            // Granted, but the person asked said no (or was not there).
            ErrorKind::Forbidden | ErrorKind::Denied => StatusCode::FORBIDDEN,
            ErrorKind::UnknownServer | ErrorKind::UnknownTool => StatusCode::NOT_FOUND,
            ErrorKind::InvalidArguments | ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            // The request was fine and reached the tool; the tool said no.
            ErrorKind::ToolError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// A failed call, as the wire carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RpcError {
    /// The message goes to a script and into logs; it may quote what the
    /// caller sent (a field name, a server's error), so it is kept to one line.
    pub fn new(kind: ErrorKind, message: impl AsRef<str>) -> RpcError {
        RpcError {
            kind,
            message: codemode_text::one_line(message.as_ref()),
        }
    }

    /// A tool's own error text (an `isError` result), passed on as the tool
    /// wrote it: it is the tool's output, which the script may show or parse.
    pub fn from_tool(message: String) -> RpcError {
        RpcError {
            kind: ErrorKind::ToolError,
            message,
        }
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "error": {"kind": self.kind.as_str(), "message": self.message},
        });
        (self.kind.status(), axum::Json(body)).into_response()
    }
}

pub fn success(result: Value) -> Response {
    axum::Json(json!({"success": true, "result": result})).into_response()
}

/// One `POST /rpc` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcRequest {
    pub server: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// Parses a body: nesting bounded first (so a hostile body costs no deep
/// recursion), then the shape, then `arguments` must be an object.
pub fn parse_request(body: &[u8]) -> Result<(RpcRequest, Map<String, Value>), RpcError> {
    let depth = nesting_depth(body);
    if depth > MAX_DEPTH {
        return Err(RpcError::new(
            ErrorKind::BadRequest,
            format!("the request nests {depth} levels deep; the limit is {MAX_DEPTH}"),
        ));
    }
    // serde would also take a struct from an array (`["news", "search"]`);
    // the contract is an object, and a lenient parser is one more dialect
    // for clients to come to depend on.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(RpcError::new(
            ErrorKind::BadRequest,
            "the body must be a JSON object: {\"server\": S, \"tool\": T, \"arguments\": {...}}",
        ));
    }
    let request: RpcRequest = serde_json::from_slice(body).map_err(|err| {
        RpcError::new(
            ErrorKind::BadRequest,
            format!("the body is not a valid request ({err}); send {{\"server\": S, \"tool\": T, \"arguments\": {{...}}}}"),
        )
    })?;
    let arguments = match request.arguments.clone() {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(RpcError::new(
                ErrorKind::InvalidArguments,
                format!("`arguments` must be an object, not {}", json_type(&other)),
            ))
        }
    };
    Ok((request, arguments))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The deepest `[`/`{` nesting outside strings, read without parsing.
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_request_parses() {
        let (request, arguments) =
            parse_request(br#"{"server": "news", "tool": "search", "arguments": {"query": "ai"}}"#)
                .unwrap();
        assert_eq!(
            (request.server.as_str(), request.tool.as_str()),
            ("news", "search")
        );
        assert_eq!(arguments["query"], "ai");
    }

    #[test]
    fn missing_arguments_are_an_empty_object() {
        let (_, arguments) = parse_request(br#"{"server": "s", "tool": "t"}"#).unwrap();
        assert!(arguments.is_empty());
    }

    #[test]
    fn non_object_arguments_are_invalid_arguments() {
        let err = parse_request(br#"{"server": "s", "tool": "t", "arguments": [1]}"#).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArguments);
    }

    #[test]
    fn a_request_as_an_array_is_a_bad_request() {
        let err = parse_request(br#" ["s", "t"]"#).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("JSON object"), "{}", err.message);
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert_eq!(
            parse_request(b"{\"server\": ").unwrap_err().kind,
            ErrorKind::BadRequest
        );
        assert_eq!(
            parse_request(b"not json").unwrap_err().kind,
            ErrorKind::BadRequest
        );
        assert_eq!(
            parse_request(br#"{"tool": "t"}"#).unwrap_err().kind,
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let body = format!(
            r#"{{"server": "s", "tool": "t", "arguments": {{"a": {}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let err = parse_request(body.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("nests"), "{}", err.message);
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        let body = format!(
            r#"{{"server": "s", "tool": "t", "arguments": {{"q": "{}"}}}}"#,
            "[".repeat(500)
        );
        assert!(parse_request(body.as_bytes()).is_ok());
    }

    #[test]
    fn every_kind_has_an_error_status() {
        for kind in ErrorKind::ALL {
            assert!(
                kind.status().is_client_error() || kind.status().is_server_error(),
                "{kind:?}"
            );
        }
    }
}
