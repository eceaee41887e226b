//! The Docker engine going away under `codemode exec --sandbox docker`: the
//! daemon stopped (SIGTERM), crashing (SIGKILL) or frozen (SIGSTOP) mid-run,
//! the stale socket a crash leaves, and a socket that takes connections but
//! never answers. (A socket path with nothing there is `suite/exec.rs`'s
//! `an_unavailable_backend_refuses_to_run_and_exits_125`.)
//!
//! Stopping a daemon must not disturb the shared one other tests use at the
//! same time, so each test that stops one starts its own: a second dockerd
//! with its own socket, data root, exec root (and so its own containerd) and
//! cgroup parent, no networking of its own, and the test image copied in from
//! the shared engine. A guard tears all of it down (processes, shim sockets,
//! mounts, cgroups, files) however the test ends. The daemon's root is a
//! tmpfs: loading the image and deleting it again both take seconds less.
//! These tests need root and dockerd; without them they are skipped, except
//! under `CI`, where that is a failure.

use crate::common;

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{dir_entries, docker_image, docker_ready, exec_config, Workdir};

/// How long exec may take to notice a daemon that went away and exit.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// Whether this machine can run a private dockerd: root, dockerd installed,
/// and a shared engine with the test image to copy. In CI it must.
fn private_daemon_possible() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let dockerd = Command::new("dockerd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !root || !dockerd {
        assert!(
            std::env::var_os("CI").is_none(),
            "a private dockerd needs root and dockerd (root: {root}, dockerd: {dockerd}); run .ci/docker-setup.sh as root"
        );
        eprintln!(
            "skipped: a private dockerd needs root and dockerd (root: {root}, dockerd: {dockerd})"
        );
        return false;
    }
    docker_ready()
}

/// A dockerd of this test's own. Everything it makes lives under `root` or in
/// cgroups named `cgroup_parent`; dropping it removes all of that.
struct PrivateDaemon {
    root: tempfile::TempDir,
    child: Child,
    cgroup_parent: String,
    /// `unix://<root>/d.sock`, for `DOCKER_HOST`.
    host: String,
}

