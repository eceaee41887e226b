//! What the bench starts and must clean up whatever happens: a temporary
//! directory and the `codemode bridge` and `serve` processes, which are
//! ready when they print their listening line.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A private directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> std::io::Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("codemode-bench-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A `codemode` process started with `--json`, once it printed the line
/// that says it listens (docs/ARCHITECTURE.md, "Listening lines"). Its stderr
/// is drained all along, so it never blocks on a full pipe mid-measurement.
pub struct Listening {
    pub child: Child,
    /// The listening line.
    pub line: serde_json::Value,
    pub stderr: Arc<Mutex<String>>,
}

impl Listening {
    pub fn start(mut command: Command, within: Duration) -> Result<Listening, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let errors = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in errors.lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap_or_else(|e| e.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });
        let (ready, started) = mpsc::channel();
        let out = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                    if value["event"] == "listening" {
                        let _ = ready.send(value);
                    }
                }
            }
        });
        let said =
            |stderr: &Arc<Mutex<String>>| stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match started.recv_timeout(within) {
            Ok(line) => Ok(Listening {
                child,
                line,
                stderr,
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "no listening line within {within:?}; stderr:\n{}",
                    said(&stderr)
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                Err(format!(
                    "exited before listening; stderr:\n{}",
                    said(&stderr)
                ))
            }
        }
    }
}

/// A running `codemode bridge`. Dropping it stops the process, so an early
/// return or a panic does not leave a bridge (and its MCP servers) behind.
pub struct Bridge {
    child: Child,
    pub socket: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Bridge {
    /// Starts the bridge on a loopback port and `socket`, and waits for the line
    /// that says it is serving.
    pub fn start(
        codemode: &Path,
        config: &Path,
        socket: &Path,
        token: &str,
    ) -> Result<Bridge, String> {
        let mut command = Command::new(codemode);
        command
            .env("CODEMODE_BRIDGE_TOKEN", token)
            // Per-call logging would be measured as bridge overhead.
            .env_remove("CODEMODE_LOG")
            .arg("--config")
            .arg(config)
            .args(["bridge", "--json", "--listen", "127.0.0.1:0", "--socket"])
            .arg(socket);
        let started = Listening::start(command, Duration::from_secs(30))
            .map_err(|e| format!("codemode bridge: {e}"))?;
        Ok(Bridge {
            child: started.child,
            socket: socket.to_path_buf(),
            stderr: started.stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// SIGTERM, then SIGKILL if the bridge has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "codemode bridge ignored SIGTERM for {grace:?} and was killed"
        ))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(10));
    }
}
