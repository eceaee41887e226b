//! These run real containers. Without an engine (or the image) they are
//! skipped, except under `CI`, where that is a failure: .ci/docker-setup.sh
//! provides both.

use super::*;
use crate::output::Captured;
use crate::{Limits, RunDir, BRIDGE_SOCKET_NAME, SANDBOX_GID, SANDBOX_UID};
use bollard::query_parameters::ListContainersOptionsBuilder;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST_LABEL: &str = "codemode.test";

fn image() -> String {
    std::env::var("CODEMODE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "codemode-python:bookworm".into())
}

/// A sandbox whose containers carry a label unique to this test, so the
/// test can count its own containers while others run in parallel.
struct Harness {
    sandbox: DockerSandbox,
    docker: Docker,
    tag: String,
}

async fn harness(test: &str) -> Option<Harness> {
    match DockerSandbox::connect(&image()).await {
        Ok(sandbox) => {
            let tag = format!("{test}-{}-{}", std::process::id(), run_id().unwrap());
            let docker = sandbox.docker.clone();
            Some(Harness {
                sandbox: sandbox.with_label(TEST_LABEL, &tag),
                docker,
                tag,
            })
        }
        Err(err) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no Docker engine with image {} ({err}); run .ci/docker-setup.sh",
                image()
            );
            eprintln!("skipped: no Docker engine with image {}: {err}", image());
            None
        }
    }
}

impl Harness {
    /// Containers with this test's label, running or not.
    async fn containers(&self) -> usize {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{TEST_LABEL}={}", self.tag)],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .expect("listing containers")
            .len()
    }

    async fn run(&self, job: &Job) -> (Finished, Captured) {
        let sink = OutputSink::new(job.spec.limits.output_bytes, None);
        let finished = self
            .sandbox
            .run(&job.spec, &sink, CancellationToken::new())
            .await
            .expect("the run fails");
        (finished, sink.captured())
    }

    async fn assert_no_containers_left(&self) {
        assert_eq!(self.containers().await, 0, "a container was left behind");
    }
}

/// A run's directory, as exec makes it.
struct Job {
    dir: RunDir,
    /// Dropped after the directory, as the exec code does.
    _user: RunUser,
    spec: RunSpec,
}

fn job(script: &str) -> Job {
    let user = DockerSandbox::run_user().unwrap();
    let dir = RunDir::create(user.user()).unwrap();
    dir.write("job.py", script).unwrap();
    Job {
        spec: RunSpec {
            inputs: dir.inputs().to_path_buf(),
            script: "job.py".into(),
            args: vec![],
            env: BTreeMap::new(),
            bridge_dir: dir.bridge().to_path_buf(),
            host_user: user.user(),
            limits: Limits {
                timeout: Duration::from_secs(30),
                ..Limits::default()
            },
            clock: Default::default(),
            input_files: None,
            parent: None,
        },
        dir,
        _user: user,
    }
}

