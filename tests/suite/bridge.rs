//! `codemode bridge` end to end: the wire contract, every error kind, auth on TCP
//! and on the Unix socket, restarts, concurrency, limits, and a clean stop.

use crate::common;

use common::{examples_config, http, run_python, BridgeProcess, Workdir};
use serde_json::{json, Value};

fn rpc(bridge: &BridgeProcess, target: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let (status, text) = http(target, "POST", "/rpc", token, body.to_string().as_bytes());
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {text}\n{}", bridge.stderr()));
    (status, value)
}

fn call(bridge: &BridgeProcess, server: &str, tool: &str, arguments: Value) -> (u16, Value) {
    rpc(
        bridge,
        &bridge.url_tcp(),
        Some(&bridge.token.clone()),
        json!({"server": server, "tool": tool, "arguments": arguments}),
    )
}

fn assert_error(reply: (u16, Value), status: u16, kind: &str) {
    let (got_status, body) = reply;
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["kind"], kind, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{body}"
    );
    assert_eq!(got_status, status, "{body}");
}

#[test]
fn a_call_returns_the_tools_structured_result() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let (status, body) = call(&bridge, "news", "get_article", json!({"id": "tech-001"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["result"]["id"], "tech-001");
}

fn health(bridge: &BridgeProcess, token: Option<&str>) -> Value {
    let (status, text) = http(&bridge.url_tcp(), "GET", "/health", token, b"");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[test]
fn a_tokenless_health_check_names_no_server() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    call(&bridge, "news", "get_article", json!({"id": "tech-001"}));
    assert_eq!(health(&bridge, None), json!({"status": "ok"}));
}

#[test]
fn a_health_check_with_a_wrong_token_names_no_server() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_eq!(
        health(&bridge, Some("test-token-0123456789abcdeX")),
        json!({"status": "ok"})
    );
}

#[test]
fn a_health_check_with_the_token_reports_each_servers_state() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let before = health(&bridge, Some(&bridge.token));
    assert_eq!(before["status"], "ok");
    assert_eq!(before["servers"]["news"]["state"], "idle", "{before}");
    call(&bridge, "news", "get_article", json!({"id": "tech-001"}));
    let after = health(&bridge, Some(&bridge.token));
    assert_eq!(after["servers"]["news"]["state"], "running", "{after}");
}

#[test]
fn a_health_check_lists_only_the_servers_inside_the_grant() {
    let bridge = BridgeProcess::start(&examples_config(), &["--allow", "summarizer.*"]);
    let servers = health(&bridge, Some(&bridge.token))["servers"].clone();
    assert_eq!(servers, json!({"summarizer": {"state": "idle"}}));
}

#[test]
fn a_failed_server_in_a_health_check_shows_no_stderr() {
    let config = format!(
        "{}\n[servers.broken]\ncommand = \"sh\"\nargs = [\"-c\", \"echo DB_PASSWORD=hunter2 >&2; exit 1\"]\n",
        examples_config()
    );
    let bridge = BridgeProcess::start(&config, &[]);
    assert_error(
        call(&bridge, "broken", "anything", json!({})),
        503,
        "upstream_unavailable",
    );
    let report = health(&bridge, Some(&bridge.token));
    let broken = &report["servers"]["broken"];
    assert_eq!(broken["state"], "failed", "{report}");
    assert!(
        !broken["error"].as_str().unwrap_or("").is_empty(),
        "{report}"
    );
    assert!(!report.to_string().contains("hunter2"), "{report}");
}

#[test]
fn a_missing_token_is_unauthorized_on_tcp() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let reply = rpc(
        &bridge,
        &bridge.url_tcp(),
        None,
        json!({"server": "news", "tool": "search", "arguments": {"query": "ai"}}),
    );
    assert_error(reply, 401, "unauthorized");
}

#[test]
fn a_wrong_token_is_unauthorized_on_the_unix_socket() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let body = json!({"server": "news", "tool": "search", "arguments": {"query": "ai"}});
    let reply = rpc(
        &bridge,
        &bridge.url_unix(),
        Some("test-token-0123456789abcdeX"),
        body.clone(),
    );
    assert_error(reply, 401, "unauthorized");
    let (status, ok) = rpc(
        &bridge,
        &bridge.url_unix(),
        Some(&bridge.token.clone()),
        body,
    );
    assert_eq!(status, 200, "{ok}");
}

