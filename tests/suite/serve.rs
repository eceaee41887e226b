//! `codemode serve` as MCP clients meet it: the official Python `mcp` SDK
//! client over stdio and streamable HTTP, and the raw JSON-RPC wire where the
//! test is about the wire itself (what stdout carries, what tools/list costs
//! in tokens).
//!
//! Tests that execute code use the native sandbox.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    codemode_bin, examples_config, mcp_python, python_client, repo, serve_config, BridgeProcess,
    ServeProcess, StdioMcp, Workdir,
};
use serde_json::{json, Value};

/// The stdio target: `codemode --config CONFIG serve ARGS...` as JSON.
fn stdio_target(work: &Workdir, args: &[&str]) -> String {
    let mut all = vec![
        "--config".to_string(),
        work.config().display().to_string(),
        "serve".to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    serde_json::to_string(&all).unwrap()
}

/// The raw tools/list answer once no server is still starting: a big server
/// can take longer to list its tools than tools/list waits for it.
fn tools_list_once_started(mcp: &mut StdioMcp) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let raw = mcp.request_raw("tools/list", json!({}));
        if !raw.contains("Still starting") || Instant::now() > deadline {
            return raw;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn serve_stdio(work: &Workdir, args: &[&str]) -> StdioMcp {
    let mut command = Command::new(codemode_bin());
    command
        .current_dir(work.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .arg("serve")
        .args(args);
    StdioMcp::start(command)
}

// ---------------------------------------------------------------------------
// Discovery: no code runs.
// ---------------------------------------------------------------------------

/// What a Python client finds in `tools/list` over stdio: each tool's
/// description and schemas, by name.
fn listed_tools() -> Option<Value> {
    let python = mcp_python()?;
    let work = Workdir::with_config(&serve_config());
    Some(python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        tools = (await c.list_tools()).tools
        done({t.name: {"description": t.description, "output": t.output_schema, "input": t.input_schema} for t in tools})
"#,
        &[],
    ))
}

#[test]
fn a_python_client_lists_three_tools() {
    let Some(result) = listed_tools() else { return };
    let names: Vec<&str> = result
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["execute_python", "get_api", "search_tools"]);
}

#[test]
fn the_execute_python_description_indexes_every_example_tool_without_a_schema() {
    let Some(result) = listed_tools() else { return };
    let index = result["execute_python"]["description"].as_str().unwrap();
    for tool in [
        "news.fetch_latest: Fetch the most recent news articles",
        "news.search:",
        "news.get_article:",
        "summarizer.summarize:",
        "summarizer.keywords:",
    ] {
        assert!(index.contains(tool), "{tool} missing from:\n{index}");
    }
    assert!(index.contains("from mcp_tools import news"), "{index}");
    // Never a schema in the description.
    assert!(!index.contains("\"type\""), "{index}");
}

#[test]
fn execute_python_takes_code_and_gives_the_report_as_structured_output() {
    let Some(result) = listed_tools() else { return };
    let output = &result["execute_python"]["output"];
    for field in [
        "success",
        "exit_code",
        "stdout",
        "stderr",
        "timed_out",
        "tool_calls",
    ] {
        assert!(
            output["properties"].get(field).is_some(),
            "{field}: {output}"
        );
    }
    assert_eq!(
        result["execute_python"]["input"]["required"],
        json!(["code"])
    );
}

#[test]
fn search_tools_answers_as_python_signatures_at_each_detail() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        out = {}
        r = await c.call_tool("search_tools", {"query": "summarize a text"})
        out["summary"] = text(r)
        r = await c.call_tool("search_tools", {"query": "fetch_latest", "detail": "full"})
        out["full"] = text(r)
        r = await c.call_tool("search_tools", {"query": "news", "detail": "name", "limit": 2})
        out["names"] = text(r)
        done(out)
"#,
        &[],
    );
    let summary = result["summary"].as_str().unwrap();
    assert!(summary.starts_with("summarizer.summarize: "), "{summary}");
    let full = result["full"].as_str().unwrap();
    assert!(full.starts_with("# news.fetch_latest\n"), "{full}");
    assert!(full.contains("def fetch_latest(\n"), "{full}");
    assert!(full.contains("limit: Optional[int] = None"), "{full}");
    let names = result["names"].as_str().unwrap();
    assert_eq!(names.lines().count(), 3, "{names}");
    assert!(
        names.lines().nth(2).unwrap().contains("1 more match"),
        "{names}"
    );
}

#[test]
fn get_api_answers_with_one_servers_python_api() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        r = await c.call_tool("get_api", {"server": "news"})
        done({"api": text(r), "api_error": r.is_error})
"#,
        &[],
    );
    let api = result["api"].as_str().unwrap();
    assert_eq!(result["api_error"], false);
    assert!(api.contains("`from mcp_tools import news`"), "{api}");
    for method in ["def fetch_latest(", "def get_article(", "def search("] {
        assert!(api.contains(method), "{method} missing:\n{api}");
    }
    assert!(api.contains("class FetchLatestResult(TypedDict)"), "{api}");
    assert!(!api.contains("summarize"), "{api}");
}

#[test]
fn get_api_of_an_unknown_server_is_an_error_naming_the_servers() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        r = await c.call_tool("get_api", {"server": "weather"})
        done({"missing": text(r), "missing_error": r.is_error})
"#,
        &[],
    );
    assert_eq!(result["missing_error"], true);
    assert!(result["missing"]
        .as_str()
        .unwrap()
        .contains("news, summarizer"));
}

#[test]
fn the_stub_module_is_a_resource() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        listed = (await c.list_resources()).resources
        read = await c.read_resource("codemode://mcp_tools.py")
        done({"uris": [str(r.uri) for r in listed], "mime": read.contents[0].mime_type, "text": read.contents[0].text})
"#,
        &[],
    );
    assert_eq!(result["uris"], json!(["codemode://mcp_tools.py"]));
    assert_eq!(result["mime"], "text/x-python");
    let generated = work
        .codemode()
        .args(["gen-bridge", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(
        result["text"].as_str().unwrap(),
        String::from_utf8_lossy(&generated.stdout),
        "the resource is the module gen-bridge writes"
    );
}

#[test]
fn stdout_carries_only_the_protocol_and_logs_go_to_stderr() {
    let work = Workdir::with_config(&serve_config());
    let mut command = Command::new(codemode_bin());
    let output = command
        .current_dir(work.path())
        .args(["-v", "--config"])
        .arg(work.config())
        .arg("serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            for line in [
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
                json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search_tools", "arguments": {"query": "news"}}}),
            ] {
                writeln!(stdin, "{line}")?;
            }
            std::thread::sleep(Duration::from_secs(2));
            drop(stdin);
            child.wait_with_output()
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Requests are answered concurrently, so in any order; notifications
    // (the tool list changing as servers start) come between.
    let mut ids: Vec<u64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|_| panic!("not JSON-RPC on stdout: {l:?}"))
        })
        .filter(|message| message.get("method").is_none())
        .map(|message| message["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3], "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("codemode serve: MCP on stdio"), "{stderr}");
    assert!(
        output.status.success(),
        "closing stdin ends the server cleanly: {stderr}"
    );
}