#[tokio::test]
async fn hello_world_prints_and_exits_zero() {
    let Some(h) = harness("hello").await else {
        return;
    };
    let (finished, out) = h.run(&job("print('hello, world')\n")).await;
    assert_eq!(out.stdout, "hello, world\n");
    assert_eq!(out.stderr, "");
    assert_eq!(
        finished,
        Finished {
            exit_code: Some(0),
            ..Finished::default()
        }
    );
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn the_exit_status_passes_through() {
    let Some(h) = harness("exit").await else {
        return;
    };
    let (finished, _) = h.run(&job("import sys\nsys.exit(3)\n")).await;
    assert_eq!(finished.exit_code, Some(3));
    assert_eq!(finished.signal, None);
    // An uncaught exception is Python's 1.
    let (finished, out) = h.run(&job("raise SystemError('boom')\n")).await;
    assert_eq!(finished.exit_code, Some(1));
    assert!(out.stderr.contains("SystemError: boom"), "{}", out.stderr);
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn a_script_that_signals_itself_keeps_its_exit_status() {
    let Some(h) = harness("selfkill").await else {
        return;
    };
    // 143 with the engine up is the script's own, not a lost engine.
    let script = "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n";
    let (finished, _) = h.run(&job(script)).await;
    assert_eq!(finished.exit_code, Some(143));
    assert_eq!(finished.signal, None);
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn stdout_and_stderr_stay_apart() {
    let Some(h) = harness("streams").await else {
        return;
    };
    let script = "import sys\nfor i in range(3):\n    print('out', i)\n    print('err', i, file=sys.stderr)\n";
    let (finished, out) = h.run(&job(script)).await;
    assert_eq!(finished.exit_code, Some(0));
    assert_eq!(out.stdout, "out 0\nout 1\nout 2\n");
    assert_eq!(out.stderr, "err 0\nerr 1\nerr 2\n");
}

#[tokio::test]
async fn args_env_and_working_dir_are_the_specs() {
    let Some(h) = harness("env").await else {
        return;
    };
    let mut job = job(concat!(
        "import os, sys\n",
        "print(sys.argv[1:])\n",
        "print(os.getcwd())\n",
        "for k in ['GREETING', 'HOME', 'LANG', 'CODEMODE_BRIDGE_URL', 'HOSTILE']:\n",
        "    print(k, os.environ.get(k))\n",
        "print('/elsewhere' in sys.path)\n",
        "import json, http.client\n",
    ));
    job.spec.args = vec!["one".into(), "two words".into()];
    job.spec.env.insert("GREETING".into(), "hi there".into());
    // The backend's own variables win over the spec's, and the
    // interpreter ignores PYTHON* ones.
    job.spec.env.insert("HOME".into(), "/elsewhere".into());
    job.spec
        .env
        .insert("PYTHONPATH".into(), "/elsewhere".into());
    let (finished, out) = h.run(&job).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "['one', 'two words']\n/workspace\nGREETING hi there\nHOME /tmp\nLANG C.UTF-8\n\
             CODEMODE_BRIDGE_URL unix:///run/codemode/bridge.sock\n\
             HOSTILE None\nFalse\n"
    );
}

#[tokio::test]
async fn a_timeout_kills_the_script_and_removes_the_container() {
    let Some(h) = harness("timeout").await else {
        return;
    };
    let mut job = job("print('spinning', flush=True)\nwhile True:\n    pass\n");
    job.spec.limits.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let (finished, out) = h.run(&job).await;
    let took = started.elapsed();
    assert!(finished.timed_out, "{finished:?}");
    assert_eq!(finished.exit_code, None);
    assert_eq!(finished.signal, Some(libc::SIGKILL));
    // Output from before the kill is kept.
    assert_eq!(out.stdout, "spinning\n");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn there_is_no_network() {
    let Some(h) = harness("network").await else {
        return;
    };
    // Nothing is aimed off this machine: no interface but loopback and
    // no route prove there is no way out; a listener on the host's
    // loopback proves that the container's 127.0.0.1 is its own.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let script = format!(
        r#"
import os, socket
print("interfaces:", sorted(os.listdir("/sys/class/net")))
routes = open("/proc/net/route").read().splitlines()[1:]
routes6 = [l for l in open("/proc/net/ipv6_route").read().splitlines() if l.split()[-1] != "lo"]
print("routes:", len(routes), len(routes6))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3)
    print("host loopback: connected")
except OSError:
    print("host loopback: refused")
"#
    );
    let (finished, out) = h.run(&job(&script)).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "interfaces: ['lo']\nroutes: 0 0\nhost loopback: refused\n"
    );
    assert!(tcp.accept().is_err(), "a connection reached the host");
}

