//! Faults (issue 8): MCP servers that crash, hang, write garbage, answer with
//! huge results or errors, never finish `initialize`, or die with calls queued;
//! HTTP servers that drop the connection or answer 500; signals to `exec`,
//! `bridge` and `serve`; and hostile `/rpc` bodies. For each: the right error
//! kind, fast; other servers unaffected; nothing left behind.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    children_of, dir_entries, examples_config, http, misbehaving_server, wait_for_no_children,
    BridgeProcess, Workdir,
};
use serde_json::{json, Value};

/// The example news server next to one misbehaving server called `bad`.
fn config(mode: &str, call_timeout: &str) -> String {
    format!(
        "{}\n{}",
        examples_config(),
        misbehaving_server("bad", mode, call_timeout)
    )
}

/// A bridge with a private `TMPDIR`, so the test can check it stays empty.
struct Fixture {
    bridge: BridgeProcess,
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn start(config: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let bridge =
            BridgeProcess::start_with_env(config, &[], &[("TMPDIR", tmp.path().as_os_str())]);
        Fixture { bridge, tmp }
    }

    fn call(&self, server: &str, tool: &str, arguments: Value) -> (u16, Value, Duration) {
        call(&self.bridge, server, tool, arguments)
    }

    /// The example server still answers, quickly.
    fn assert_news_works(&self) {
        let (status, body, took) = self.call("news", "get_article", json!({"id": "tech-001"}));
        assert_eq!(status, 200, "{body}\n{}", self.bridge.stderr());
        assert_eq!(body["result"]["id"], "tech-001");
        assert!(took < Duration::from_secs(5), "news took {took:?}");
    }

    /// Stops the bridge (SIGTERM) and checks that nothing is left: no child,
    /// no socket, nothing in its `TMPDIR`.
    fn stop_and_check_clean(mut self) {
        let pid = self.bridge.child.id();
        let status = self.bridge.stop();
        assert!(status.success(), "{status:?}\n{}", self.bridge.stderr());
        assert!(!self.bridge.socket.exists(), "the socket was left behind");
        let left = wait_for_no_children(pid, Duration::from_secs(5));
        assert!(left.is_empty(), "children left: {left:?}");
        assert_eq!(dir_entries(self.tmp.path()), Vec::<String>::new());
    }
}

fn call(
    bridge: &BridgeProcess,
    server: &str,
    tool: &str,
    arguments: Value,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let body = json!({"server": server, "tool": tool, "arguments": arguments}).to_string();
    let (status, text) = http(
        &bridge.url_tcp(),
        "POST",
        "/rpc",
        Some(&bridge.token),
        body.as_bytes(),
    );
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {:.300}\n{}", text, bridge.stderr()));
    (status, value, started.elapsed())
}

fn assert_kind(reply: &(u16, Value, Duration), status: u16, kind: &str, within: Duration) {
    let (got, body, took) = reply;
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["kind"], kind, "{body}");
    assert_eq!(*got, status, "{body}");
    assert!(
        *took < within,
        "took {took:?}, more than {within:?}: {body}"
    );
}

#[test]
fn a_server_that_crashes_mid_call_is_upstream_unavailable_and_restarted_next_time() {
    let fixture = Fixture::start(&config("crash-call", "5s"));
    let first = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&first, 503, "upstream_unavailable", Duration::from_secs(3));
    let message = first.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("crashing on purpose"),
        "its stderr is quoted: {message}"
    );
    fixture.assert_news_works();
    // The next call starts it again (and it crashes again), never a hang.
    let second = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&second, 503, "upstream_unavailable", Duration::from_secs(3));
    fixture.stop_and_check_clean();
}

#[test]
fn a_call_that_hangs_ends_at_the_timeout_while_other_servers_answer() {
    let fixture = Fixture::start(&config("hang-call", "1500ms"));
    fixture.assert_news_works();
    let hanging = {
        let (url, token) = (fixture.bridge.url_tcp(), fixture.bridge.token.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let body = json!({"server": "bad", "tool": "hang", "arguments": {}}).to_string();
            let (status, text) = http(&url, "POST", "/rpc", Some(&token), body.as_bytes());
            (status, text, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // While the call hangs, the other server and the same server's other tools answer.
    fixture.assert_news_works();
    let (status, body, took) = fixture.call("bad", "echo", json!({"text": "meanwhile"}));
    assert_eq!((status, body["result"].clone()), (200, json!("meanwhile")));
    assert!(took < Duration::from_secs(1), "echo took {took:?}");
    let (status, text, took) = hanging.join().unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (504, Some("timeout")),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "the timeout is 1.5 s; the call took {took:?}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may already have acted"),
        "the caller learns the call may have happened: {body}"
    );
    fixture.stop_and_check_clean();
}

#[test]
fn garbage_on_stdout_does_not_hang_the_call_or_the_bridge() {
    let fixture = Fixture::start(&config("garbage-call", "3s"));
    let reply = fixture.call("bad", "echo", json!({"text": "after garbage"}));
    let (status, body, took) = &reply;
    assert!(took < &Duration::from_secs(3), "took {took:?}: {body}");
    match status {
        200 => assert_eq!(body["result"], "after garbage"),
        _ => assert_kind(&reply, 503, "upstream_unavailable", Duration::from_secs(3)),
    }
    fixture.assert_news_works();
    // Still usable (or restarted) afterwards.
    let again = fixture.call("bad", "echo", json!({"text": "again"}));
    assert!(again.0 == 200 || again.0 == 503, "{}", again.1);
    fixture.stop_and_check_clean();
}

#[test]
fn a_partial_frame_then_silence_is_a_timeout() {
    let fixture = Fixture::start(&config("partial-hang", "1s"));
    let reply = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&reply, 504, "timeout", Duration::from_secs(4));
    fixture.assert_news_works();
    fixture.stop_and_check_clean();
}