#[test]
fn the_tools_listing_needs_a_token() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let (status, _) = http(&bridge.url_tcp(), "GET", "/tools", None, b"");
    assert_eq!(status, 401);
    let (status, text) = http(&bridge.url_tcp(), "GET", "/tools", Some(&bridge.token), b"");
    assert_eq!(status, 200);
    assert!(text.contains("fetch_latest"), "{text}");
}

#[test]
fn an_unknown_server_is_named() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_error(
        call(&bridge, "weather", "forecast", json!({})),
        404,
        "unknown_server",
    );
}

#[test]
fn an_unknown_tool_is_named() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_error(
        call(&bridge, "news", "delete_everything", json!({})),
        404,
        "unknown_tool",
    );
}

#[test]
fn arguments_of_the_wrong_type_are_invalid_arguments() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_error(
        call(
            &bridge,
            "news",
            "get_article",
            json!({"id": {"not": "a string"}}),
        ),
        400,
        "invalid_arguments",
    );
}

#[test]
fn non_object_arguments_are_invalid_arguments() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let reply = rpc(
        &bridge,
        &bridge.url_tcp(),
        Some(&bridge.token.clone()),
        json!({"server": "news", "tool": "search", "arguments": "ai"}),
    );
    assert_error(reply, 400, "invalid_arguments");
}

#[test]
fn a_tool_that_fails_is_a_tool_error_with_its_message() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let reply = call(&bridge, "news", "get_article", json!({"id": "no-such-id"}));
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-id"),
        "{}",
        reply.1
    );
    assert_error(reply, 422, "tool_error");
}

#[test]
fn malformed_json_is_a_bad_request() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let (status, text) = http(
        &bridge.url_tcp(),
        "POST",
        "/rpc",
        Some(&bridge.token),
        b"{\"server\": ",
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error((status, body), 400, "bad_request");
}

#[test]
fn a_body_over_the_limit_is_payload_too_large() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let big = "x".repeat(5 * 1024 * 1024);
    let body = json!({"server": "summarizer", "tool": "summarize", "arguments": {"text": big}})
        .to_string();
    let (status, text) = http(
        &bridge.url_tcp(),
        "POST",
        "/rpc",
        Some(&bridge.token),
        body.as_bytes(),
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error((status, body), 413, "payload_too_large");
}

#[test]
fn deep_nesting_is_a_bad_request() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let body = format!(
        "{{\"server\": \"news\", \"tool\": \"search\", \"arguments\": {{\"query\": {}1{}}}}}",
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let (status, text) = http(
        &bridge.url_tcp(),
        "POST",
        "/rpc",
        Some(&bridge.token),
        body.as_bytes(),
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error((status, body), 400, "bad_request");
}

#[test]
fn a_tool_outside_the_grant_is_forbidden_and_never_starts_the_server() {
    let bridge = BridgeProcess::start(&examples_config(), &["--allow", "summarizer.*"]);
    assert_error(
        call(&bridge, "news", "search", json!({"query": "ai"})),
        403,
        "forbidden",
    );
    let started = std::process::Command::new("pgrep")
        .args(["-P", &bridge.child.id().to_string(), "-f", "news-server"])
        .output()
        .unwrap();
    assert!(started.stdout.is_empty(), "the news server was started");
}

#[test]
fn a_tool_outside_the_config_allow_list_is_forbidden() {
    let config = examples_config().replace(
        "[servers.summarizer]",
        "allow = [\"search\"]\n\n[servers.summarizer]",
    );
    let bridge = BridgeProcess::start(&config, &[]);
    assert_error(
        call(&bridge, "news", "get_article", json!({"id": "tech-001"})),
        403,
        "forbidden",
    );
    assert_eq!(
        call(&bridge, "news", "search", json!({"query": "ai"})).0,
        200
    );
}

#[test]
fn calls_beyond_the_rate_are_rate_limited() {
    let bridge = BridgeProcess::start(&examples_config(), &["--rate", "2"]);
    let statuses: Vec<u16> = (0..4)
        .map(|_| call(&bridge, "news", "search", json!({"query": "ai"})).0)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let reply = call(&bridge, "news", "search", json!({"query": "ai"}));
    if reply.0 == 429 {
        assert_error(reply, 429, "rate_limited");
    }
}

#[test]
fn a_server_that_cannot_start_is_upstream_unavailable() {
    let config = format!(
        "{}\n[servers.broken]\ncommand = \"sh\"\nargs = [\"-c\", \"echo dying >&2; exit 1\"]\n",
        examples_config()
    );
    let bridge = BridgeProcess::start(&config, &[]);
    assert_error(
        call(&bridge, "broken", "anything", json!({})),
        503,
        "upstream_unavailable",
    );
    // The other servers are unaffected.
    assert_eq!(
        call(&bridge, "news", "search", json!({"query": "ai"})).0,
        200
    );
}

#[test]
fn a_server_killed_mid_run_is_restarted_on_a_later_call() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_eq!(
        call(&bridge, "news", "search", json!({"query": "ai"})).0,
        200
    );
    let status = std::process::Command::new("pkill")
        .args([
            "-KILL",
            "-P",
            &bridge.child.id().to_string(),
            "-f",
            "news-server",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "no news-server child to kill");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) = call(&bridge, "news", "search", json!({"query": "ai"}));
        statuses.push(status);
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    assert_eq!(
        statuses.last(),
        Some(&200),
        "never recovered: {statuses:?}\n{}",
        bridge.stderr()
    );
}

