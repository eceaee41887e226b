//! MCP servers over stdio that crash, hang, write garbage or a partial frame,
//! answer with errors or huge results, never finish `initialize`, or die with
//! calls queued: each costs the calls to it one error of the right kind, in
//! time, and the other servers go on.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    dir_entries, examples_config, http, misbehaving_server, wait_for_no_children, Workdir,
};
use serde_json::{json, Value};

use super::{assert_kind, config, Fixture};

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