#[test]
fn bad_arguments_are_errors_the_model_can_read() {
    let work = Workdir::with_config(&serve_config());
    let mut mcp = serve_stdio(&work, &["--max-timeout", "1m"]);
    let (text, is_error, _) = mcp.call("execute_python", json!({}));
    assert!(is_error && text.contains("`code`"), "{text}");
    let (text, is_error, _) = mcp.call(
        "execute_python",
        json!({"code": "print(1)", "timeout_s": 3600}),
    );
    assert!(is_error && text.contains("at most 60"), "{text}");
    let (text, is_error, _) = mcp.call(
        "search_tools",
        json!({"query": "x", "detail": "everything"}),
    );
    assert!(
        is_error && text.contains("`name`, `summary` or `full`"),
        "{text}"
    );
    let line = mcp.request_raw(
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert!(
        line.contains("\"error\"") && line.contains("no tool `no_such_tool`"),
        "{line}"
    );
}

#[test]
fn serve_leaves_its_own_entry_in_a_client_config_out() {
    let dir = tempfile::tempdir().unwrap();
    // The entries name another file than the one served: were they wrapped
    // after all, the test would fail on one extra codemode instead of
    // starting codemode after codemode.
    let inner = dir.path().join("inner.json");
    std::fs::write(
        &inner,
        r#"{"mcpServers": {"none": {"type": "sse", "url": "http://127.0.0.1:9"}}}"#,
    )
    .unwrap();
    let alias = dir.path().join("mcp-gateway");
    std::os::unix::fs::symlink(codemode_bin(), &alias).unwrap();
    let file = dir.path().join("claude_desktop_config.json");
    let client_config = json!({"mcpServers": {
        "codemode": {"command": codemode_bin(), "args": ["--mcp-json", inner, "serve"]},
        "gateway": {"command": alias, "args": ["--mcp-json", inner, "serve"]},
        "summarizer": {"command": common::example_bin("summarizer-server")},
    }});
    std::fs::write(&file, client_config.to_string()).unwrap();
    let mut command = Command::new(codemode_bin());
    command
        .current_dir(dir.path())
        .env_remove("CODEMODE_LOG")
        .env_remove("CODEMODE_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-codemode-test")
        .arg("--mcp-json")
        .arg(&file)
        .args(["serve", "--sandbox", "native"]);
    let mut mcp = StdioMcp::start(command);
    let tools = mcp.request("tools/list", json!({}));
    let index = tools["tools"][0]["description"].as_str().unwrap();
    assert!(index.contains("summarizer.summarize"), "{index}");
    assert!(
        !index.contains("codemode.") && !index.contains("gateway."),
        "{index}"
    );
    let started = common::descendants_of(mcp.child.id());
    assert!(
        started
            .iter()
            .any(|(_, cmd)| cmd.contains("summarizer-server")),
        "{started:?}"
    );
    let bin = codemode_bin().display().to_string();
    // A wrapped entry would be a codemode serving `inner`; serve's own
    // processes (a sandbox being started, before it execs) name `file`.
    let inner = inner.display().to_string();
    let again: Vec<_> = started
        .iter()
        .filter(|(_, cmd)| cmd.starts_with(&bin) || cmd.starts_with(&alias.display().to_string()))
        .filter(|(_, cmd)| cmd.contains(&inner))
        .collect();
    assert!(again.is_empty(), "codemode started itself: {again:?}");
}

#[test]
fn a_server_that_fails_to_start_is_left_out_and_named() {
    let config = format!(
        "{}\n[servers.broken]\ncommand = \"/nonexistent/mcp-server\"\n",
        serve_config()
    );
    let work = Workdir::with_config(&config);
    let mut mcp = serve_stdio(&work, &[]);
    let tools = mcp.request("tools/list", json!({}));
    let index = tools["tools"][0]["description"].as_str().unwrap();
    assert!(index.contains("news.fetch_latest"), "{index}");
    assert!(!index.contains("broken."), "{index}");
    assert!(
        index.contains("Failed to start, so left out: broken (its command could not be started)"),
        "{index}"
    );
    let (text, _, _) = mcp.call("search_tools", json!({"query": "anything at all"}));
    assert!(
        text.contains("did not answer at startup") && text.contains("broken"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Servers that start slowly or never: `initialize` does not wait for them.
// ---------------------------------------------------------------------------

/// The examples and `NAME`, a misbehaving server in MODE given 30 s to start.
fn with_slow_server(name: &str, mode: &str) -> String {
    format!(
        "{}\n[servers.{name}]\ncommand = {:?}\nargs = [{:?}, {mode:?}]\nconnect_timeout = \"30s\"\n",
        serve_config(),
        common::python(),
        repo().join("tests/fixtures/misbehaving_server.py")
    )
}

#[test]
fn initialize_and_tools_list_answer_at_once_while_a_server_hangs_starting() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&with_slow_server("stuck", "no-init"));
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    started = time.monotonic()
    async with client() as c:
        tools = (await c.list_tools()).tools
        elapsed = time.monotonic() - started
        description = [t.description for t in tools if t.name == "execute_python"][0]
        done({"elapsed": elapsed, "description": description})
"#,
        &[],
    );
    let elapsed = result["elapsed"].as_f64().unwrap();
    assert!(elapsed < 2.0, "took {elapsed} s: {result}");
    let description = result["description"].as_str().unwrap();
    assert!(
        description.contains("Still starting") && description.contains(": stuck."),
        "{description}"
    );
    assert!(description.contains("news.fetch_latest"), "{description}");
}

#[test]
fn code_runs_on_a_started_server_while_another_is_still_starting() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&with_slow_server("stuck", "no-init"));
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        &format!(
            r#"
SCRIPT = {NEWS_SCRIPT:?}
async def main():
    async with client() as c:
        started = time.monotonic()
        r = await c.call_tool("execute_python", {{"code": SCRIPT}})
        done({{"elapsed": time.monotonic() - started, "report": r.structured_content}})
"#
        ),
        &[],
    );
    assert_eq!(result["report"]["success"], true, "{result}");
    // Far below the stuck server's 30 s connect timeout.
    let elapsed = result["elapsed"].as_f64().unwrap();
    assert!(elapsed < 15.0, "took {elapsed} s: {result}");
}

#[test]
fn the_tool_list_changes_when_a_server_finishes_starting() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&with_slow_server("late", "slow-init"));
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
changes = []
async def on_message(message):
    if getattr(message, "method", None) == "notifications/tools/list_changed":
        changes.append(time.monotonic())
async def described(c):
    return [t.description for t in (await c.list_tools()).tools if t.name == "execute_python"][0]
async def main():
    async with client(message_handler=on_message) as c:
        before = await described(c)
        after, seen = before, 0
        # Each server that comes up changes the list; the slow one comes last.
        with anyio.fail_after(20):
            while "late.echo" not in after:
                while len(changes) == seen:
                    await anyio.sleep(0.05)
                seen = len(changes)
                after = await described(c)
        done({"before": before, "after": after})
