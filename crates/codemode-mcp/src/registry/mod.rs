//! The registry: one MCP client session per configured server, started on first
//! use and shared by every caller.
//!
//! Calls do not hold the registry's locks while they run: each takes a clone of
//! the session's peer, so many calls to one server are in flight at once.

mod connection;
mod result;
mod stderr;

pub use result::map_result;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::service::{Peer, RoleClient};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use codemode_config::ResolvedServer;
use connection::Session;
use stderr::StderrTail;

/// The first pause before restarting a server that failed to start, doubled
/// after each further failure up to the maximum.
const RESTART_BACKOFF_START: Duration = Duration::from_millis(250);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How long `shutdown` waits for all servers together before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    #[error("server `{server}`: cannot start `{command}`: {reason}")]
    Spawn {
        server: String,
        command: String,
        reason: String,
    },
    #[error("server `{server}`: did not finish starting within {}{stderr}", humantime::format_duration(*after))]
    ConnectTimeout {
        server: String,
        after: Duration,
        stderr: String,
    },
    #[error("server `{server}`: failed during initialize: {reason}{stderr}")]
    Initialize {
        server: String,
        reason: String,
        stderr: String,
    },
    #[error("server `{server}`: {reason}")]
    Config { server: String, reason: String },
    #[error("server `{server}`: `{operation}` did not answer within {}", humantime::format_duration(*after))]
    Timeout {
        server: String,
        operation: String,
        after: Duration,
    },
    #[error("server `{server}`: the connection closed{stderr}")]
    Closed { server: String, stderr: String },
    #[error("server `{server}`: {reason}")]
    Protocol { server: String, reason: String },
    /// A JSON-RPC error the server answered with (bad arguments, unknown tool…).
    #[error("server `{server}`: {message}")]
    Rpc {
        server: String,
        code: i32,
        message: String,
    },
    #[error(
        "server `{server}`: {url} refused codemode (HTTP {status}): set the credentials it wants as a header in the server's config, e.g. headers = {{ Authorization = \"Bearer ${{TOKEN}}\" }} with TOKEN in the environment"
    )]
    Auth {
        server: String,
        status: u16,
        url: String,
    },
    #[error("server `{server}`: not restarted yet after failing ({reason})")]
    Backoff { server: String, reason: String },
    #[error("unknown server `{0}`")]
    UnknownServer(String),
}

impl McpError {
    /// What went wrong in codemode's words only: nothing the server wrote
    /// (stderr, error texts), nor its command line, which may carry secrets.
    pub fn brief(&self) -> String {
        match self {
            McpError::Spawn { .. } => "its command could not be started".into(),
            McpError::ConnectTimeout { after, .. } => format!(
                "did not finish starting within {}",
                humantime::format_duration(*after)
            ),
            McpError::Initialize { .. } => "failed during initialize".into(),
            McpError::Config { .. } => "its configuration is not usable".into(),
            McpError::Timeout { after, .. } => format!(
                "a request did not answer within {}",
                humantime::format_duration(*after)
            ),
            McpError::Closed { .. } => "the connection closed".into(),
            McpError::Protocol { .. } => "it broke the MCP protocol".into(),
            McpError::Rpc { code, .. } => format!("it answered with error {code}"),
            McpError::Backoff { .. } => "not restarted yet after failing".into(),
            McpError::Auth { status, .. } => {
                format!("it refused codemode's credentials (HTTP {status})")
            }
            McpError::UnknownServer(_) => "not configured".into(),
        }
    }

    /// The server the error is about.
    pub fn server(&self) -> &str {
        match self {
            McpError::Spawn { server, .. }
            | McpError::ConnectTimeout { server, .. }
            | McpError::Initialize { server, .. }
            | McpError::Config { server, .. }
            | McpError::Timeout { server, .. }
            | McpError::Closed { server, .. }
            | McpError::Protocol { server, .. }
            | McpError::Rpc { server, .. }
            | McpError::Backoff { server, .. }
            | McpError::Auth { server, .. }
            | McpError::UnknownServer(server) => server,
        }
    }
}

pub struct Registry {
    servers: BTreeMap<String, Arc<Server>>,
    /// Shared with every server: see [`Registry::hurry_shutdown`].
    hurry: CancellationToken,
}

struct Server {
    spec: ResolvedServer,
    /// The live session and its generation: a call that finds the connection
    /// closed retires that generation only, never a newer session.
    session: Mutex<Option<(u64, Session)>>,
    generation: std::sync::atomic::AtomicU64,
    stderr: Arc<StderrTail>,
    tools: Mutex<Option<Arc<Vec<Tool>>>>,
    restarts: std::sync::Mutex<Restarts>,
    hurry: CancellationToken,
}

