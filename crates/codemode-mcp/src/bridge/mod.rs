//! The bridge: the one door from sandboxed code to the MCP servers. It holds the
//! registry (every real connection and every secret) and answers `POST /rpc`
//! for callers holding a live grant, and `GET /tools` and `GET /search` so
//! that a script can look before it calls.
//!
//! `exec` and `serve` run it in-process for one execution at a time; `codemode
//! bridge` runs it standalone.

mod approval;
mod arguments;
mod grant;
mod listen;
mod metrics;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

pub use approval::{Answer, Approval, Approvals, Approver, ApproverSlot, Question, Refuse};
pub use grant::{CallRecord, Grant, GrantSpec, Records};
pub use listen::{ConnectionLimits, Listener, UnixSocket};
pub use wire::{parse_request, ErrorKind, RpcError, RpcRequest};

use crate::catalog;
use crate::discovery;
use crate::registry::{map_result, McpError, Registry, ServerState};
use grant::{GrantState, Grants};
use metrics::Metrics;

/// Bounds on what one request may take.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_body_bytes: usize,
    /// Time to send the whole body once the headers are in.
    pub body_read_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_body_bytes: 4 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// A cheap handle; clones share one registry, one set of grants and one set of
/// counters.
#[derive(Clone)]
pub struct Bridge {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Arc<Registry>,
    grants: Arc<Grants>,
    metrics: Metrics,
    limits: RequestLimits,
}

impl Bridge {
    pub fn new(registry: Arc<Registry>, limits: RequestLimits) -> Bridge {
        Bridge {
            shared: Arc::new(Shared {
                registry,
                grants: Grants::new(),
                metrics: Metrics::default(),
                limits,
            }),
        }
    }

    /// A new grant with a random token, revoked when the `Grant` is dropped.
    pub fn grant(&self, spec: GrantSpec) -> Result<Grant, getrandom::Error> {
        self.shared.grants.mint(spec)
    }

    /// A grant for a token chosen by the caller.
    pub fn grant_token(&self, token: String, spec: GrantSpec) -> Grant {
        self.shared.grants.insert(token, spec)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/rpc", post(rpc))
            .route("/tools", get(tools))
            .route("/search", get(search))
            .route("/health", get(health))
            .route("/metrics", get(metrics_text))
            .with_state(Arc::clone(&self.shared))
    }

    /// Serves on `listeners` until `stop` resolves; requests in flight then get
    /// `limits.shutdown_grace` to finish.
    pub async fn serve(
        &self,
        listeners: Vec<Listener>,
        limits: ConnectionLimits,
        stop: impl std::future::Future<Output = ()>,
    ) {
        listen::serve(self.router(), listeners, limits, stop).await;
    }
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Arc<GrantState>, RpcError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .ok_or_else(|| {
            RpcError::new(
                ErrorKind::Unauthorized,
                "missing `Authorization: Bearer TOKEN` header",
            )
        })?;
    shared.grants.authenticate(presented).ok_or_else(|| {
        RpcError::new(
            ErrorKind::Unauthorized,
            "the token is not valid (unknown, or its execution has ended)",
        )
    })
}

async fn read_body(body: Body, limits: RequestLimits) -> Result<Bytes, RpcError> {
    let read = axum::body::to_bytes(body, limits.max_body_bytes);
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(RpcError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is larger than {} bytes",
                limits.max_body_bytes
            ),
        )),
        Err(_) => Err(RpcError::new(
            ErrorKind::BadRequest,
            format!(
                "the request body did not arrive within {}",
                humantime::format_duration(limits.body_read_timeout)
            ),
        )),
    }
}