#[tokio::test]
async fn the_script_runs_as_its_own_user_without_capabilities() {
    let Some(h) = harness("uid").await else {
        return;
    };
    let script = r#"
import getpass, os
print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), getpass.getuser())
status = open("/proc/self/status").read()
caps = {l.split(":")[0]: l.split()[1] for l in status.splitlines() if l.startswith("Cap")}
print(caps["CapEff"], caps["CapPrm"], caps["CapBnd"])
print([l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0])
"#;
    let job = job(script);
    let (finished, out) = h.run(&job).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    let crate::HostUser { uid, gid } = job.spec.host_user;
    assert_eq!(
        out.stdout,
        format!(
            "{uid} {uid} {gid} {gid} nobody\n\
                 0000000000000000 0000000000000000 0000000000000000\n1\n"
        )
    );
    if nix::unistd::geteuid().is_root() {
        assert!(host_user::UNUSED_IDS.contains(&uid), "{uid}");
        assert_eq!(uid, gid);
    } else {
        // The invoking user's: the only one that can own the run's files.
        let me = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        assert_eq!((uid, gid), me);
    }
}

/// The pids of the host's processes with `mark` among their arguments,
/// and whether one of them is the script (the other is docker-init).
fn pids_marked(mark: &str) -> (Vec<i32>, bool) {
    let mut pids = Vec::new();
    let mut script = false;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.contains(&mark.as_bytes()) {
            pids.push(pid);
            script |= args[0] == b"python3";
        }
    }
    (pids, script)
}

#[tokio::test]
async fn a_host_process_running_as_nobody_cannot_read_the_scripts_environment() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let Some(h) = harness("environ").await else {
        return;
    };
    let mut job = job("import time\ntime.sleep(30)\n");
    let mark = format!("codemode-test-{}", run_id().unwrap());
    job.spec.args = vec![mark.clone()];
    job.spec
        .env
        .insert("CODEMODE_BRIDGE_TOKEN".into(), "cm_secret".into());
    let cancel = CancellationToken::new();
    let sink = OutputSink::new(1024, None);
    let run = h.sandbox.run(&job.spec, &sink, cancel.clone());
    let peek = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let pids = loop {
            let (pids, script) = pids_marked(&mark);
            if script {
                break pids;
            }
            assert!(Instant::now() < deadline, "the script never showed up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut peeks = Vec::new();
        for pid in pids {
            let environ = format!("/proc/{pid}/environ");
            let peek = tokio::process::Command::new("/bin/cat")
                .arg(&environ)
                .uid(SANDBOX_UID)
                .gid(SANDBOX_GID)
                .output()
                .await
                .unwrap();
            // Still there: a refusal, not a process that had already gone.
            let alive = std::path::Path::new(&environ).exists();
            peeks.push((pid, peek, alive));
        }
        cancel.cancel();
        peeks
    };
    let (finished, peeks) = tokio::join!(run, peek);
    assert!(finished.unwrap().cancelled);
    for (pid, peek, alive) in peeks {
        assert!(alive, "{pid} was gone");
        let stderr = String::from_utf8_lossy(&peek.stderr);
        assert!(
            !peek.status.success() && stderr.contains("Permission denied"),
            "{pid}: {}: read {:?}; {stderr}",
            peek.status,
            String::from_utf8_lossy(&peek.stdout)
        );
    }
}

