//! SIGINT and SIGTERM to `codemode bridge`: with a call in flight, a second
//! signal during the grace, and while `--warm` waits for a stuck server.

use crate::common;

use std::time::{Duration, Instant};

use common::{children_of, http, misbehaving_server, BridgeProcess, Workdir};
use serde_json::json;

use super::{call, config, signal_and_wait, wait_for_children};

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
fn sigint_with_a_call_in_flight_stops_the_bridge_its_servers_and_its_socket() {
    bridge_stopped_with_a_call_in_flight("INT");
}

#[test]
fn sigterm_with_a_call_in_flight_stops_the_bridge_its_servers_and_its_socket() {
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