#[test]
fn a_partial_frame_then_exit_is_upstream_unavailable() {
    let fixture = Fixture::start(&config("partial-exit", "5s"));
    let reply = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&reply, 503, "upstream_unavailable", Duration::from_secs(3));
    fixture.assert_news_works();
    fixture.stop_and_check_clean();
}

#[test]
fn an_error_result_is_a_tool_error_with_the_servers_message() {
    let fixture = Fixture::start(&config("error-call", "5s"));
    let reply = fixture.call("bad", "echo", json!({"text": "please"}));
    assert_kind(&reply, 422, "tool_error", Duration::from_secs(3));
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("echo refused: please"),
        "{}",
        reply.1
    );
    // A JSON-RPC error (not a result with isError) is a tool error too.
    let reply = fixture.call("bad", "hang", json!({}));
    assert_kind(&reply, 422, "tool_error", Duration::from_secs(3));
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream database is down"),
        "{}",
        reply.1
    );
    fixture.assert_news_works();
    fixture.stop_and_check_clean();
}

#[test]
fn a_server_that_never_finishes_initialize_is_upstream_unavailable_after_the_connect_timeout() {
    // connect_timeout is 2 s in `misbehaving_server`.
    let fixture = Fixture::start(&config("no-init", "5s"));
    let first = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&first, 503, "upstream_unavailable", Duration::from_secs(5));
    assert!(first.2 >= Duration::from_millis(1900), "{:?}", first.2);
    assert!(
        first.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not finish starting"),
        "{}",
        first.1
    );
    // The child that never answered is not kept around.
    let left = wait_for_no_children(fixture.bridge.child.id(), Duration::from_secs(3));
    assert!(
        left.is_empty(),
        "the stuck server was left running: {left:?}"
    );
    // Within the back-off, the next call fails at once instead of waiting again.
    let second = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(
        &second,
        503,
        "upstream_unavailable",
        Duration::from_millis(500),
    );
    fixture.assert_news_works();
    fixture.stop_and_check_clean();
}

#[test]
fn a_server_that_dies_with_calls_queued_fails_each_fast_and_then_recovers() {
    let fixture = Fixture::start(&config("slow-die", "10s"));
    // Started, and its tools listed, before the storm.
    let (status, _, _) = fixture.call("bad", "echo", json!({"text": "warm", "delay": 0}));
    assert_eq!(status, 200);
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let (url, token) = (fixture.bridge.url_tcp(), fixture.bridge.token.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let body = json!({"server": "bad", "tool": "echo",
                    "arguments": {"text": format!("caller {i}"), "delay": 1}})
                .to_string();
                let (status, text) = http(&url, "POST", "/rpc", Some(&token), body.as_bytes());
                (i, status, text, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // `hang` makes the server exit 0.2 s later, with the eight calls in flight.
    let killer = fixture.call("bad", "hang", json!({}));
    assert_kind(&killer, 503, "upstream_unavailable", Duration::from_secs(3));
    let mut failed = 0;
    for caller in callers {
        let (i, status, text, took) = caller.join().unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(
            took < Duration::from_secs(4),
            "caller {i} took {took:?}: {body}"
        );
        match status {
            200 => assert_eq!(body["result"], format!("caller {i}")),
            503 => {
                assert_eq!(body["error"]["kind"], "upstream_unavailable", "{body}");
                failed += 1;
            }
            other => panic!("caller {i}: unexpected {other}: {body}"),
        }
    }
    assert!(
        failed > 0,
        "the server died under the callers: some must have failed"
    );
    // Later calls start it again and succeed.
    let (status, body, _) = fixture.call("bad", "echo", json!({"text": "back", "delay": 0}));
    assert_eq!(
        (status, body["result"].clone()),
        (200, json!("back")),
        "{body}"
    );
    fixture.assert_news_works();
    fixture.stop_and_check_clean();
}

/// What the bridge does with a huge result. A stdio message is capped at
/// 16 MiB (rmcp's line cap, which is also its cap on one HTTP event): a 50 MB
/// answer fails its call at once as upstream_unavailable, saying why, and the
/// server is started afresh for the next call (rmcp alone would drop the line
/// and leave the call waiting for its timeout). Anything under the cap (here
/// 10 MB) arrives whole. The bridge neither dies nor keeps the memory.
#[test]
fn a_fifty_megabyte_result_fails_fast_and_ten_megabytes_arrive_whole() {
    let fixture = Fixture::start(&config("big-call", "30s"));
    let pid = fixture.bridge.child.id();
    fixture.assert_news_works();
    let before = common::rss_kib(pid);
    let reply = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&reply, 503, "upstream_unavailable", Duration::from_secs(10));
    let message = reply.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("larger than 16 MiB"), "{message}");
    let after_big = common::rss_kib(pid);
    let size = 10 * 1024 * 1024;
    let (status, body, took) = fixture.call("bad", "echo", json!({"text": "x", "size": size}));
    assert_eq!(status, 200, "{:.300}", body.to_string());
    assert_eq!(body["result"].as_str().map(str::len), Some(size));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let (status, _, _) = fixture.call("bad", "echo", json!({"text": "x", "size": size}));
    assert_eq!(status, 200);
    let after = common::rss_kib(pid);
    eprintln!(
        "bridge RSS: {before} KiB at first, {after_big} KiB after a refused 50 MB answer, \
         {after} KiB after two 10 MB results ({:?} for 50 MB, {took:?} for 10 MB)",
        reply.2
    );
    assert!(
        after_big < before + 64 * 1024,
        "a refused answer grew RSS from {before} to {after_big} KiB"
    );
    assert!(
        after < before + 256 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    fixture.assert_news_works();
    fixture.stop_and_check_clean();
}

// HTTP MCP servers that fail: a tiny streamable HTTP server on std's TcpListener.

#[derive(Clone, Copy, PartialEq)]
enum HttpFault {
    /// Every request gets a 500.
    Always500,
    /// Every connection is closed without an answer.
    DropAlways,
    /// `initialize` and `tools/list` work; `tools/call` gets a 500.
    Call500,
    /// `initialize` and `tools/list` work; `tools/call` drops the connection.
    CallDrop,
}

/// Serves `fault` on a loopback port until the test ends; the URL of its `/mcp`.
fn http_mcp_server(fault: HttpFault) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = serve_http_connection(stream, fault);
            });
        }
    });
    url
}

