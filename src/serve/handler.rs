//! The MCP side of `serve`: the three tools, the module resource, and the
//! live output of a run as progress or log notifications.
// Logging is deprecated by SEP-2577 but is what handshake-era clients show
// as a server's live output; it is sent only to clients that still speak it.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest,
    CustomResult, Implementation, JsonObject, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ProgressToken, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ServerCapabilities, ServerConfig,
    SetLevelRequestParams, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};

use super::approval::ClientApprover;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::view::{self, Shape, View, START_GRACE};
use super::{sessions, Served, MODULE_URI};
use codemode_mcp::catalog::Catalog;
use codemode_mcp::discovery;
use codemode_mcp::index;
use codemode_run::{CellOutcome, Report, RunError};
use codemode_sandbox::{OutputSink, Stream};

/// Most text one notification carries: a script printing fast has its
/// lines batched, and a batch is cut here so no message grows unbounded.
const NOTIFICATION_BYTES: usize = 8 * 1024;

/// How long a run may be silent before a progress notification says it goes
/// on: clients end a request that hears nothing for a while (the TypeScript
/// SDK after 60 s by default) unless progress resets their clock.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// The longest API `get_api` sends whole; past it, an outline. A model asks
/// for one server's API to read it, and a 1,000-tool server's would fill
/// its context.
const API_TOKENS: usize = 12_000;

/// The most one `execute_python` result may take as JSON, its text and its
/// structured content together: the Python SDK's HTTP client refuses a
/// server-sent event over 1 MiB, and the JSON-RPC envelope and the event's
/// framing need room besides.
const RESULT_BYTES: usize = 1024 * 1024 - 32 * 1024;

/// Below this many bytes of each stream, a result still too large is made
/// to fit by leaving tool calls out instead.
const MIN_STREAM_BYTES: usize = 1024;

/// Tool calls the text of a result lists one a line; the structured content
/// has them all.
const TEXT_CALLS: usize = 20;

/// The MCP server of `codemode serve`; one per client session.
#[derive(Clone)]
pub struct CodemodeServer {
    served: Arc<Served>,
    /// The level a handshake-era client asked for with `logging/setLevel`.
    log_level: Arc<Mutex<Option<LoggingLevel>>>,
}

impl CodemodeServer {
    pub fn new(served: Arc<Served>) -> CodemodeServer {
        CodemodeServer {
            served,
            log_level: Arc::new(Mutex::new(None)),
        }
    }
}