#[test]
fn metrics_count_calls_by_outcome() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    call(&bridge, "news", "search", json!({"query": "ai"}));
    call(&bridge, "news", "get_article", json!({"id": "missing"}));
    let (status, text) = http(
        &bridge.url_tcp(),
        "GET",
        "/metrics",
        Some(&bridge.token),
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        text.contains("codemode_bridge_calls_total{server=\"news\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("codemode_bridge_errors_total{kind=\"tool_error\"} 1"),
        "{text}"
    );
}

#[test]
fn made_up_server_names_share_one_metrics_label() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    for i in 0..20 {
        let reply = call(&bridge, &format!("no-such-server-{i}"), "t", json!({}));
        assert_error(reply, 404, "unknown_server");
    }
    let (_, text) = http(
        &bridge.url_tcp(),
        "GET",
        "/metrics",
        Some(&bridge.token),
        b"",
    );
    assert!(!text.contains("no-such-server"), "{text}");
    assert!(
        text.contains("codemode_bridge_calls_total{server=\"\",outcome=\"unknown_server\"} 20"),
        "{text}"
    );
}

#[test]
fn metrics_without_a_token_are_unauthorized() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    call(&bridge, "news", "search", json!({"query": "ai"}));
    let (status, text) = http(&bridge.url_tcp(), "GET", "/metrics", None, b"");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    assert_error((status, body), 401, "unauthorized");
}

/// How many of `count` requests sent at once under `--rate 1` were refused
/// for the rate.
fn rate_limited_of(count: usize, args: &[&str], body: &[u8]) -> usize {
    let mut all = vec!["--rate", "1"];
    all.extend_from_slice(args);
    let bridge = BridgeProcess::start(&examples_config(), &all);
    (0..count)
        .filter(|_| {
            let (status, _) = http(&bridge.url_tcp(), "POST", "/rpc", Some(&bridge.token), body);
            status == 429
        })
        .count()
}

#[test]
fn calls_to_unknown_servers_spend_the_rate() {
    let body = json!({"server": "weather", "tool": "forecast", "arguments": {}}).to_string();
    assert!(rate_limited_of(5, &[], body.as_bytes()) >= 3);
}

#[test]
fn forbidden_calls_spend_the_rate() {
    let body = json!({"server": "news", "tool": "search", "arguments": {}}).to_string();
    assert!(rate_limited_of(5, &["--allow", "summarizer.*"], body.as_bytes()) >= 3);
}

#[test]
fn malformed_requests_spend_the_rate() {
    assert!(rate_limited_of(5, &[], b"{\"server\": ") >= 3);
}

#[test]
fn connections_past_the_cap_are_refused_and_the_open_ones_still_answer() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    // More than the process-wide cap, whatever the descriptor limit made it.
    let mut held: Vec<UnixStream> = (0..300)
        .map(|_| UnixStream::connect(&bridge.socket).expect("connect"))
        .collect();
    let mut last = held.pop().unwrap();
    last.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = last.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert!(answer.contains("rate_limited"), "{answer}");

    let first = &mut held[0];
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    first
        .write_all(b"GET /health HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = first.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
}

