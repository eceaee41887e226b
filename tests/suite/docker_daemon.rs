//! The Docker engine going away under `codemode exec --sandbox docker`: the
//! daemon stopped (SIGTERM), crashing (SIGKILL) or frozen (SIGSTOP) mid-run,
//! the stale socket a crash leaves, and a socket that takes connections but
//! never answers. (A socket path with nothing there is `suite/exec.rs`'s
//! `an_unavailable_backend_refuses_to_run_and_exits_125`.)
//!
//! Stopping a daemon must not disturb the shared one other tests use at the
//! same time, so each test that stops one starts its own
//! ([`PrivateDaemon`], in `common/private_dockerd.rs`). These tests need root
//! and dockerd; without them they are skipped, except under `CI`, where that
//! is a failure.

use crate::common;

use std::io::{BufRead, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::private_dockerd::{private_daemon_possible, Finished, PrivateDaemon, Run};
use common::{dir_entries, exec_config, Workdir};

/// How long exec may take to notice a daemon that went away and exit.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// What a user must see when the engine goes away mid-run: a prompt exit with
/// 125 (the sandbox failed, as `docker run` reports a daemon error), the
/// output from before kept, and one line saying the engine went away.
fn assert_lost_run(finished: &Finished, host: &str, within: Duration) {
    assert!(
        finished.stdout.is_empty(),
        "printed after the daemon went away: {:?}",
        finished.stdout
    );
    assert_lost_exit(finished, host, within);
}

/// A prompt exit with 125 and one line on stderr saying the engine went away.
fn assert_lost_exit(finished: &Finished, host: &str, within: Duration) {
    let stderr = &finished.stderr;
    assert!(
        finished.took < within,
        "exec took {:?} to exit after the daemon went away\n{stderr}",
        finished.took
    );
    assert_eq!(finished.code, 125, "{stderr}");
    // The backend note, then exactly one line: no warnings, no panic.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("codemode: sandbox: docker"))
        .collect();
    assert_eq!(lines.len(), 1, "not one line:\n{stderr}");
    let line = lines[0];
    assert!(line.starts_with("codemode: error: "), "{stderr}");
    assert!(
        line.contains(&format!("Docker engine at {host} went away")),
        "{stderr}"
    );
    assert!(line.contains("outcome is unknown"), "{stderr}");
    eprintln!("exec said: {line}");
}

/// `systemctl stop docker`, or a shutdown: dockerd stops the container itself
/// (the script dies of the SIGTERM, 143) and still reports that status before
/// it exits. That 143 is the daemon's doing; exec must not pass it off as the
/// script's own exit status.
#[test]
fn the_daemon_stopping_mid_run_fails_the_run_promptly_and_clearly() {
    if !private_daemon_possible() {
        return;
    }
    let started = Instant::now();
    let mut daemon = PrivateDaemon::start();
    let run = Run::start(&daemon.host);
    let since = Instant::now();
    daemon.stop("TERM");
    let finished = run.finish(since);
    assert_lost_run(&finished, &daemon.host, PROMPT_EXIT);
    eprintln!(
        "exec exited {:?} after SIGTERM to dockerd; test body {:?}",
        finished.took,
        started.elapsed()
    );
}

/// A crash: dockerd dies at once, its containerd with it (the parent-death
/// signal), while the container lives on under its shim. Both of exec's
/// streams break; it must say so, not wait for the script.
#[test]
fn the_daemon_crashing_mid_run_fails_the_run_promptly_and_clearly() {
    if !private_daemon_possible() {
        return;
    }
    let started = Instant::now();
    let mut daemon = PrivateDaemon::start();
    let run = Run::start(&daemon.host);
    let since = Instant::now();
    daemon.stop("KILL");
    let finished = run.finish(since);
    assert_lost_run(&finished, &daemon.host, PROMPT_EXIT);
    eprintln!(
        "exec exited {:?} after SIGKILL to dockerd; test body {:?}",
        finished.took,
        started.elapsed()
    );

    // What a crash leaves: the socket file, with nobody listening. The next
    // exec must refuse at once, not wait, and not run the script natively.
    assert!(
        daemon.socket().exists(),
        "a killed dockerd leaves its socket"
    );
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("job.py"), "print('must not run')\n").unwrap();
    let since = Instant::now();
    let output = work
        .codemode()
        .env("DOCKER_HOST", &daemon.host)
        .args(["exec", "--sandbox", "docker", "job.py"])
        .output()
        .unwrap();
    let stderr = common::stderr_of(&output);
    assert!(since.elapsed() < PROMPT_EXIT, "{:?}", since.elapsed());
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(!common::stdout_of(&output).contains("must not run"));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("docker sandbox is unavailable") && stderr.contains(&daemon.host),
        "{stderr}"
    );
}