impl PrivateDaemon {
    /// Starts the daemon and loads the test image into it.
    fn start() -> PrivateDaemon {
        let started = Instant::now();
        // Under /tmp, not $TMPDIR, and with a short name: containerd's socket
        // ends up four levels below, and a Unix socket path has 107 bytes.
        let root = tempfile::Builder::new()
            .prefix("cmdd-")
            .tempdir_in("/tmp")
            .expect("a directory for the private daemon");
        let dir = root.path();
        // In memory: the disk here is mounted with `discard`, where deleting
        // the loaded image's files takes longer than all the rest of the test
        // (about 15 s), and unmounting a tmpfs is instant.
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=2g,mode=0755"),
        )
        .expect("a tmpfs for the private daemon");
        let host = format!("unix://{}/d.sock", dir.display());
        let cgroup_parent = format!("codemode-test-{}", common::unique());
        // Its own (empty) config: a /etc/docker/daemon.json written for the
        // shared daemon (hosts, data-root) must not apply to this one.
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("-H")
            .arg(&host)
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            // No bridge, no iptables or sysctl changes: nothing the shared
            // daemon's networking could notice.
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ])
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        // The guard exists from here on: a failure below still tears down.
        let mut daemon = PrivateDaemon {
            root,
            child,
            cgroup_parent,
            host,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !daemon.answers() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("the private dockerd exited ({status}):\n{}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not answer within 30 s:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let up = started.elapsed();
        daemon.load_image();
        eprintln!(
            "private dockerd: answering after {up:?}, image loaded after {:?}",
            started.elapsed()
        );
        daemon
    }

    fn dir(&self) -> &Path {
        self.root.path()
    }

    fn docker(&self) -> Command {
        let mut command = Command::new("docker");
        command.arg("-H").arg(&self.host);
        command
    }

    fn answers(&self) -> bool {
        self.docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `docker save` from the shared engine straight into this one.
    fn load_image(&self) {
        let mut save = Command::new("docker")
            .args(["save", &docker_image()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker save starts");
        let load = self
            .docker()
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load runs");
        let saved = save.wait_with_output().expect("docker save runs");
        assert!(
            saved.status.success() && load.status.success(),
            "copying {} into the private dockerd failed: {}{}",
            docker_image(),
            String::from_utf8_lossy(&saved.stderr),
            String::from_utf8_lossy(&load.stderr)
        );
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("d.sock")
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Sends `signal` to dockerd and waits until it has exited.
    fn stop(&mut self, signal: &str) {
        common::send_signal(self.child.id(), signal);
        // SIGTERM: dockerd stops its containers first (their default stop
        // timeout is 10 s, Python dies at once) and then exits.
        common::wait_with_timeout(&mut self.child, Duration::from_secs(30));
    }

    /// Every process this daemon left: dockerd, its containerd and shims (all
    /// name `root` on their command lines), what runs in its containers, and
    /// whatever is still in its cgroups.
    fn processes(&self) -> Vec<u32> {
        let needle = self.dir().to_string_lossy().into_owned();
        let mut found: Vec<u32> = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) && common::alive(pid) {
                found.push(pid);
            }
        }
        let mut next = 0;
        while next < found.len() {
            for (child, _) in common::children_of(found[next]) {
                if !found.contains(&child) {
                    found.push(child);
                }
            }
            next += 1;
        }
        for cgroup in self.cgroups() {
            for procs in cgroup_procs_files(&cgroup) {
                let text = std::fs::read_to_string(procs).unwrap_or_default();
                for pid in text.lines().filter_map(|l| l.trim().parse().ok()) {
                    if !found.contains(&pid) {
                        found.push(pid);
                    }
                }
            }
        }
        found
    }

    /// The directories named after this daemon's cgroup parent, in every
    /// hierarchy (v1 controllers can sit below a nested path, as memory does
    /// on these machines).
    fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        find_dirs_named(
            Path::new("/sys/fs/cgroup"),
            &self.cgroup_parent,
            4,
            &mut found,
        );
        found
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        let started = Instant::now();
        // Shims listen under /run/containerd/s/, outside our root; a killed
        // shim leaves its socket there. Each shim's bundle names its socket.
        let tasks = self
            .dir()
            .join("exec/containerd/daemon/io.containerd.runtime.v2.task");
        for namespace in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            for task in std::fs::read_dir(namespace.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(address) = std::fs::read_to_string(task.path().join("address")) {
                    let socket = address.trim().trim_start_matches("unix://");
                    if socket.starts_with("/run/containerd/s/") {
                        let _ = std::fs::remove_file(socket);
                    }
                }
            }
        }
        let pids = self.processes();
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|pid| common::alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // The tmpfs at the root, the data root (dockerd bind-mounts it on
        // itself) and the overlay of every container left running: deepest
        // first.
        let root = self.dir().to_string_lossy().into_owned();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split(' ').nth(4).map(str::to_string))
            .filter(|point| *point == root || point.starts_with(&format!("{root}/")))
            .collect();
        mounts.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in mounts {
            if let Err(err) = nix::mount::umount2(point.as_str(), nix::mount::MntFlags::MNT_DETACH)
            {
                eprintln!("private dockerd teardown: unmounting {point}: {err}");
            }
        }
        // A cgroup whose last process just died can be busy for a moment.
        for cgroup in self.cgroups() {
            let mut dirs = Vec::new();
            collect_dirs(&cgroup, &mut dirs);
            dirs.sort_by_key(|dir| std::cmp::Reverse(dir.as_os_str().len()));
            for dir in dirs {
                let mut tries = 0;
                while std::fs::remove_dir(&dir).is_err() && dir.exists() && tries < 20 {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if let Err(err) = std::fs::remove_dir_all(self.dir()) {
            eprintln!(
                "private dockerd teardown: removing {}: {err}",
                self.dir().display()
            );
        }
        let left = self.processes();
        if !left.is_empty() {
            eprintln!("private dockerd teardown: processes left: {left:?}");
        }
        eprintln!("private dockerd: torn down in {:?}", started.elapsed());
    }
}

fn find_dirs_named(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name() == name {
            found.push(entry.path());
        } else if depth > 1 {
            find_dirs_named(&entry.path(), name, depth - 1, found);
        }
    }
}

/// `dir` and every directory below it.
fn collect_dirs(dir: &Path, found: &mut Vec<PathBuf>) {
    found.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), found);
        }
    }
}

fn cgroup_procs_files(cgroup: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    collect_dirs(cgroup, &mut dirs);
    dirs.into_iter()
        .map(|dir| dir.join("cgroup.procs"))
        .collect()
}