fn serve_http_connection(mut stream: std::net::TcpStream, fault: HttpFault) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let method = message["method"].as_str().unwrap_or("");
        let is_call = method == "tools/call";
        match fault {
            HttpFault::DropAlways => return Ok(()),
            HttpFault::CallDrop if is_call => return Ok(()),
            HttpFault::Always500 => {
                return write_http(
                    &mut stream,
                    "500 Internal Server Error",
                    "text/plain",
                    "boom",
                )
            }
            HttpFault::Call500 if is_call => {
                write_http(
                    &mut stream,
                    "500 Internal Server Error",
                    "text/plain",
                    "boom",
                )?;
                continue;
            }
            _ => {}
        }
        if !request_line.starts_with("POST") {
            write_http(&mut stream, "405 Method Not Allowed", "text/plain", "")?;
            continue;
        }
        let Some(id) = message.get("id").cloned() else {
            write_http(&mut stream, "202 Accepted", "text/plain", "")?;
            continue;
        };
        let result = match method {
            "initialize" => json!({
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "faulty-http", "version": "0"},
            }),
            "tools/list" => json!({"tools": [{
                "name": "echo",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
            }]}),
            _ => json!({"content": [{"type": "text", "text": "unexpected"}]}),
        };
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        write_http(&mut stream, "200 OK", "application/json", &answer)?;
        stream.flush()?;
    }
}

fn write_http(
    stream: &mut std::net::TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    use std::io::Write;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn http_config(url: &str) -> String {
    format!(
        "{}\n[servers.bad]\nurl = {url:?}\ncall_timeout = \"3s\"\nconnect_timeout = \"3s\"\n",
        examples_config()
    )
}

fn check_http_fault(fault: HttpFault) {
    let fixture = Fixture::start(&http_config(&http_mcp_server(fault)));
    let reply = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&reply, 503, "upstream_unavailable", Duration::from_secs(4));
    fixture.assert_news_works();
    // And again: the bridge keeps answering the same way.
    let reply = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&reply, 503, "upstream_unavailable", Duration::from_secs(4));
    fixture.stop_and_check_clean();
}

#[test]
fn an_http_server_answering_500_is_upstream_unavailable() {
    check_http_fault(HttpFault::Always500);
}

#[test]
fn an_http_server_dropping_the_connection_is_upstream_unavailable() {
    check_http_fault(HttpFault::DropAlways);
}

#[test]
fn an_http_server_answering_500_to_a_call_is_upstream_unavailable() {
    check_http_fault(HttpFault::Call500);
}

#[test]
fn an_http_server_dropping_a_call_is_upstream_unavailable() {
    check_http_fault(HttpFault::CallDrop);
}

// Signals: Ctrl-C and SIGTERM to `exec`, `bridge` and `serve`.

