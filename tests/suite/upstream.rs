//! codemode as an MCP client of streamable HTTP servers: what it says about
//! itself, how it reaches servers of the newest protocol revision, and what
//! it says when a server wants credentials. The servers are rmcp's own, run
//! in the test on loopback; `codemode tools` connects to them.

use crate::common;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use common::{stderr_of, stdout_of, Workdir};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

const TOKEN: &str = "s3cret-for-tests";

/// A server with one tool, `ping`, that notes the name each client gives.
#[derive(Clone)]
struct Recorder {
    clients: Arc<Mutex<Vec<String>>>,
    newest_only: bool,
}

impl ServerHandler for Recorder {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.newest_only {
            Cow::Owned(vec![ProtocolVersion::V_2026_07_28])
        } else {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        if let Some(info) = context.client_info() {
            self.clients.lock().unwrap().push(info.name.clone());
        }
        let schema: JsonObject =
            serde_json::from_value(serde_json::json!({"type": "object"})).unwrap();
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "ping",
            "Answers pong.",
            schema,
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("pong")]).into())
    }
}

struct TestServer {
    url: String,
    clients: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

/// Serves a [`Recorder`] at `http://127.0.0.1:PORT/mcp`; with `token`, only
/// to requests that carry it as a bearer token (401 with a challenge else).
fn start(newest_only: bool, token: Option<&'static str>) -> TestServer {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clients = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        clients: Arc::clone(&clients),
        newest_only,
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let service: StreamableHttpService<Recorder, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(recorder.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let mut router = axum::Router::new().nest_service("/mcp", service);
    if let Some(token) = token {
        router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                use axum::response::IntoResponse;
                let wanted = format!("Bearer {token}");
                let presented = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                if presented == Some(wanted.as_str()) {
                    next.run(request).await
                } else {
                    (
                        http::StatusCode::UNAUTHORIZED,
                        [(http::header::WWW_AUTHENTICATE, "Bearer realm=\"test\"")],
                    )
                        .into_response()
                }
            },
        ));
    }
    runtime.spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    TestServer {
        url: format!("http://{addr}/mcp"),
        clients,
        _runtime: runtime,
    }
}

fn http_server(url: &str, extra: &str) -> String {
    format!("[servers.docs]\nurl = {url:?}\nconnect_timeout = \"10s\"\n{extra}")
}

#[test]
fn a_server_that_wants_a_token_is_named_with_the_header_to_set() {
    let server = start(false, Some(TOKEN));
    let work = Workdir::with_config(&http_server(&server.url, ""));
    let output = work.codemode().arg("tools").output().unwrap();
    let text = format!("{}{}", stdout_of(&output), stderr_of(&output));
    let line = text
        .lines()
        .find(|l| l.contains("server `docs`"))
        .unwrap_or_else(|| panic!("no line names the server: {text}"));
    assert!(line.contains("HTTP 401"), "{line}");
    assert!(
        line.contains("headers = { Authorization = \"Bearer ${TOKEN}\" }"),
        "{line}"
    );
    assert!(!line.contains("WorkerTransport"), "{line}");
}

#[test]
fn with_the_header_configured_a_server_that_wants_a_token_answers() {
    let server = start(false, Some(TOKEN));
    let config = http_server(
        &server.url,
        "headers = { Authorization = \"Bearer ${DOCS_TOKEN}\" }\n",
    );
    let work = Workdir::with_config(&config);
    let output = work
        .codemode()
        .arg("tools")
        .env("DOCS_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("ping"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn a_server_of_only_the_newest_protocol_revision_is_reached() {
    let server = start(true, None);
    let work = Workdir::with_config(&http_server(&server.url, ""));
    let output = work.codemode().arg("tools").output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("ping"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn servers_see_codemode_as_the_client() {
    let server = start(false, None);
    let work = Workdir::with_config(&http_server(&server.url, ""));
    let output = work.codemode().arg("tools").output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(*server.clients.lock().unwrap(), ["codemode"]);
}