"#,
        &[("CODEMODE_TEST_INIT_DELAY", "3")],
    );
    let before = result["before"].as_str().unwrap();
    let after = result["after"].as_str().unwrap();
    assert!(
        before.contains(": late.") && !before.contains("late.echo"),
        "{before}"
    );
    assert!(
        after.contains("late.echo") && !after.contains("Still starting"),
        "{after}"
    );
}

#[test]
fn code_that_names_a_starting_server_waits_for_it() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&with_slow_server("late", "slow-init"));
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        r = await c.call_tool("execute_python", {"code": "from mcp_tools import late\nprint(late.echo(text='up'))"})
        done({"report": r.structured_content})
"#,
        &[("CODEMODE_TEST_INIT_DELAY", "3")],
    );
    assert_eq!(result["report"]["success"], true, "{result}");
    assert_eq!(result["report"]["stdout"], "up\n", "{result}");
}

// ---------------------------------------------------------------------------
// Streamable HTTP.
// ---------------------------------------------------------------------------

const HTTP_CLIENT: &str = r#"
async def main():
    out = {}
    for mode in ["auto", "legacy"]:
        async with client(mode) as c:
            tools = (await c.list_tools()).tools
            read = await c.read_resource("codemode://mcp_tools.py")
            r = await c.call_tool("search_tools", {"query": "keywords"})
            out[mode] = {"tools": sorted(t.name for t in tools), "module": len(read.contents[0].text), "search": text(r)}
    done(out)
"#;

#[test]
fn a_python_client_over_http_sees_the_same_tools_and_resource() {
    let Some(python) = mcp_python() else { return };
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let result = python_client(&python, &server.url, HTTP_CLIENT, &[]);
    for mode in ["auto", "legacy"] {
        assert_eq!(
            result[mode]["tools"],
            json!(["execute_python", "get_api", "search_tools"]),
            "{mode}"
        );
        assert!(result[mode]["module"].as_u64().unwrap() > 1000);
        assert!(result[mode]["search"]
            .as_str()
            .unwrap()
            .starts_with("summarizer.keywords:"));
    }
}

/// One raw POST of a JSON value; the status code and the whole answer.
fn raw_post(addr: &str, headers: &[(&str, &str)], body: &Value) -> (u16, String) {
    raw_http(addr, "POST", headers, body.to_string().as_bytes())
}

/// One raw HTTP request to `/mcp`; the status code and the whole answer
/// (status line, headers and body).
fn raw_http(addr: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut head = format!(
        "{method} /mcp HTTP/1.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (key, value) in headers {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The JSON-RPC message of an answer: the whole body, or the last `data:`
/// event of a stream.
fn answer_message(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .rfind(|l| l.starts_with('{'))
        .unwrap_or(body);
    serde_json::from_str(json).unwrap_or_else(|_| panic!("no JSON-RPC message in {answer:?}"))
}

/// A header's value in a raw answer.
fn answer_header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split_once("\r\n\r\n").map_or(answer, |(h, _)| h);
    head.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// An initialized HTTP session; its id.
fn http_session(addr: &str) -> String {
    let (status, answer) = raw_post(addr, &[], &initialize());
    assert_eq!(status, 200, "{answer}");
    let session = answer_header(&answer, "mcp-session-id")
        .unwrap_or_else(|| panic!("no session: {answer}"))
        .to_string();
    let (status, answer) = raw_post(
        addr,
        &session_headers(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(status, 202, "{answer}");
    session
}

fn session_headers(session: &str) -> [(&str, &str); 2] {
    [
        ("Mcp-Session-Id", session),
        ("MCP-Protocol-Version", "2025-06-18"),
    ]
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
}

#[test]
fn with_a_token_http_clients_must_present_it() {
    let token = "serve-test-token-5f1c9a";
    let server = ServeProcess::start(&serve_config(), &[], &[("CODEMODE_SERVE_TOKEN", token)]);
    let addr = server.addr();
    let (status, text) = raw_post(&addr, &[], &initialize());
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("CODEMODE_SERVE_TOKEN"), "{text}");
    let (status, _) = raw_post(&addr, &[("Authorization", "Bearer wrong")], &initialize());
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, text) = raw_post(&addr, &[("Authorization", &bearer)], &initialize());
    assert_eq!(status, 200, "{text}");
    assert!(
        !server.stderr().contains(token),
        "the token must not be logged"
    );

    let Some(python) = mcp_python() else { return };
    let result = python_client(
        &python,
        &server.url,
        HTTP_CLIENT,
        &[("CODEMODE_TEST_TOKEN", token)],
    );
    assert_eq!(result["auto"]["tools"].as_array().unwrap().len(), 3);
}

#[test]
fn a_foreign_host_is_refused() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let addr = server.addr();
    let (status, text) = raw_post(&addr, &[("Host", "attacker.example")], &initialize());
    assert!(
        (400..500).contains(&status),
        "a rebinding Host must be refused: {text}"
    );
    let (status, text) = raw_post(&addr, &[], &initialize());
    assert_eq!(status, 200, "{text}");
}

#[test]
fn a_foreign_browser_origin_is_refused() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let addr = server.addr();
    let (status, text) = raw_post(
        &addr,
        &[("Origin", "https://attacker.example")],
        &initialize(),
    );
    assert!(
        (400..500).contains(&status),
        "a web page must not drive the server: {text}"
    );
    let (status, text) = raw_post(&addr, &[], &initialize());
    assert_eq!(status, 200, "{text}");
}

#[test]
fn a_host_named_with_allow_host_is_let_in() {
    let server = ServeProcess::start(&serve_config(), &["--allow-host", "codemode.lan"], &[]);
    let (status, text) = raw_post(&server.addr(), &[("Host", "codemode.lan")], &initialize());
    assert_eq!(status, 200, "{text}");
}

#[test]
fn an_origin_named_with_allow_origin_is_let_in() {
    let server = ServeProcess::start(
        &serve_config(),
        &["--allow-origin", "http://localhost:6274"],
        &[],
    );
    let (status, text) = raw_post(
        &server.addr(),
        &[("Origin", "http://localhost:6274")],
        &initialize(),
    );
    assert_eq!(status, 200, "{text}");
}

#[test]
fn an_address_reachable_from_other_machines_needs_a_token() {
    let work = Workdir::with_config(&serve_config());
    let output = work
        .codemode()
        .env_remove("CODEMODE_SERVE_TOKEN")
        .args(["serve", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CODEMODE_SERVE_TOKEN"), "{stderr}");
}

// ---------------------------------------------------------------------------
// `--json`: one line on stdout saying where serve listens, over HTTP only.
// ---------------------------------------------------------------------------

#[test]
fn with_json_serve_over_http_prints_one_listening_line_on_stdout_and_nothing_more() {
    let mut server = ServeProcess::start(&serve_config(), &[], &[]);
    let (status, text) = raw_post(&server.addr(), &[], &initialize());
    assert_eq!(status, 200, "{text}");
    common::send_signal(server.child.id(), "TERM");
    let status = common::wait_with_timeout(&mut server.child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}: {}", server.stderr());
    assert_eq!(
        server.stdout_at_exit(),
        "",
        "stdout after the listening line"
    );
}

#[test]
fn the_listening_line_has_the_event_and_the_url() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let mut fields: Vec<&str> = server
        .listening
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["event", "url"], "{}", server.listening);
    assert_eq!(server.listening["event"], "listening");
}