#[tokio::test]
async fn the_seccomp_profile_refuses_ptrace_io_uring_and_inet_sockets() {
    let Some(h) = harness("seccomp").await else {
        return;
    };
    let script = format!(
        r#"
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    result = getattr(libc, name)(*args)
    return errno.errorcode.get(ctypes.get_errno(), "0") if result == -1 else "ok"
print("ptrace", call("ptrace", 0, 0, None, None))
print("io_uring_setup", call("syscall", {io_uring_setup}, 8, ctypes.create_string_buffer(120)))
print("unshare", call("unshare", {clone_newuser:#x}))
for family in ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"]:
    try:
        socket.socket(getattr(socket, family), socket.SOCK_DGRAM).close()
        print(family, "ok")
    except OSError as e:
        print(family, errno.errorcode[e.errno])
a, b = socket.socketpair()
print("AF_UNIX", "ok")
"#,
        io_uring_setup = libc::SYS_io_uring_setup,
        clone_newuser = libc::CLONE_NEWUSER,
    );
    let (finished, out) = h.run(&job(&script)).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "ptrace EPERM\nio_uring_setup EPERM\nunshare EPERM\nAF_INET EPERM\nAF_INET6 EPERM\n\
             AF_NETLINK EPERM\nAF_PACKET EPERM\nAF_UNIX ok\n"
    );
}

#[tokio::test]
async fn modify_ldt_memfd_secret_move_pages_and_personality_changes_are_refused() {
    use crate::seccomp_rules::probe;
    let Some(h) = harness("seccomp-table").await else {
        return;
    };
    let (finished, out) = h.run(&job(&probe::script())).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, probe::expected());
}

/// The i386 entry point (`int 0x80`) has its own syscall numbers and
/// `socketcall`, which the profile could not filter by family: it must
/// not be a way around the rules.
#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn the_32_bit_syscall_entry_is_closed() {
    let Some(h) = harness("ia32").await else {
        return;
    };
    let script = r#"
import ctypes, mmap
# libc names no i386 numbers on x86_64, so they are spelled out here.
# mov eax, 359 (i386 socket); mov ebx, 2 (AF_INET); mov ecx, 2 (SOCK_DGRAM);
# xor edx, edx; int 0x80; ret
code = (bytes([0xB8]) + (359).to_bytes(4, "little")
        + bytes([0xBB, 2, 0, 0, 0, 0xB9, 2, 0, 0, 0, 0x31, 0xD2, 0xCD, 0x80, 0xC3]))
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
entry = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
print("socket", entry(), flush=True)
"#;
    let (finished, out) = h.run(&job(script)).await;
    let refused = out
        .stdout
        .strip_prefix("socket ")
        .and_then(|n| n.trim().parse::<i32>().ok())
        .is_some_and(|n| n < 0);
    // runc 1.1 kills a foreign-architecture call (SIGSYS, 128 + 31);
    // other runtimes answer it with an error.
    let killed = finished.exit_code == Some(128 + 31);
    assert!(refused || killed, "{finished:?} {out:?}");
}

#[tokio::test]
async fn ordinary_python_still_works_under_the_profile() {
    let Some(h) = harness("ordinary").await else {
        return;
    };
    let script = r#"
import asyncio, concurrent.futures, json, multiprocessing, subprocess, tempfile, threading

def square(n):
    return n * n

async def main():
    await asyncio.sleep(0.01)
    return "asyncio"

if __name__ == "__main__":
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        print("threads", sum(pool.map(square, range(10))))
    with multiprocessing.Pool(2) as pool:
        print("processes", sum(pool.map(square, range(10))))
    print(subprocess.run(["sh", "-c", "echo subprocess"], capture_output=True, text=True).stdout.strip())
    print(asyncio.run(main()))
    with tempfile.TemporaryFile() as f:
        f.write(b"tmp")
        f.seek(0)
        print(f.read().decode())
    print(json.dumps({"ok": True}))
"#;
    let (finished, out) = h.run(&job(script)).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "threads 285\nprocesses 285\nsubprocess\nasyncio\ntmp\n{\"ok\": true}\n"
    );
}

#[tokio::test]
async fn only_the_workspace_and_tmp_are_writable() {
    let Some(h) = harness("readonly").await else {
        return;
    };
    let script = r#"
import errno
for path in ["/etc/x", "/usr/x", "/x", "/run/codemode/x", "/workspace/out.txt", "/tmp/x"]:
    try:
        with open(path, "w") as f:
            f.write("written")
        print(path, "ok")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
"#;
    let job = job(script);
    let (finished, out) = h.run(&job).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "/etc/x EROFS",
            "/usr/x EROFS",
            "/x EROFS",
            "/run/codemode/x EROFS",
            "/workspace/out.txt ok",
            "/tmp/x ok",
        ]
    );
    // The workspace is the container's own tmpfs: nothing reached the host.
    assert!(!job.dir.inputs().join("out.txt").exists());
}

