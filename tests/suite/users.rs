//! The sandbox holds for every user who runs codemode: root, and a normal
//! user at a shell. One local user attacks another's live run; limits are
//! enforced or the run is refused; a script cannot fill the host's disk or
//! leave anything behind.
//!
//! The users are made with `setpriv`, so the cross-user cases need a suite
//! running as root (CI is); the rest run as whoever runs the suite, and, as
//! root, as a normal user too.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::users::{running_as_root, shared_bins, shared_config, shared_dir, sticky_tmp, User};
use common::{docker_ready, unique};
use serde_json::Value;

/// Who starts codemode: the suite itself, or a user made for the test.
#[derive(Debug, Clone)]
enum Who {
    Suite,
    User(User),
}

/// A config and scripts every user can read, and a temporary directory
/// every user can write, as `/tmp` is.
struct Place {
    dir: tempfile::TempDir,
    tmp: tempfile::TempDir,
}

impl Place {
    fn new(extra_config: &str) -> Place {
        let dir = shared_dir();
        let config = dir.path().join("codemode.toml");
        std::fs::write(&config, shared_config(extra_config)).unwrap();
        Place {
            dir,
            tmp: sticky_tmp(),
        }
    }

    fn script(&self, source: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(format!("script_{}.py", unique()));
        std::fs::write(&path, source).unwrap();
        path
    }

    fn codemode(&self, who: &Who) -> Command {
        let bin = shared_bins().join("codemode");
        let mut cmd = match who {
            Who::Suite => {
                let mut cmd = Command::new(&bin);
                cmd.env_remove("CODEMODE_CONFIG")
                    .env("TMPDIR", self.tmp.path());
                cmd
            }
            Who::User(user) => user.command(&bin, self.tmp.path()),
        };
        cmd.arg("--config")
            .arg(self.dir.path().join("codemode.toml"))
            .current_dir(self.dir.path());
        cmd
    }

    /// `exec --json` of `source`; the report, the exit code and stderr.
    fn exec(&self, who: &Who, backend: &str, source: &str, extra: &[&str]) -> Run {
        let output = self
            .codemode(who)
            .args(["exec", "--json", "--sandbox", backend])
            .args(extra)
            .arg(self.script(source))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(output)
    }

    /// Nothing of any run is left in the temporary directory.
    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

struct Run {
    report: Value,
    code: i32,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            report: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
            code: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn stdout(&self) -> &str {
        self.report["stdout"].as_str().unwrap_or("")
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nreport: {}\nstderr: {}",
            self.code, self.report, self.stderr
        )
    }
}

/// Each backend with the users it runs as here: the suite, and (as root) a
/// normal user, who for Docker is in the socket's group.
fn cases() -> Vec<(&'static str, Who)> {
    let mut cases = vec![("native", Who::Suite)];
    if let Some((alice, _)) = User::others() {
        cases.push(("native", Who::User(alice)));
    }
    if docker_ready() {
        cases.push(("docker", Who::Suite));
        if let Some((alice, _)) = User::others() {
            cases.push(("docker", Who::User(alice.with_docker())));
        }
    }
    cases
}

// ---------------------------------------------------------------------------
// One user against another's live run.

/// What the attacker tries against every run directory and every process
/// of the victim it can find; prints one JSON object of outcomes.
const ATTACK: &str = r#"
import json, os, socket, sys
tmp, victim, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
found = {"runs": 0, "processes": 0}
succeeded = []
def attempt(what, action):
    try:
        action()
        succeeded.append(what)
    except OSError:
        pass
def plant(path):
    with open(path, "w") as f:
        f.write("print('planted')\n")
def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(path)
    s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    s.recv(100)