/// The tools a client lists, built once.
pub fn tools(
    catalog: &Catalog,
    module: &bridge_gen::Module,
    shape: &Shape,
    starting: &[String],
    unavailable: &[String],
) -> Vec<Tool> {
    let default_s = shape.default_timeout.as_secs_f64();
    let max_s = shape.max_timeout.as_secs_f64();
    let example = catalog
        .servers
        .iter()
        .find_map(|s| s.tools.first().map(|t| (s, t)))
        .map(|(server, tool)| {
            let name = bridge_gen::tool_signature(&server.name, tool, bridge_gen::Detail::Name);
            let method = name.split_once('.').map(|(_, m)| m).unwrap_or(&name);
            let attr = module
                .server(&server.name)
                .map_or_else(|| server.name.clone(), |api| api.attr.clone());
            format!("`from mcp_tools import {attr}`, then `{attr}.{method}(...)`")
        })
        .unwrap_or_else(|| "`from mcp_tools import SERVER`, then `SERVER.TOOL(...)`".into());
    let preamble = format!(
        "Run Python 3 code in a sandbox; you get back what it prints. MCP tools are functions there: \
{example} with keyword arguments; results are dicts, lists or strings, and a failed call raises \
mcp_tools.ToolError. Do the whole job in one script: call tools, loop, filter, and print only what \
you need. Find tools with search_tools (in code: print(mcp_tools.search(\"words\"))); read exact \
signatures with get_api. No network but the tools. State persists: a result names its `session`; \
pass it back as `session` to run more code with the variables, imports and files of earlier calls \
(omit it to start afresh; an unused session ends after {}). Files the code writes under /workspace/out/ \
come back: images as images, text as resources, others listed. Time limit {} s a call unless timeout_s \
says otherwise (at most {}).\n\n",
        humantime::format_duration(shape.session_idle),
        seconds(default_s),
        seconds(max_s)
    );
    let note = view::missing_note(starting, unavailable).unwrap_or_default();
    let listed = if catalog.tool_count() == 0 && !note.is_empty() {
        "No MCP tools are listed yet.\n".to_string()
    } else {
        // Guessed until the tokenizer is loaded (`view` then builds it again):
        // loading takes seconds on a slow machine, while a client waits for
        // the tool list.
        let count = codemode_mcp::tokens::count_or_guess;
        let budget = shape
            .index_budget
            .saturating_sub(count(&preamble) + count(&note));
        index::index_counted(&catalog.servers, &module.attrs(), budget, count)
    };
    let mut description = preamble + &listed;
    if !note.is_empty() {
        if !description.ends_with('\n') {
            description.push('\n');
        }
        description.push_str(&note);
    }

    let execute = Tool::new(
        "execute_python",
        description,
        object(json!({
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "A Python 3 script; print the results."},
                "session": {"type": "string", "description": "The `session` of an earlier result: run in it, with what earlier code defined. Omit it to start a new session."},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": max_s, "description": "Time limit in seconds."},
            },
            "required": ["code"],
        })),
    )
    .with_raw_output_schema(Arc::new(object(report_schema())))
    .with_annotations(
        ToolAnnotations::with_title("Run Python with MCP tools")
            .read_only(false)
            .open_world(true),
    );
    let search = Tool::new(
        "search_tools",
        "Find tools by what they do. Returns Python signatures, best match first: detail \"summary\" \
gives `server.tool: summary` lines, \"name\" names only, \"full\" each def with type hints and docstring.",
        object(json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words for the task, or a tool name."},
                "detail": {"type": "string", "enum": ["name", "summary", "full"], "default": "summary"},
                "limit": {"type": "integer", "minimum": 1, "maximum": discovery::MAX_LIMIT, "default": discovery::DEFAULT_LIMIT},
            },
            "required": ["query"],
        })),
    )
    .with_annotations(ToolAnnotations::new().read_only(true).open_world(false));
    let get_api = Tool::new(
        "get_api",
        "The Python API of one server as mcp_tools defines it: method signatures with type hints and \
docstrings, and the TypedDicts they use.",
        object(json!({
            "type": "object",
            "properties": {"server": {"type": "string", "description": "The server's name, as in the index."}},
            "required": ["server"],
        })),
    )
    .with_annotations(ToolAnnotations::new().read_only(true).open_world(false));
    vec![execute, search, get_api]
}

/// The structured result of `execute_python`: `exec --json`'s report.
fn report_schema() -> Value {
    let nullable = |t: &str| json!({"type": [t, "null"]});
    json!({
        "type": "object",
        "properties": {
            "success": {"type": "boolean"},
            "exit_code": nullable("integer"),
            "stdout": {"type": "string"},
            "stderr": {"type": "string"},
            "timed_out": {"type": "boolean"},
            "truncated": {"type": "boolean"},
            "stdout_dropped_bytes": {"type": "integer", "minimum": 0},
            "stderr_dropped_bytes": {"type": "integer", "minimum": 0},
            "duration_ms": {"type": "integer"},
            "sandbox": {"type": "string"},
            "tool_calls": {"type": "array", "items": {"type": "object", "properties": {
                "server": {"type": "string"},
                "tool": {"type": "string"},
                "ok": {"type": "boolean"},
                "error": {"type": "string"},
                "duration_ms": {"type": "number"},
            }}},
            "tool_calls_dropped": {"type": "integer", "minimum": 0},
            "error": nullable("string"),
            "files": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "size": {"type": "integer", "minimum": 0},
                "media_type": {"type": "string"},
                "sha256": {"type": "string"},
            }}},
            "files_skipped": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "reason": {"type": "string"},
            }}},
            "files_dropped": {"type": "integer", "minimum": 0},
            "files_error": {"type": "string"},
            "session": nullable("string"),
        },
        "required": ["success", "exit_code", "stdout", "stderr", "timed_out", "truncated",
                     "duration_ms", "sandbox", "tool_calls", "error", "session"],
    })
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn seconds(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s:.1}")
    }
}

fn text_result(text: impl Into<String>, is_error: bool) -> CallToolResult {
    let content = vec![ContentBlock::text(text.into())];
    if is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    }
}