async fn rpc(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let grant = match authenticate(&shared, &headers) {
        Ok(grant) => grant,
        Err(err) => {
            tracing::info!(
                outcome = err.kind.as_str(),
                "rejected a call: {}",
                err.message
            );
            return err.into_response();
        }
    };
    // Read before admission so that what the record names is known, and
    // admitted before anything else is judged: every request a token holder
    // sends spends its rate and budget, whether it names a real server, a
    // granted tool or nothing parseable at all, so none of them is a free
    // way to flood the bridge or the run's report.
    let parsed = read_body(body, shared.limits)
        .await
        .and_then(|bytes| wire::parse_request(&bytes));
    let (server, tool) = match &parsed {
        Ok((request, _)) => (request.server.clone(), request.tool.clone()),
        Err(_) => (String::new(), String::new()),
    };
    let (approval, outcome) = match grant.admit() {
        Err(err) => (Approval::NotRequired, Err(err)),
        Ok(_permit) => match parsed {
            Err(err) => (Approval::NotRequired, Err(err)),
            Ok((request, arguments)) => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let shown = Value::Object(arguments.clone());
                    tracing::debug!(token = grant.id(), server = %request.server, tool = %request.tool, arguments = %shown, "call");
                }
                shared
                    .call(&grant, request.server, request.tool, arguments)
                    .await
            }
        },
    };
    let elapsed = started.elapsed();
    let label = match &outcome {
        Ok(_) => "ok",
        Err(err) => err.kind.as_str(),
    };
    // Only configured servers get counters of their own, so a script sending
    // made-up names cannot grow them; the names kept in the run's report and
    // written to the log are bounded and on one line for the same reason.
    let known = shared.registry.spec(&server).is_ok();
    shared
        .metrics
        .record(if known { &server } else { "" }, label, elapsed);
    let (server, tool) = (shown_name(&server), shown_name(&tool));
    if !server.is_empty() {
        grant.record(CallRecord {
            server: server.clone(),
            tool: tool.clone(),
            ok: outcome.is_ok(),
            approval,
            error: outcome.as_ref().err().map(|e| e.kind.as_str()),
            duration_ms: elapsed.as_secs_f64() * 1000.0,
        });
    }
    tracing::info!(
        token = grant.id(),
        server = %server,
        tool = %tool,
        ms = format_args!("{:.2}", elapsed.as_secs_f64() * 1000.0),
        outcome = label,
        approval = ?approval,
        "call"
    );
    match outcome {
        Ok(value) => {
            tracing::debug!(token = grant.id(), result = %value, "result");
            wire::success(value)
        }
        Err(err) => {
            if err.kind != ErrorKind::ToolError {
                tracing::debug!(token = grant.id(), "{}", err.message);
            }
            err.into_response()
        }
    }
}

impl Shared {
    /// Checks and makes one call; also says how its approval went, for the
    /// record.
    async fn call(
        &self,
        grant: &GrantState,
        server: String,
        tool: String,
        arguments: Map<String, Value>,
    ) -> (Approval, Result<Value, RpcError>) {
        let question = match self.check(grant, &server, &tool, arguments).await {
            Ok(question) => question,
            Err(err) => return (Approval::NotRequired, Err(err)),
        };
        // Asked only about a call that would otherwise be made: a person is
        // never asked to approve what the bridge would refuse anyway.
        let approval = match grant.approve(&question).await {
            Ok(approval) => approval,
            Err((approval, err)) => return (approval, Err(err)),
        };
        let Question {
            server,
            tool,
            arguments,
        } = question;
        let outcome = async {
            let info = self
                .registry
                .tool_info(&server, &tool)
                .await
                .map_err(rpc_error)?
                .ok_or_else(|| unknown_tool(&server, &tool))?;
            let result = self
                .registry
                .call_tool(&server, &tool, arguments)
                .await
                .map_err(rpc_error)?;
            map_result(&result, info.fastmcp_wrapped).map_err(RpcError::from_tool)
        }
        .await;
        (approval, outcome)
    }

    /// Everything judged before a call could be made: the server, the
    /// grant, the tool and its arguments.
    async fn check(
        &self,
        grant: &GrantState,
        server: &str,
        tool: &str,
        arguments: Map<String, Value>,
    ) -> Result<Question, RpcError> {
        self.registry.spec(server).map_err(|_| {
            let known: Vec<&str> = self.registry.names().collect();
            RpcError::new(
                ErrorKind::UnknownServer,
                format!("no server `{server}` (available: {})", known.join(", ")),
            )
        })?;
        // Checked before anything reaches the server, or even starts it.
        if !grant.filter().permits(server, tool) {
            return Err(RpcError::new(
                ErrorKind::Forbidden,
                format!("`{server}.{tool}` is not granted to this execution"),
            ));
        }
        let info = self
            .registry
            .tool_info(server, tool)
            .await
            .map_err(rpc_error)?
            .ok_or_else(|| unknown_tool(server, tool))?;
        arguments::check(&info.input_schema, &arguments).map_err(|message| {
            RpcError::new(
                ErrorKind::InvalidArguments,
                format!("{server}.{tool}: {message}"),
            )
        })?;
        Ok(Question {
            server: server.to_string(),
            tool: tool.to_string(),
            arguments,
        })
    }
}

fn unknown_tool(server: &str, tool: &str) -> RpcError {
    RpcError::new(
        ErrorKind::UnknownTool,
        format!("server `{server}` has no tool `{tool}`"),
    )
}

/// A name from a request as reports and logs show it: at most 100 bytes, on
/// one line.
fn shown_name(name: &str) -> String {
    const MAX: usize = 100;
    let mut name = codemode_text::one_line(name);
    if name.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| name.is_char_boundary(i))
            .unwrap_or(0);
        name.truncate(cut);
        name.push('…');
    }
    name
}

