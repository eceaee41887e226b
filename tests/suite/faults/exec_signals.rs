//! Ctrl-C and SIGTERM to `codemode exec`: while the script runs, and while
//! the servers it needs are still starting.

use crate::common;

use std::time::{Duration, Instant};

use common::{dir_entries, examples_config, misbehaving_server, Workdir};

use super::wait_for_children;

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