impl ServerHandler for CodemodeServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_resources()
            .enable_tools()
            // Servers start after `initialize` is answered; see `view`.
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("codemode", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "codemode runs Python that calls the user's MCP tools as functions. Write one \
                 script with execute_python instead of calling tools one by one; look tools up with \
                 search_tools and get_api. The resource codemode://mcp_tools.py is the whole API.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let view = self.served.views.settled_all(START_GRACE).await;
        Ok(ListToolsResult::with_all_items(view.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let view = self.served.views.current();
        view.tools.iter().find(|t| t.name == name).cloned()
    }

    /// From here on the session hears of each server that finishes starting,
    /// as a change of the tool list (the index in execute_python's
    /// description names its tools). Ends with the session.
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        let mut changes = self.served.views.subscribe();
        changes.mark_unchanged();
        let peer = context.peer;
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if peer.notify_tool_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "execute_python" => self.execute(&arguments, context).await,
            "search_tools" => self.search(&arguments).await,
            "get_api" => self.get_api(&arguments).await,
            other => {
                return Err(McpError::invalid_params(
                    format!(
                    "no tool `{other}`: this server has execute_python, search_tools and get_api"
                ),
                    None,
                ))
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let view = self.served.views.settled_all(START_GRACE).await;
        let resource = Resource::new(MODULE_URI, "mcp_tools.py")
            .with_title("mcp_tools.py: the Python API of every tool")
            .with_description(
                "The module code run by execute_python imports: one object per server, one method per tool.",
            )
            .with_mime_type("text/x-python")
            .with_size(view.module.text.len() as u64);
        Ok(ListResourcesResult::with_all_items(vec![resource]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != MODULE_URI {
            return Err(McpError::resource_not_found(
                format!("no resource {}; there is {MODULE_URI}", request.uri),
                None,
            ));
        }
        let view = self.served.views.settled_all(START_GRACE).await;
        let contents = ResourceContents::text(view.module.text.clone(), MODULE_URI)
            .with_mime_type("text/x-python");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = Some(request.level);
        Ok(())
    }

    /// Where rmcp puts a request it could not read as any method it knows,
    /// including one of its own methods with params that do not fit.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        Err(super::wire::unmatched_request(
            &request.method,
            request.params,
        ))
    }
}

impl CodemodeServer {
    async fn search(&self, arguments: &JsonObject) -> CallToolResult {
        let query = arguments.get("query").and_then(Value::as_str).unwrap_or("");
        let detail = match arguments.get("detail").and_then(Value::as_str) {
            None => bridge_gen::Detail::Summary,
            Some(text) => match discovery::parse_detail(text) {
                Ok(detail) => detail,
                Err(message) => return text_result(message, true),
            },
        };
        let limit = arguments
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(discovery::DEFAULT_LIMIT, |n| n as usize);
        let view = self.served.views.settled_all(START_GRACE).await;
        let mut text = discovery::search_text(&view.catalog, query, detail, limit);
        if !view.starting.is_empty() {
            text.push_str(&format!(
                "Not searched yet (still starting): {}\n",
                view.starting.join(", ")
            ));
        }
        if !view.unavailable.is_empty() {
            text.push_str(&format!(
                "Not searched (did not answer at startup): {}\n",
                view.unavailable.join("; ")
            ));
        }
        text_result(text, false)
    }

    async fn get_api(&self, arguments: &JsonObject) -> CallToolResult {
        let Some(server) = arguments.get("server").and_then(Value::as_str) else {
            return text_result("`server` (a server's name) is required", true);
        };
        let view = self.served.views.settled_all(START_GRACE).await;
        // The module attribute works as well as the configured name.
        let found = view
            .module
            .servers
            .iter()
            .find(|api| api.name == server || api.attr == server)
            .map(|api| (api.name.as_str(), api.api.as_str()));
        match found {
            Some((name, api)) if codemode_mcp::tokens::count(api) > API_TOKENS => {
                text_result(api_outline(&view, name, api), false)
            }
            Some((_, api)) => text_result(api, false),
            None if view.starting.iter().any(|s| s == server) => text_result(
                format!("server `{server}` is still starting; ask again in a moment"),
                true,
            ),
            None => {
                let known: Vec<&str> = view
                    .catalog
                    .servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                text_result(
                    format!(
                        "no server `{server}`; the servers are: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                    true,
                )
            }
        }
    }
}

/// Instead of an API too long to read at once: each method's summary, as
/// many as fit, and how to get the signatures wanted.
fn api_outline(view: &View, name: &str, api: &str) -> String {
    let tools = view
        .catalog
        .servers
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.tools.as_slice())
        .unwrap_or_default();
    let import = api.lines().next().unwrap_or_default();
    let mut text = format!(
        "{import}\n# Its whole API is about {} tokens, too long to send at once. Its {} methods \
             are below; get the signatures you need with search_tools(query, detail=\"full\"), or \
             read the resource {MODULE_URI}.\n\n",
        codemode_mcp::tokens::count(api),
        tools.len()
    );
    let mut used = codemode_mcp::tokens::count(&text);
    for (i, tool) in tools.iter().enumerate() {
        let line = bridge_gen::tool_signature(name, tool, bridge_gen::Detail::Summary) + "\n";
        used += codemode_mcp::tokens::count(&line);
        if used > API_TOKENS {
            text.push_str(&format!("… and {} more\n", tools.len() - i));
            break;
        }
        text.push_str(&line);
    }
    text
}