#[test]
fn an_exec_report_keeps_the_first_thousand_calls_and_counts_the_rest() {
    let work = Workdir::with_config(&examples_config());
    let script = r#"
import mcp_tools
for i in range(1200):
    try:
        mcp_tools.call("no-such-server", "t%d" % i)
    except mcp_tools.ToolError:
        pass
"#;
    let run = common::exec_json(&work, "native", script, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    let calls = run.report["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1000);
    assert_eq!(calls[0]["tool"], "t0");
    assert_eq!(run.report["tool_calls_dropped"], 200);
}

#[test]
fn an_exec_report_within_the_cap_has_no_dropped_count() {
    let work = Workdir::with_config(&examples_config());
    let script = "from mcp_tools import news\nnews.get_article(id='tech-001')\n";
    let run = common::exec_json(&work, "native", script, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!(run.report["tool_calls"].as_array().unwrap().len(), 1);
    assert!(
        run.report.get("tool_calls_dropped").is_none(),
        "{}",
        run.report
    );
}

#[test]
fn error_messages_quoting_the_request_stay_on_one_line() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let reply = rpc(
        &bridge,
        &bridge.url_tcp(),
        Some(&bridge.token.clone()),
        json!({"server": "news", "tool": "search", "line\nbreak\r": 1}),
    );
    let message = reply.1["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_error(reply, 400, "bad_request");
    assert!(message.contains("line break"), "{message}");
}

#[test]
fn sigterm_stops_the_servers_and_removes_the_socket() {
    let mut bridge = BridgeProcess::start(&examples_config(), &[]);
    call(&bridge, "news", "search", json!({"query": "ai"}));
    call(
        &bridge,
        "summarizer",
        "keywords",
        json!({"text": "Rust is fast. Rust is safe."}),
    );
    let pid = bridge.child.id().to_string();
    let status = bridge.stop();
    assert!(status.success(), "{status:?}\n{}", bridge.stderr());
    assert!(!bridge.socket.exists(), "the socket was left behind");
    let left = std::process::Command::new("pgrep")
        .args(["-P", &pid])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "children left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn the_token_never_appears_in_the_logs() {
    let bridge = BridgeProcess::start(&examples_config(), &["-vv"]);
    call(&bridge, "news", "search", json!({"query": "ai"}));
    rpc(
        &bridge,
        &bridge.url_tcp(),
        Some("wrong-token"),
        json!({"server": "news", "tool": "search"}),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = bridge.stderr();
    assert!(log.contains("outcome"), "calls are logged: {log}");
    assert!(
        !log.contains(&bridge.token),
        "the token leaked into the log"
    );
    assert!(
        !log.contains("wrong-token"),
        "a presented token leaked into the log"
    );
}

#[test]
fn a_non_loopback_listen_needs_a_known_token() {
    let work = Workdir::with_config(&examples_config());
    work.codemode()
        .env_remove("CODEMODE_BRIDGE_TOKEN")
        .args(["bridge", "--listen", "0.0.0.0:0"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("CODEMODE_BRIDGE_TOKEN"));
}

#[test]
fn a_random_token_is_written_to_the_token_file_for_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let work = Workdir::with_config(&examples_config());
    let token_file = work.path().join("bridge.token");
    let mut child = std::process::Command::new(common::codemode_bin())
        .arg("--config")
        .arg(work.config())
        .args(["bridge", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token_file)
        .env_remove("CODEMODE_BRIDGE_TOKEN")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !token_file.exists() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    common::wait_with_timeout(&mut child, std::time::Duration::from_secs(20));
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.len(), 67, "cm_ and 64 hex digits: {token}");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

// `--json`: one line on stdout saying where the bridge listens.

/// The names of a JSON object's fields, sorted.
fn fields(object: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    names
}

#[test]
fn with_json_the_bridge_prints_one_listening_line_on_stdout_and_nothing_more() {
    let mut bridge = BridgeProcess::start(&examples_config(), &[]);
    let (status, body) = call(&bridge, "news", "get_article", json!({"id": "tech-001"}));
    assert_eq!(status, 200, "{body}");
    let status = bridge.stop();
    assert!(status.success(), "{status:?}\n{}", bridge.stderr());
    assert_eq!(
        bridge.stdout_at_exit(),
        "",
        "stdout after the listening line"
    );
}

#[test]
fn the_listening_line_has_the_event_addresses_servers_and_token_file() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_eq!(
        fields(&bridge.listening),
        ["addresses", "event", "servers", "token_file"],
        "{}",
        bridge.listening
    );
    assert_eq!(bridge.listening["event"], "listening");
}

#[test]
fn the_listening_line_names_every_address_and_each_one_answers() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_eq!(
        bridge.listening["addresses"],
        json!([bridge.url_tcp(), bridge.url_unix()]),
        "{}",
        bridge.listening
    );
    assert!(
        !bridge.tcp.ends_with(":0"),
        "the bound port, not the one asked for: {}",
        bridge.tcp
    );
    for address in [bridge.url_tcp(), bridge.url_unix()] {
        let (status, body) = http(&address, "GET", "/health", None, b"");
        assert_eq!(status, 200, "{address}: {body}");
    }
}

#[test]
fn the_listening_line_names_the_servers() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_eq!(
        bridge.listening["servers"],
        json!(["news", "summarizer"]),
        "{}",
        bridge.listening
    );
}

#[test]
fn the_listening_line_names_the_token_file_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bridge.token");
    let bridge = BridgeProcess::start(
        &examples_config(),
        &["--token-file", token_file.to_str().unwrap()],
    );
    assert_eq!(
        bridge.listening["token_file"],
        token_file.to_str().unwrap(),
        "{}",
        bridge.listening
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), bridge.token);
}

