//! The native sandbox, run for real.
//!
//! Unit tests run inside the test harness, whose `/proc/self/exe` is not
//! codemode, so the sandbox is pointed at the `codemode` binary cargo builds
//! next to the harness (`target/<profile>/codemode`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::output::Captured;
use crate::{Limits, RunDir};

/// The fork bomb and the daemon tests take this exclusively (they strain the
/// host's process table); the others share it.
static HOST_PROCESSES: RwLock<()> = RwLock::const_new(());

fn codemode_exe() -> PathBuf {
    let harness = std::env::current_exe().expect("current_exe");
    let exe = harness
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("codemode");
    let built = std::fs::metadata(&exe)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: run cargo build", exe.display()));
    // `cargo test` builds it (integration tests need it); `cargo test --bin`
    // does not, and a stale one would test old setup code. (Only this
    // module's files and the seccomp table: others may be mid-edit while
    // these tests run.)
    let sandbox_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules = sandbox_src.join("seccomp_rules.rs");
    let rules_changed = std::fs::metadata(&rules)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| (t, rules));
    if let Some(newer) = newest_source(&sandbox_src.join("native"))
        .into_iter()
        .chain(rules_changed)
        .find(|(t, _)| *t > built)
    {
        panic!(
            "{} is older than {}: run cargo build",
            exe.display(),
            newer.1.display()
        );
    }
    exe
}

/// The most recently changed source of the setup code (tests excluded: the
/// binary is not rebuilt for them).
fn newest_source(dir: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest_source(&path)
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("native/tests.rs")
        {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, path))
        } else {
            None
        };
        if let Some(c) = candidate {
            if newest.as_ref().is_none_or(|n| c.0 > n.0) {
                newest = Some(c);
            }
        }
    }
    newest
}

fn sandbox() -> NativeSandbox {
    NativeSandbox::new(None)
        .expect("python for the sandbox")
        .with_exe(codemode_exe())
}

/// A run's directory, as `exec` makes it.
struct Dirs {
    dir: RunDir,
    /// Declared last: dropped only once the directory is gone.
    user: RunUser,
}

fn dirs() -> Dirs {
    let user = sandbox().run_user().unwrap();
    Dirs {
        dir: RunDir::create(user.user()).unwrap(),
        user,
    }
}

fn spec(dirs: &Dirs, source: &str, limits: Limits) -> RunSpec {
    dirs.dir.write("main.py", source).unwrap();
    RunSpec {
        inputs: dirs.dir.inputs().to_path_buf(),
        script: "main.py".into(),
        args: Vec::new(),
        env: BTreeMap::new(),
        bridge_dir: dirs.dir.bridge().to_path_buf(),
        host_user: dirs.user.user(),
        limits,
        clock: Default::default(),
        input_files: None,
        parent: None,
    }
}

fn quick() -> Limits {
    Limits {
        timeout: Duration::from_secs(20),
        ..Limits::default()
    }
}

async fn run_with(
    dirs: &Dirs,
    source: &str,
    limits: Limits,
) -> (Result<Finished, SandboxError>, Captured) {
    let spec = spec(dirs, source, limits);
    let sink = OutputSink::new(spec.limits.output_bytes, None);
    let result = sandbox().run(&spec, &sink, CancellationToken::new()).await;
    (result, sink.captured())
}

/// Runs `source` and expects it to exit 0; returns its stdout.
async fn stdout_of(source: &str) -> String {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let (result, out) = run_with(&dirs, source, quick()).await;
    let finished = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        finished.exit_code,
        Some(0),
        "{finished:?}\nstderr: {}",
        out.stderr
    );
    out.stdout
}

#[tokio::test]
async fn hello_world_prints_and_exits_0() {
    assert_eq!(stdout_of("print('hello')").await, "hello\n");
}

#[tokio::test]
async fn the_exit_status_passes_through() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let (result, _) = run_with(&dirs, "import sys; sys.exit(3)", quick()).await;
    let finished = result.unwrap();
    assert_eq!((finished.exit_code, finished.signal), (Some(3), None));
}

#[tokio::test]
async fn a_signal_is_reported_as_one() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let (result, _) = run_with(&dirs, "import os; os.kill(os.getpid(), 15)", quick()).await;
    let finished = result.unwrap();
    assert_eq!((finished.exit_code, finished.signal), (None, Some(15)));
}