impl CodemodeServer {
    async fn execute(
        &self,
        arguments: &JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let Some(code) = arguments.get("code").and_then(Value::as_str) else {
            return text_result("`code` (the Python script, as a string) is required", true);
        };
        let base = &self.served.options;
        let mut limits = base.limits.clone();
        match arguments.get("timeout_s") {
            None | Some(Value::Null) => {}
            Some(value) => match value.as_f64() {
                Some(s) if s > 0.0 && s.is_finite() => {
                    let asked = std::time::Duration::from_secs_f64(s);
                    if asked > self.served.max_timeout {
                        return text_result(
                            format!(
                                "timeout_s may be at most {}",
                                seconds(self.served.max_timeout.as_secs_f64())
                            ),
                            true,
                        );
                    }
                    limits.timeout = asked;
                }
                _ => return text_result("timeout_s must be a positive number of seconds", true),
            },
        }
        let timeout = limits.timeout;
        let wanted = match arguments.get("session") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() => match self.served.sessions.get(id) {
                Some(entry) => Some((id.clone(), entry)),
                None => {
                    return text_result(sessions::unknown(id, self.served.sessions.idle()), true)
                }
            },
            Some(_) => {
                return text_result(
                    "`session` must be the `session` string of an earlier result",
                    true,
                )
            }
        };
        let output_bytes = limits.output_bytes;

        // Output and heartbeats flow from here on: waiting for a slot or for
        // a server to start can take long too.
        let (lines, received) = mpsc::unbounded_channel::<(Stream, Vec<u8>)>();
        let sink = Arc::new(OutputSink::ends(
            self.served.max_output,
            output_bytes,
            Some(Box::new(move |stream, bytes: &[u8]| {
                // The run may outlive the forwarder only when the client is gone.
                let _ = lines.send((stream, bytes.to_vec()));
            })),
        ));
        let forwarder = self
            .live_target(&context)
            .map(|target| tokio::spawn(forward(received, context.peer.clone(), target)));

