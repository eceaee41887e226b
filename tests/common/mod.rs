//! Shared helpers of the integration tests: the binary, the example servers, the
//! third-party servers `.ci/test` installs, and throwaway configs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod listening;
pub mod private_dockerd;
pub mod users;

pub use listening::{wait_until_listening, BridgeProcess, ServeProcess};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `codemode` with a clean environment for config discovery: tests pass
/// `--config` explicitly, so no user or working-directory config can leak in.
pub fn codemode() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(codemode_bin());
    cmd.env_remove("CODEMODE_CONFIG")
        .env_remove("CODEMODE_LOG")
        .env("XDG_CONFIG_HOME", "/nonexistent-codemode-test")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

pub fn codemode_bin() -> &'static Path {
    assert_cmd::cargo::cargo_bin!("codemode")
}

/// The directory the example servers are built into, building them if a
/// `cargo test -p codemode` run has not.
pub fn example_bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = codemode_bin().parent().expect("a directory").to_path_buf();
        if !dir.join("news-server").exists() || !dir.join("summarizer-server").exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "codemode-examples"])
                .current_dir(repo())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the example servers failed");
        }
        dir
    })
}

pub fn example_bin(name: &str) -> PathBuf {
    example_bin_dir().join(name)
}

/// A directory with the third-party MCP servers and mypy, as `.ci/test` installs
/// them. In CI their absence fails the test; elsewhere the test is skipped.
pub fn tools_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CODEMODE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let found = dir.join("bin").join("mcp-server-time").exists();
    installed(found.then_some(()), "third-party MCP servers", &dir).map(|()| dir)
}

/// `found`, or, when `what` is missing from `dir`: in CI a failed test,
/// elsewhere a skipped one (None), said on stderr.
pub fn installed<T>(found: Option<T>, what: &str, dir: &Path) -> Option<T> {
    if found.is_some() {
        return found;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what}: missing from {}: run .ci/install-mcp-servers.sh",
        dir.display()
    );
    eprintln!("skipped: {what}: not installed (run .ci/install-mcp-servers.sh)");
    None
}