#[tokio::test]
async fn stdout_and_stderr_are_kept_apart() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let source = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nprint('more out')";
    let (result, out) = run_with(&dirs, source, quick()).await;
    assert_eq!(result.unwrap().exit_code, Some(0));
    assert_eq!(out.stdout, "to out\nmore out\n");
    assert_eq!(out.stderr, "to err\n");
}

#[tokio::test]
async fn the_standard_library_a_script_needs_works() {
    let source = "\
import json, http.client, socket, ssl, urllib.request, subprocess, threading, sqlite3, zoneinfo
ssl.create_default_context()
threads = [threading.Thread(target=lambda: None) for _ in range(32)]
[t.start() for t in threads]; [t.join() for t in threads]
print(subprocess.run(['/bin/echo', 'child'], capture_output=True, text=True).stdout.strip())
print(json.dumps({'ok': True}))";
    assert_eq!(stdout_of(source).await, "child\n{\"ok\": true}\n");
}

#[tokio::test]
async fn the_script_sees_only_its_environment_arguments_and_workspace() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let mut spec = spec(
        &dirs,
        "import os, sys, socket\nprint(sorted(os.environ))\nprint(os.environ['FOO'], os.environ['CODEMODE_BRIDGE_URL'])\nprint(os.getcwd(), socket.gethostname(), sys.argv[1:])",
        quick(),
    );
    spec.env.insert("FOO".into(), "bar".into());
    spec.env.insert("PATH".into(), "/evil".into());
    spec.args = vec!["a".into(), "b c".into()];
    let sink = OutputSink::new(1 << 20, None);
    let finished = sandbox()
        .run(&spec, &sink, CancellationToken::new())
        .await
        .unwrap();
    let out = sink.captured();
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "['CODEMODE_BRIDGE_URL', 'FOO', 'HOME', 'LANG', 'PATH']\n\
         bar unix:///run/codemode/bridge.sock\n\
         /workspace sandbox ['a', 'b c']\n"
    );
}

#[tokio::test]
async fn the_script_runs_as_nobody_without_privileges() {
    let source = "\
import os
print(os.getuid(), os.geteuid(), os.getgid(), os.getegid())
status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\\t' in line)
print(status['CapEff'].strip(), status['CapBnd'].strip(), status['NoNewPrivs'].strip(), status['Seccomp'].strip())";
    assert_eq!(
        stdout_of(source).await,
        "65534 65534 65534 65534\n0000000000000000 0000000000000000 1 2\n"
    );
}

#[tokio::test]
async fn host_secrets_are_out_of_reach() {
    let source = "\
for path in ['/etc/shadow', '/proc/1/root/etc/shadow', '/root', '/home', '/var/run/docker.sock', '/sys/kernel']:
    try:
        open(path).read() if '.' in path or 'shadow' in path else __import__('os').listdir(path)
        print('REACHED', path)
    except OSError as e:
        print('no', path)";
    let out = stdout_of(source).await;
    assert!(!out.contains("REACHED"), "{out}");
}

#[tokio::test]
async fn only_unix_sockets_can_be_made() {
    let source = "\
import socket
for family, kind in [(socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM),
                     (socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_NETLINK, socket.SOCK_RAW),
                     (socket.AF_PACKET, socket.SOCK_RAW)]:
    try:
        socket.socket(family, kind)
        print('OPENED', family)
    except PermissionError:
        print('denied')
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
print('unix ok')";
    assert_eq!(stdout_of(source).await, "denied\n".repeat(5) + "unix ok\n");
}

#[tokio::test]
async fn modify_ldt_memfd_secret_move_pages_and_personality_changes_are_refused() {
    use crate::seccomp_rules::probe;
    assert_eq!(stdout_of(&probe::script()).await, probe::expected());
}