#[test]
fn the_listening_line_gives_the_url_clients_connect_to() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let port = server
        .url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .and_then(|port| port.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("not http://127.0.0.1:PORT/mcp: {}", server.url));
    assert_ne!(port, 0, "the bound port, not the one asked for");
    let (status, text) = raw_post(&server.addr(), &[], &initialize());
    assert_eq!(status, 200, "{text}");
    assert!(answer_message(&text)["result"].is_object(), "{text}");
}

#[test]
fn with_json_the_human_line_stays_on_stderr() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let said = format!(
        "codemode serve on {} (2 servers behind it, starting)",
        server.url
    );
    // Written before the listening line, and read from its own pipe.
    let said_it = || server.stderr().lines().any(|line| line == said);
    let waiting = std::time::Instant::now();
    while !said_it() && waiting.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(said_it(), "{}", server.stderr());
}

#[test]
fn json_without_http_is_a_usage_error_and_prints_nothing() {
    let work = Workdir::with_config(&serve_config());
    let output = work
        .codemode()
        .args(["serve", "--json"])
        .write_stdin("")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
    assert_eq!(
        stderr.trim(),
        "codemode: error: --json needs --http: it prints the address serve listens on, \
         and over stdio stdout carries the MCP messages and nothing else"
    );
}

// ---------------------------------------------------------------------------
// JSON-RPC errors on the wire.
// ---------------------------------------------------------------------------

/// Requests of methods MCP defines, with params that do not fit them.
const INVALID_PARAMS: [&str; 5] = [
    r#"{"jsonrpc": "2.0", "id": 101, "method": "tools/call", "params": {}}"#,
    r#"{"jsonrpc": "2.0", "id": 102, "method": "tools/call"}"#,
    r#"{"jsonrpc": "2.0", "id": 103, "method": "tools/call", "params": {"name": "search_tools", "arguments": "{\"query\": \"news\"}"}}"#,
    r#"{"jsonrpc": "2.0", "id": 104, "method": "resources/read", "params": {}}"#,
    r#"{"jsonrpc": "2.0", "id": 105, "method": "logging/setLevel", "params": {"level": "loud"}}"#,
];

fn assert_invalid_params(request: &str, answer: &Value) {
    let id = serde_json::from_str::<Value>(request).unwrap()["id"].clone();
    assert_eq!(answer["id"], id, "{request} -> {answer}");
    assert_eq!(answer["error"]["code"], -32602, "{request} -> {answer}");
}

#[test]
fn bad_params_are_invalid_params_on_stdio() {
    let work = Workdir::with_config(&serve_config());
    let mut mcp = serve_stdio(&work, &[]);
    for request in INVALID_PARAMS {
        let answer = mcp.answer_to(request);
        assert_invalid_params(request, &answer);
    }
    let answer = mcp.answer_to(r#"{"jsonrpc": "2.0", "id": 106, "method": "tools/frobnicate"}"#);
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
}

#[test]
fn bad_params_are_invalid_params_over_http() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let addr = server.addr();
    let session = http_session(&addr);
    for request in INVALID_PARAMS {
        let (status, answer) = raw_http(
            &addr,
            "POST",
            &session_headers(&session),
            request.as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        assert_invalid_params(request, &answer_message(&answer));
    }
}

#[test]
fn an_initialize_with_bad_params_is_invalid_params_on_stdio() {
    use std::io::{BufRead, Write};
    let work = Workdir::with_config(&serve_config());
    let mut child = Command::new(codemode_bin())
        .current_dir(work.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .arg("serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut answer = |line: &Value| {
        writeln!(stdin, "{line}").unwrap();
        let mut text = String::new();
        stdout.read_line(&mut text).unwrap();
        serde_json::from_str::<Value>(&text).unwrap_or_else(|_| panic!("{text:?}"))
    };
    let bad =
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}});
    let refused = answer(&bad);
    assert_eq!(refused["id"], 1, "{refused}");
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let mut good = initialize();
    good["id"] = json!(2);
    let accepted = answer(&good);
    assert_eq!(accepted["id"], 2, "{accepted}");
    assert!(accepted["result"]["serverInfo"].is_object(), "{accepted}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_initialize_with_bad_params_is_invalid_params_over_http() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let bad =
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}});
    let (status, answer) = raw_post(&server.addr(), &[], &bad);
    assert_eq!(status, 400, "{answer}");
    let message = answer_message(&answer);
    assert_eq!(message["id"], 1, "{answer}");
    assert_eq!(message["error"]["code"], -32602, "{answer}");
}

#[test]
fn an_unparseable_line_on_stdio_is_a_parse_error_and_the_session_goes_on() {
    let work = Workdir::with_config(&serve_config());
    let mut mcp = serve_stdio(&work, &[]);
    let answer = mcp.answer_to(r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list""#);
    assert_eq!(answer["id"], Value::Null, "{answer}");
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    let tools = mcp.request("tools/list", json!({}));
    assert_eq!(tools["tools"].as_array().unwrap().len(), 3);
}

#[test]
fn an_unparseable_http_body_is_a_400_parse_error() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let (status, answer) = raw_http(
        &server.addr(),
        "POST",
        &[],
        b"{\"jsonrpc\": \"2.0\", \"id\": 1,",
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer_header(&answer, "content-type").is_some_and(|t| t.starts_with("application/json")),
        "{answer}"
    );
    let message = answer_message(&answer);
    assert_eq!(message["error"]["code"], -32700, "{answer}");
    assert_eq!(message["id"], Value::Null, "{answer}");
}

#[test]
fn http_bodies_that_are_not_one_json_rpc_message_are_400_invalid_requests() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let mut version_1 = initialize();
    version_1["jsonrpc"] = json!("1.0");
    let mut null_id = initialize();
    null_id["id"] = Value::Null;
    for body in [version_1, null_id, json!([initialize()])] {
        let (status, answer) = raw_post(&server.addr(), &[], &body);
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(
            answer_message(&answer)["error"]["code"],
            -32600,
            "{body} -> {answer}"
        );
    }
}

#[test]
fn deleting_an_unknown_session_is_404() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let (status, answer) = raw_http(
        &server.addr(),
        "DELETE",
        &session_headers("no-such-session"),
        b"",
    );
    assert_eq!(status, 404, "{answer}");
}

