//! A dockerd of a test's own, for tests that stop, crash or freeze the engine
//! under a run without disturbing the shared one other tests use at the same
//! time: its own socket, data root, exec root (and so its own containerd) and
//! cgroup parent, no networking of its own, and the test image copied in from
//! the shared engine. A guard tears all of it down (processes, shim sockets,
//! mounts, cgroups, files) however the test ends. The daemon's root is a
//! tmpfs: loading the image and deleting it again both take seconds less.
//! And [`Run`]: `codemode exec --sandbox docker` against such a daemon, held
//! once its script has printed.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{
    alive, children_of, codemode_bin, descendants_of, dir_entries, docker_image, docker_ready,
    exec_config, send_signal, unique, wait_until_gone, wait_with_timeout, Workdir,
};

/// Whether this machine can run a private dockerd: root, dockerd installed,
/// and a shared engine with the test image to copy. In CI it must.
pub fn private_daemon_possible() -> bool {
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
pub struct PrivateDaemon {
    root: tempfile::TempDir,
    pub child: Child,
    cgroup_parent: String,
    /// `unix://<root>/d.sock`, for `DOCKER_HOST`.
    pub host: String,
}

impl PrivateDaemon {
    /// Starts the daemon and loads the test image into it.
    pub fn start() -> PrivateDaemon {
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
        let cgroup_parent = format!("codemode-test-{}", unique());
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

    pub fn socket(&self) -> PathBuf {
        self.dir().join("d.sock")
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Sends `signal` to dockerd and waits until it has exited.
    pub fn stop(&mut self, signal: &str) {
        send_signal(self.child.id(), signal);
        // SIGTERM: dockerd stops its containers first (their default stop
        // timeout is 10 s, Python dies at once) and then exits.
        wait_with_timeout(&mut self.child, Duration::from_secs(30));
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
            if String::from_utf8_lossy(&cmdline).contains(&needle) && alive(pid) {
                found.push(pid);
            }
        }
        let mut next = 0;
        while next < found.len() {
            for (child, _) in children_of(found[next]) {
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
        while pids.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
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
pub const PRINTED: &str = "codemode-test-printed-its-line";

/// `codemode exec --sandbox docker` against `host`, running a script that
/// prints a line and then sleeps; returned once that line has arrived (with
/// `--json`, once the script says it printed it).
pub struct Run {
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
    pub fn start(host: &str) -> Run {
        Run::start_with_timeout(host, "120s")
    }

    pub fn start_with_timeout(host: &str, timeout: &str) -> Run {
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
    pub fn start_json(host: &str) -> Run {
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
        let mut child = Command::new(codemode_bin())
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
        run.tree = descendants_of(run.child.id());
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
    pub fn finish(mut self, since: Instant) -> Finished {
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(60));
        let took = since.elapsed();
        let stdout: Vec<String> = self.lines.iter().collect();
        let stderr = self.stderr.join().unwrap_or_default();
        // Nothing of codemode's may outlive it: MCP servers, the run's
        // directory with its workspace and bridge socket.
        let left = wait_until_gone(&self.tree, Duration::from_secs(5));
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

pub struct Finished {
    pub code: i32,
    pub took: Duration,
    pub stdout: Vec<String>,
    pub stderr: String,
}