#[tokio::test]
async fn the_bridge_socket_is_reachable() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let socket_path = dirs.dir.bridge().join(BRIDGE_SOCKET_NAME);
    let listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    // As exec makes it: the run's user's alone.
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    dirs.dir.give(&socket_path).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::Read;
        let (mut stream, _) = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        byte[0]
    });
    let source = "\
import os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ['CODEMODE_BRIDGE_URL'][len('unix://'):])
s.sendall(b'x')
s.close()
print('sent')";
    let (result, out) = run_with(&dirs, source, quick()).await;
    assert_eq!(result.unwrap().exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "sent\n");
    assert_eq!(server.join().unwrap(), b'x');
}

/// A run whose script sleeps, seen from the host while it lives.
struct LiveRun {
    /// The script's host pid.
    pid: i32,
    cancel: CancellationToken,
    run: tokio::task::JoinHandle<Result<Finished, SandboxError>>,
    _dirs: Dirs,
}

impl LiveRun {
    async fn start() -> LiveRun {
        let dirs = dirs();
        let mark = format!("{}-{}", std::process::id(), cgroup::new_id());
        let mut spec = spec(&dirs, "import time\ntime.sleep(30)", quick());
        spec.env.insert("CODEMODE_TEST_MARK".into(), mark.clone());
        let cancel = CancellationToken::new();
        let run = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let sink = OutputSink::new(1024, None);
                sandbox().run(&spec, &sink, cancel).await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = pids_marked(&mark).first() {
                break *pid;
            }
            assert!(Instant::now() < deadline, "the script never showed up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        LiveRun {
            pid,
            cancel,
            run,
            _dirs: dirs,
        }
    }

    /// The script's real, effective, saved and filesystem uid and gid on the
    /// host, as `/proc/<pid>/status` lists them.
    fn host_ids(&self) -> (Vec<u32>, Vec<u32>) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let ids = |field: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .unwrap_or_else(|| panic!("no {field} in {status}"))
                .split_whitespace()
                .map(|id| id.parse().unwrap())
                .collect()
        };
        (ids("Uid:"), ids("Gid:"))
    }

    async fn stop(self) {
        self.cancel.cancel();
        assert!(self.run.await.unwrap().unwrap().cancelled);
    }
}

#[tokio::test]
async fn as_root_the_script_has_an_unused_host_uid_of_its_own() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let _shared = HOST_PROCESSES.read().await;
    let run = LiveRun::start().await;
    let (uids, gids) = run.host_ids();
    run.stop().await;
    let range = 1_879_048_192..=2_147_483_647u32;
    for id in uids.iter().chain(&gids) {
        assert!(
            range.contains(id) && *id != 0 && *id != SANDBOX_UID,
            "uids {uids:?} gids {gids:?}"
        );
    }
    assert!(uids.iter().all(|&id| id == uids[0]), "{uids:?}");
    assert!(gids.iter().all(|&id| id == gids[0]), "{gids:?}");
}

#[tokio::test]
async fn concurrent_runs_do_not_share_a_host_uid() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let _shared = HOST_PROCESSES.read().await;
    let (first, second) = tokio::join!(LiveRun::start(), LiveRun::start());
    let (first_ids, second_ids) = (first.host_ids(), second.host_ids());
    tokio::join!(first.stop(), second.stop());
    assert_ne!(first_ids.0[0], second_ids.0[0]);
    assert_ne!(first_ids.1[0], second_ids.1[0]);
}

#[tokio::test]
async fn a_host_process_running_as_nobody_cannot_read_the_scripts_environment() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    use std::os::unix::process::CommandExt;
    let _shared = HOST_PROCESSES.read().await;
    let run = LiveRun::start().await;
    let environ = format!("/proc/{}/environ", run.pid);
    let peek = std::process::Command::new("/bin/cat")
        .arg(&environ)
        .uid(SANDBOX_UID)
        .gid(SANDBOX_GID)
        .output()
        .unwrap();
    // Still there: a refusal, not a process that had already gone.
    let alive = Path::new(&environ).exists();
    run.stop().await;
    assert!(alive);
    let stderr = String::from_utf8_lossy(&peek.stderr);
    assert!(
        !peek.status.success() && stderr.contains("Permission denied"),
        "{}: read {} bytes; {stderr}",
        peek.status,
        peek.stdout.len()
    );
    assert!(peek.stdout.is_empty());
}

