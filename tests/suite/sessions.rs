//! `serve`'s sessions through the Python SDK client: state kept from one
//! `execute_python` call to the next, sessions kept apart, and every way a
//! session ends said plainly.

use crate::common;

use common::{examples_config, mcp_python, python_client, Workdir};
use serde_json::Value;

/// Python helpers for the client scripts: `run(c, code, **args)` calls
/// execute_python and gives back its structured result and text.
const RUN: &str = r#"
async def run(c, code, **args):
    r = await c.call_tool("execute_python", {"code": code, **args})
    report = dict(r.structured_content or {})
    report["text"] = text(r)
    report["is_error"] = r.is_error
    return report
"#;

fn config(backend: &str, serve: &str) -> String {
    format!(
        "{}\n[sandbox]\nbackend = {backend:?}\nimage = {:?}\n\n[serve]\n{serve}\n",
        examples_config(),
        common::docker_image()
    )
}

/// The Python client's `main` body run against `serve` of `config`.
fn client(config: &str, body: &str) -> Option<Value> {
    let python = mcp_python()?;
    let work = Workdir::with_config(config);
    let target = serde_json::to_string(&[
        "--config".to_string(),
        work.config().display().to_string(),
        "serve".to_string(),
    ])
    .unwrap();
    Some(python_client(
        &python,
        &target,
        &format!("{RUN}\n{body}"),
        &[],
    ))
}

fn state_persists_across_calls_in(backend: &str) {
    let Some(out) = client(
        &config(backend, ""),
        r#"
async def main():
    async with client() as c:
        first = await run(c, "import pathlib\nx = 41\npathlib.Path('note.txt').write_text('kept')\ndef twice(n):\n    return 2 * n\nprint('set')")
        again = await run(c, "print(x + 1, open('note.txt').read(), twice(4))", session=first["session"])
        done({"first": first, "again": again})
"#,
    ) else {
        return;
    };
    let (first, again) = (&out["first"], &out["again"]);
    assert_eq!(first["success"], true, "{first}");
    let session = first["session"].as_str().unwrap();
    assert_eq!(session.len(), 32, "{first}");
    assert!(first["text"].as_str().unwrap().contains(session), "{first}");
    assert_eq!(again["stdout"], "42 kept 8\n", "{again}");
    assert_eq!(again["session"], session, "{again}");
    assert_eq!(again["sandbox"], backend);
}

#[test]
fn state_persists_across_calls_in_one_session() {
    state_persists_across_calls_in("native");
}

#[test]
fn state_persists_across_calls_in_one_docker_session() {
    if !common::docker_ready() {
        return;
    }
    state_persists_across_calls_in("docker");
}

#[test]
fn sessions_see_neither_each_others_variables_nor_files() {
    sessions_see_neither_each_others_variables_nor_files_in("native");
}

#[test]
fn sessions_see_neither_each_others_variables_nor_files_in_docker() {
    if !common::docker_ready() {
        return;
    }
    sessions_see_neither_each_others_variables_nor_files_in("docker");
}

fn sessions_see_neither_each_others_variables_nor_files_in(backend: &str) {
    let Some(out) = client(
        &config(backend, ""),
        r#"
async def main():
    async with client() as c:
        a = await run(c, "x = 'a'\nopen('mine.txt', 'w').write('a')\nprint('a')")
        b = await run(c, "import os\nprint(os.path.exists('mine.txt'))\nprint(x)")
        done({"a": a, "b": b})
"#,
    ) else {
        return;
    };
    let (a, b) = (&out["a"], &out["b"]);
    assert_ne!(a["session"], b["session"]);
    assert_eq!(b["stdout"], "False\n", "{b}");
    assert!(
        b["stderr"]
            .as_str()
            .unwrap()
            .contains("NameError: name 'x' is not defined"),
        "{b}"
    );
}

#[test]
fn a_timed_out_cell_is_interrupted_and_the_session_goes_on() {
    a_timed_out_cell_is_interrupted_and_the_session_goes_on_in("native");
}

#[test]
fn a_timed_out_cell_is_interrupted_and_the_session_goes_on_in_docker() {
    if !common::docker_ready() {
        return;
    }
    a_timed_out_cell_is_interrupted_and_the_session_goes_on_in("docker");
}

fn a_timed_out_cell_is_interrupted_and_the_session_goes_on_in(backend: &str) {
    let Some(out) = client(
        &config(backend, ""),
        r#"
async def main():
    async with client() as c:
        slow = await run(c, "import time\nkept = 5\ntime.sleep(60)", timeout_s=1)
        after = await run(c, "print('kept', kept)", session=slow["session"])
        done({"slow": slow, "after": after})
"#,
    ) else {
        return;
    };
    let (slow, after) = (&out["slow"], &out["after"]);
    assert_eq!(slow["timed_out"], true, "{slow}");
    assert!(
        slow["stderr"]
            .as_str()
            .unwrap()
            .contains("KeyboardInterrupt"),
        "{slow}"
    );
    assert!(slow["session"].is_string(), "the session goes on: {slow}");
    assert_eq!(after["stdout"], "kept 5\n", "{after}");
}