#[test]
fn deleting_a_session_ends_it_and_deleting_it_again_is_404() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let addr = server.addr();
    let session = http_session(&addr);
    let (status, answer) = raw_http(&addr, "DELETE", &session_headers(&session), b"");
    assert!(status == 200 || status == 204, "{answer}");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, answer) = raw_post(&addr, &session_headers(&session), &list);
    assert_eq!(status, 404, "the session ended: {answer}");
    let (status, answer) = raw_http(&addr, "DELETE", &session_headers(&session), b"");
    assert_eq!(status, 404, "{answer}");
}

#[test]
fn the_python_client_closes_its_http_session_without_a_warning() {
    let Some(python) = mcp_python() else { return };
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let (mut command, _dir) = common::python_client_command(
        &python,
        &server.url,
        r#"
async def main():
    async with client() as c:
        await c.list_tools()
    done({})
"#,
        &[],
    );
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("Session termination failed"), "{stderr}");
}

#[test]
fn same_origin_requests_to_a_loopback_bind_are_accepted() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let addr = server.addr();
    let port = addr.rsplit(':').next().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let authority = format!("{host}:{port}");
        let origin = format!("http://{authority}");
        let (status, answer) = raw_post(
            &addr,
            &[("Host", &authority), ("Origin", &origin)],
            &initialize(),
        );
        assert_eq!(status, 200, "{origin}: {answer}");
    }
}

#[test]
fn another_name_on_the_same_port_is_a_foreign_origin() {
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let addr = server.addr();
    let port = addr.rsplit(':').next().unwrap();
    // What a DNS-rebinding page sends: its own name, this server's port.
    let origin = format!("http://attacker.example:{port}");
    let (status, answer) = raw_post(&addr, &[("Origin", &origin)], &initialize());
    assert_eq!(status, 403, "{answer}");
}

// ---------------------------------------------------------------------------
// Token figures and one-call discovery at scale.
// ---------------------------------------------------------------------------

fn tokens(text: &str) -> usize {
    use std::sync::OnceLock;
    static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().unwrap())
        .encode_with_special_tokens(text)
        .len()
}

fn many_tools_config(n: usize) -> String {
    format!(
        "[servers.crm]\ncommand = {:?}\nargs = [{:?}, \"{n}\"]\n\n[sandbox]\nbackend = \"native\"\n",
        common::python(),
        repo().join("tests/fixtures/many_tools_server.py")
    )
}

/// Tokens of a server's own `tools/list` answer, as a client would read it.
fn direct_tokens(command: &str, args: &[String]) -> (usize, usize) {
    let mut cmd = Command::new(command);
    cmd.args(args);
    let mut mcp = StdioMcp::start(cmd);
    let line = mcp.request_raw("tools/list", json!({}));
    let tools = serde_json::from_str::<Value>(&line).unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .len();
    (tokens(&line), tools)
}

fn serve_tokens(config: &str) -> usize {
    let work = Workdir::with_config(config);
    let mut mcp = serve_stdio(&work, &[]);
    tokens(&tools_list_once_started(&mut mcp))
}

#[test]
fn tools_list_stays_small_however_many_tools_are_wrapped() {
    let mut rows = Vec::new();
    let (news, news_tools) =
        direct_tokens(common::example_bin("news-server").to_str().unwrap(), &[]);
    let (summarizer, summarizer_tools) = direct_tokens(
        common::example_bin("summarizer-server").to_str().unwrap(),
        &[],
    );
    rows.push((
        "examples (news + summarizer)".to_string(),
        news_tools + summarizer_tools,
        news + summarizer,
        serve_tokens(&serve_config()),
    ));
    for n in [10, 100, 1000] {
        let fixture = repo().join("tests/fixtures/many_tools_server.py");
        let (direct, tools) = direct_tokens(
            &common::python(),
            &[fixture.display().to_string(), n.to_string()],
        );
        assert_eq!(tools, n);
        rows.push((
            format!("generated, {n} tools"),
            n,
            direct,
            serve_tokens(&many_tools_config(n)),
        ));
    }

    println!("\ntools/list tokens (o200k_base), whole JSON-RPC answer:");
    println!(
        "{:<30} {:>6} {:>12} {:>14} {:>8}",
        "wrapped", "tools", "directly", "codemode serve", "ratio"
    );
    for (label, tools, direct, served) in &rows {
        println!(
            "{label:<30} {tools:>6} {direct:>12} {served:>14} {:>7.1}x",
            *direct as f64 / *served as f64
        );
    }
    let (_, _, direct_1000, served_1000) = rows.last().unwrap();
    assert!(
        *served_1000 < 1500,
        "codemode's tools/list at 1,000 tools: {served_1000} tokens"
    );
    assert!(
        *direct_1000 > 100_000,
        "the fixture should be realistic: {direct_1000}"
    );
    for (label, _, _, served) in &rows {
        assert!(*served < 1500, "{label}: {served}");
    }
}

#[test]
fn search_tools_finds_any_of_a_thousand_tools_in_one_call() {
    let work = Workdir::with_config(&many_tools_config(1000));
    let mut mcp = serve_stdio(&work, &[]);
    let listed: Value = serde_json::from_str(&tools_list_once_started(&mut mcp)).unwrap();
    let listed = listed["result"].clone();
    let index = listed["tools"][0]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(index.contains("1000 tools"), "{index}");
    assert!(index.contains("crm (1000 tools) about "), "{index}");

    // Every tool, by its name: first in the answer.
    let fixture = repo().join("tests/fixtures/many_tools_server.py");
    let mut direct = Command::new(common::python());
    direct.arg(&fixture).arg("1000");
    let names: Vec<String> = serde_json::from_str::<Value>(
        &StdioMcp::start(direct).request_raw("tools/list", json!({})),
    )
    .unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let started = Instant::now();
    for name in &names {
        let (text, is_error, _) = mcp.call(
            "search_tools",
            json!({"query": name, "detail": "name", "limit": 3}),
        );
        assert!(!is_error);
        assert_eq!(
            text.lines().next(),
            Some(format!("crm.{name}").as_str()),
            "query {name}:\n{text}"
        );
    }
    println!(
        "search_tools found each of {} tools first by name, {:.2} ms a call",
        names.len(),
        started.elapsed().as_secs_f64() * 1000.0 / names.len() as f64
    );

    // And by what they do, in a model's words.
    for (query, expected) in [
        ("export invoice items as CSV", "crm.export_invoice_item"),
        ("restore an archived webhook", "crm.restore_webhook"),
        ("who changed this deployment", "crm.history_of_deployment"),
        ("assign ticket to a team", "crm.assign_ticket"),
    ] {
        let (text, _, _) = mcp.call(
            "search_tools",
            json!({"query": query, "detail": "summary", "limit": 5}),
        );
        assert!(
            text.lines()
                .take(6)
                .any(|l| l.starts_with(&format!("{expected}:"))),
            "{query:?} should find {expected}:\n{text}"
        );
    }
    let (text, _, _) = mcp.call(
        "search_tools",
        json!({"query": "create_invoice", "detail": "full", "limit": 1}),
    );
    assert!(
        text.contains("def create_invoice(") && text.contains("workspace_id: str"),
        "{text}"
    );

    // A thousand methods' API would flood the context: get_api outlines it.
    let (text, is_error, _) = mcp.call("get_api", json!({"server": "crm"}));
    assert!(!is_error);
    assert!(
        text.contains("too long to send at once"),
        "{}",
        &text[..500]
    );
    assert!(
        text.contains("crm.list_issue: List issues"),
        "{}",
        &text[..500]
    );
    assert!(tokens(&text) <= 12_500, "{}", tokens(&text));
}