        let outcome = self
            .run_cell(code, timeout, wanted, Arc::clone(&sink), &context)
            .await;
        let max_output = self.served.max_output;
        let result = match outcome {
            Err(refused) => refused,
            // A lost session's report says so in its `error`; what ran until
            // then is worth more to the client than the message alone.
            Ok((session, Ok(cell))) => {
                let lost = matches!(cell, CellOutcome::SessionLost(_));
                let mut report = match cell {
                    CellOutcome::Done(report) | CellOutcome::SessionLost(report) => report,
                };
                if !lost {
                    self.served.sessions.touch(&session);
                }
                if lost {
                    self.served.sessions.remove(&session);
                    if let Some(error) = &mut report.error {
                        error.push_str(". Omit `session` to start a new one");
                    }
                }
                // Apart from the text and JSON, which keep their bound.
                let files = super::files::blocks(&report);
                let mut result = report_result(
                    report,
                    Some(session.as_str()).filter(|_| !lost),
                    &sink,
                    max_output,
                );
                result.content.extend(files);
                result
            }
            Ok((_, Err(err))) => {
                tracing::info!("execute_python: could not run: {err}");
                text_result(format!("codemode could not run the code: {err}"), true)
            }
        };
        // Dropping the sink closes the channel; waiting for the forwarder
        // puts every output notification before the result.
        drop(sink);
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        result
    }

    /// Waits for a slot, then runs `code` as the next cell of the `wanted`
    /// session, or of a new one: started once the servers `code` names that
    /// are still starting are up (each no longer than its own start may
    /// take), with the stub module of every server up by then.
    async fn run_cell(
        &self,
        code: &str,
        timeout: std::time::Duration,
        wanted: Option<(String, sessions::Entry)>,
        sink: Arc<OutputSink>,
        context: &RequestContext<RoleServer>,
    ) -> Result<(String, Result<CellOutcome, RunError>), CallToolResult> {
        // Waiting ends with the caller's cancellation too.
        let _permit = tokio::select! {
            permit = self.served.slots.acquire() => match permit {
                Ok(permit) => permit,
                Err(_) => return Err(text_result("codemode is shutting down", true)),
            },
            _ = context.ct.cancelled() => return Err(text_result("cancelled before it started", true)),
        };
        let (id, entry) = match wanted {
            Some(found) => found,
            None => {
                let views = &self.served.views;
                let (named, longest) = views.named_and_starting(code);
                let ready = async {
                    views.settled_all(START_GRACE).await;
                    views.settled(&named, longest).await
                };
                let view = tokio::select! {
                    view = ready => view,
                    _ = context.ct.cancelled() => return Err(text_result("cancelled before it started", true)),
                };
                let opening = async {
                    if let Some(mut warm) = self.served.warm.take(&view.module.text).await {
                        if warm.arm().await.is_ok() {
                            return Ok(warm);
                        }
                    }
                    self.served
                        .runner
                        .open_session(&view.module.text, &self.served.session_options)
                        .await
                };
                let session = tokio::select! {
                    session = opening => session,
                    _ = context.ct.cancelled() => return Err(text_result("cancelled before it started", true)),
                };
                let session = match session {
                    Ok(session) => session,
                    Err(err) => return Ok((String::new(), Err(err))),
                };
                let id = match session_id() {
                    Ok(id) => id,
                    Err(err) => return Ok((String::new(), Err(err))),
                };
                let entry = self.served.sessions.insert(id.clone(), session);
                (id, entry)
            }
        };
        let mut session = tokio::select! {
            session = entry.session.lock() => session,
            _ = context.ct.cancelled() => return Err(text_result("cancelled before it started", true)),
        };
        // Approval questions go to whoever made this call.
        let modern = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        session.ask_with(Arc::new(ClientApprover::new(context.peer.clone(), modern)));
        let cell = tokio::select! {
            cell = session.execute(code, timeout, sink) => cell,
            // The cell cannot be told apart from its session: both go.
            _ = context.ct.cancelled() => {
                drop(session);
                self.served.sessions.remove(&id);
                return Err(text_result("cancelled: the cell and its session were ended", true));
            }
        };
        Ok((id, Ok(cell)))
    }

    /// Where live output goes: progress notifications when the client gave a
    /// progress token; else log messages when the client takes them at info
    /// level (asked for in the request, with `logging/setLevel`, or, on a
    /// handshake-era session, by not saying otherwise); else nowhere.
    fn live_target(&self, context: &RequestContext<RoleServer>) -> Option<Target> {
        if let Some(token) = context.meta.get_progress_token() {
            return Some(Target::Progress(token));
        }
        let asked = context
            .meta
            .log_level()
            .or(*self.log_level.lock().unwrap_or_else(|e| e.into_inner()));
        let legacy = context
            .protocol_version()
            .is_none_or(|v| v.as_str() < ProtocolVersion::V_2026_07_28.as_str());
        let wanted = match asked {
            Some(level) => rank(level) <= rank(LoggingLevel::Info),
            None => legacy,
        };
        wanted.then_some(Target::Log)
    }
}

/// The result a client gets: the report as structured content, and text a
/// person or a model reads (the output, the tool calls, how it ended) that
/// repeats only the output. Each stream holds at most `keep` bytes, less
/// (and fewer tool calls) if that is what it takes to fit `RESULT_BYTES`.
fn report_result(
    mut report: Report,
    session: Option<&str>,
    sink: &OutputSink,
    keep: usize,
) -> CallToolResult {
    let mut keep = keep;
    loop {
        let result = rendered(&report, session);
        let size = serde_json::to_vec(&result).map_or(usize::MAX, |json| json.len());
        if size <= RESULT_BYTES {
            tracing::info!("execute_python: {}", status(&report));
            return result;
        }
        if keep > MIN_STREAM_BYTES {
            keep /= 2;
            let captured = sink.captured_within(keep);
            report.stdout = captured.stdout;
            report.stderr = captured.stderr;
            report.stdout_dropped_bytes = captured.stdout_dropped;
            report.stderr_dropped_bytes = captured.stderr_dropped;
            report.truncated |= captured.truncated;
        } else if !report.tool_calls.is_empty() {
            let kept = report.tool_calls.len() / 2;
            report.tool_calls_dropped += (report.tool_calls.len() - kept) as u64;
            report.tool_calls.truncate(kept);
        } else {
            // Only short fields are left, far under the bound.
            return result;
        }
    }
}