/// Failed starts in a row, and when the next try may happen: a server that
/// keeps dying is retried with growing pauses, not on every call.
#[derive(Default)]
struct Restarts {
    failures: u32,
    not_before: Option<Instant>,
    last_error: Option<McpError>,
}

/// What `/health` reports of a server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ServerState {
    /// Not started yet: servers start on first use.
    Idle,
    Running,
    /// Exited since its last use; the next call starts it again.
    Exited,
    Failed {
        error: String,
    },
}

/// What the bridge needs to know of one tool before calling it.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    pub input_schema: Arc<JsonObject>,
    /// FastMCP wraps primitive results as `{"result": ...}` and says so in the
    /// output schema.
    pub fastmcp_wrapped: bool,
}

impl Registry {
    /// Builds the registry; nothing starts until a server is first used.
    pub fn new(servers: Vec<ResolvedServer>) -> Registry {
        let hurry = CancellationToken::new();
        let servers = servers
            .into_iter()
            .map(|spec| {
                let server = Server {
                    spec,
                    session: Mutex::new(None),
                    generation: Default::default(),
                    stderr: StderrTail::new(),
                    tools: Mutex::new(None),
                    restarts: Default::default(),
                    hurry: hurry.clone(),
                };
                (server.spec.name.clone(), Arc::new(server))
            })
            .collect();
        Registry { servers, hurry }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }

    fn server(&self, name: &str) -> Result<&Arc<Server>, McpError> {
        self.servers
            .get(name)
            .ok_or_else(|| McpError::UnknownServer(name.to_string()))
    }

    /// The server's settings as configured.
    pub fn spec(&self, server: &str) -> Result<&ResolvedServer, McpError> {
        Ok(&self.server(server)?.spec)
    }

    /// Every tool the server lists, across all pages, asked afresh.
    pub async fn list_tools(&self, server: &str) -> Result<Vec<Tool>, McpError> {
        let server = self.server(server)?;
        let (generation, peer) = server.peer().await?;
        let tools = server
            .bounded(generation, "tools/list", peer.list_all_tools())
            .await?;
        *server.tools.lock().await = Some(Arc::new(tools.clone()));
        Ok(tools)
    }

    /// What the bridge needs to know of a tool, from the server's tool list
    /// (listed once, then cached); `None` when the server has no such tool.
    pub async fn tool_info(&self, server: &str, tool: &str) -> Result<Option<ToolInfo>, McpError> {
        let cached = self.server(server)?.tools.lock().await.clone();
        let tools = match cached {
            Some(tools) => tools,
            None => Arc::new(self.list_tools(server).await?),
        };
        Ok(tools.iter().find(|t| t.name == tool).map(|t| ToolInfo {
            input_schema: Arc::clone(&t.input_schema),
            fastmcp_wrapped: t
                .output_schema
                .as_ref()
                .and_then(|s| s.get("x-fastmcp-wrap-result"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        }))
    }

    /// Each server's state, a failure with its full message (stderr tail
    /// included): for the operator.
    pub async fn states(&self) -> BTreeMap<String, ServerState> {
        self.states_with(McpError::to_string).await
    }

    /// Each server's state, a failure only with codemode's own short reason:
    /// for whoever else asks, since a server's stderr can quote its secrets.
    pub async fn redacted_states(&self) -> BTreeMap<String, ServerState> {
        self.states_with(McpError::brief).await
    }

    async fn states_with(
        &self,
        describe: fn(&McpError) -> String,
    ) -> BTreeMap<String, ServerState> {
        let mut states = BTreeMap::new();
        for (name, server) in &self.servers {
            let state = match server.session.lock().await.as_ref() {
                Some((_, session)) if !session.is_closed() => ServerState::Running,
                Some(_) => ServerState::Exited,
                None => match &server.restarts_lock().last_error {
                    Some(err) => ServerState::Failed {
                        error: describe(err),
                    },
                    None => ServerState::Idle,
                },
            };
            states.insert(name.clone(), state);
        }
        states
    }

    pub async fn call_tool(
        &self,
        server: &str,
        tool: &str,
        arguments: JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let server = self.server(server)?;
        let (generation, peer) = server.peer().await?;
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        server
            .bounded(generation, tool, peer.call_tool(params))
            .await
    }

    /// From now on stopping a stdio server kills it without its graces:
    /// `shutdown`, already waiting or still to come, ends at once. For a
    /// second Ctrl-C, whose sender wants the process gone, not tidy.
    pub fn hurry_shutdown(&self) {
        self.hurry.cancel();
    }

    /// Stops every running server (closing stdin, then signals), within a bound.
    pub async fn shutdown(&self) {
        let stops = self.servers.values().map(|server| async move {
            if let Some((_, session)) = server.session.lock().await.take() {
                let _ = session.cancel().await;
            }
        });
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, futures::future::join_all(stops)).await;
    }
}

impl Server {
    /// The live session's peer, starting the server if it is not running or has
    /// exited since it was last used.
    async fn peer(&self) -> Result<(u64, Peer<RoleClient>), McpError> {
        let mut slot = self.session.lock().await;
        if let Some((generation, session)) = slot.as_ref() {
            if !session.is_closed() {
                return Ok((*generation, session.peer().clone()));
            }
            tracing::warn!(server = %self.spec.name, "server exited{}; starting it again", self.stderr.summary());
            *slot = None;
        }
        {
            let restarts = self.restarts_lock();
            if let (Some(not_before), Some(err)) = (restarts.not_before, &restarts.last_error) {
                if Instant::now() < not_before {
                    return Err(McpError::Backoff {
                        server: self.spec.name.clone(),
                        reason: err.to_string(),
                    });
                }
            }
        }
        match connection::open(&self.spec, &self.stderr, &self.hurry).await {
            Ok(session) => {
                *self.restarts_lock() = Restarts::default();
                let peer = session.peer().clone();
                let generation = self
                    .generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                *slot = Some((generation, session));
                Ok((generation, peer))
            }
            Err(err) => {
                let mut restarts = self.restarts_lock();
                let pause = RESTART_BACKOFF_START
                    .saturating_mul(1 << restarts.failures.min(16))
                    .min(RESTART_BACKOFF_MAX);
                restarts.failures += 1;
                restarts.not_before = Some(Instant::now() + pause);
                restarts.last_error = Some(err.clone());
                Err(err)
            }
        }
    }