#[tokio::test]
async fn the_interpreter_imports_nothing_from_the_workspace_before_the_script() {
    let Some(h) = harness("planted").await else {
        return;
    };
    let mut job = job("import sys\nprint('script', [n for n, m in sys.modules.items() if (getattr(m, '__file__', None) or '').startswith('/workspace/') and n != '__main__'])\n");
    for (name, text) in [
        ("sitecustomize.py", "print('planted')\n"),
        ("usercustomize.py", "print('planted')\n"),
        ("encodings.py", "raise SystemExit(9)\n"),
    ] {
        job.dir.write(name, text).unwrap();
    }
    job.spec
        .env
        .insert("PYTHONPATH".into(), "/workspace".into());
    let (finished, out) = h.run(&job).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "script []\n");
}

#[tokio::test]
async fn the_workspace_holds_the_inputs_and_is_sized_by_the_disk_limit() {
    let Some(h) = harness("disksize").await else {
        return;
    };
    let mut job = job(concat!(
        "import os, errno, mcp_tools\n",
        "print(sorted(os.listdir('/workspace')), mcp_tools.VALUE)\n",
        "st = os.statvfs('/workspace')\n",
        "print(st.f_blocks * st.f_frsize // (1 << 20))\n",
        "try:\n",
        "    with open('/workspace/fill', 'wb') as f:\n",
        "        while True:\n",
        "            f.write(b'x' * (1 << 20))\n",
        "except OSError as e:\n",
        "    print(errno.errorcode[e.errno])\n",
    ));
    job.dir.write("mcp_tools.py", "VALUE = 7\n").unwrap();
    job.spec.limits.disk_bytes = 8 * 1024 * 1024;
    let (finished, out) = h.run(&job).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "['job.py', 'mcp_tools.py'] 7\n8\nENOSPC\n");
}

#[tokio::test]
async fn tmp_is_sized_by_the_limit() {
    let Some(h) = harness("tmpsize").await else {
        return;
    };
    let mut job = job(concat!(
        "import os\n",
        "st = os.statvfs('/tmp')\n",
        "print(st.f_blocks * st.f_frsize)\n",
    ));
    job.spec.limits.tmp_bytes = 8 * 1024 * 1024;
    let (finished, out) = h.run(&job).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), (8 * 1024 * 1024).to_string());
}

#[tokio::test]
async fn the_bridge_socket_is_reachable() {
    let Some(h) = harness("bridge").await else {
        return;
    };
    let job = job(concat!(
        "import os, socket\n",
        "path = os.environ['CODEMODE_BRIDGE_URL'].removeprefix('unix://')\n",
        "s = socket.socket(socket.AF_UNIX)\n",
        "s.connect(path)\n",
        "s.sendall(b'ping')\n",
        "print(s.recv(16).decode())\n",
    ));
    let socket_path = job.spec.bridge_dir.join(BRIDGE_SOCKET_NAME);
    let listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    // As the exec code does: the run's user's alone.
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    job.dir.give(&socket_path).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        conn.write_all(b"pong").unwrap();
    });
    let (finished, out) = h.run(&job).await;
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "pong\n");
    server.join().unwrap();
}