fn rendered(report: &Report, session: Option<&str>) -> CallToolResult {
    let mut text = report.stdout.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !report.stderr.is_empty() {
        text.push_str("--- stderr ---\n");
        text.push_str(&report.stderr);
        if !report.stderr.ends_with('\n') {
            text.push('\n');
        }
    }
    if !report.tool_calls.is_empty() {
        text.push_str("--- tool calls ---\n");
        for call in report.tool_calls.iter().take(TEXT_CALLS) {
            let how = match (call.ok, call.error) {
                (true, _) => "ok".to_string(),
                (false, kind) => format!("failed ({})", kind.unwrap_or("error")),
            };
            text.push_str(&format!(
                "{}.{}: {how}{}, {:.0} ms\n",
                call.server,
                call.tool,
                call.approval.note(),
                call.duration_ms
            ));
        }
        let more =
            (report.tool_calls.len().saturating_sub(TEXT_CALLS)) as u64 + report.tool_calls_dropped;
        if more > 0 {
            text.push_str(&format!(
                "… and {}\n",
                codemode_text::plural(more as usize, "more call")
            ));
        }
    }
    if let Some(id) = session {
        text.push_str(&format!("[session {id}]\n"));
    }
    text.push_str(&format!("[{}]", status(report)));
    let mut result = text_result(text, !report.success);
    let mut structured = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut structured {
        fields.insert(
            "session".into(),
            session.map_or(Value::Null, |id| json!(id)),
        );
    }
    result.structured_content = Some(structured);
    result
}

/// A new session's id: 128 random bits, since any client of this serve that
/// knows an id can run code in its session.
fn session_id() -> Result<String, RunError> {
    codemode_run::random_hex(16)
}

/// How a run ended, on one line: `exit code 0, 12 ms, 3 tool calls`.
fn status(report: &Report) -> String {
    let mut status = match report.exit_code {
        Some(code) => format!("exit code {code}"),
        None => "no exit code".to_string(),
    };
    if let Some(error) = &report.error {
        status = format!("{error}; {status}");
    }
    let calls = report.tool_calls.len() as u64 + report.tool_calls_dropped;
    status.push_str(&format!(
        ", {} ms, {}",
        report.duration_ms,
        codemode_text::plural(calls as usize, "tool call")
    ));
    let failed = report.tool_calls.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        status.push_str(&format!(" ({failed} failed)"));
    }
    for (name, dropped) in [
        ("stdout", report.stdout_dropped_bytes),
        ("stderr", report.stderr_dropped_bytes),
    ] {
        if dropped > 0 {
            status.push_str(&format!(", {dropped} bytes of {name} cut"));
        }
    }
    status
}

#[derive(Clone)]
enum Target {
    Progress(ProgressToken),
    Log,
}

fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// Sends a run's output to the client a line at a time as it arrives; what
/// arrived together goes in one notification. Ends when the run's sink is
/// dropped, after sending what is left of unfinished lines.
async fn forward(
    mut received: mpsc::UnboundedReceiver<(Stream, Vec<u8>)>,
    peer: Peer<RoleServer>,
    target: Target,
) {
    let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    // The progress value: lines sent, and one for each heartbeat.
    let mut progress = 0u64;
    let started = tokio::time::Instant::now();
    let mut last_sent = started;
    let mut open = true;
    while open {
        let mut batch: Vec<(Stream, String)> = Vec::new();
        let next = match target {
            Target::Progress(_) => {
                tokio::time::timeout_at(last_sent + HEARTBEAT, received.recv()).await
            }
            // Log messages reset no client's request timeout.
            Target::Log => Ok(received.recv().await),
        };
        match next {
            Ok(Some(chunk)) => take_lines(chunk, &mut partial, &mut batch),
            Ok(None) => open = false,
            Err(_) => {
                progress += 1;
                let beat = format!("still running ({} s)", started.elapsed().as_secs());
                if heartbeat(&peer, &target, beat, progress).await.is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
                continue;
            }
        }
        while let Ok(chunk) = received.try_recv() {
            take_lines(chunk, &mut partial, &mut batch);
        }
        if !open {
            for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
                if !partial[i].is_empty() {
                    let text = String::from_utf8_lossy(&partial[i]).into_owned();
                    batch.push((stream, text));
                }
            }
        }
        for group in group_lines(batch) {
            progress += group.1.lines().count().max(1) as u64;
            if send(&peer, &target, group, progress).await.is_err() {
                // The client is gone; the run ends with its cancellation.
                return;
            }
            last_sent = tokio::time::Instant::now();
        }
    }
}