/// `codemode exec --sandbox native` of a script that prints `ready` and then
/// sleeps (with a child process of its own); `signal` once it is ready. The
/// exit code, the stderr, and what was left behind.
fn exec_interrupted(signal: &str) -> (i32, String) {
    use std::io::BufRead;
    let work = Workdir::with_config(&format!(
        "{}\n[sandbox]\nbackend = \"native\"\n",
        examples_config()
    ));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        work.path().join("sleeper.py"),
        "import subprocess, time\nfrom mcp_tools import news\nnews.search(query='ai')\n\
         child = subprocess.Popen(['sleep', '300'])\nprint('ready', flush=True)\ntime.sleep(300)\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(common::codemode_bin())
        .current_dir(work.path())
        .env("TMPDIR", tmp.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .args(["exec", "--sandbox", "native", "sleeper.py"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    assert_eq!(
        dir_entries(tmp.path()).len(),
        1,
        "the run's directory exists"
    );
    let tree = common::descendants_of(pid);
    assert!(
        tree.iter().any(|(_, cmd)| cmd.contains("sleep 300")),
        "the script's child runs: {tree:?}"
    );
    let started = Instant::now();
    common::send_signal(pid, signal);
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(15));
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(took < Duration::from_secs(5), "exec took {took:?} to stop");
    let left = common::wait_until_gone(&tree, Duration::from_secs(5));
    assert!(left.is_empty(), "left running after {signal}: {left:?}");
    assert_eq!(
        dir_entries(tmp.path()),
        Vec::<String>::new(),
        "the run's directory was left"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn ctrl_c_to_exec_kills_the_script_and_exits_130() {
    let (code, stderr) = exec_interrupted("INT");
    assert_eq!(code, 130, "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("stopped by"))
        .collect();
    assert_eq!(
        said,
        ["codemode: stopped by SIGINT: the script and everything it started were killed"],
        "{stderr}"
    );
}

#[test]
fn sigterm_to_exec_kills_the_script_and_exits_143() {
    let (code, stderr) = exec_interrupted("TERM");
    assert_eq!(code, 143, "{stderr}");
    assert!(stderr.contains("codemode: stopped by SIGTERM"), "{stderr}");
}

/// `codemode bridge` with a call hanging in a tool, sent `signal`: it stops
/// within its shutdown grace, with its servers and its socket.
fn bridge_stopped_with_a_call_in_flight(signal: &str) {
    let mut bridge = BridgeProcess::start(&config("hang-call", "30s"), &[]);
    let pid = bridge.child.id();
    // A call in flight when the signal comes.
    let hanging = {
        let (url, token) = (bridge.url_tcp(), bridge.token.clone());
        std::thread::spawn(move || {
            let body = json!({"server": "bad", "tool": "hang", "arguments": {}}).to_string();
            http(&url, "POST", "/rpc", Some(&token), body.as_bytes())
        })
    };
    call(&bridge, "news", "search", json!({"query": "ai"}));
    std::thread::sleep(Duration::from_millis(300));
    let servers = children_of(pid);
    assert_eq!(servers.len(), 2, "{servers:?}");
    let started = Instant::now();
    let status = bridge.signal(signal);
    assert!(status.success(), "{status:?}\n{}", bridge.stderr());
    // Requests in flight get the bridge's shutdown grace (10 s) to finish.
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "{:?}",
        started.elapsed()
    );
    assert!(!bridge.socket.exists(), "the socket was left behind");
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "servers left: {left:?}");
    // The caller in flight gets an answer or a closed connection, not a hang.
    let (status, _) = hanging.join().unwrap();
    assert!(status == 0 || status >= 500, "{status}");
}

#[test]
fn sigint_stops_the_bridge_its_servers_and_its_socket() {
    bridge_stopped_with_a_call_in_flight("INT");
}

#[test]
fn sigterm_stops_the_bridge_with_a_call_hanging_in_a_tool() {
    bridge_stopped_with_a_call_in_flight("TERM");
}

/// A second signal during the shutdown grace (Ctrl-C pressed again, or a
/// supervisor escalating) stops the bridge at once: it waits out neither the
/// hanging call nor the grace of a server that will not stop by itself, and
/// still leaves no server and no socket behind.
#[test]
fn a_second_signal_stops_the_bridge_at_once_with_a_call_hanging_in_a_tool() {
    let mut bridge = BridgeProcess::start(&config("hang-stubborn", "30s"), &[]);
    let pid = bridge.child.id();
    let hanging = {
        let (url, token) = (bridge.url_tcp(), bridge.token.clone());
        std::thread::spawn(move || {
            let body = json!({"server": "bad", "tool": "hang", "arguments": {}}).to_string();
            http(&url, "POST", "/rpc", Some(&token), body.as_bytes())
        })
    };
    call(&bridge, "news", "search", json!({"query": "ai"}));
    std::thread::sleep(Duration::from_millis(300));
    let servers = children_of(pid);
    assert_eq!(servers.len(), 2, "{servers:?}");
    common::send_signal(pid, "TERM");
    // Well into the grace, which the hanging call would hold for 10 s.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        bridge.child.try_wait().unwrap().is_none(),
        "the bridge did not wait for the call in flight\n{}",
        bridge.stderr()
    );
    let started = Instant::now();
    let status = bridge.signal("INT");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "took {took:?} after the second signal\n{}",
        bridge.stderr()
    );
    assert!(status.success(), "{status:?}\n{}", bridge.stderr());
    assert!(!bridge.socket.exists(), "the socket was left behind");
    let left = common::wait_until_gone(&servers, Duration::from_millis(500));
    assert!(left.is_empty(), "servers left: {left:?}");
    let (status, _) = hanging.join().unwrap();
    assert!(status == 0 || status >= 500, "{status}");
}

/// `codemode serve` over stdio with the example servers, initialized.
fn serve_stdio() -> (std::process::Child, Workdir, Vec<(u32, String)>) {
    use std::io::{BufRead, Write};
    let work = Workdir::with_config(&common::serve_config());
    let mut child = std::process::Command::new(common::codemode_bin())
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
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "faults", "version": "0"}}});
    writeln!(stdin, "{init}").unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"result\""), "{line}");
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .unwrap();
    child.stdin = Some(stdin);
    let servers = wait_for_children(child.id(), 2);
    (child, work, servers)
}

/// Sends `signal` to `child` and waits up to `limit` for it to exit: how long
/// that took, how it ended, and what it wrote to stderr.
fn signal_and_wait(
    child: &mut std::process::Child,
    signal: &str,
    limit: Duration,
) -> (Duration, std::process::ExitStatus, String) {
    let started = Instant::now();
    common::send_signal(child.id(), signal);
    let status = common::wait_with_timeout(child, limit);
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (took, status, stderr)
}

fn wait_for_children(pid: u32, count: usize) -> Vec<(u32, String)> {
    let started = Instant::now();
    loop {
        let found = children_of(pid);
        if found.len() >= count || started.elapsed() > Duration::from_secs(20) {
            assert_eq!(found.len(), count, "{found:?}");
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_on_stdio_exits_cleanly_when_stdin_closes() {
    let (mut child, _work, servers) = serve_stdio();
    drop(child.stdin.take());
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "servers left: {left:?}");
}

#[test]
fn sigterm_to_serve_on_stdio_stops_it_and_its_servers() {
    let (mut child, _work, servers) = serve_stdio();
    common::send_signal(child.id(), "TERM");
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "servers left: {left:?}");
}

/// A private `TMPDIR` the sandbox's user can traverse (a run directory's
/// parent must be), so a test can check that runs leave nothing in it.
fn private_tmp() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    tmp
}