// ---------------------------------------------------------------------------
// Discovery inside the sandbox: the bridge's /search.
// ---------------------------------------------------------------------------

#[test]
fn mcp_tools_search_in_a_script_gives_what_search_tools_gives() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let dir = bridge.work.path();
    let output = common::codemode()
        .current_dir(dir)
        .arg("--config")
        .arg(bridge.work.config())
        .args(["gen-bridge", "-o", "mcp_tools.py"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let code = r#"
import mcp_tools
print(mcp_tools.search("latest news"), end="")
print("=====")
print(mcp_tools.search("summarize", detail="full", limit=1), end="")
print("=====")
try:
    mcp_tools.search("x", detail="everything")
except mcp_tools.ToolError as e:
    print(e.kind)
"#;
    let (status, stdout, stderr) = common::run_python(dir, code, &bridge.url_unix(), &bridge.token);
    assert_eq!(status, 0, "{stderr}");
    let parts: Vec<&str> = stdout.split("=====\n").collect();
    assert!(parts[0].starts_with("news.fetch_latest: "), "{stdout}");
    assert!(parts[1].contains("def summarize("), "{stdout}");
    assert_eq!(parts[2].trim(), "invalid_arguments");

    let work = Workdir::with_config(&examples_config());
    let mut mcp = serve_stdio(&work, &[]);
    let (served, _, _) = mcp.call("search_tools", json!({"query": "latest news"}));
    assert_eq!(parts[0], served, "the same matches, the same text");

    let (status, _, stderr) = common::run_python(
        dir,
        "import mcp_tools; mcp_tools.search('news')",
        &bridge.url_unix(),
        "wrong",
    );
    assert_ne!(status, 0);
    assert!(stderr.contains("unauthorized"), "{stderr}");
}

#[test]
fn the_search_endpoint_lists_only_what_the_grant_allows() {
    let bridge = BridgeProcess::start(&examples_config(), &["--allow", "news.search"]);
    let (status, body) = common::http(
        &bridge.url_tcp(),
        "GET",
        "/search?q=&detail=name",
        Some(&bridge.token),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["result"], "news.search\n");
    let (status, _) = common::http(&bridge.url_tcp(), "GET", "/search?q=news", None, b"");
    assert_eq!(status, 401);
    let (status, body) = common::http(
        &bridge.url_tcp(),
        "GET",
        "/search?q=news&limit=lots",
        Some(&bridge.token),
        b"",
    );
    assert_eq!(status, 400, "{body}");
}

// ---------------------------------------------------------------------------
// Execution (the native sandbox).
// ---------------------------------------------------------------------------

const NEWS_SCRIPT: &str = r#"
from mcp_tools import news, summarizer
articles = news.fetch_latest(category="technology", limit=2)["articles"]
for a in articles:
    s = summarizer.summarize(text=a["body"], max_sentences=1)["summary"]
    print(a["title"], "|", len(s) > 0)
"#;

#[test]
fn code_calls_a_wrapped_server_over_stdio() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        &format!(
            r#"
SCRIPT = {NEWS_SCRIPT:?}
async def main():
    async with client() as c:
        r = await c.call_tool("execute_python", {{"code": SCRIPT}})
        done({{"error": r.is_error, "text": text(r), "report": r.structured_content}})
"#
        ),
        &[],
    );
    let report = &result["report"];
    assert_eq!(result["error"], false, "{result}");
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["sandbox"], "native");
    assert_eq!(
        report["tool_calls"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    assert_eq!(
        report["stdout"].as_str().unwrap().lines().count(),
        2,
        "{report}"
    );
    let text = result["text"].as_str().unwrap();
    assert!(text.contains("| True\n"), "{text}");
    assert!(
        text.contains("[exit code 0,") && text.contains("3 tool calls]"),
        "{text}"
    );
}

#[test]
fn printed_lines_reach_the_client_while_the_code_runs() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
SCRIPT = "import sys, time\nprint('first')\nprint('oops', file=sys.stderr)\ntime.sleep(2)\nprint('second')\n"
async def main():
    seen = []
    async def on_progress(progress, total, message):
        seen.append({"at": time.monotonic(), "message": message, "progress": progress})
    async with client() as c:
        r = await c.call_tool("execute_python", {"code": SCRIPT}, progress_callback=on_progress)
        ended = time.monotonic()
        done({"seen": [dict(s, before_end=ended - s["at"]) for s in seen], "error": r.is_error})
"#,
        &[],
    );
    let seen = result["seen"].as_array().unwrap();
    let messages: Vec<&str> = seen
        .iter()
        .map(|s| s["message"].as_str().unwrap())
        .collect();
    // stdout and stderr are read apart, so only each stream's own order is fixed.
    let at = |m: &str| messages.iter().position(|x| *x == m);
    assert!(at("stderr: oops").is_some(), "{result}");
    assert!(at("first").unwrap() < at("second").unwrap(), "{result}");
    assert_eq!(messages.len(), 3, "{result}");
    assert!(
        seen[at("first").unwrap()]["before_end"].as_f64().unwrap() > 1.0,
        "the first line arrived while the code ran: {result}"
    );
    let progress: Vec<f64> = seen
        .iter()
        .map(|s| s["progress"].as_f64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {progress:?}"
    );
}

#[test]
fn a_silent_run_sends_progress_at_least_every_15_seconds() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    seen = []
    async def on_progress(progress, total, message):
        seen.append({"at": time.monotonic(), "message": message, "progress": progress})
    async with client() as c:
        started = time.monotonic()
        r = await c.call_tool("execute_python", {"code": "import time\ntime.sleep(35)", "timeout_s": 60}, progress_callback=on_progress)
        done({"seen": [dict(s, after=s["at"] - started) for s in seen], "error": r.is_error})
"#,
        &[],
    );
    assert_eq!(result["error"], false, "{result}");
    let seen = result["seen"].as_array().unwrap();
    assert!(seen.len() >= 2, "{result}");
    for beat in seen {
        assert!(
            beat["message"]
                .as_str()
                .unwrap()
                .starts_with("still running"),
            "{result}"
        );
    }
    let first = seen[0]["after"].as_f64().unwrap();
    assert!(first < 17.0, "the first came after {first} s: {result}");
}

#[test]
fn without_a_progress_token_lines_come_as_log_messages() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
logs = []
async def on_log(params):
    logs.append({"level": params.level, "logger": params.logger, "data": params.data})
async def main():
    async with client(logging_callback=on_log) as c:
        r = await c.call_tool("execute_python", {"code": "print('hello')"})
        await anyio.sleep(0.2)
        done({"logs": logs, "error": r.is_error})
