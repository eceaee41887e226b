//! What the bench starts and must clean up whatever happens: a temporary
//! directory and a `codemode bridge` process.

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
        let mut child = Command::new(codemode)
            .env("CODEMODE_BRIDGE_TOKEN", token)
            // Per-call logging would be measured as bridge overhead.
            .env_remove("CODEMODE_LOG")
            .arg("--config")
            .arg(config)
            .args(["bridge", "--listen", "127.0.0.1:0", "--socket"])
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", codemode.display()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready, started) = mpsc::channel();
        let pipe = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
        let sink = Arc::clone(&stderr);
        // Keeps draining stderr after the ready line, so the bridge never blocks
        // on a full pipe mid-measurement.
        std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                if line.starts_with("codemode bridge on ") {
                    let _ = ready.send(());
                }
                let mut all = sink.lock().unwrap_or_else(|e| e.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });
        let bridge = Bridge {
            child,
            socket: socket.to_path_buf(),
            stderr,
        };
        match started.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => Ok(bridge),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "codemode bridge did not report its address within 30 s; stderr:\n{}",
                bridge.stderr()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!(
                "codemode bridge exited before serving; stderr:\n{}",
                bridge.stderr()
            )),
        }
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
