//! Faults: MCP servers that crash, hang, write garbage, answer with huge
//! results or errors, never finish `initialize`, or die with calls queued;
//! HTTP servers that drop the connection or answer 500; signals to `exec`,
//! `bridge` and `serve`; full disks; and hostile `/rpc` bodies. For each: the
//! right error kind, fast; other servers unaffected; nothing left behind.
//!
//! What the files of this directory share: a bridge over one misbehaving
//! server, its calls and their checks, and waiting for a process's children.

mod bridge_signals;
mod data_integrity;
mod exec_signals;
mod http_servers;
mod misbehaving_servers;
mod rpc_mutation;
mod serve_signals;

use crate::common;

use std::time::{Duration, Instant};

use common::{
    children_of, dir_entries, examples_config, http, misbehaving_server, wait_for_no_children,
    BridgeProcess,
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