/// `--json` users get the report even of a run the engine was lost under:
/// the schema of every report, the output and tool calls from before, no exit
/// code (nobody knows it), and the error saying why; stderr and the exit code
/// are those of any lost run.
#[test]
fn with_json_a_lost_engine_still_reports_what_ran_before() {
    if !private_daemon_possible() {
        return;
    }
    let mut daemon = PrivateDaemon::start();
    let run = Run::start_json(&daemon.host);
    let since = Instant::now();
    daemon.stop("KILL");
    let finished = run.finish(since);
    assert_lost_exit(&finished, &daemon.host, PROMPT_EXIT);
    let stdout = finished.stdout.join("\n");
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("stdout is not one JSON document ({err}):\n{stdout}"));
    let mut keys: Vec<&str> = report
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "duration_ms",
            "error",
            "exit_code",
            "sandbox",
            "stderr",
            "stdout",
            "success",
            "timed_out",
            "tool_calls",
            "truncated"
        ],
        "{report:#}"
    );
    assert_eq!(report["success"], false, "{report:#}");
    assert_eq!(report["exit_code"], serde_json::Value::Null, "{report:#}");
    assert_eq!(report["timed_out"], false, "{report:#}");
    assert_eq!(report["sandbox"], "docker", "{report:#}");
    assert_eq!(report["stdout"], "first line\n", "{report:#}");
    let calls = report["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 1, "{report:#}");
    assert_eq!(calls[0]["server"], "news", "{report:#}");
    assert_eq!(calls[0]["tool"], "search", "{report:#}");
    assert_eq!(calls[0]["ok"], true, "{report:#}");
    let error = report["error"].as_str().expect("an error");
    assert!(
        error.contains(&format!("Docker engine at {} went away", daemon.host))
            && error.contains("outcome is unknown"),
        "{error}"
    );
}

/// A daemon that is wedged (or something else holding its socket): the
/// connection is accepted and nothing ever answers. exec gives up after the
/// engine's ping timeout instead of hanging. Needs no Docker at all.
#[test]
fn a_daemon_that_never_answers_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    // Bound and listening, never accepting: the kernel completes the connect
    // into the backlog and the request goes unanswered.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let host = format!("unix://{}", socket.display());
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("job.py"), "print('must not run')\n").unwrap();
    let since = Instant::now();
    let output = work
        .codemode()
        .env("DOCKER_HOST", &host)
        .args(["exec", "--sandbox", "docker", "job.py"])
        .output()
        .unwrap();
    let stderr = common::stderr_of(&output);
    assert!(
        since.elapsed() < Duration::from_secs(10),
        "{:?}",
        since.elapsed()
    );
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(!common::stdout_of(&output).contains("must not run"));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("docker sandbox is unavailable")
            && stderr.contains("did not answer")
            && stderr.contains(&host),
        "{stderr}"
    );
}