/// `codemode serve` on stdio with its servers up and a client that never
/// sends `initialize` (stdin open, silent), sent `signal`: it ends at once,
/// cleanly, and leaves no server and no file behind.
fn serve_on_stdio_stopped_before_initialize(signal: &str) {
    use std::io::BufRead;
    let work = Workdir::with_config(&common::serve_config());
    let tmp = private_tmp();
    let mut child = std::process::Command::new(common::codemode_bin())
        .current_dir(work.path())
        .env("TMPDIR", tmp.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .arg("serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("codemode serve: MCP on stdio") {
        let before = said.len();
        stderr.read_line(&mut said).unwrap();
        assert!(said.len() > before, "serve ended before serving: {said}");
    }
    let servers = wait_for_children(child.id(), 2);
    let started = Instant::now();
    common::send_signal(child.id(), signal);
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(20));
    let took = started.elapsed();
    std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
    assert!(
        took < Duration::from_secs(5),
        "serve took {took:?} to stop: {said}"
    );
    // Stopping is how a server ends: 0, as after `initialize` and as the bridge.
    assert_eq!(status.code(), Some(0), "{status:?}: {said}");
    assert!(!said.contains("panicked"), "{said}");
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "servers left: {left:?}");
    assert_eq!(dir_entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn sigterm_to_serve_on_stdio_before_initialize_stops_it_at_once() {
    serve_on_stdio_stopped_before_initialize("TERM");
}

#[test]
fn sigint_to_serve_on_stdio_before_initialize_stops_it_at_once() {
    serve_on_stdio_stopped_before_initialize("INT");
}

#[test]
fn sigterm_while_serve_starts_its_servers_does_not_wait_for_a_stuck_one() {
    let work = Workdir::with_config(&format!(
        "{}\n[sandbox]\nbackend = \"native\"\n",
        misbehaving_server("stuck", "no-init", "5s")
            .replace("connect_timeout = \"2s\"", "connect_timeout = \"60s\"")
    ));
    let mut child = std::process::Command::new(common::codemode_bin())
        .current_dir(work.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .arg("serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let servers = wait_for_children(child.id(), 1);
    let (took, status, stderr) = signal_and_wait(&mut child, "TERM", Duration::from_secs(70));
    assert!(took < Duration::from_secs(5), "took {took:?}: {stderr}");
    assert_eq!(status.code(), Some(0), "{status:?}: {stderr}");
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "the starting server was left: {left:?}");
}

/// `codemode serve --http` with nothing to do, sent `signal`: it ends at
/// once, cleanly, its port closed and its servers stopped.
fn serve_over_http_stopped_while_idle(signal: &str) {
    let mut server = common::ServeProcess::start(&common::serve_config(), &[], &[]);
    let pid = server.child.id();
    let addr = server.addr();
    assert!(std::net::TcpStream::connect(&addr).is_ok(), "not listening");
    let servers = wait_for_children(pid, 2);
    let started = Instant::now();
    common::send_signal(pid, signal);
    let status = common::wait_with_timeout(&mut server.child, Duration::from_secs(20));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: {}",
        server.stderr()
    );
    assert_eq!(status.code(), Some(0), "{status:?}: {}", server.stderr());
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} still accepts connections"
    );
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "servers left: {left:?}");
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

#[test]
fn sigterm_to_idle_serve_over_http_closes_the_port_and_stops_its_servers() {
    serve_over_http_stopped_while_idle("TERM");
}

#[test]
fn sigint_to_idle_serve_over_http_closes_the_port_and_stops_its_servers() {
    serve_over_http_stopped_while_idle("INT");
}

#[test]
fn sigterm_to_serve_over_http_mid_run_kills_the_run_and_removes_its_directory() {
    let Some(python) = common::mcp_python() else {
        return;
    };
    let tmp = private_tmp();
    let mut server = common::ServeProcess::start(
        &common::serve_config(),
        &[],
        &[("TMPDIR", tmp.path().to_str().unwrap())],
    );
    let pid = server.child.id();
    let addr = server.addr();
    let (mut command, _client_dir) = common::python_client_command(
        &python,
        &server.url,
        r#"
SCRIPT = "import subprocess, time\nfrom mcp_tools import news\nnews.search(query='ai')\nsubprocess.Popen(['sleep', '300'])\nprint('ready', flush=True)\ntime.sleep(300)\n"
async def main():
    async with client() as c:
        r = await c.call_tool("execute_python", {"code": SCRIPT})
        done({"text": text(r)})
"#,
        &[],
    );
    let mut client = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The run is under way once its script's own child runs.
    let waiting = Instant::now();
    let tree = loop {
        let tree = common::descendants_of(pid);
        if tree.iter().any(|(_, cmd)| cmd.contains("sleep 300")) {
            break tree;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the run did not start: {tree:?}\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        dir_entries(tmp.path()).len(),
        1,
        "the run's directory exists"
    );
    let started = Instant::now();
    common::send_signal(pid, "TERM");
    let status = common::wait_with_timeout(&mut server.child, Duration::from_secs(20));
    let took = started.elapsed();
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: {}",
        server.stderr()
    );
    assert_eq!(status.code(), Some(0), "{status:?}: {}", server.stderr());
    // The sandbox's processes, the script's child and the MCP servers.
    let left = common::wait_until_gone(&tree, Duration::from_secs(5));
    assert!(left.is_empty(), "left running: {left:?}");
    assert_eq!(
        dir_entries(tmp.path()),
        Vec::<String>::new(),
        "the run's directory was left"
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} still accepts connections"
    );
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