#[test]
fn a_token_from_the_environment_has_no_token_file_in_the_listening_line() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    assert_eq!(
        bridge.listening["token_file"],
        Value::Null,
        "{}",
        bridge.listening
    );
}

#[test]
fn a_random_token_is_in_the_file_the_listening_line_names() {
    let work = Workdir::with_config(&examples_config());
    let runtime = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::codemode_bin())
        .arg("--config")
        .arg(work.config())
        .args(["bridge", "--json", "--listen", "127.0.0.1:0"])
        .env_remove("CODEMODE_BRIDGE_TOKEN")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let listening = common::wait_until_listening(&mut child, std::time::Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let token_file = listening.line["token_file"]
        .as_str()
        .unwrap_or_else(|| panic!("no token file: {}", listening.line));
    assert!(
        std::path::Path::new(token_file).starts_with(runtime.path()),
        "{token_file} is not in the runtime directory"
    );
    let token = std::fs::read_to_string(token_file).unwrap();
    assert_eq!(token.len(), 67, "cm_ and 64 hex digits: {token}");
}

#[test]
fn with_json_the_human_line_stays_on_stderr() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let said = format!(
        "codemode bridge on {} and {} (servers: news, summarizer); token from CODEMODE_BRIDGE_TOKEN",
        bridge.url_tcp(),
        bridge.url_unix()
    );
    // Written before the listening line, and read from its own pipe.
    let said_it = || bridge.stderr().lines().any(|line| line == said);
    let waiting = std::time::Instant::now();
    while !said_it() && waiting.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(said_it(), "{}", bridge.stderr());
}

// The Python side: the generated module against the running bridge.

fn generated_module(bridge: &BridgeProcess) -> std::path::PathBuf {
    common::codemode()
        .current_dir(bridge.work.path())
        .arg("--config")
        .arg(bridge.work.config())
        .args(["gen-bridge", "-o", "mcp_tools.py"])
        .assert()
        .success();
    bridge.work.path().to_path_buf()
}

#[test]
fn python_calls_tools_through_the_unix_socket() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let dir = generated_module(&bridge);
    let code = r#"
from mcp_tools import news, summarizer
articles = news.fetch_latest(category="technology", limit=2)["articles"]
print(len(articles))
print(summarizer.summarize(text=articles[0]["body"], max_sentences=1)["summary"] != "")
"#;
    let (status, stdout, stderr) = run_python(&dir, code, &bridge.url_unix(), &bridge.token);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "2\nTrue\n");
}

#[test]
fn python_sees_a_tool_error_with_kind_and_message() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let dir = generated_module(&bridge);
    let code = r#"
import mcp_tools
try:
    mcp_tools.news.get_article(id="no-such-id")
except mcp_tools.ToolError as err:
    print(err.kind, "no-such-id" in err.message)
"#;
    let (status, stdout, stderr) = run_python(&dir, code, &bridge.url_tcp(), &bridge.token);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "tool_error True\n");
}

#[test]
fn python_refused_for_too_many_connections_gets_rate_limited() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let dir = generated_module(&bridge);
    let code = r#"
import os, socket, time
import mcp_tools
path = os.environ["CODEMODE_BRIDGE_URL"][len("unix://"):]
held = []
for _ in range(300):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
time.sleep(0.5)
try:
    mcp_tools.call("news", "search", query="ai")
    print("no error")
except mcp_tools.ToolError as err:
    print(err.kind, "connections are open" in err.message)
