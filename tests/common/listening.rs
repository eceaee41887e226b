//! `codemode bridge` and `codemode serve --http` running for one test. Both are
//! started with `--json` and waited for the same way: by the one JSON line
//! each prints on stdout once it accepts connections.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{codemode_bin, send_signal, wait_with_timeout, Workdir};

/// What a process started with `--json` said once it was listening, and
/// what it writes as it goes on.
pub struct Listening {
    /// The `{"event": "listening", ...}` line, parsed.
    pub line: Value,
    /// Its stderr, collected as it is written.
    pub stderr: Arc<Mutex<String>>,
    /// Its stdout after the listening line, collected as it is written.
    pub stdout: Arc<Mutex<String>>,
    /// Says when its stdout has closed (at the latest, when it exits).
    pub stdout_closed: mpsc::Receiver<()>,
}

/// Waits up to `limit` for `child` (its stdout and stderr piped) to print its
/// listening line, which must be the first line on its stdout and one JSON
/// object; panics with its stderr if it does not. Both streams go on being
/// drained, so the process never blocks on a full pipe.
pub fn wait_until_listening(child: &mut Child, limit: Duration) -> Listening {
    let stderr = Arc::new(Mutex::new(String::new()));
    let stdout = Arc::new(Mutex::new(String::new()));
    let errors = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in errors.lines().map_while(Result::ok) {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let (first, line) = mpsc::channel();
    let (closed, stdout_closed) = mpsc::channel();
    let output = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    let sink = Arc::clone(&stdout);
    std::thread::spawn(move || {
        let mut lines = output.lines().map_while(Result::ok);
        if let Some(line) = lines.next() {
            let _ = first.send(line);
        }
        for line in lines {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
        let _ = closed.send(());
    });
    // The process may be slow to say why it failed: give stderr a moment.
    let said = |stderr: &Arc<Mutex<String>>| {
        std::thread::sleep(Duration::from_millis(200));
        stderr.lock().unwrap().clone()
    };
    let text = match line.recv_timeout(limit) {
        Ok(text) => text,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("no listening line within {limit:?}: {}", said(&stderr))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("stdout ended before a listening line: {}", said(&stderr))
        }
    };
    let line: Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("the listening line is not JSON ({err}): {text:?}"));
    assert!(
        line.is_object(),
        "the listening line is not an object: {text}"
    );
    assert_eq!(line["event"], "listening", "{text}");
    Listening {
        line,
        stderr,
        stdout,
        stdout_closed,
    }
}

fn stdout_at_exit(
    child: &mut Child,
    closed: &mpsc::Receiver<()>,
    stdout: &Mutex<String>,
) -> String {
    assert!(
        child.try_wait().unwrap().is_some(),
        "{} is still running",
        child.id()
    );
    closed
        .recv_timeout(Duration::from_secs(5))
        .expect("its stdout closes once it has exited");
    stdout.lock().unwrap().clone()
}

/// A `codemode bridge` running for one test, on a loopback port and a Unix
/// socket, with a known token. Stopped (SIGTERM) when dropped.
pub struct BridgeProcess {
    pub child: Child,
    pub work: Workdir,
    pub token: String,
    /// `127.0.0.1:PORT`
    pub tcp: String,
    pub socket: PathBuf,
    /// What `--json` printed once the bridge was listening.
    pub listening: Value,
    pub stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    stdout_closed: mpsc::Receiver<()>,
}

impl BridgeProcess {
    pub fn start(config: &str, extra_args: &[&str]) -> BridgeProcess {
        BridgeProcess::start_with_env(config, extra_args, &[])
    }

    /// Like `start`, with extra environment (for example a private `TMPDIR`).
    pub fn start_with_env(
        config: &str,
        extra_args: &[&str],
        env: &[(&str, &OsStr)],
    ) -> BridgeProcess {
        let work = Workdir::with_config(config);
        let socket = work.path().join("bridge.sock");
        let token = "test-token-0123456789abcdef".to_string();
        let mut command = Command::new(codemode_bin());
        command
            .current_dir(work.path())
            .env("CODEMODE_BRIDGE_TOKEN", &token)
            .env_remove("CODEMODE_LOG")
            .arg("--config")
            .arg(work.config())
            .args(["bridge", "--json", "--listen", "127.0.0.1:0", "--socket"])
            .arg(&socket)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("codemode bridge starts");
        let listening = wait_until_listening(&mut child, Duration::from_secs(30));
        let tcp = listening.line["addresses"]
            .as_array()
            .and_then(|all| all.iter().find_map(|a| a.as_str()?.strip_prefix("http://")))
            .unwrap_or_else(|| panic!("no TCP address: {}", listening.line))
            .to_string();
        BridgeProcess {
            child,
            work,
            token,
            tcp,
            socket,
            listening: listening.line,
            stderr: listening.stderr,
            stdout: listening.stdout,
            stdout_closed: listening.stdout_closed,
        }
    }

    pub fn url_tcp(&self) -> String {
        format!("http://{}", self.tcp)
    }

    pub fn url_unix(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Sends SIGTERM and waits for the exit (of one that already exited too).
    pub fn stop(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        wait_with_timeout(&mut self.child, Duration::from_secs(20))
    }

    /// Sends `signal` (a `kill` name such as `INT`) and waits for the exit.
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        send_signal(self.child.id(), signal);
        wait_with_timeout(&mut self.child, Duration::from_secs(20))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// What it printed on stdout after the listening line, once it has
    /// exited and its stdout has closed.
    pub fn stdout_at_exit(&mut self) -> String {
        stdout_at_exit(&mut self.child, &self.stdout_closed, &self.stdout)
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `codemode serve --http 127.0.0.1:0` running for one test. Stopped when
/// dropped.
pub struct ServeProcess {
    pub child: Child,
    pub work: Workdir,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    /// What `--json` printed once serve was listening.
    pub listening: Value,
    pub stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    stdout_closed: mpsc::Receiver<()>,
}

impl ServeProcess {
    pub fn start(config: &str, extra_args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        let work = Workdir::with_config(config);
        let mut command = Command::new(codemode_bin());
        command
            .current_dir(work.path())
            .env_remove("CODEMODE_LOG")
            .env_remove("CODEMODE_SERVE_TOKEN")
            .arg("--config")
            .arg(work.config())
            .args(["serve", "--json", "--http", "127.0.0.1:0"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("codemode serve starts");
        let listening = wait_until_listening(&mut child, Duration::from_secs(60));
        let url = listening.line["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no url: {}", listening.line))
            .to_string();
        ServeProcess {
            child,
            work,
            url,
            listening: listening.line,
            stderr: listening.stderr,
            stdout: listening.stdout,
            stdout_closed: listening.stdout_closed,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// What it printed on stdout after the listening line, once it has
    /// exited and its stdout has closed.
    pub fn stdout_at_exit(&mut self) -> String {
        stdout_at_exit(&mut self.child, &self.stdout_closed, &self.stdout)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