#[test]
fn a_cell_that_ignores_its_interrupt_loses_the_session_and_says_so() {
    a_cell_that_ignores_its_interrupt_loses_the_session_and_says_so_in("native");
}

#[test]
fn a_cell_that_ignores_its_interrupt_loses_the_session_and_says_so_in_docker() {
    if !common::docker_ready() {
        return;
    }
    a_cell_that_ignores_its_interrupt_loses_the_session_and_says_so_in("docker");
}

fn a_cell_that_ignores_its_interrupt_loses_the_session_and_says_so_in(backend: &str) {
    let Some(out) = client(
        &config(backend, ""),
        r#"
async def main():
    async with client() as c:
        first = await run(c, "kept = 5\nprint('ok')")
        stuck = await run(c, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)", session=first["session"], timeout_s=1)
        again = await run(c, "print(kept)", session=first["session"])
        done({"stuck": stuck, "again": again, "session": first["session"]})
"#,
    ) else {
        return;
    };
    let (stuck, again) = (&out["stuck"], &out["again"]);
    let error = stuck["error"].as_str().unwrap();
    assert!(
        error.contains("did not stop when interrupted") && error.contains("variables are gone"),
        "{stuck}"
    );
    assert!(stuck["session"].is_null(), "{stuck}");
    assert_eq!(again["is_error"], true, "{again}");
    let text = again["text"].as_str().unwrap();
    let session = out["session"].as_str().unwrap();
    assert!(
        text.contains(&format!("no session `{session}`")) && text.contains("Omit `session`"),
        "{text}"
    );
}

#[test]
fn an_idle_session_ends() {
    let Some(out) = client(
        &config("native", "session_idle = \"1s\""),
        r#"
async def main():
    async with client() as c:
        first = await run(c, "kept = 5\nprint('ok')")
        await anyio.sleep(3)
        again = await run(c, "print(kept)", session=first["session"])
        done({"again": again})
"#,
    ) else {
        return;
    };
    let text = out["again"]["text"].as_str().unwrap();
    assert!(
        text.contains("no session") && text.contains("idle for 1s"),
        "{text}"
    );
}

#[test]
fn past_the_limit_the_least_recently_used_session_ends() {
    let Some(out) = client(
        &config("native", "sessions = 2"),
        r#"
async def main():
    async with client() as c:
        one = await run(c, "n = 1\nprint(n)")
        two = await run(c, "n = 2\nprint(n)")
        await run(c, "print(n)", session=one["session"])
        three = await run(c, "n = 3\nprint(n)")
        lost = await run(c, "print(n)", session=two["session"])
        kept = await run(c, "print(n)", session=one["session"])
        done({"lost": lost, "kept": kept})
"#,
    ) else {
        return;
    };
    assert!(
        out["lost"]["text"].as_str().unwrap().contains("no session"),
        "{}",
        out["lost"]
    );
    assert_eq!(out["kept"]["stdout"], "1\n", "{}", out["kept"]);
}

#[test]
fn a_sessions_token_works_in_its_own_session_only() {
    let Some(out) = client(
        &config("native", ""),
        r#"
TRY = '''
import os, mcp_tools
os.environ["CODEMODE_BRIDGE_TOKEN"] = %r
try:
    mcp_tools.news.search(query="ai")
    print("accepted")
except mcp_tools.ToolError as e:
    print(e.kind)
'''

async def main():
    async with client() as c:
        a = await run(c, "import os\nprint(os.environ['CODEMODE_BRIDGE_TOKEN'])")
        token = a["stdout"].strip()
        own = await run(c, "import mcp_tools\nprint(len(mcp_tools.news.search(query='ai')['articles']) >= 0)", session=a["session"])
        b = await run(c, TRY % token)
        done({"own": own, "b": b})
"#,
    ) else {
        return;
    };
    assert_eq!(out["own"]["stdout"], "True\n", "{}", out["own"]);
    assert_eq!(out["b"]["stdout"], "unauthorized\n", "{}", out["b"]);
}