#[tokio::test]
async fn only_the_workspace_and_tmp_are_writable() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let source = "\
for path in ['/x', '/usr/x', '/etc/x', '/etc/passwd', '/run/codemode/x', '/proc/x', '/dev/x',
             '/workspace/out.txt', '/tmp/x', '/dev/shm/x', '/dev/null']:
    try:
        with open(path, 'w') as f:
            f.write('1')
        print('wrote', path)
    except OSError:
        pass";
    let (result, out) = run_with(&dirs, source, quick()).await;
    assert_eq!(result.unwrap().exit_code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "wrote /workspace/out.txt\nwrote /tmp/x\nwrote /dev/shm/x\nwrote /dev/null\n"
    );
    // The workspace is the sandbox's own tmpfs: nothing reached the host.
    let left: Vec<_> = std::fs::read_dir(dirs.dir.inputs())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("main.py")]);
}

#[tokio::test]
async fn the_interpreter_imports_nothing_from_the_workspace_before_the_script() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    // What a hijacker would plant: both run at start-up if the workspace is
    // on the path then (PYTHONPATH) or if site reads it.
    dirs.dir
        .write("sitecustomize.py", "print('planted')\n")
        .unwrap();
    dirs.dir
        .write("usercustomize.py", "print('planted')\n")
        .unwrap();
    dirs.dir
        .write("encodings.py", "raise SystemExit(9)\n")
        .unwrap();
    let mut spec = spec(
        &dirs,
        "import sys\nprint('script', [n for n, m in sys.modules.items() if (getattr(m, '__file__', None) or '').startswith('/workspace/') and n != '__main__'])",
        quick(),
    );
    spec.env.insert("PYTHONPATH".into(), "/workspace".into());
    spec.env
        .insert("PYTHONSTARTUP".into(), "/workspace/sitecustomize.py".into());
    let sink = OutputSink::new(1 << 20, None);
    let finished = sandbox()
        .run(&spec, &sink, CancellationToken::new())
        .await
        .unwrap();
    let out = sink.captured();
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "script []\n");
}

#[tokio::test]
async fn the_workspace_holds_the_inputs_and_is_sized_by_the_disk_limit() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    dirs.dir.write("mcp_tools.py", "VALUE = 7\n").unwrap();
    let source = "\
import os, errno, mcp_tools
print(sorted(os.listdir('/workspace')), mcp_tools.VALUE)
st = os.statvfs('/workspace')
print(st.f_blocks * st.f_frsize // (1 << 20))
try:
    with open('/workspace/fill', 'wb') as f:
        while True:
            f.write(b'x' * (1 << 20))
except OSError as e:
    print(errno.errorcode[e.errno])";
    let limits = Limits {
        disk_bytes: 8 << 20,
        ..quick()
    };
    let (result, out) = run_with(&dirs, source, limits).await;
    assert_eq!(result.unwrap().exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "['main.py', 'mcp_tools.py'] 7\n8\nENOSPC\n");
}

#[tokio::test]
async fn proc_shows_only_the_sandbox() {
    let source = "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))";
    assert_eq!(stdout_of(source).await, "[1, 2]\n");
}

#[tokio::test]
async fn a_timeout_kills_a_busy_loop() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let started = Instant::now();
    let limits = Limits {
        timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (result, _) = run_with(&dirs, "while True:\n    pass", limits).await;
    let finished = result.unwrap();
    assert!(finished.timed_out, "{finished:?}");
    assert_eq!(finished.signal, Some(libc::SIGKILL));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cancelling_stops_the_run() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let spec = spec(&dirs, "import time\ntime.sleep(60)", quick());
    let sink = OutputSink::new(1024, None);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let finished = sandbox().run(&spec, &sink, cancel).await.unwrap();
    assert!(finished.cancelled && !finished.timed_out, "{finished:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_output_flood_is_stopped() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let limits = Limits {
        output_bytes: 64 * 1024,
        ..quick()
    };
    let started = Instant::now();
    let source = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)";
    let (result, out) = run_with(&dirs, source, limits).await;
    let finished = result.unwrap();
    assert!(
        finished.output_flooded && !finished.timed_out,
        "{finished:?}"
    );
    assert!(out.truncated);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_huge_allocation_fails_or_is_killed() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let limits = Limits {
        memory_bytes: Some(256 << 20),
        ..quick()
    };
    let source = "\
try:
    data = b'x' * (2 << 30)
    print('allocated', len(data))