/// Moves the complete lines of `chunk` into `batch`, keeping the unfinished
/// rest of each stream in `partial`.
fn take_lines(
    (stream, bytes): (Stream, Vec<u8>),
    partial: &mut [Vec<u8>; 2],
    batch: &mut Vec<(Stream, String)>,
) {
    let buffer = &mut partial[stream as usize];
    buffer.extend_from_slice(&bytes);
    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        batch.push((stream, text));
    }
    // A very long line without a newline is sent in pieces rather than held.
    if buffer.len() > NOTIFICATION_BYTES {
        let text = String::from_utf8_lossy(buffer).into_owned();
        buffer.clear();
        batch.push((stream, text));
    }
}

/// Consecutive lines of one stream joined, each group at most
/// `NOTIFICATION_BYTES`.
fn group_lines(batch: Vec<(Stream, String)>) -> Vec<(Stream, String)> {
    let mut groups: Vec<(Stream, String)> = Vec::new();
    for (stream, line) in batch {
        match groups.last_mut() {
            Some((s, text)) if *s == stream && text.len() + line.len() < NOTIFICATION_BYTES => {
                text.push('\n');
                text.push_str(&line);
            }
            _ => groups.push((stream, line)),
        }
    }
    groups
}

async fn send(
    peer: &Peer<RoleServer>,
    target: &Target,
    (stream, text): (Stream, String),
    progress: u64,
) -> Result<(), rmcp::ServiceError> {
    match target {
        Target::Progress(token) => {
            let message = match stream {
                Stream::Stdout => text,
                Stream::Stderr => prefix_lines("stderr: ", &text),
            };
            peer.notify_progress(
                ProgressNotificationParam::new(token.clone(), progress as f64)
                    .with_message(message),
            )
            .await
        }
        Target::Log => {
            let (level, logger) = match stream {
                Stream::Stdout => (LoggingLevel::Info, "stdout"),
                Stream::Stderr => (LoggingLevel::Warning, "stderr"),
            };
            peer.notify_logging_message(
                LoggingMessageNotificationParam::new(level, Value::String(text))
                    .with_logger(logger),
            )
            .await
        }
    }
}

/// A progress notification that says only that the run goes on.
async fn heartbeat(
    peer: &Peer<RoleServer>,
    target: &Target,
    message: String,
    progress: u64,
) -> Result<(), rmcp::ServiceError> {
    match target {
        Target::Progress(token) => {
            peer.notify_progress(
                ProgressNotificationParam::new(token.clone(), progress as f64)
                    .with_message(message),
            )
            .await
        }
        Target::Log => Ok(()),
    }
}