#[tokio::test]
async fn a_memory_bomb_is_killed() {
    let Some(h) = harness("oom").await else {
        return;
    };
    let mut job = job(concat!(
        "print('allocating')\n",
        "blocks = []\n",
        "while True:\n",
        "    blocks.append(bytearray(8 << 20))\n",
    ));
    job.spec.limits.memory_bytes = Some(64 * 1024 * 1024);
    let (finished, out) = h.run(&job).await;
    assert!(
        finished.oom_killed || finished.exit_code.is_some_and(|code| code != 0),
        "{finished:?} {out:?}"
    );
    assert!(!finished.timed_out);
    // Written before the kill, and not lost in a buffer (python3 -u).
    assert_eq!(out.stdout, "allocating\n");
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn a_fork_bomb_hits_the_pids_limit_and_the_run_ends() {
    let Some(h) = harness("forkbomb").await else {
        return;
    };
    let mut job = job(r#"
import os
made = failed = 0
for _ in range(300):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        # Every child forks on, forever: the pids limit is all that stops it.
        while True:
            try:
                os.fork()
            except OSError:
                pass
    made += 1
print(made, failed, flush=True)
"#);
    job.spec.limits.pids = 32;
    job.spec.limits.timeout = Duration::from_secs(20);
    let started = Instant::now();
    let (finished, out) = h.run(&job).await;
    assert!(!finished.timed_out, "{finished:?} {out:?}");
    assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
    let counts: Vec<u32> = out
        .stdout
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(counts[0] < 32 && counts[1] > 0, "made, failed: {counts:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn an_output_flood_is_stopped() {
    let Some(h) = harness("flood").await else {
        return;
    };
    let mut job = job("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n");
    job.spec.limits.output_bytes = 64 * 1024;
    let (finished, out) = h.run(&job).await;
    assert!(finished.output_flooded, "{finished:?}");
    assert!(!finished.timed_out);
    assert_eq!(out.stdout.len(), 64 * 1024);
    assert!(out.truncated);
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn cancelling_kills_the_run_and_removes_the_container() {
    let Some(h) = harness("cancel").await else {
        return;
    };
    let job = job("import time\nprint('started')\nwhile True:\n    time.sleep(0.1)\n");
    let cancel = CancellationToken::new();
    let on_output = cancel.clone();
    let sink = OutputSink::new(
        1024,
        Some(Box::new(move |_, bytes| {
            if bytes.windows(7).any(|w| w == b"started") {
                on_output.cancel();
            }
        })),
    );
    let started = Instant::now();
    let finished = h.sandbox.run(&job.spec, &sink, cancel).await.unwrap();
    assert!(finished.cancelled, "{finished:?}");
    assert!(!finished.timed_out);
    assert!(started.elapsed() < Duration::from_secs(15));
    h.assert_no_containers_left().await;
}

#[tokio::test]
async fn a_dropped_run_still_removes_its_container() {
    let Some(h) = harness("dropped").await else {
        return;
    };
    let job = job("import time\nprint('started')\ntime.sleep(60)\n");
    let seen = Arc::new(tokio::sync::Notify::new());
    let notify = Arc::clone(&seen);
    let sink = OutputSink::new(1024, Some(Box::new(move |_, _| notify.notify_one())));
    let run = h.sandbox.run(&job.spec, &sink, CancellationToken::new());
    tokio::select! {
        _ = run => panic!("the run ended by itself"),
        _ = seen.notified() => {}
    }
    // The run's future is dropped here, mid-run, with the container running.
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.containers().await > 0 {
        assert!(Instant::now() < deadline, "the container outlived its run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_missing_image_is_unavailable_with_a_fix() {
    if harness("missing").await.is_none() {
        return;
    }
    let missing = "codemode-test-no-such-image:never";
    match DockerSandbox::connect(missing).await {
        Ok(_) => panic!("connected with a missing image"),
        Err(SandboxError::Unavailable { reason, .. }) => {
            assert!(
                reason.contains(&format!("docker pull {missing}")),
                "{reason}"
            );
            assert!(reason.contains("sandbox.image"), "{reason}");
            assert!(reason.contains("--sandbox native"), "{reason}");
        }
        Err(err) => panic!("wrong error: {err}"),
    }
    match DockerSandbox::connect_without_pull(missing).await {
        Err(SandboxError::Unavailable { reason, .. }) => {
            assert!(reason.contains("is not on the engine ("), "{reason}");
        }
        _ => panic!("connected with a missing image"),
    }
    assert!(DockerSandbox::connect_without_pull(&image()).await.is_ok());
}

/// Cold start, this backend against a bare `docker run`: `cargo test -p
/// codemode cold_start -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a test"]
async fn cold_start() {
    let Some(h) = harness("coldstart").await else {
        return;
    };
    let job = job("print(1)\n");
    let rounds = 15;
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let (finished, out) = h.run(&job).await;
        ours.push(started.elapsed());
        assert_eq!((finished.exit_code, out.stdout.as_str()), (Some(0), "1\n"));
        let started = Instant::now();
        let status = std::process::Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                &image(),
                "python3",
                "-c",
                "print(1)",
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        bare.push(started.elapsed());
        assert!(status.success());
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    eprintln!(
        "cold start, median of {rounds}: backend {:?}, docker run {:?}",
        median(&mut ours),
        median(&mut bare)
    );
}