except MemoryError:
    print('MemoryError')";
    let (result, out) = run_with(&dirs, source, limits).await;
    let finished = result.unwrap();
    let refused = finished.exit_code == Some(0) && out.stdout == "MemoryError\n";
    let killed = finished.oom_killed && finished.signal == Some(libc::SIGKILL);
    assert!(refused || killed, "{finished:?} {out:?}");
}

fn memory_cgroup_in_use() -> bool {
    nix::unistd::geteuid().is_root()
        && (Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
            || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory")))
}

#[tokio::test]
async fn memory_used_past_the_limit_is_an_oom_kill() {
    if !memory_cgroup_in_use() {
        return; // rlimits only: nothing bounds the sum of touched pages
    }
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let limits = Limits {
        memory_bytes: Some(96 << 20),
        ..quick()
    };
    // Small pieces, each under RLIMIT_DATA's headroom, all touched.
    let source = "\
chunks = []
for _ in range(400):
    chunks.append(b'x' * (1 << 20))
print('survived')";
    let (result, out) = run_with(&dirs, source, limits).await;
    let finished = result.unwrap();
    assert!(finished.oom_killed, "{finished:?} {out:?}");
    assert_eq!(finished.signal, Some(libc::SIGKILL));
}

/// Runs `source` with a unique marker in its environment, which every
/// process of the run inherits; returns the marker too.
async fn run_marked(
    dirs: &Dirs,
    source: &str,
    limits: Limits,
) -> (Result<Finished, SandboxError>, Captured, String) {
    let mark = format!("{}-{}", std::process::id(), cgroup::new_id());
    let mut spec = spec(dirs, source, limits);
    spec.env.insert("CODEMODE_TEST_MARK".into(), mark.clone());
    let sink = OutputSink::new(spec.limits.output_bytes, None);
    let result = sandbox().run(&spec, &sink, CancellationToken::new()).await;
    (result, sink.captured(), mark)
}

/// Host processes whose environment carries `mark`.
fn processes_marked(mark: &str) -> usize {
    pids_marked(mark).len()
}

fn pids_marked(mark: &str) -> Vec<i32> {
    let needle = format!("CODEMODE_TEST_MARK={mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            environ
                .split(|&b| b == 0)
                .any(|var| var == needle.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// The control for the two tests above: the marker check does see a run's
/// processes while they live.
#[tokio::test]
async fn the_leftover_check_sees_a_live_run() {
    let _shared = HOST_PROCESSES.read().await;
    let dirs = dirs();
    let mark = format!("{}-{}", std::process::id(), cgroup::new_id());
    let mut spec = spec(&dirs, "import time\ntime.sleep(30)", quick());
    spec.env.insert("CODEMODE_TEST_MARK".into(), mark.clone());
    let cancel = CancellationToken::new();
    let run = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let sink = OutputSink::new(1024, None);
            sandbox().run(&spec, &sink, cancel).await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_marked(&mark) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(processes_marked(&mark), 1);
    cancel.cancel();
    assert!(run.await.unwrap().unwrap().cancelled);
    assert_eq!(processes_marked(&mark), 0);
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_leaves_nothing_behind() {
    let _alone = HOST_PROCESSES.write().await;
    let dirs = dirs();
    let limits = Limits {
        pids: 32,
        timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    let source = "\
import os, sys
main = os.getpid()
while True:
    try:
        os.fork()
    except OSError as e:
        if os.getpid() == main:
            print('contained')
            sys.exit(0)";
    let started = Instant::now();
    let (result, out, mark) = run_marked(&dirs, source, limits).await;
    let finished = result.unwrap();
    assert_eq!(finished.exit_code, Some(0), "{finished:?} {out:?}");
    assert_eq!(out.stdout, "contained\n");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(processes_marked(&mark), 0);
}

#[tokio::test]
async fn a_double_forked_daemon_dies_with_the_run() {
    let _alone = HOST_PROCESSES.write().await;
    let dirs = dirs();
    let source = "\
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.5)
        with open('/workspace/marker', 'w') as f:
            f.write('escaped')
    os._exit(0)
print('left a daemon behind')";
    let (result, out, mark) = run_marked(&dirs, source, quick()).await;
    assert_eq!(result.unwrap().exit_code, Some(0));
    assert_eq!(out.stdout, "left a daemon behind\n");
    assert_eq!(processes_marked(&mark), 0);
}

#[tokio::test]
async fn a_layer_that_cannot_be_built_fails_the_run_and_says_which() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let _shared = HOST_PROCESSES.read().await;
    // Inputs the sandbox's host user cannot reach: root's private dir.
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let inputs = private.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let dirs = dirs();
    let mut spec = spec(&dirs, "print('should not run')", quick());
    std::fs::write(inputs.join("main.py"), "print('should not run')").unwrap();
    spec.inputs = inputs;
    let sink = OutputSink::new(1024, None);
    let err = sandbox()
        .run(&spec, &sink, CancellationToken::new())
        .await
        .unwrap_err();
    match err {
        SandboxError::Unavailable { backend, reason } => {
            assert_eq!(backend, "native");
            assert!(reason.starts_with("mounts: reading "), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.captured(), Captured::default());
}

#[test]
fn a_script_name_must_be_a_plain_file_name() {
    for bad in ["", ".", "..", "../x.py", "a/b.py", "x\0.py"] {
        assert!(check_script_name(bad).is_err(), "{bad:?}");
    }
    assert!(check_script_name("main.py").is_ok());
}

#[test]
fn the_backend_owns_a_few_variables_and_the_bridge_url_defaults() {
    let mut user = BTreeMap::new();
    user.insert("PATH".to_string(), "/evil".to_string());
    user.insert("TOKEN".to_string(), "t".to_string());
    let env: BTreeMap<_, _> = script_env(&user).unwrap().into_iter().collect();
    assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(env["TOKEN"], "t");
    assert_eq!(
        env["CODEMODE_BRIDGE_URL"],
        "unix:///run/codemode/bridge.sock"
    );
    user.insert("CODEMODE_BRIDGE_URL".into(), "http://10.0.0.1:1".into());
    let env: BTreeMap<_, _> = script_env(&user).unwrap().into_iter().collect();
    assert_eq!(env["CODEMODE_BRIDGE_URL"], "http://10.0.0.1:1");
    user.insert("A=B".into(), "x".into());
    assert!(script_env(&user).is_err());
}

#[test]
fn a_run_without_a_status_is_mapped_by_who_stopped_it() {
    let timed_out = launch::Outcome {
        timed_out: true,
        ..launch::Outcome::default()
    };
    let finished = finish(timed_out, false).unwrap();
    assert_eq!(
        (finished.signal, finished.timed_out),
        (Some(libc::SIGKILL), true)
    );
    assert!(matches!(
        finish(launch::Outcome::default(), false),
        Err(SandboxError::Failed { .. })
    ));
    let failed_setup = launch::Outcome {
        reports: vec![
            Report::InitPid(7),
            Report::SetupFailed("landlock: no".into()),
        ],
        setup_failed: true,
        ..launch::Outcome::default()
    };
    assert!(matches!(
        finish(failed_setup, false),
        Err(SandboxError::Unavailable { reason, .. }) if reason == "landlock: no"
    ));
}

/// `cargo test -p codemode --bin codemode hello_world_timing -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn hello_world_timing() {
    let _alone = HOST_PROCESSES.write().await;
    let sandbox = sandbox();
    let dirs = dirs();
    let spec = spec(&dirs, "print('hello')", quick());
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let mut sandboxed = Vec::new();
    for _ in 0..20 {
        let sink = OutputSink::new(1024, None);
        let started = Instant::now();
        let finished = sandbox
            .run(&spec, &sink, CancellationToken::new())
            .await
            .unwrap();
        sandboxed.push(started.elapsed());
        assert_eq!(finished.exit_code, Some(0));
    }
    let mut bare = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let status = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "pass"])
            .status()
            .unwrap();
        bare.push(started.elapsed());
        assert!(status.success());
    }
    println!(
        "hello world in the native sandbox: median {:?} (min {:?}); bare python3 -c pass: median {:?}",
        median(sandboxed.clone()),
        sandboxed.iter().min().unwrap(),
        median(bare)
    );
}