/// JSON-RPC's "invalid params".
const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC's "method not found", which some servers use for an unknown tool.
const METHOD_NOT_FOUND: i32 = -32601;

fn rpc_error(err: McpError) -> RpcError {
    let kind = match &err {
        McpError::UnknownServer(_) => ErrorKind::UnknownServer,
        McpError::Timeout { .. } => ErrorKind::Timeout,
        McpError::Rpc { code, .. } if *code == INVALID_PARAMS => ErrorKind::InvalidArguments,
        McpError::Rpc { code, .. } if *code == METHOD_NOT_FOUND => ErrorKind::UnknownTool,
        McpError::Rpc { .. } => ErrorKind::ToolError,
        McpError::Spawn { .. }
        | McpError::ConnectTimeout { .. }
        | McpError::Initialize { .. }
        | McpError::Config { .. }
        | McpError::Closed { .. }
        | McpError::Protocol { .. }
        | McpError::Backoff { .. }
        | McpError::Auth { .. } => ErrorKind::UpstreamUnavailable,
    };
    let mut message = err.to_string();
    if kind == ErrorKind::Timeout {
        // The server may have acted before the cancellation reached it.
        message.push_str("; the call was cancelled, but the server may already have acted on it");
    }
    RpcError::new(kind, message)
}

async fn tools(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let grant = match authenticate(&shared, &headers) {
        Ok(grant) => grant,
        Err(err) => return err.into_response(),
    };
    let mut servers = Vec::new();
    for name in shared.registry.names() {
        if shared.registry.spec(name).is_err() {
            continue;
        }
        let listed = match shared.registry.list_tools(name).await {
            Ok(tools) => tools,
            Err(err) => {
                servers.push(json!({"name": name, "error": err.to_string()}));
                continue;
            }
        };
        let tools: Vec<Value> = listed
            .iter()
            .filter(|t| grant.filter().permits(name, &t.name))
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": *t.input_schema,
                    "output_schema": t.output_schema.as_deref(),
                })
            })
            .collect();
        servers.push(json!({"name": name, "tools": tools}));
    }
    axum::Json(json!({"servers": servers})).into_response()
}

/// Whether the bridge is up, for anyone who can reach it; how its servers are
/// doing, for a token holder, and only the servers the token's grant reaches.
/// Never a server's own words: its stderr can quote its environment, and the
/// log is where the operator reads it.
async fn health(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Ok(grant) = authenticate(&shared, &headers) else {
        return axum::Json(json!({"status": "ok"})).into_response();
    };
    let states: BTreeMap<String, ServerState> = shared
        .registry
        .redacted_states()
        .await
        .into_iter()
        .filter(|(name, _)| grant.filter().may_reach(name))
        .collect();
    axum::Json(json!({"status": "ok", "servers": states})).into_response()
}

/// Token holders only: the counters name the servers and tell how a run's
/// calls went.
async fn metrics_text(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(err) = authenticate(&shared, &headers) {
        return err.into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    detail: Option<String>,
    limit: Option<usize>,
}

/// `GET /search?q=WORDS&detail=name|summary|full&limit=N`: the tools this
/// grant may call that match, as Python signatures (the same text `serve`'s
/// `search_tools` answers), in the RPC envelope.
async fn search(State(shared): State<Arc<Shared>>, headers: HeaderMap, uri: Uri) -> Response {
    let grant = match authenticate(&shared, &headers) {
        Ok(grant) => grant,
        Err(err) => return err.into_response(),
    };
    let params = match Query::<SearchParams>::try_from_uri(&uri) {
        Ok(Query(params)) => params,
        Err(err) => return RpcError::new(ErrorKind::BadRequest, err.body_text()).into_response(),
    };
    let detail = match discovery::parse_detail(params.detail.as_deref().unwrap_or("summary")) {
        Ok(detail) => detail,
        Err(message) => return RpcError::new(ErrorKind::BadRequest, message).into_response(),
    };
    let specs: Vec<_> = shared
        .registry
        .names()
        .filter_map(|name| shared.registry.spec(name).ok().cloned())
        .collect();
    // Listed afresh, like /tools: a script sees what the servers offer now.
    let (found, failures) = catalog::collect(
        &shared.registry,
        &specs,
        grant.filter(),
        &catalog::Unwatched,
    )
    .await;
    let mut text = discovery::search_text(
        &found,
        &params.q,
        detail,
        params.limit.unwrap_or(discovery::DEFAULT_LIMIT),
    );
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|f| f.server()).collect();
        text.push_str(&format!(
            "Not searched (not answering now): {}.\n",
            names.join(", ")
        ));
    }
    wire::success(Value::String(text))
}