for name in os.listdir(tmp):
    if name.startswith("codemode-out-"):
        # Where a run's returned files are staged before they are handed on.
        attempt("list " + name, lambda: os.listdir(os.path.join(tmp, name)))
        continue
    if not name.startswith("codemode-run-"):
        continue
    found["runs"] += 1
    run = os.path.join(tmp, name)
    attempt("list " + name, lambda: os.listdir(run))
    for sub in ["inputs", "bridge"]:
        attempt("list %s/%s" % (name, sub), lambda: os.listdir(os.path.join(run, sub)))
    attempt("plant sitecustomize.py", lambda: plant(os.path.join(run, "inputs", "sitecustomize.py")))
    attempt("plant mcp_tools.py", lambda: plant(os.path.join(run, "inputs", "mcp_tools.py")))
    for script in ["victim.py", "codemode_kernel.py"]:
        attempt("read " + script, lambda: open(os.path.join(run, "inputs", script)).read())
    attempt("connect to the bridge", lambda: connect(os.path.join(run, "bridge", "bridge.sock")))
    attempt("connect to a session's kernel", lambda: connect(os.path.join(run, "bridge", "kernel.sock")))
    attempt("connect to the outbox", lambda: connect(os.path.join(run, "bridge", "out.sock")))
for pid in os.listdir("/proc"):
    # This script's own command line names the marker too.
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        status = open("/proc/%s/status" % pid).read()
    except OSError:
        continue
    uids = [l.split()[1:] for l in status.splitlines() if l.startswith("Uid:")][0]
    if str(victim) not in uids and victim != -1:
        continue
    # The attacker's own processes (another attack running at the same time
    # names the marker too) prove nothing.
    if str(os.getuid()) in uids:
        continue
    if marker not in open("/proc/%s/cmdline" % pid).read():
        continue
    found["processes"] += 1
    attempt("read environ of %s" % pid, lambda: open("/proc/%s/environ" % pid, "rb").read())
    attempt("read the script through /proc/%s/root" % pid, lambda: os.listdir("/proc/%s/root/workspace" % pid))
print(json.dumps({"found": found, "succeeded": succeeded}))
"#;

/// The victim's script: waits long enough to be attacked, then shows that
/// nothing was planted and that its tools still answer.
const VICTIM: &str = r#"
import os, sys, time, mcp_tools
time.sleep(float(sys.argv[1]))
print(sorted(os.listdir("/workspace")))
print(len(mcp_tools.news.search(query="battery")["articles"]) > 0)
"#;