#[test]
fn a_warm_session_waits_without_its_token_and_serves_the_first_call() {
    if !common::users::running_as_root() {
        eprintln!("skipped: reading a sandbox's environment needs root");
        return;
    }
    let Some(out) = client(
        &config("native", "warm = 1"),
        r#"
import os

def kernels():
    parents = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = open("/proc/%s/stat" % pid).read()
                parents[int(pid)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except OSError:
                pass
    def mine(pid):
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parents.get(pid, 0)
        return False
    found = []
    for pid in parents:
        try:
            line = open("/proc/%d/cmdline" % pid, "rb").read()
        except OSError:
            continue
        if b"codemode_kernel.py" in line and mine(pid):
            found.append(pid)
    return found

async def main():
    async with client() as c:
        await c.list_tools()
        waiting = []
        for _ in range(300):
            waiting = kernels()
            if waiting:
                break
            await anyio.sleep(0.1)
        environ = open("/proc/%d/environ" % waiting[0], "rb").read().decode()
        first = await run(c, "open('used', 'w').close()\nfrom mcp_tools import news\nprint(len(news.search(query='ai')['articles']) >= 0)")
        # The file the call wrote is in the warm sandbox's workspace.
        used = os.path.exists("/proc/%d/root/workspace/used" % waiting[0])
        done({"waiting": waiting, "token_before": "CODEMODE_BRIDGE_TOKEN" in environ, "first": first, "used": used})
"#,
    ) else {
        return;
    };
    assert_eq!(out["waiting"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["token_before"], false, "{out}");
    assert_eq!(out["first"]["stdout"], "True\n", "{out}");
    assert_eq!(out["used"], true, "the call ran in the warm sandbox: {out}");
}

#[test]
fn sys_exit_ends_the_cell_with_its_status_and_the_session_goes_on() {
    let Some(out) = client(
        &config("native", ""),
        r#"
async def main():
    async with client() as c:
        first = await run(c, "kept = 7\nimport sys\nprint('bye')\nsys.exit(3)")
        after = await run(c, "print(kept)", session=first["session"])
        done({"first": first, "after": after})
"#,
    ) else {
        return;
    };
    let (first, after) = (&out["first"], &out["after"]);
    assert_eq!(first["exit_code"], 3, "{first}");
    assert_eq!(first["stdout"], "bye\n", "{first}");
    assert_eq!(after["stdout"], "7\n", "{after}");
}

#[test]
fn an_out_of_memory_kill_loses_the_session_and_says_so() {
    if !common::users::running_as_root() {
        eprintln!("skipped: a memory limit for the whole session needs root here");
        return;
    }
    let Some(out) = client(
        &format!(
            "{}\n[sandbox]\nbackend = \"native\"\nmemory = \"128m\"\n",
            examples_config()
        ),
        r#"
async def main():
    async with client() as c:
        first = await run(c, "kept = 1\nprint('ok')")
        hog = await run(c, "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))", session=first["session"])
        again = await run(c, "print(kept)", session=first["session"])
        done({"hog": hog, "again": again})
"#,
    ) else {
        return;
    };
    let hog = &out["hog"];
    let error = hog["error"].as_str().unwrap_or("");
    // Killed by the kernel's OOM killer, or a MemoryError the cell raised:
    // either way the limit held; only a kill loses the session.
    if error.is_empty() {
        assert!(
            hog["stderr"].as_str().unwrap().contains("MemoryError"),
            "{hog}"
        );
        return;
    }
    assert!(error.contains("variables are gone"), "{hog}");
    assert!(hog["session"].is_null(), "{hog}");
    assert!(
        out["again"]["text"]
            .as_str()
            .unwrap()
            .contains("no session"),
        "{}",
        out["again"]
    );
}

#[test]
fn a_sessions_token_dies_with_it() {
    if !common::users::running_as_root() {
        eprintln!("skipped: reaching a run's socket from outside needs root");
        return;
    }
    let Some(python) = mcp_python() else { return };
    let work = Workdir::with_config(&config("native", "sessions = 1\nwarm = 0"));
    let tmp = tempfile::tempdir().unwrap();
    let target = serde_json::to_string(&[
        "--config".to_string(),
        work.config().display().to_string(),
        "serve".to_string(),
    ])
    .unwrap();
    let body = r#"
import glob, os, socket

def sockets():
    return sorted(glob.glob(os.path.join(os.environ["TMPDIR"], "codemode-run-*", "bridge", "bridge.sock")))

def health(path, token):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    s.sendall(("GET /metrics HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n" % token).encode())
    answer = s.recv(100).decode()
    return answer.split()[1]

def serve_with_tmpdir():
    # The SDK passes a child a few variables only; serve needs TMPDIR.
    params = StdioServerParameters(
        command=os.environ["CODEMODE_TEST_BIN"], args=json.loads(TARGET), env=dict(os.environ)
    )
    return Client(stdio_client(params, errlog=sys.stderr), mode="legacy")

async def main():
    async with serve_with_tmpdir() as c:
        a = await run(c, "import os\nprint(os.environ['CODEMODE_BRIDGE_TOKEN'])")
        token = a["stdout"].strip()
        [mine] = sockets()
        alive = health(mine, token)
        # A second session pushes the first out.
        b = await run(c, "print(1)")
        for _ in range(50):
            if mine not in sockets():
                break
            await anyio.sleep(0.1)
        [other] = sockets()
        done({"alive": alive, "gone": mine not in sockets(), "elsewhere": health(other, token)})
"#;
    let out = python_client(
        &python,
        &target,
        &format!("{RUN}\n{body}"),
        &[("TMPDIR", tmp.path().to_str().unwrap())],
    );
    assert_eq!(
        out["alive"], "200",
        "the token works while its session lives: {out}"
    );
    assert_eq!(out["gone"], true, "its socket goes with the session: {out}");
    assert_eq!(
        out["elsewhere"], "401",
        "and no other session takes it: {out}"
    );
}