"#,
        &[],
    );
    assert_eq!(
        result["logs"],
        json!([{"level": "info", "logger": "stdout", "data": "hello"}]),
        "{result}"
    );
}

#[test]
fn a_run_past_its_time_limit_is_stopped_and_says_so() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        t0 = time.monotonic()
        r = await c.call_tool("execute_python", {"code": "import time\nprint('waiting')\ntime.sleep(30)", "timeout_s": 1.5})
        done({"error": r.is_error, "report": r.structured_content, "text": text(r), "took": time.monotonic() - t0})
"#,
        &[],
    );
    assert_eq!(result["error"], true);
    assert_eq!(result["report"]["timed_out"], true, "{result}");
    assert_eq!(result["report"]["stdout"], "waiting\n");
    assert!(
        result["text"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s 500ms"),
        "{result}"
    );
    assert!(result["took"].as_f64().unwrap() < 10.0, "{result}");
}

/// Cancels a slow run once it has printed, then times a quick one. With
/// one run at a time, the quick one is fast only if the cancel killed the
/// slow one and freed its slot.
const CANCEL_CLIENT: &str = r#"
SLOW = "import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('never')"
async def main():
    async with client(MODE) as c:
        started = anyio.Event()
        async def on_progress(progress, total, message):
            if message and "started" in message:
                started.set()
        async with anyio.create_task_group() as tg:
            async def slow():
                await c.call_tool("execute_python", {"code": SLOW}, progress_callback=on_progress)
            tg.start_soon(slow)
            with anyio.fail_after(30):
                await started.wait()
            tg.cancel_scope.cancel()
        t0 = time.monotonic()
        r = await c.call_tool("execute_python", {"code": "print('after')"})
        done({"after": text(r), "took": time.monotonic() - t0})
"#;

#[test]
fn a_cancelled_call_kills_its_run() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let body = format!("MODE = 'legacy'\n{CANCEL_CLIENT}");
    let result = python_client(
        &python,
        &stdio_target(&work, &["--max-concurrent", "1"]),
        &body,
        &[],
    );
    assert!(
        result["after"].as_str().unwrap().starts_with("after\n"),
        "{result}"
    );
    assert!(
        result["took"].as_f64().unwrap() < 15.0,
        "the slow run was not killed: {result}"
    );
}

#[test]
fn several_runs_go_at_once() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = python_client(
        &python,
        &stdio_target(&work, &[]),
        r#"
async def main():
    async with client() as c:
        outputs = {}
        async def one(i):
            r = await c.call_tool("execute_python", {"code": f"import time\ntime.sleep(2)\nprint({i})"})
            outputs[i] = text(r).splitlines()[0]
        t0 = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(one, i)
        done({"outputs": outputs, "took": time.monotonic() - t0})
"#,
        &[],
    );
    assert_eq!(result["outputs"], json!({"0": "0", "1": "1", "2": "2"}));
    assert!(
        result["took"].as_f64().unwrap() < 5.5,
        "they ran one after another: {result}"
    );
}

#[test]
fn code_searches_for_tools_from_inside_the_sandbox() {
    let work = Workdir::with_config(&serve_config());
    let mut mcp = serve_stdio(&work, &[]);
    let (text, is_error, result) = mcp.call(
        "execute_python",
        json!({"code": "import mcp_tools\nprint(mcp_tools.search('summarize', detail='name'))"}),
    );
    assert!(!is_error, "{result}");
    assert!(text.starts_with("summarizer.summarize\n"), "{text}");
}

/// A serve over HTTP that runs one script at a time, and the Python
/// client's `main` (`body`) run against it in both of the SDK's modes; what
/// each mode passed to `done()`, by mode.
fn over_http_in_both_modes(body: impl Fn(&str) -> String) -> Option<Value> {
    let python = mcp_python()?;
    let server = ServeProcess::start(&serve_config(), &["--max-concurrent", "1"], &[]);
    let mut results = serde_json::Map::new();
    for mode in ["auto", "legacy"] {
        let result = python_client(&python, &server.url, &body(mode), &[]);
        results.insert(mode.to_string(), result);
    }
    Some(Value::Object(results))
}

#[test]
fn over_http_code_runs_and_calls_tools() {
    let Some(result) = over_http_in_both_modes(|mode| {
        format!(
            r#"
SCRIPT = {NEWS_SCRIPT:?}
async def main():
    async with client({mode:?}) as c:
        r = await c.call_tool("execute_python", {{"code": SCRIPT}})
        done({{"calls": len(r.structured_content["tool_calls"]), "ok": r.structured_content["success"]}})
"#
        )
    }) else {
        return;
    };
    for mode in ["auto", "legacy"] {
        assert_eq!(
            result[mode],
            json!({"calls": 3, "ok": true}),
            "{mode}: {result}"
        );
    }
}

#[test]
fn over_http_a_run_past_its_time_limit_times_out() {
    let Some(result) = over_http_in_both_modes(|mode| {
        format!(
            r#"
async def main():
    async with client({mode:?}) as c:
        t = await c.call_tool("execute_python", {{"code": "import time\ntime.sleep(30)", "timeout_s": 1}})
        done({{"timed_out": t.structured_content["timed_out"]}})
"#
        )
    }) else {
        return;
    };
    for mode in ["auto", "legacy"] {
        assert_eq!(result[mode], json!({"timed_out": true}), "{mode}: {result}");
    }
}

#[test]
fn over_http_a_cancelled_call_kills_its_run() {
    let Some(result) = over_http_in_both_modes(|mode| format!("MODE = {mode:?}\n{CANCEL_CLIENT}"))
    else {
        return;
    };
    for mode in ["auto", "legacy"] {
        assert!(
            result[mode]["took"].as_f64().unwrap() < 15.0,
            "{mode}: the slow run was not killed: {result}"
        );
    }
}

// ---------------------------------------------------------------------------
// Result size: what a run returns fits a client's message limit and a
// model's reading, whatever the script prints.
// ---------------------------------------------------------------------------

/// serve's default output per stream.
const DEFAULT_CAP: usize = 32 * 1024;
/// What the note in the middle of a cut stream may add.
const NOTE: usize = 100;
/// `START`, 5,000,000 `x` and `END\n`.
const FLOOD_BYTES: usize = 5 + 5_000_000 + 4;

/// The Python SDK client prints 5 MB in one run; what it got back, and the
/// size of the whole result as JSON.
fn five_megabytes(python: &std::path::Path, target: &str) -> Value {
    python_client(
        python,
        target,
        r#"
SCRIPT = "import sys\nsys.stdout.write('START' + 'x' * 5_000_000 + 'END\\n')\n"
async def main():
    async with client() as c:
        r = await c.call_tool("execute_python", {"code": SCRIPT})
        s = r.structured_content
        done({"error": r.is_error, "stdout": s["stdout"], "dropped": s.get("stdout_dropped_bytes"),
              "text": text(r), "size": len(r.model_dump_json(by_alias=True, exclude_none=True))})
"#,
        &[],
    )
}