/// The Python the generated modules are checked with.
pub fn python() -> String {
    std::env::var("CODEMODE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A temporary directory holding a `codemode.toml` with `text`.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn with_config(text: &str) -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("codemode.toml"), text).expect("write config");
        Workdir { dir }
    }

    /// As [`Workdir::with_config`], readable by every user.
    pub fn shared(text: &str) -> Workdir {
        let work = Workdir::with_config(text);
        std::fs::set_permissions(
            work.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        work
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("codemode.toml")
    }

    /// `codemode --config <this config>` run from this directory.
    pub fn codemode(&self) -> assert_cmd::Command {
        let mut cmd = codemode();
        cmd.current_dir(self.path())
            .arg("--config")
            .arg(self.config());
        cmd
    }
}

/// A config with the two example servers.
pub fn examples_config() -> String {
    format!(
        "[servers.news]\ncommand = {:?}\n\n[servers.summarizer]\ncommand = {:?}\n",
        example_bin("news-server"),
        example_bin("summarizer-server")
    )
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 exchange (one request, `Connection: close`) over TCP or a
/// Unix socket: the tests check the wire itself, not a client library's view.
pub fn http(
    target: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = Vec::new();
    if let Some(path) = target.strip_prefix("unix://") {
        let mut stream = std::os::unix::net::UnixStream::connect(path).expect("connect unix");
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(body);
        stream.read_to_end(&mut raw).unwrap();
    } else {
        let addr = target.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect tcp");
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(body);
        let _ = stream.read_to_end(&mut raw);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Runs Python code with the generated module importable and the bridge's
/// address and token in the environment; returns (status, stdout, stderr).
pub fn run_python(dir: &Path, code: &str, url: &str, token: &str) -> (i32, String, String) {
    let output = Command::new(python())
        .arg("-c")
        .arg(code)
        .current_dir(dir)
        .env("PYTHONPATH", dir)
        .env("CODEMODE_BRIDGE_URL", url)
        .env("CODEMODE_BRIDGE_TOKEN", token)
        .output()
        .expect("python runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The local Python image the Docker tests use (`.ci/docker-setup.sh` builds it).
pub fn docker_image() -> String {
    std::env::var("CODEMODE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "codemode-python:bookworm".into())
}

/// Whether a Docker engine answers and has the test image. In CI a missing
/// engine or image fails the test instead of skipping it.
pub fn docker_ready() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", &docker_image()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Docker engine with image {} (run .ci/docker-setup.sh)",
            docker_image()
        );
        eprintln!("skipped: no Docker engine with image {}", docker_image());
    }
    ok
}

/// A config with the example servers and a sandbox section for the Docker image.
pub fn exec_config() -> String {
    format!(
        "{}\n[sandbox]\nimage = {:?}\n\n{NO_WARM}",
        examples_config(),
        docker_image()
    )
}

/// `codemode exec --json` of `script` in `backend`; the parsed report and the
/// exit code. `TMPDIR` points at a private directory, returned so callers can
/// check that the run left nothing behind.
pub struct ExecRun {
    pub report: serde_json::Value,
    pub code: i32,
    pub stderr: String,
    pub tmp: tempfile::TempDir,
    /// The script's file name, which its processes carry in their argv.
    pub script: String,
}

pub fn exec_json(work: &Workdir, backend: &str, script: &str, extra: &[&str]) -> ExecRun {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let name = format!("case_{backend}_{}.py", unique());
    std::fs::write(work.path().join(&name), script).unwrap();
    let output = work
        .codemode()
        .env("TMPDIR", tmp.path())
        .args(["exec", "--json", "--sandbox", backend])
        .args(extra)
        .arg(&name)
        .output()
        .unwrap();
    ExecRun::from_output(&output, tmp, name)
}

impl ExecRun {
    /// What `exec --json` of the script `script` printed and ended with.
    pub fn from_output(
        output: &std::process::Output,
        tmp: tempfile::TempDir,
        script: String,
    ) -> ExecRun {
        let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!(
                "no JSON report (exit {:?}): {}\n{}",
                output.status.code(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        ExecRun {
            report,
            code: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            tmp,
            script,
        }
    }
}

/// A name no other test or run uses.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Python that has the `mcp` SDK client (`.ci/install-mcp-servers.sh`
/// installs it into the tools dir). In CI its absence fails the test;
/// elsewhere the test is skipped.
pub fn mcp_python() -> Option<PathBuf> {
    let dir = std::env::var_os("CODEMODE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let python = dir.join("bin").join("python");
    let ok = Command::new(&python)
        .args(["-c", "import mcp, anyio"])
        .current_dir(std::env::temp_dir())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    installed(ok.then_some(python), "the Python mcp SDK", &dir)
}

/// What every client script starts with: a connected `Client` for the
/// target the test names (stdio arguments as JSON, or an HTTP URL), and
/// `done()` to hand a JSON result back to the test.
const PRELUDE: &str = r#"
import json, os, sys, time
import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TARGET = os.environ["CODEMODE_TEST_TARGET"]

def client(mode="legacy", **options):
    if TARGET.startswith("http"):
        token = os.environ.get("CODEMODE_TEST_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        transport = streamable_http_client(TARGET, http_client=create_mcp_http_client(headers=headers))
        return Client(transport, mode=mode, **options)
    params = StdioServerParameters(command=os.environ["CODEMODE_TEST_BIN"], args=json.loads(TARGET))
    return Client(stdio_client(params, errlog=sys.stderr), mode=mode, **options)

def text(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")

def done(value):
    print("RESULT " + json.dumps(value))
"#;

/// The Python SDK client running `body` (which defines `async def main()`)
/// against `target`, ready to run; the directory holding its script goes
/// with it.
pub fn python_client_command(
    python: &Path,
    target: &str,
    body: &str,
    env: &[(&str, &str)],
) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.py");
    std::fs::write(&script, format!("{PRELUDE}\n{body}\n\nanyio.run(main)\n")).unwrap();
    let mut command = Command::new(python);
    command
        .arg(&script)
        // Not the repository: its `mcp_tools.py` or a `types` dir must not shadow anything.
        .current_dir(dir.path())
        .env("CODEMODE_TEST_TARGET", target)
        .env("CODEMODE_TEST_BIN", codemode_bin())
        .env_remove("CODEMODE_LOG")
        .env_remove("CODEMODE_SERVE_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    (command, dir)
}

/// Runs `body` (which defines `async def main()`) with the Python SDK
/// against `target`; the value it passed to `done()`.
pub fn python_client(
    python: &Path,
    target: &str,
    body: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let (mut command, _dir) = python_client_command(python, target, body, env);
    let output = command.output().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "the client gave no result (exit {:?}):\n{stdout}\n{stderr}",
                output.status.code()
            )
        });
    serde_json::from_str(line).unwrap()
}

/// The example servers, run in the native sandbox.
pub fn serve_config() -> String {
    format!(
        "{}\n[sandbox]\nbackend = \"native\"\n\n{NO_WARM}",
        examples_config()
    )
}

/// No sessions started ahead: tests that count the processes, directories
/// and runs a serve holds count only those of the calls they make. Ends the
/// config in its `[serve]` table.
pub const NO_WARM: &str = "[serve]\nwarm = 0\n";

/// A stdio MCP session spoken line by line, for tests that check the wire
/// itself (and count its tokens) rather than a client library's view.
pub struct StdioMcp {
    pub child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    next_id: u64,
}

impl StdioMcp {
    /// Starts `command` and completes the `initialize` handshake.
    pub fn start(mut command: Command) -> StdioMcp {
        use std::io::BufRead;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the MCP server starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut session = StdioMcp {
            child,
            stdin,
            lines,
            next_id: 1,
        };
        session.request_raw(
            "initialize",
            serde_json::json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "codemode-tests", "version": "0"},
            }),
        );
        session.notify("notifications/initialized");
        session
    }

    pub fn notify(&mut self, method: &str) {
        use std::io::Write;
        let line = serde_json::json!({"jsonrpc": "2.0", "method": method}).to_string();
        writeln!(self.stdin, "{line}").expect("write to the server");
    }

    /// Sends a request; returns the response line exactly as it came (other
    /// lines, such as notifications, are skipped).
    pub fn request_raw(&mut self, method: &str, params: serde_json::Value) -> String {
        use std::io::Write;
        let id = self.next_id;
        self.next_id += 1;
        let line =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
                .to_string();
        writeln!(self.stdin, "{line}").expect("write to the server");
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            let value: serde_json::Value = match serde_json::from_str(&line) {
                Ok(value) => value,
                Err(_) => panic!("a line on stdout that is not JSON-RPC: {line:?}"),
            };
            if value.get("id") == Some(&serde_json::json!(id)) {
                return line;
            }
        }
    }

    /// Writes `line` as it is; the next answer (a message with an `id`, null
    /// included), skipping notifications.
    pub fn answer_to(&mut self, line: &str) -> serde_json::Value {
        use std::io::Write;
        writeln!(self.stdin, "{line}").expect("write to the server");
        loop {
            let answer = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no answer to {line:?}"));
            let value: serde_json::Value = serde_json::from_str(&answer)
                .unwrap_or_else(|_| panic!("a line on stdout that is not JSON-RPC: {answer:?}"));
            if value.get("id").is_some() {
                return value;
            }
        }
    }

    /// The `result` of a request; panics on an error answer.
    pub fn request(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let line = self.request_raw(method, params);
        let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
        match value.get_mut("result") {
            Some(result) => result.take(),
            None => panic!("{method} failed: {line}"),
        }
    }

    /// Calls a tool; (its text, whether it is an error, the whole result).
    pub fn call(
        &mut self,
        tool: &str,
        arguments: serde_json::Value,
    ) -> (String, bool, serde_json::Value) {
        let result = self.request(
            "tools/call",
            serde_json::json!({"name": tool, "arguments": arguments}),
        );
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let is_error = result["isError"].as_bool().unwrap_or(false);
        (text, is_error, result)
    }
}

impl Drop for StdioMcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Fault tests (suite/faults/): processes, files and memory counted before
// and after.

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The live (not zombie) children of `pid`, as `(pid, command line)`.
pub fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 2 || fields[0] == "Z" || fields[1] != pid.to_string() {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        found.push((child, cmdline));
    }
    found
}

/// Waits up to `limit` for `pid` to have no live children; returns those left.
pub fn wait_for_no_children(pid: u32, limit: std::time::Duration) -> Vec<(u32, String)> {
    let started = std::time::Instant::now();
    loop {
        let left = children_of(pid);
        if left.is_empty() || started.elapsed() > limit {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Resident memory of `pid` in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The number of open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The names in `dir`, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A config with one server running `tests/fixtures/misbehaving_server.py MODE`.
pub fn misbehaving_server(name: &str, mode: &str, call_timeout: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = {:?}\nargs = [{:?}, {mode:?}]\ncall_timeout = {call_timeout:?}\nconnect_timeout = \"2s\"\n",
        python(),
        repo().join("tests/fixtures/misbehaving_server.py")
    )
}

/// Every live descendant of `pid`, children first.
pub fn descendants_of(pid: u32) -> Vec<(u32, String)> {
    let mut found = children_of(pid);
    let mut next = 0;
    while next < found.len() {
        let more = children_of(found[next].0);
        found.extend(more);
        next += 1;
    }
    found
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// Waits up to `limit` until none of `pids` is alive; returns those still alive.
pub fn wait_until_gone(pids: &[(u32, String)], limit: std::time::Duration) -> Vec<(u32, String)> {
    let started = std::time::Instant::now();
    loop {
        let left: Vec<_> = pids.iter().filter(|(p, _)| alive(*p)).cloned().collect();
        if left.is_empty() || started.elapsed() > limit {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