/// The Docker twin of the test above: the run's container is removed by a
/// background thread when the runtime drops the run, and the process must
/// not exit before that thread has finished.
#[test]
fn sigterm_to_serve_over_http_mid_docker_run_removes_its_container() {
    let Some(python) = common::mcp_python() else {
        return;
    };
    if !common::docker_ready() {
        return;
    }
    let tmp = private_tmp();
    let mut server = common::ServeProcess::start(
        &common::exec_config(),
        &["--sandbox", "docker"],
        &[("TMPDIR", tmp.path().to_str().unwrap())],
    );
    let pid = server.child.id();
    let (mut command, _client_dir) = common::python_client_command(
        &python,
        &server.url,
        r#"
SCRIPT = "import time\nprint('ready', flush=True)\ntime.sleep(300)\n"
async def main():
    async with client() as c:
        r = await c.call_tool("execute_python", {"code": SCRIPT})
        done({"text": text(r)})
"#,
        &[],
    );
    let mut client = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Other tests run containers too: this run's is the one whose workspace
    // lies in this test's TMPDIR.
    let waiting = Instant::now();
    let container = loop {
        if let Some(id) = running_container_under(tmp.path()) {
            break id;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the run's container did not start: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let started = Instant::now();
    common::send_signal(pid, "TERM");
    let status = common::wait_with_timeout(&mut server.child, Duration::from_secs(30));
    let took = started.elapsed();
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}: {}",
        server.stderr()
    );
    assert_eq!(status.code(), Some(0), "{status:?}: {}", server.stderr());
    // Checked at once: a removal still under way when the process exited
    // would have been cut off.
    let left = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        "label=codemode.run",
        "--filter",
        &format!("id={container}"),
    ]);
    assert_eq!(left.trim(), "", "container {container} was left behind");
    assert_eq!(
        dir_entries(tmp.path()),
        Vec::<String>::new(),
        "the run's directory was left"
    );
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

fn docker(args: &[&str]) -> String {
    let output = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The id of a running codemode container with a mount from under `dir`.
fn running_container_under(dir: &std::path::Path) -> Option<String> {
    let ids = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "label=codemode.run",
        "--filter",
        "status=running",
    ]);
    let dir = dir.to_str().unwrap();
    ids.split_whitespace().find_map(|id| {
        // A container may be gone between the listing and this look.
        let output = std::process::Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{range .Mounts}}{{.Source}}\n{{end}}",
                id,
            ])
            .output()
            .ok()?;
        let sources = String::from_utf8_lossy(&output.stdout);
        sources
            .lines()
            .any(|source| source.starts_with(dir))
            .then(|| id.to_string())
    })
}

#[test]
fn sigterm_while_the_bridge_warms_up_stops_it_at_once() {
    let work = Workdir::with_config(
        &misbehaving_server("stuck", "no-init", "5s")
            .replace("connect_timeout = \"2s\"", "connect_timeout = \"60s\""),
    );
    let socket = work.path().join("bridge.sock");
    let mut child = std::process::Command::new(common::codemode_bin())
        .current_dir(work.path())
        .env("CODEMODE_BRIDGE_TOKEN", "test-token-0123456789abcdef")
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .args(["bridge", "--warm", "--listen", "127.0.0.1:0", "--socket"])
        .arg(&socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let servers = wait_for_children(child.id(), 1);
    let (took, status, stderr) = signal_and_wait(&mut child, "TERM", Duration::from_secs(70));
    assert!(took < Duration::from_secs(5), "took {took:?}: {stderr}");
    assert_eq!(status.code(), Some(0), "{status:?}: {stderr}");
    assert!(!socket.exists(), "the socket was left behind");
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "the starting server was left: {left:?}");
}

// Data integrity.

