//! `codemode serve` told to stop: stdin closed, SIGINT or SIGTERM over stdio
//! (before `initialize` too, and while a server is stuck starting), and over
//! HTTP while idle or mid-run, in the native sandbox and in Docker.

use crate::common;

use std::time::{Duration, Instant};

use common::{dir_entries, misbehaving_server, Workdir};
use serde_json::json;

use super::{signal_and_wait, wait_for_children};

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