"#;
    let (status, stdout, stderr) = run_python(&dir, code, &bridge.url_unix(), &bridge.token);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "rate_limited True\n");
}

#[test]
fn python_with_a_wrong_token_gets_unauthorized() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let dir = generated_module(&bridge);
    let code = r#"
import mcp_tools
try:
    mcp_tools.call("news", "search", query="ai")
except mcp_tools.ToolError as err:
    print(err.kind)
"#;
    let (status, stdout, stderr) = run_python(&dir, code, &bridge.url_unix(), "forged-token");
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "unauthorized\n");
}

#[test]
fn python_names_the_bridge_variable_when_the_bridge_is_unreachable() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let dir = generated_module(&bridge);
    let code = "from mcp_tools import news\nnews.search(query='ai')\n";
    let (status, _, stderr) =
        run_python(&dir, code, "unix:///nonexistent/bridge.sock", &bridge.token);
    assert_ne!(status, 0);
    assert!(stderr.contains("CODEMODE_BRIDGE_URL"), "{stderr}");
}

#[test]
fn thirty_two_concurrent_python_callers_get_their_own_results() {
    let bridge = BridgeProcess::start(&examples_config(), &[]);
    let dir = generated_module(&bridge);
    let code = r#"
import threading
from mcp_tools import news, summarizer
errors = []
def work(i):
    try:
        for round in range(5):
            word = "word%d" % i
            got = summarizer.keywords(text=(word + " ") * 3 + "common filler text", limit=1)["keywords"]
            if got != [word]:
                errors.append((i, round, got))
            art = news.get_article(id="tech-00%d" % (1 + i % 8))
            if art["id"] != "tech-00%d" % (1 + i % 8):
                errors.append((i, round, art["id"]))
    except Exception as e:
        errors.append((i, repr(e)))
threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors), errors[:3])
"#;
    let (status, stdout, stderr) = run_python(&dir, code, &bridge.url_unix(), &bridge.token);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout.trim(), "0 []");
}

fn misbehaving(mode: &str) -> String {
    format!(
        "[servers.bad]\ncommand = {:?}\nargs = [{:?}, {mode:?}]\ncall_timeout = \"1s\"\n",
        common::python(),
        common::repo().join("tests/fixtures/misbehaving_server.py")
    )
}

#[test]
fn a_tool_that_hangs_times_out_and_the_server_stays_usable() {
    let bridge = BridgeProcess::start(&misbehaving("hang-call"), &[]);
    let started = std::time::Instant::now();
    let reply = call(&bridge, "bad", "hang", json!({}));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may already have acted"),
        "{}",
        reply.1
    );
    assert_error(reply, 504, "timeout");
    let (status, body) = call(&bridge, "bad", "echo", json!({"text": "still here"}));
    assert_eq!((status, body["result"].clone()), (200, json!("still here")));
}

#[test]
fn a_server_that_dies_mid_call_is_upstream_unavailable() {
    let bridge = BridgeProcess::start(&misbehaving("crash-call"), &[]);
    assert_error(
        call(&bridge, "bad", "echo", json!({"text": "x"})),
        503,
        "upstream_unavailable",
    );
}

#[test]
fn a_token_file_that_is_not_a_regular_file_is_refused() {
    let work = Workdir::with_config(&examples_config());
    let fifo = work.path().join("token.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    work.codemode()
        .env_remove("CODEMODE_BRIDGE_TOKEN")
        .args(["bridge", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&fifo)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a regular file"));
}

#[test]
fn the_standalone_bridge_refuses_a_call_that_needs_approval_with_nobody_to_ask() {
    let config = examples_config().replace(
        "[servers.summarizer]",
        "approve = [\"get_*\"]\n\n[servers.summarizer]",
    );
    let bridge = BridgeProcess::start(&config, &[]);
    let (status, body) = call(&bridge, "news", "get_article", json!({"id": "tech-001"}));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["kind"], "denied", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--auto-approve"),
        "{body}"
    );
    let (status, body) = call(&bridge, "news", "search", json!({"query": "ai"}));
    assert_eq!(
        status, 200,
        "a tool the list does not name is not held: {body}"
    );
}

#[test]
fn the_standalone_bridge_with_auto_approve_makes_the_call() {
    let bridge = BridgeProcess::start(
        &examples_config(),
        &["--approve", "news.get_article", "--auto-approve"],
    );
    let (status, body) = call(&bridge, "news", "get_article", json!({"id": "tech-001"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["id"], "tech-001");
}