    fn restarts_lock(&self) -> std::sync::MutexGuard<'_, Restarts> {
        self.restarts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the session of `generation` if it is still the current one, so the
    /// next call starts the server afresh.
    async fn retire(&self, generation: u64) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            if let Some((_, session)) = slot.take() {
                tokio::spawn(async move {
                    let _ = session.cancel().await;
                });
            }
        }
    }

    async fn bounded<T>(
        &self,
        generation: u64,
        operation: &str,
        request: impl std::future::Future<Output = Result<T, rmcp::ServiceError>>,
    ) -> Result<T, McpError> {
        let server = self.spec.name.clone();
        match tokio::time::timeout(self.spec.call_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(rmcp::ServiceError::TransportSend(err)))
                if connection::refused_status(&err).is_some() =>
            {
                let url = match &self.spec.transport {
                    codemode_config::Transport::Http { url, .. } => url.to_string(),
                    codemode_config::Transport::Stdio { .. } => String::new(),
                };
                self.retire(generation).await;
                Err(McpError::Auth {
                    server,
                    status: connection::refused_status(&err).unwrap_or(401),
                    url,
                })
            }
            Ok(Err(rmcp::ServiceError::TransportClosed))
            | Ok(Err(rmcp::ServiceError::TransportSend(_))) => {
                self.retire(generation).await;
                self.stderr.settle(Duration::from_millis(300)).await;
                Err(McpError::Closed {
                    server,
                    stderr: self.stderr.summary(),
                })
            }
            Ok(Err(rmcp::ServiceError::McpError(data))) => Err(McpError::Rpc {
                server,
                code: data.code.0,
                message: data.message.to_string(),
            }),
            Ok(Err(err)) => Err(McpError::Protocol {
                server,
                reason: err.to_string(),
            }),
            Err(_) => Err(McpError::Timeout {
                server,
                operation: operation.to_string(),
                after: self.spec.call_timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brief_never_quotes_what_the_server_wrote() {
        let secret = "DB_PASSWORD=hunter2";
        let errors = [
            McpError::Initialize {
                server: "db".into(),
                reason: secret.into(),
                stderr: format!("; its stderr ended with: {secret}"),
            },
            McpError::ConnectTimeout {
                server: "db".into(),
                after: Duration::from_secs(30),
                stderr: format!("; its stderr ended with: {secret}"),
            },
            McpError::Closed {
                server: "db".into(),
                stderr: format!("; its stderr ended with: {secret}"),
            },
            McpError::Spawn {
                server: "db".into(),
                command: format!("db-server --{secret}"),
                reason: "not found".into(),
            },
            McpError::Protocol {
                server: "db".into(),
                reason: secret.into(),
            },
            McpError::Backoff {
                server: "db".into(),
                reason: secret.into(),
            },
        ];
        for err in errors {
            assert!(err.to_string().contains("hunter2"));
            assert!(!err.brief().contains("hunter2"), "{}", err.brief());
            assert!(!err.brief().is_empty());
        }
    }
}