/// The start and the end of `stdout` are there, at most `cap` bytes of it
/// besides the note, and the note says how much is gone.
fn assert_cut_in_the_middle(result: &Value, cap: usize, printed: usize) {
    let stdout = result["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("STARTxxx"), "{}", &stdout[..100]);
    assert!(
        stdout.ends_with("xxxEND\n"),
        "{}",
        &stdout[stdout.len() - 100..]
    );
    assert!(stdout.len() <= cap + NOTE, "{} bytes", stdout.len());
    let dropped = result["dropped"].as_u64().unwrap() as usize;
    let kept = stdout
        .matches(['S', 'T', 'A', 'R', 'x', 'E', 'N', 'D', '\n'])
        .count();
    assert_eq!(dropped + kept, printed + 2, "the note's two newlines aside");
    assert!(
        stdout.contains(&format!("[{dropped} bytes cut from the middle]")),
        "{}",
        &stdout[cap / 2 - 10..cap / 2 + NOTE]
    );
}

#[test]
fn five_megabytes_printed_come_back_cut_in_the_middle_over_http() {
    let Some(python) = mcp_python() else { return };
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let result = five_megabytes(&python, &server.url);
    assert_eq!(result["error"], false, "{}", result["text"]);
    assert_cut_in_the_middle(&result, DEFAULT_CAP, FLOOD_BYTES);
}

#[test]
fn five_megabytes_printed_come_back_cut_in_the_middle_over_stdio() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = five_megabytes(&python, &stdio_target(&work, &[]));
    assert_eq!(result["error"], false, "{}", result["text"]);
    assert_cut_in_the_middle(&result, DEFAULT_CAP, FLOOD_BYTES);
}

#[test]
fn the_text_content_holds_the_output_once_not_the_whole_report() {
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&serve_config());
    let result = five_megabytes(&python, &stdio_target(&work, &[]));
    let size = result["size"].as_u64().unwrap() as usize;
    assert!(size < 2 * DEFAULT_CAP + 4096, "{size} bytes");
    let text = result["text"].as_str().unwrap();
    assert!(text.starts_with("STARTxxx"), "{}", &text[..100]);
    let status = text.lines().last().unwrap();
    assert!(
        status.starts_with("[exit code 0, ") && status.ends_with("bytes of stdout cut]"),
        "{status}"
    );
    assert!(
        !text.contains("\"stdout\""),
        "the text is not the report as JSON"
    );
}

/// One `execute_python` over raw stdio; its structured content.
fn run_raw(work: &Workdir, args: &[&str], code: &str) -> (Value, String) {
    let mut mcp = serve_stdio(work, args);
    let (text, _, result) = mcp.call("execute_python", json!({ "code": code }));
    (result["structuredContent"].clone(), text)
}

const HUNDRED_KB: &str = "import sys\nsys.stdout.write('START' + 'x' * 100_000 + 'END\\n')\n";

#[test]
fn max_output_sets_what_each_stream_keeps() {
    let work = Workdir::with_config(&serve_config());
    let (report, text) = run_raw(&work, &["--max-output", "4k"], HUNDRED_KB);
    let result = json!({"stdout": report["stdout"], "dropped": report["stdout_dropped_bytes"]});
    assert_cut_in_the_middle(&result, 4096, 100_009);
    assert!(text.len() < 4096 + 2 * NOTE, "{text}");
}

#[test]
fn the_serve_max_output_key_sets_what_each_stream_keeps() {
    let work = Workdir::with_config(&format!("{}max_output = \"2k\"\n", serve_config()));
    let (report, _) = run_raw(&work, &[], HUNDRED_KB);
    let result = json!({"stdout": report["stdout"], "dropped": report["stdout_dropped_bytes"]});
    assert_cut_in_the_middle(&result, 2048, 100_009);
}

#[test]
fn stderr_is_cut_in_the_middle_too() {
    let work = Workdir::with_config(&serve_config());
    let code = "import sys\nsys.stderr.write('START' + 'x' * 100_000 + 'END\\n')\n";
    let (report, _) = run_raw(&work, &["--max-output", "4k"], code);
    let result = json!({"stdout": report["stderr"], "dropped": report["stderr_dropped_bytes"]});
    assert_cut_in_the_middle(&result, 4096, 100_009);
    assert!(report.get("stdout_dropped_bytes").is_none(), "{report}");
}

#[test]
fn no_result_is_over_a_mebibyte_however_large_the_cap() {
    let work = Workdir::with_config(&serve_config());
    // As JSON each of these bytes takes six.
    let code = "import sys\nsys.stdout.write('\\x01' * 3_000_000)\nsys.stderr.write('\\x01' * 3_000_000)\n";
    let mut mcp = serve_stdio(&work, &["--max-output", "8m"]);
    let line = mcp.request_raw(
        "tools/call",
        json!({"name": "execute_python", "arguments": {"code": code}}),
    );
    assert!(line.len() < 1 << 20, "{} bytes", line.len());
    let value: Value = serde_json::from_str(&line).unwrap();
    let report = &value["result"]["structuredContent"];
    let dropped = report["stdout_dropped_bytes"].as_u64().unwrap();
    assert!(dropped > 2_000_000, "{report}");
    assert!(report["stdout"]
        .as_str()
        .unwrap()
        .contains(&format!("[{dropped} bytes cut from the middle]")));
}

// ---------------------------------------------------------------------------
// stderr: what a desktop client writes to its log.
// ---------------------------------------------------------------------------

/// A stdio session with stderr piped (not a terminal): a method serve does
/// not have, a call of a tool it does not have; its stderr once it ended.
fn stderr_after_errors(global: &[&str]) -> String {
    use std::io::{BufRead, Write};
    let work = Workdir::with_config(&serve_config());
    let mut child = Command::new(codemode_bin())
        .current_dir(work.path())
        .env_remove("CODEMODE_LOG")
        .args(global)
        .arg("--config")
        .arg(work.config())
        .arg("serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        initialize(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "prompts/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "execute_python", "arguments": {"code": "print(1)"}}}),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    let mut answered = 0;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let value: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if value.get("id").is_some() {
            if value["id"] != 1 {
                assert!(value["id"] == 4 || value.get("error").is_some(), "{value}");
            }
            answered += 1;
            if answered == 4 {
                break;
            }
        }
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn error_answers_leave_no_library_warning_and_no_colour_on_stderr() {
    let stderr = stderr_after_errors(&[]);
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains("rejected"), "{stderr}");
}

#[test]
fn verbose_logs_one_line_per_run() {
    let stderr = stderr_after_errors(&["-v"]);
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    let runs: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("execute_python:"))
        .collect();
    assert_eq!(runs.len(), 1, "{stderr}");
    assert!(runs[0].contains("exit code 0"), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn quiet_leaves_stderr_empty_when_nothing_failed() {
    let stderr = stderr_after_errors(&["-q"]);
    assert_eq!(stderr, "", "{stderr}");
}