fn prefix_lines(prefix: &str, text: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_newlines_and_the_rest_waits() {
        let mut partial = [Vec::new(), Vec::new()];
        let mut batch = Vec::new();
        take_lines(
            (Stream::Stdout, b"one\ntw".to_vec()),
            &mut partial,
            &mut batch,
        );
        take_lines(
            (Stream::Stderr, b"oops\n".to_vec()),
            &mut partial,
            &mut batch,
        );
        take_lines(
            (Stream::Stdout, b"o\nthree".to_vec()),
            &mut partial,
            &mut batch,
        );
        let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["one", "oops", "two"]);
        assert_eq!(partial[0], b"three");
    }

    #[test]
    fn consecutive_lines_of_a_stream_share_a_notification() {
        let groups = group_lines(vec![
            (Stream::Stdout, "a".into()),
            (Stream::Stdout, "b".into()),
            (Stream::Stderr, "c".into()),
            (Stream::Stdout, "d".into()),
        ]);
        let texts: Vec<&str> = groups.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["a\nb", "c", "d"]);
    }

    fn report(stdout: &str, stderr: &str) -> Report {
        Report {
            success: false,
            exit_code: Some(1),
            stdout: stdout.into(),
            stderr: stderr.into(),
            timed_out: false,
            truncated: false,
            stdout_dropped_bytes: 0,
            stderr_dropped_bytes: 0,
            duration_ms: 12,
            sandbox: "native".into(),
            tool_calls: vec![],
            tool_calls_dropped: 0,
            error: None,
            ..Report::default()
        }
    }

    fn call(ok: bool) -> codemode_mcp::bridge::CallRecord {
        codemode_mcp::bridge::CallRecord {
            server: "news".into(),
            tool: "search".into(),
            ok,
            approval: codemode_mcp::bridge::Approval::NotRequired,
            error: (!ok).then_some("tool_error"),
            duration_ms: 3.4,
        }
    }

    fn text_of(result: &CallToolResult) -> String {
        result.content[0].as_text().unwrap().text.clone()
    }

    #[test]
    fn the_text_result_is_the_output_then_how_the_run_ended() {
        let sink = OutputSink::ends(100, 100, None);
        let result = report_result(report("hi", "Traceback\n"), None, &sink, 100);
        assert_eq!(
            text_of(&result),
            "hi\n--- stderr ---\nTraceback\n[exit code 1, 12 ms, 0 tool calls]"
        );
        assert_eq!(result.is_error, Some(true));
        assert_eq!(result.structured_content.unwrap()["exit_code"], 1);
    }

    #[test]
    fn the_text_result_lists_tool_calls_one_a_line() {
        let sink = OutputSink::ends(100, 100, None);
        let mut report = report("", "");
        report.tool_calls = vec![call(true), call(false)];
        let text = text_of(&report_result(report, None, &sink, 100));
        assert_eq!(
            text,
            "--- tool calls ---\nnews.search: ok, 3 ms\nnews.search: failed (tool_error), 3 ms\n\
             [exit code 1, 12 ms, 2 tool calls (1 failed)]"
        );
    }

    #[test]
    fn the_text_result_lists_only_the_first_calls_of_many() {
        let sink = OutputSink::ends(100, 100, None);
        let mut report = report("", "");
        report.tool_calls = vec![call(true); 25];
        report.tool_calls_dropped = 5;
        let text = text_of(&report_result(report, None, &sink, 100));
        assert_eq!(
            text.matches("news.search: ok").count(),
            TEXT_CALLS,
            "{text}"
        );
        assert!(
            text.ends_with("… and 10 more calls\n[exit code 1, 12 ms, 30 tool calls]"),
            "{text}"
        );
    }

    #[test]
    fn a_result_too_large_for_one_message_is_cut_to_fit() {
        // Control characters take six bytes each as JSON.
        let keep = 4 << 20;
        let sink = OutputSink::ends(keep, keep, None);
        let noise = vec![1u8; 3 << 20];
        sink.push(Stream::Stdout, &noise);
        sink.push(Stream::Stderr, &noise);
        let captured = sink.captured();
        let mut report = report(&captured.stdout, &captured.stderr);
        report.tool_calls = vec![call(true); 1000];
        let result = report_result(report, None, &sink, keep);
        let size = serde_json::to_vec(&result).unwrap().len();
        assert!(size <= RESULT_BYTES, "{size}");
        let structured = result.structured_content.unwrap();
        let dropped = structured["stdout_dropped_bytes"].as_u64().unwrap();
        let kept = structured["stdout"].as_str().unwrap();
        assert!(kept.contains(&format!("[{dropped} bytes cut from the middle]")));
        assert!(dropped > 2 << 20, "{dropped}");
        assert_eq!(structured["tool_calls"].as_array().unwrap().len(), 1000);
    }

    #[test]
    fn the_structured_result_matches_its_schema() {
        let sink = OutputSink::ends(4, 100, None);
        sink.push(Stream::Stdout, b"0123456789");
        let captured = sink.captured();
        let mut report = report(&captured.stdout, "");
        report.stdout_dropped_bytes = captured.stdout_dropped;
        report.tool_calls = vec![call(false)];
        report.tool_calls_dropped = 2;
        let structured = report_result(report, None, &sink, 4)
            .structured_content
            .unwrap();
        let schema = report_schema();
        let properties = schema["properties"].as_object().unwrap();
        for key in structured.as_object().unwrap().keys() {
            assert!(properties.contains_key(key), "{key} is not in the schema");
        }
        for key in schema["required"].as_array().unwrap() {
            assert!(structured.get(key.as_str().unwrap()).is_some(), "{key}");
        }
    }
}