/// A stop while the sandbox is being picked (here, a ping no engine answers;
/// in life, often an image pull) ends the command at once instead of after
/// the wait. `command` is codemode's arguments after `--config`.
fn stopped_while_the_sandbox_is_picked(command: &[&str]) -> (Option<i32>, Duration, String) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let host = format!("unix://{}", socket.display());
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("job.py"), "print('must not run')\n").unwrap();
    let mut child = Command::new(common::codemode_bin())
        .current_dir(work.path())
        .env("DOCKER_HOST", &host)
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its ping connected: it is picking the sandbox now. The connection stays
    // open and unanswered.
    let (_connection, _) = listener.accept().unwrap();
    let since = Instant::now();
    common::send_signal(child.id(), "TERM");
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(20));
    let took = since.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), took, stderr)
}

#[test]
fn sigterm_to_exec_while_it_waits_for_the_engine_stops_it_at_once() {
    let (code, took, stderr) =
        stopped_while_the_sandbox_is_picked(&["exec", "--sandbox", "docker", "job.py"]);
    // The ping alone would take 3 s.
    assert!(took < Duration::from_secs(2), "took {took:?}: {stderr}");
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("stopped by SIGTERM before the script started"),
        "{stderr}"
    );
}

#[test]
fn sigterm_to_serve_while_it_waits_for_the_engine_stops_it_at_once() {
    let (code, took, stderr) = stopped_while_the_sandbox_is_picked(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--sandbox",
        "docker",
    ]);
    assert!(took < Duration::from_secs(2), "took {took:?}: {stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// An engine that answers the ping, the version and the image lookup, then
/// never answers requests whose line contains `hang_on` (nothing the test
/// must time with a real daemon). Removals succeed, so the guard's background
/// removal ends at once.
fn engine_that_stops_answering_at(hang_on: &'static str) -> (tempfile::TempDir, String) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((key, value)) = header.split_once(':') {
                            if key.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if line.contains(hang_on) {
                        // Holds the connection open, unanswered.
                        std::thread::sleep(Duration::from_secs(600));
                        return;
                    }
                    let (status, body) = if line.contains("/_ping") {
                        ("200 OK", "OK".to_string())
                    } else if line.contains("/version") {
                        (
                            "200 OK",
                            r#"{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10.0"}"#
                                .to_string(),
                        )
                    } else if line.contains("/images/") {
                        ("200 OK", r#"{"Id":"sha256:0"}"#.to_string())
                    } else if line.contains("/containers/create") {
                        ("201 Created", r#"{"Id":"0","Warnings":[]}"#.to_string())
                    } else if line.starts_with("DELETE") {
                        ("204 No Content", String::new())
                    } else {
                        ("404 Not Found", r#"{"message":"not here"}"#.to_string())
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if writer.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let host = format!("unix://{}", socket.display());
    (dir, host)
}

/// `exec` against an engine that stops answering at `hang_on`: it fails as
/// unavailable (the script never ran) in about the engine's reply limit, not
/// bollard's two minutes, and says which request went unanswered.
fn exec_against_an_engine_that_stops_answering_at(hang_on: &'static str, request: &str) {
    let (_dir, host) = engine_that_stops_answering_at(hang_on);
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("job.py"), "print('must not run')\n").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::codemode_bin())
        .current_dir(work.path())
        .env("DOCKER_HOST", &host)
        .env("TMPDIR", tmp.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .args(["exec", "--sandbox", "docker", "job.py"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let since = Instant::now();
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(30));
    let took = since.elapsed();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // The 10 s reply limit and slack.
    assert!(took < Duration::from_secs(15), "took {took:?}: {stderr}");
    assert_eq!(status.code(), Some(125), "{stderr}");
    assert!(!stdout.contains("must not run"));
    assert!(
        stderr.contains("docker sandbox is unavailable")
            && stderr.contains("stopped answering")
            && stderr.contains(request)
            && stderr.contains(&host),
        "{stderr}"
    );
    assert_eq!(dir_entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn an_engine_that_stops_answering_at_create_fails_the_run_in_seconds() {
    exec_against_an_engine_that_stops_answering_at("/containers/create", "creating the container");
}

#[test]
fn an_engine_that_stops_answering_at_attach_fails_the_run_in_seconds() {
    exec_against_an_engine_that_stops_answering_at("/attach", "attaching to the container");
}

/// A wedged daemon (SIGSTOP stands in for a deadlock or a swapped-out host):
/// nothing breaks, nothing answers. The run ends at its time limit, the kill
/// goes unanswered, and exec gives up a grace period later instead of waiting
/// out bollard's two-minute timeout on every request after it.
#[test]
fn a_frozen_daemon_ends_the_run_at_its_time_limit_plus_a_grace() {
    if !private_daemon_possible() {
        return;
    }
    let started = Instant::now();
    let daemon = PrivateDaemon::start();
    let run = Run::start_with_timeout(&daemon.host, "2s");
    let since = Instant::now();
    common::send_signal(daemon.child.id(), "STOP");
    let finished = run.finish(since);
    // The time limit, the 10 s the backend grants a kill, and slack.
    assert_lost_run(&finished, &daemon.host, Duration::from_secs(2 + 10 + 5));
    assert!(
        finished.stderr.contains("stopped answering"),
        "{}",
        finished.stderr
    );
    eprintln!(
        "exec exited {:?} after SIGSTOP to dockerd; test body {:?}",
        finished.took,
        started.elapsed()
    );
}

/// `codemode serve --sandbox docker` keeps serving when the engine is lost
/// under one of its runs: the caller gets the usual execute_python result,
/// flagged as an error, with what the script printed (and the tools it
/// called) before the loss and the message saying the engine went away, not
/// a bare error; the next request is answered, and closing the session ends
/// serve cleanly with nothing of the run left behind.
#[test]
fn serve_reports_the_output_so_far_when_the_engine_is_lost() {
    if !private_daemon_possible() {
        return;
    }
    let Some(python) = common::mcp_python() else {
        return;
    };
    let mut daemon = PrivateDaemon::start();
    let work = Workdir::with_config(&exec_config());
    // serve's private TMPDIR: its runs' directories and bridge sockets.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // The SDK starts serve with a fixed few of the client's variables, so a
    // wrapper sets the daemon and TMPDIR, and records how serve exited.
    let status_file = work.path().join("serve.status");
    let wrapper = work.path().join("serve.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nDOCKER_HOST='{}' TMPDIR='{}' \"$@\"\necho $? > '{}'\n",
            daemon.host,
            tmp.path().display(),
            status_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let target = serde_json::to_string(&[
        common::codemode_bin().to_str().unwrap(),
        "--config",
        work.config().to_str().unwrap(),
        "serve",
        "--sandbox",
        "docker",
    ])
    .unwrap();
    // Prints STARTED once the script's line has come back as a progress
    // notification (so serve has it), RETURNED when the call returns.
    let (mut command, _client_dir) = common::python_client_command(
        &python,
        &target,
        r#"
SCRIPT = "import time\nfrom mcp_tools import news\nnews.search(query='ai')\nprint('first line', flush=True)\ntime.sleep(60)\nprint('never printed')\n"
async def main():
    async with client() as c:
        async def on_progress(progress, total, message):
            if message == "first line":
                print("STARTED", flush=True)
        r = await c.call_tool("execute_python", {"code": SCRIPT, "timeout_s": 120}, progress_callback=on_progress)
        print("RETURNED", flush=True)
        tools = sorted(t.name for t in (await c.list_tools()).tools)
        closing = time.monotonic()
    done({"error": r.is_error, "text": text(r), "report": r.structured_content,
          "tools": tools, "close_took": time.monotonic() - closing})
"#,
        &[("CODEMODE_TEST_BIN", wrapper.to_str().unwrap())],
    );
    let mut client = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the client starts"),
    );
    let client = &mut client.0;
    let stdout = std::io::BufReader::new(client.stdout.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Both serve's stderr and the client's.
    let mut stderr_pipe = client.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let first = lines.recv_timeout(Duration::from_secs(60));
    if first.as_deref() != Ok("STARTED") {
        let _ = client.kill();
        let _ = client.wait();
        panic!(
            "the script's line never reached the client ({first:?}); stderr:\n{}",
            stderr.join().unwrap_or_default()
        );
    }
    // serve, its MCP servers, the wrapper: seen while the script runs.
    let tree = common::descendants_of(client.id());
    assert!(
        tree.iter()
            .any(|(_, cmd)| cmd.contains(" serve --sandbox docker")),
        "{tree:?}"
    );
    assert_eq!(
        dir_entries(tmp.path()).len(),
        1,
        "the run's directory exists while it runs"
    );
    let since = Instant::now();
    daemon.stop("KILL");
    let returned = lines.recv_timeout(Duration::from_secs(60));
    let took = since.elapsed();
    let status = common::wait_with_timeout(client, Duration::from_secs(60));
    let rest: Vec<String> = lines.iter().collect();
    let stderr = stderr.join().unwrap_or_default();
    assert_eq!(returned.as_deref(), Ok("RETURNED"), "{rest:?}\n{stderr}");
    assert!(
        took < PROMPT_EXIT,
        "the result took {took:?} after the daemon went away\n{stderr}"
    );
    assert!(status.success(), "the client failed ({status}):\n{stderr}");
    let result: serde_json::Value = rest
        .iter()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("the client gave no result: {rest:?}\n{stderr}"));

    // The result of the run, flagged as an error: the output from before the
    // loss, then why it ended.
    assert_eq!(result["error"], true, "{result:#}");
    let text = result["text"].as_str().unwrap();
    let went_away = format!("Docker engine at {} went away", daemon.host);
    assert!(text.starts_with("first line\n"), "{text}");
    assert!(
        text.contains(&went_away) && text.contains("outcome is unknown"),
        "{text}"
    );
    assert!(!text.contains("never printed"), "{text}");
    let report = &result["report"];
    assert_eq!(report["success"], false, "{report:#}");
    assert_eq!(report["stdout"], "first line\n", "{report:#}");
    assert_eq!(report["exit_code"], serde_json::Value::Null, "{report:#}");
    assert_eq!(report["timed_out"], false, "{report:#}");
    assert_eq!(report["sandbox"], "docker", "{report:#}");
    let calls = report["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 1, "{report:#}");
    assert_eq!(calls[0]["tool"], "search", "{report:#}");
    assert!(
        report["error"].as_str().unwrap_or("").contains(&went_away),
        "{report:#}"
    );

    // serve lives on, and ends when the client closes its stdin (the SDK
    // waits 2 s before it would terminate it).
    assert_eq!(
        result["tools"],
        serde_json::json!(["execute_python", "get_api", "search_tools"]),
        "{result:#}"
    );
    assert!(
        result["close_took"].as_f64().unwrap() < 2.0,
        "serve did not exit on its own when the client closed: {result:#}\n{stderr}"
    );
    let code = std::fs::read_to_string(&status_file).unwrap_or_default();
    assert_eq!(code.trim(), "0", "serve's exit status\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing of serve's outlives it: MCP servers, the run's directory with
    // its workspace and bridge socket.
    let left = common::wait_until_gone(&tree, Duration::from_secs(5));
    assert!(left.is_empty(), "left running: {left:?}\n{stderr}");
    assert_eq!(
        dir_entries(tmp.path()),
        Vec::<String>::new(),
        "the run's directory was left behind\n{stderr}"
    );
    eprintln!("serve answered {took:?} after SIGKILL to dockerd");
}

/// A child killed (and reaped) if the test ends before it exits.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