/// The name of the process a `--json` run's script starts once it printed.
const PRINTED: &str = "codemode-test-printed-its-line";

/// `codemode exec --sandbox docker` against `host`, running a script that
/// prints a line and then sleeps; returned once that line has arrived (with
/// `--json`, once the script says it printed it).
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    /// The run's private `TMPDIR`: its run directory and bridge socket live
    /// here, so it must end up empty.
    tmp: tempfile::TempDir,
    /// codemode's children (the MCP servers), seen while the script ran.
    tree: Vec<(u32, String)>,
    _work: Workdir,
}

impl Run {
    fn start(host: &str) -> Run {
        Run::start_with_timeout(host, "120s")
    }

    fn start_with_timeout(host: &str, timeout: &str) -> Run {
        Run::launch(
            host,
            &["--timeout", timeout],
            "import time\nprint('first line')\ntime.sleep(30)\nprint('never printed')\n",
        )
    }

    /// With `--json`, nothing reaches stdout before the end, and the
    /// workspace is the container's own: the script calls a tool, prints its
    /// line and then starts a process named [`PRINTED`], which the test
    /// watches the host's process list for instead.
    fn start_json(host: &str) -> Run {
        Run::launch(
            host,
            &["--timeout", "120s", "--json"],
            &format!(
                "import subprocess, sys, time\nfrom mcp_tools import news\nnews.search(query='ai')\n\
                 print('first line')\n\
                 subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {PRINTED:?}])\n\
                 time.sleep(30)\nprint('never printed')\n"
            ),
        )
    }

    fn launch(host: &str, flags: &[&str], script: &str) -> Run {
        let json = flags.contains(&"--json");
        let work = Workdir::with_config(&exec_config());
        std::fs::write(work.path().join("sleeper.py"), script).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut child = Command::new(common::codemode_bin())
            .current_dir(work.path())
            .env("DOCKER_HOST", host)
            .env("TMPDIR", tmp.path())
            .env_remove("CODEMODE_LOG")
            .env_remove("CODEMODE_CONFIG")
            .arg("--config")
            .arg(work.config())
            .args(["exec", "--sandbox", "docker"])
            .args(flags)
            .arg("sleeper.py")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("codemode exec starts");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let mut run = Run {
            child,
            lines,
            stderr,
            tmp,
            tree: Vec::new(),
            _work: work,
        };
        let printed = if json {
            run.wait_for_printed()
        } else {
            match run.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    assert_eq!(line, "first line");
                    true
                }
                Err(_) => false,
            }
        };
        if !printed {
            let _ = run.child.kill();
            let _ = run.child.wait();
            let stderr = std::mem::replace(&mut run.stderr, std::thread::spawn(String::new));
            panic!(
                "the script never printed its first line; stderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        assert_eq!(
            dir_entries(run.tmp.path()).len(),
            1,
            "the run's directory exists while it runs"
        );
        run.tree = common::descendants_of(run.child.id());
        run
    }

    /// Waits for the `printed` file in the run's workspace; then a moment
    /// more, for the line to travel from the container through the engine to
    /// exec. False if it never appears.
    fn wait_for_printed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let printed = Command::new("pgrep")
                .args(["-f", PRINTED])
                .output()
                .is_ok_and(|o| o.status.success());
            if printed {
                std::thread::sleep(Duration::from_secs(1));
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits (bounded) for exec to exit; its exit code, how long that took
    /// from `since`, the rest of its stdout and its stderr.
    fn finish(mut self, since: Instant) -> Finished {
        let status = common::wait_with_timeout(&mut self.child, Duration::from_secs(60));
        let took = since.elapsed();
        let stdout: Vec<String> = self.lines.iter().collect();
        let stderr = self.stderr.join().unwrap_or_default();
        // Nothing of codemode's may outlive it: MCP servers, the run's
        // directory with its workspace and bridge socket.
        let left = common::wait_until_gone(&self.tree, Duration::from_secs(5));
        assert!(left.is_empty(), "left running: {left:?}\n{stderr}");
        assert_eq!(
            dir_entries(self.tmp.path()),
            Vec::<String>::new(),
            "the run's directory was left behind\n{stderr}"
        );
        Finished {
            code: status.code().unwrap_or(-1),
            took,
            stdout,
            stderr,
        }
    }
}

struct Finished {
    code: i32,
    took: Duration,
    stdout: Vec<String>,
    stderr: String,
}

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