/// Starts the victim's run of [`VICTIM`]; its script file is named so that
/// the attacker can find its processes.
fn start_victim(place: &Place, who: &Who, backend: &str, sleep: &str) -> Child {
    let script = place.dir.path().join("victim.py");
    std::fs::write(&script, VICTIM).unwrap();
    place
        .codemode(who)
        .args(["exec", "--json", "--sandbox", backend])
        .arg(&script)
        .args(["--", sleep, "victim_marker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the victim's run directory exists and its script (named
/// `script` in the workspace) runs, as `uid` when the victim's uid is known
/// (other tests' runs go on at the same time).
fn wait_for_live_run(place: &Place, script: &str, uid: Option<u32>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let runs = std::fs::read_dir(place.tmp.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("codemode-run-"));
        // The script itself, not just the codemode that runs it.
        let mut pgrep = Command::new("pgrep");
        if let Some(uid) = uid {
            pgrep.args(["-u", &uid.to_string()]);
        }
        let script = pgrep
            .args(["-f", &format!("/workspace/{script}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if runs && script {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the victim's run never started");
}

/// Runs [`ATTACK`] as `attacker` against the runs in `place` and the
/// processes whose command line holds `marker`.
fn attack(place: &Place, attacker: &User, victim_uid: Option<u32>, marker: &str) -> Value {
    let out = attacker
        .command(Path::new("/usr/bin/python3"), place.tmp.path())
        .args(["-c", ATTACK])
        .arg(place.tmp.path())
        .arg(victim_uid.map_or("-1".to_string(), |u| u.to_string()))
        .arg(marker)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the attack script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The attacker found the one live run and a process of it, and got
/// nowhere with either.
fn assert_every_attempt_failed(outcome: &Value, run: &str) {
    assert_eq!(outcome["found"]["runs"], 1, "{outcome}");
    assert!(
        outcome["found"]["processes"].as_u64().unwrap_or(0) >= 1,
        "the attacker found no process of the run to attack: {outcome}"
    );
    assert_eq!(outcome["succeeded"], Value::Array(vec![]), "{run}");
}

fn assert_attack_fails(backend: &str, victim: Who) {
    let Some((_, mallory)) = User::others() else {
        eprintln!("skipped: needs root to make two users");
        return;
    };
    let place = Place::new("");
    let victim_uid = match &victim {
        Who::User(user) => Some(user.uid),
        // A root run's script has a uid of its own: find it by its name.
        Who::Suite => None,
    };
    let child = start_victim(&place, &victim, backend, "3");
    wait_for_live_run(&place, "victim.py", victim_uid);
    let outcome = attack(&place, &mallory, victim_uid, "victim_marker");
    let run = Run::from(child.wait_with_output().unwrap());

    assert_every_attempt_failed(&outcome, &format!("{backend} run of {victim:?}"));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.stdout(),
        "['mcp_tools.py', 'victim.py']\nTrue\n",
        "{run}"
    );
    place.assert_clean();
}

/// As [`assert_attack_fails`], against a run of `codemode serve --http`
/// that an MCP client (the Python SDK's) asked for.
fn assert_attack_on_serve_fails(backend: &str, victim: Who) {
    let Some((_, mallory)) = User::others() else {
        eprintln!("skipped: needs root to make two users");
        return;
    };
    let Some(python) = common::mcp_python() else {
        return;
    };
    let place = Place::new("");
    let victim_uid = match &victim {
        Who::User(user) => Some(user.uid),
        Who::Suite => None,
    };
    let mut serve = place
        .codemode(&victim)
        .args([
            "serve",
            "--sandbox",
            backend,
            "--http",
            "127.0.0.1:0",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = serve_url(&mut serve);
    let code = VICTIM.replace("float(sys.argv[1])", "3");
    let body = format!(
        r#"
async def main():
    async with client() as c:
        r = await c.call_tool("execute_python", {{"code": {code:?}}})
        done({{"stdout": r.structured_content["stdout"], "success": r.structured_content["success"]}})
"#
    );
    let (mut command, _dir) = common::python_client_command(&python, &url, &body, &[]);
    let client = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A serve run is a cell of a session, which the kernel runs.
    wait_for_live_run(&place, "codemode_kernel.py", victim_uid);
    let outcome = attack(
        &place,
        &mallory,
        victim_uid,
        "/workspace/codemode_kernel.py",
    );
    let output = client.wait_with_output().unwrap();
    // Stopped as a supervisor would: its sessions end with it.
    common::send_signal(serve.id(), "TERM");
    let _ = serve.wait();

    assert_every_attempt_failed(&outcome, &format!("{backend} serve session of {victim:?}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            r#"RESULT {"stdout": "['codemode_kernel.py', 'mcp_tools.py', 'out']\nTrue\n", "success": true}"#
        ),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    place.assert_clean();
}

/// The URL `codemode serve --http --json` says it listens on.
fn serve_url(serve: &mut Child) -> String {
    let listening = common::wait_until_listening(serve, Duration::from_secs(60));
    let url = listening.line["url"].as_str();
    url.unwrap_or_else(|| panic!("no url: {}", listening.line))
        .to_string()
}

#[test]
fn another_user_cannot_reach_a_normal_users_serve_run() {
    if let Some((alice, _)) = User::others() {
        assert_attack_on_serve_fails("native", Who::User(alice));
    }
}

#[test]
fn another_user_cannot_reach_roots_serve_run() {
    if running_as_root() {
        assert_attack_on_serve_fails("native", Who::Suite);
    }
}

#[test]
fn another_user_cannot_reach_a_normal_users_docker_session() {
    if let Some((alice, _)) = User::others() {
        if docker_ready() {
            assert_attack_on_serve_fails("docker", Who::User(alice.with_docker()));
        }
    }
}

#[test]
fn another_user_cannot_reach_roots_docker_session() {
    if running_as_root() && common::docker_ready() {
        assert_attack_on_serve_fails("docker", Who::Suite);
    }
}

#[test]
fn another_user_cannot_reach_a_normal_users_native_run() {
    if let Some((alice, _)) = User::others() {
        assert_attack_fails("native", Who::User(alice));
    }
}

#[test]
fn another_user_cannot_reach_a_normal_users_docker_run() {
    if let Some((alice, _)) = User::others() {
        if docker_ready() {
            assert_attack_fails("docker", Who::User(alice.with_docker()));
        }
    }
}

#[test]
fn another_user_cannot_reach_roots_native_run() {
    if running_as_root() {
        assert_attack_fails("native", Who::Suite);
    }
}

#[test]
fn another_user_cannot_reach_roots_docker_run() {
    if running_as_root() && docker_ready() {
        assert_attack_fails("docker", Who::Suite);
    }
}

// ---------------------------------------------------------------------------
// Limits: enforced for the whole run, or refused.

/// What `doctor` says a limit reaches for `who`.
fn enforced(place: &Place, who: &Who, backend: &str, limit: &str) -> String {
    let out = place
        .codemode(who)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "doctor said no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    doctor[backend]["limits"]
        .as_array()
        .and_then(|limits| limits.iter().find(|l| l["limit"] == limit))
        .and_then(|l| l["enforced"].as_str())
        .unwrap_or_else(|| panic!("doctor names no {limit} limit for {backend}: {doctor}"))
        .to_string()
}

/// Touches 2 GiB of shared memory, which `RLIMIT_DATA` does not count.
const SHARED_MEMORY_BOMB: &str = "\
import mmap
m = mmap.mmap(-1, 2 << 30)
for i in range(0, 2 << 30, 4096):
    m[i] = 1
print('filled')
";

#[test]
fn a_shared_memory_bomb_is_stopped_under_an_explicit_memory_limit() {
    for (backend, who) in cases() {
        let place = Place::new("");
        let reach = enforced(&place, &who, backend, "memory");
        let run = place.exec(&who, backend, SHARED_MEMORY_BOMB, &["--memory", "256m"]);
        if reach.starts_with("whole run") {
            assert_ne!(run.stdout(), "filled\n", "{backend} {who:?}: {run}");
            assert_ne!(run.code, 0, "{backend} {who:?}: {run}");
        } else {
            assert_eq!(run.code, 125, "{backend} {who:?}: {run}");
            assert!(
                run.stderr.contains("memory limit of 256 MiB")
                    && run.stderr.contains("--memory none"),
                "{run}"
            );
        }
        place.assert_clean();
    }
}

#[test]
fn a_shared_memory_bomb_is_stopped_under_the_default_limits() {
    for (backend, who) in cases() {
        let place = Place::new("");
        let run = place.exec(&who, backend, SHARED_MEMORY_BOMB, &[]);
        assert_ne!(run.stdout(), "filled\n", "{backend} {who:?}: {run}");
        assert_ne!(run.code, 0, "{backend} {who:?}: {run}");
        place.assert_clean();
    }
}

#[test]
fn a_default_the_host_cannot_enforce_is_said_once() {
    let place = Place::new("");
    for (backend, who) in cases() {
        if enforced(&place, &who, backend, "cpus").starts_with("whole run") {
            continue;
        }
        let run = place.exec(&who, backend, "print(1)\n", &[]);
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(
            run.stderr
                .matches("CPU share of 0.5 is not enforced")
                .count(),
            1,
            "{run}"
        );
    }
}

/// Four processes of two threads each, spinning for two seconds of wall
/// time (threads alone would share one core under the GIL); prints the CPU
/// seconds they used.
const CPU_BURNER: &str = "\
import os, threading, time
def spin():
    end = time.monotonic() + 2
    while time.monotonic() < end:
        pass
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        threads = [threading.Thread(target=spin) for _ in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
t = os.times()
print(round(t.children_user + t.children_system, 2))
";

#[test]
fn a_cpu_share_is_enforced_for_all_processes_and_threads_or_refused() {
    for (backend, who) in cases() {
        let place = Place::new("");
        let reach = enforced(&place, &who, backend, "cpus");
        let run = place.exec(&who, backend, CPU_BURNER, &["--cpus", "0.5"]);
        if reach.starts_with("whole run") {
            assert_eq!(run.code, 0, "{run}");
            let used: f64 = run.stdout().trim().parse().unwrap();
            // Half a core for two seconds is one CPU second; unlimited, the
            // four processes would use about four on two cores. The bound
            // allows for scheduling slack on a loaded machine.
            assert!(used < 2.0, "{backend} {who:?} used {used} CPU s: {run}");
        } else {
            assert_eq!(run.code, 125, "{backend} {who:?}: {run}");
            assert!(
                run.stderr.contains("CPU share of 0.5") && run.stderr.contains("--cpus 0"),
                "{run}"
            );
        }
        place.assert_clean();
    }
}

#[test]
fn the_first_command_of_the_readme_works_for_a_normal_user() {
    let Some((alice, _)) = User::others() else {
        return;
    };
    let place = Place::new("");
    // The README's own sandbox settings: no limit is set, so none is refused.
    std::fs::write(
        place.dir.path().join("codemode.toml"),
        shared_config("backend = \"auto\"\ntimeout = \"30s\"\n"),
    )
    .unwrap();
    let news_summary = common::repo().join("examples/news_summary.py");
    let script = place.dir.path().join("news_summary.py");
    std::fs::copy(news_summary, &script).unwrap();
    let output = place
        .codemode(&Who::User(alice))
        .args(["exec", "--sandbox", "native"])
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Summarized 5 technology articles"),
        "{stdout}"
    );
    place.assert_clean();
}

// ---------------------------------------------------------------------------
// The host's disk, and cleanup.

#[test]
fn fallocate_past_the_workspace_is_enospc_and_nothing_for_the_host() {
    let script = "\
import os, errno
fd = os.open('/workspace/big', os.O_CREAT | os.O_WRONLY)
try:
    # FALLOC_FL_KEEP_SIZE: RLIMIT_FSIZE does not apply.
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(10 << 30))
    print('fallocate', errno.errorcode.get(ctypes.get_errno(), r) if r else 'ok')
finally:
    os.close(fd)
";
    for (backend, who) in cases() {
        let place = Place::new("");
        let run = place.exec(&who, backend, script, &["--disk", "32m"]);
        // Refused either way (tmpfs answers EFBIG or ENOSPC): never `ok`.
        assert!(
            ["fallocate ENOSPC\n", "fallocate EFBIG\n"].contains(&run.stdout()),
            "{backend} {who:?}: {run}"
        );
        place.assert_clean();
    }
}

#[test]
fn an_inode_flood_is_enospc_and_nothing_for_the_host() {
    let script = "\
import os, errno
n = 0
try:
    while n < 200000:
        open('/workspace/f%d' % n, 'w').close()
        n += 1
    print('made', n)
except OSError as e:
    print(errno.errorcode[e.errno], n < 200000)
";
    for (backend, who) in cases() {
        let place = Place::new("");
        let run = place.exec(&who, backend, script, &[]);
        assert_eq!(run.stdout(), "ENOSPC True\n", "{backend} {who:?}: {run}");
        place.assert_clean();
    }
}

#[test]
fn deep_and_unreadable_trees_leave_nothing_behind() {
    // A chain deeper than any descriptor or stack budget, built cheaply by
    // renaming, and a directory no one may enter.
    let script = "\
import os
os.makedirs('/workspace/locked/inner')
open('/workspace/locked/inner/f', 'w').close()
os.chmod('/workspace/locked', 0)
os.chdir('/workspace')
os.mkdir('d')
for i in range(3000):
    os.mkdir('n')
    os.rename('d', 'n/d')
    os.rename('n', 'd')
depth = 0
path = 'd'
while os.path.isdir(path) and depth < 10:
    path += '/d'
    depth += 1
print('built', depth)
";
    for (backend, who) in cases() {
        let place = Place::new("");
        let run = place.exec(&who, backend, script, &["--timeout", "60s"]);
        assert_eq!(run.stdout(), "built 10\n", "{backend} {who:?}: {run}");
        assert_eq!(run.code, 0, "{run}");
        place.assert_clean();
    }
}