#[test]
fn gen_bridge_keeps_the_old_module_when_a_server_fails() {
    for mode in ["no-init", "crash-list"] {
        let work = Workdir::with_config(&config(mode, "2s"));
        let module = work.path().join("mcp_tools.py");
        let good = "# a reviewed module\nGOOD = True\n";
        std::fs::write(&module, good).unwrap();
        let before = dir_entries(work.path());
        let started = Instant::now();
        let output = work
            .codemode()
            .args(["gen-bridge", "-o", "mcp_tools.py"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{mode}: gen-bridge must fail");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode}: {:?}",
            started.elapsed()
        );
        let stderr = common::stderr_of(&output);
        assert!(
            stderr.contains("bad"),
            "{mode}: the failed server is named: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&module).unwrap(),
            good,
            "{mode}: the module changed"
        );
        assert_eq!(
            dir_entries(work.path()),
            before,
            "{mode}: a temporary file was left"
        );
    }
}

/// A small tmpfs of its own, mounted for one test and filled up, so that
/// writes fail with ENOSPC for real. Unmounted when dropped.
struct FullDisk {
    dir: tempfile::TempDir,
}

impl FullDisk {
    /// Mounting needs root (CI runs the tests as root); elsewhere `None`,
    /// saying why.
    fn mount(options: &str) -> Option<FullDisk> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs to fill up needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(options),
        )
        .expect("a tmpfs to fill up");
        Some(FullDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Takes every block with one file, `fill`, then gives `spare` bytes back.
    fn fill_blocks(&self, spare: u64) {
        use std::io::Write;
        let path = self.path().join("fill");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(spare)).unwrap();
    }

    /// Takes every inode with empty files, then gives `spare` of them back.
    fn fill_inodes(&self, spare: usize) {
        let mut made = Vec::new();
        loop {
            let path = self.path().join(format!("inode-{}", made.len()));
            match std::fs::File::create(&path) {
                Ok(_) => made.push(path),
                Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        for path in made.iter().rev().take(spare) {
            std::fs::remove_file(path).unwrap();
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs `command` to the end, noting every process it had under it on the way
/// (the MCP servers `exec` starts for the stubs are gone again by the end).
fn output_watching_children(
    mut command: std::process::Command,
) -> (std::process::Output, Vec<(u32, String)>) {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen: Vec<(u32, String)> = Vec::new();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        for process in common::descendants_of(child.id()) {
            if !seen.contains(&process) {
                seen.push(process);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "it did not end"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), seen)
}

/// The one `codemode: error:` line of `stderr`, checked for being the whole
/// story: no panic, no Python traceback.
fn the_error_line(stderr: &str) -> String {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("codemode: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

fn exec_on_a_full_disk(disk: &FullDisk) -> (std::process::Output, Vec<(u32, String)>) {
    let work = Workdir::with_config(&common::serve_config());
    std::fs::write(work.path().join("noop.py"), "print('never')\n").unwrap();
    let mut command = std::process::Command::new(common::codemode_bin());
    command
        .current_dir(work.path())
        .env("TMPDIR", disk.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .args(["exec", "--sandbox", "native", "noop.py"]);
    output_watching_children(command)
}

#[test]
fn a_disk_full_while_writing_the_run_directory_is_one_line_naming_the_file() {
    let Some(disk) = FullDisk::mount("size=256k,mode=0755") else {
        return;
    };
    // One page left: the script fits, the stub module does not.
    disk.fill_blocks(4096);
    let (output, seen) = exec_on_a_full_disk(&disk);
    let stderr = common::stderr_of(&output);
    let error = the_error_line(&stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        error.contains(&disk.path().display().to_string())
            && error.contains("mcp_tools.py")
            && error.contains("No space left on device"),
        "{error}"
    );
    assert!(common::stdout_of(&output).is_empty());
    assert_eq!(
        dir_entries(disk.path()),
        ["fill"],
        "the run's directory was left"
    );
    let left = common::wait_until_gone(&seen, Duration::from_secs(5));
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn a_run_directory_that_cannot_be_made_names_where_it_was_to_be() {
    let Some(disk) = FullDisk::mount("size=1m,nr_inodes=32,mode=0755") else {
        return;
    };
    // One inode left: the run's directory is made, the workspace in it is not.
    disk.fill_inodes(1);
    let before = dir_entries(disk.path());
    let (output, seen) = exec_on_a_full_disk(&disk);
    let stderr = common::stderr_of(&output);
    let error = the_error_line(&stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        error.contains(&disk.path().display().to_string())
            && error.contains("No space left on device"),
        "{error}"
    );
    assert_eq!(
        dir_entries(disk.path()),
        before,
        "a partial run directory was left"
    );
    let left = common::wait_until_gone(&seen, Duration::from_secs(5));
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn gen_bridge_onto_a_full_disk_keeps_the_old_module() {
    let Some(disk) = FullDisk::mount("size=256k,mode=0755") else {
        return;
    };
    let module = disk.path().join("mcp_tools.py");
    let good = "# a reviewed module\nGOOD = True\n";
    std::fs::write(&module, good).unwrap();
    disk.fill_blocks(0);
    let work = Workdir::with_config(&examples_config());
    let output = work
        .codemode()
        .arg("gen-bridge")
        .arg("-o")
        .arg(&module)
        .output()
        .unwrap();
    let stderr = common::stderr_of(&output);
    let error = the_error_line(&stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        error.contains(&format!("writing {}", module.display()))
            && error.contains("No space left on device"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&module).unwrap(), good);
    assert_eq!(
        dir_entries(disk.path()),
        ["fill", "mcp_tools.py"],
        "a temporary file was left"
    );
}

// Hostile input: randomly mutated `/rpc` bodies (cargo-fuzz needs a nightly
// toolchain; this is the stable, property-style stand-in).

const KINDS: [&str; 11] = [
    "unauthorized",
    "forbidden",
    "unknown_server",
    "unknown_tool",
    "invalid_arguments",
    "tool_error",
    "upstream_unavailable",
    "timeout",
    "rate_limited",
    "payload_too_large",
    "bad_request",
];

/// A small xorshift generator: reproducible, no crate needed.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Xorshift, seed: &[u8]) -> Vec<u8> {
    const TOKENS: [&str; 16] = [
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        ",",
        ":",
        "null",
        "true",
        "1e999",
        "-0",
        "\\u0000",
        "\\ud800",
        "\u{1f600}",
        "\"arguments\":",
    ];
    let mut body = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(body.len() + 1);
        match rng.below(7) {
            0 if at < body.len() => body[at] = rng.next() as u8,
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                body.splice(at..at, token.bytes());
            }
            2 => {
                let end = (at + rng.below(16)).min(body.len());
                body.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(32)).min(body.len());
                let copy = body[at..end].to_vec();
                body.splice(at..at, copy);
            }
            4 => {
                let depth = rng.below(200);
                let nest: Vec<u8> = std::iter::repeat_n(b'[', depth)
                    .chain(std::iter::repeat_n(b']', depth))
                    .collect();
                body.splice(at..at, nest);
            }
            5 => body.truncate(at),
            _ => {
                let len = rng.below(64);
                let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                body.splice(at..at, noise);
            }
        }
    }
    body
}

#[test]
fn thousands_of_mutated_rpc_bodies_each_get_a_well_formed_answer() {
    let fixture = Fixture::start(&examples_config());
    let pid = fixture.bridge.child.id();
    fixture.assert_news_works();
    // Both servers running before the baseline: a server started mid-run adds
    // its own pipes, which are not a leak.
    let warm = json!({"server": "summarizer", "tool": "keywords", "arguments": {"text": "a b c", "limit": 1}});
    let (status, _) = http(
        &fixture.bridge.url_tcp(),
        "POST",
        "/rpc",
        Some(&fixture.bridge.token),
        warm.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let fds_before = common::open_fds(pid);
    let rss_before = common::rss_kib(pid);
    let seeds: Vec<Vec<u8>> = [
        json!({"server": "news", "tool": "get_article", "arguments": {"id": "tech-001"}}),
        json!({"server": "news", "tool": "search", "arguments": {"query": "ai", "limit": 2}}),
        json!({"server": "summarizer", "tool": "keywords", "arguments": {"text": "a b c", "limit": 1}}),
        json!({"server": "news", "tool": "fetch_latest", "arguments": {"category": "technology"}}),
        json!({"server": "nope", "tool": "x"}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect();
    let workers: Vec<_> = (0..4u64)
        .map(|worker| {
            let (url, token, seeds) = (
                fixture.bridge.url_tcp(),
                fixture.bridge.token.clone(),
                seeds.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Xorshift(0x2545_f491_4f6c_dd1d ^ ((worker + 1) * 0x9e37_79b9));
                let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
                for round in 0..600 {
                    let body = mutate(&mut rng, &seeds[round % seeds.len()]);
                    let (status, text) = http(&url, "POST", "/rpc", Some(&token), &body);
                    let reply: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
                        panic!(
                            "status {status}, not JSON: {text:.200}\nfor {}",
                            String::from_utf8_lossy(&body)
                        )
                    });
                    let key = match reply["success"].as_bool() {
                        Some(true) => {
                            assert_eq!(status, 200, "{reply}");
                            assert!(reply.get("result").is_some(), "{reply}");
                            "ok".to_string()
                        }
                        Some(false) => {
                            let kind = reply["error"]["kind"].as_str().unwrap_or("");
                            assert!(KINDS.contains(&kind), "{reply}");
                            assert!(reply["error"]["message"].is_string(), "{reply}");
                            assert!((400..600).contains(&status), "{status} {reply}");
                            kind.to_string()
                        }
                        None => panic!("no `success`: {reply}"),
                    };
                    *outcomes.entry(key).or_default() += 1;
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for worker in workers {
        for (kind, n) in worker.join().unwrap() {
            *outcomes.entry(kind).or_default() += n;
        }
    }
    eprintln!(
        "2400 mutated bodies: {outcomes:?}; bridge RSS {rss_before} -> {} KiB, fds {fds_before} -> {}",
        common::rss_kib(pid),
        common::open_fds(pid)
    );
    assert!(outcomes.contains_key("bad_request"), "{outcomes:?}");
    fixture.assert_news_works();
    let (status, _) = http(&fixture.bridge.url_tcp(), "GET", "/health", None, b"");
    assert_eq!(status, 200);
    // Closed connections leave the bridge a moment after the clients see them end.
    let settled = Instant::now();
    while common::open_fds(pid) > fds_before + 4 && settled.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        common::open_fds(pid) <= fds_before + 4,
        "descriptors leaked: {fds_before} -> {}",
        common::open_fds(pid)
    );
    fixture.stop_and_check_clean();
}

#[test]
fn faults_inside_an_exec_reach_the_script_as_tool_errors_and_leave_nothing() {
    let work = Workdir::with_config(&format!(
        "{}\n{}\n{}\n[sandbox]\nbackend = \"native\"\n",
        examples_config(),
        misbehaving_server("slow", "hang-call", "1s"),
        misbehaving_server("crashy", "crash-call", "5s"),
    ));
    let script = r#"
import mcp_tools
from mcp_tools import news, slow, crashy
for call in (lambda: slow.hang(), lambda: crashy.echo(text="x")):
    try:
        call()
        print("no error")
    except mcp_tools.ToolError as err:
        print(err.kind)
print(news.get_article(id="tech-001")["id"])
print(slow.echo(text="still here"))
"#;
    let started = Instant::now();
    let run = common::exec_json(&work, "native", script, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!(
        run.report["stdout"], "timeout\nupstream_unavailable\ntech-001\nstill here\n",
        "{}",
        run.report
    );
    let outcomes: Vec<(String, bool)> = run.report["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["server"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("slow".to_string(), false),
            ("crashy".to_string(), false),
            ("news".to_string(), true),
            ("slow".to_string(), true)
        ]
    );
    assert_eq!(
        dir_entries(run.tmp.path()),
        Vec::<String>::new(),
        "the run left files"
    );
}

#[test]
fn ctrl_c_while_servers_start_stops_exec_at_once() {
    // A server that never finishes initialize, with a long connect timeout: the
    // signal must not wait for it.
    let work = Workdir::with_config(&format!(
        "{}\n[sandbox]\nbackend = \"native\"\n",
        misbehaving_server("stuck", "no-init", "5s")
            .replace("connect_timeout = \"2s\"", "connect_timeout = \"60s\"")
    ));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("noop.py"), "print('never')\n").unwrap();
    let mut child = std::process::Command::new(common::codemode_bin())
        .current_dir(work.path())
        .env("TMPDIR", tmp.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .args(["exec", "--sandbox", "native", "noop.py"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let servers = wait_for_children(child.id(), 1);
    let started = Instant::now();
    common::send_signal(child.id(), "INT");
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(20));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("codemode: stopped by SIGINT before the script started"),
        "{stderr}"
    );
    let left = common::wait_until_gone(&servers, Duration::from_secs(5));
    assert!(left.is_empty(), "the starting server was left: {left:?}");
    assert_eq!(dir_entries(tmp.path()), Vec::<String>::new());
}
