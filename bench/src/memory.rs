//! `codemode-bench memory`: peak resident memory (VmHWM in /proc/PID/status)
//! of a `codemode bridge` over the example servers, idle and after a load of
//! calls from Python threads; and of one `codemode exec --sandbox native
//! examples/news_summary.py`, both its own VmHWM (polled until it exits) and
//! the `wait4` maxrss, the largest single process among it and the descendants
//! it reaped (MCP servers, the sandbox).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::scenario::{output, token, Demo};
use crate::stats::{median, utc_now};
use crate::Failure;

const THREADS: usize = 8;

const LOAD: &str = r#"import sys, threading
from mcp_tools import news, summarizer

calls = int(sys.argv[1])

def work():
    for _ in range(calls):
        article = news.get_article(id="tech-001")
        summarizer.summarize(text=article["body"], max_sentences=2)

threads = [threading.Thread(target=work) for _ in range(int(sys.argv[2]))]
for t in threads:
    t.start()
for t in threads:
    t.join()
"#;

pub struct Figures {
    date: String,
    cores: usize,
    calls: usize,
    idle_kb: u64,
    loaded_kb: u64,
    exec_self_kb: u64,
    exec_tree_kb: u64,
    exec_runs: usize,
}

/// A `VmHWM` or `VmRSS` line of /proc/PID/status, in kB.
pub(crate) fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Runs one `codemode exec`: its own peak VmHWM seen while polling, and the
/// `wait4` maxrss, both in kB.
fn exec_once(codemode: &Path, demo: &Demo) -> Result<(u64, u64), Failure> {
    let child = Command::new(codemode)
        .arg("--config")
        .arg(&demo.config)
        .args(["-q", "exec", "--sandbox", "native"])
        .arg(&demo.script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::Run(format!("codemode exec: {e}")))?;
    let pid = child.id();
    let mut own = 0;
    loop {
        if let Some(kb) = status_kb(pid, "VmHWM") {
            own = own.max(kb);
        }
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own unreaped child; the pointers are valid.
        let reaped =
            unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid as libc::pid_t {
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                return Err(Failure::Run(format!(
                    "codemode exec failed (wait status {status})"
                )));
            }
            return Ok((own, usage.ru_maxrss.max(0) as u64));
        }
        if reaped < 0 {
            return Err(Failure::Run(format!(
                "wait4: {}",
                std::io::Error::last_os_error()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn run(codemode: &Path, quick: bool) -> Result<Figures, Failure> {
    let (calls, exec_runs) = if quick { (20, 1) } else { (500, 5) };
    let bins = codemode.parent().unwrap_or(Path::new("."));
    let demo = Demo::new(bins)?;
    demo.stubs(codemode)?;
    let token = token();
    let load = demo.dir.path().join("load.py");
    std::fs::write(&load, LOAD).map_err(|e| Failure::Setup(format!("load script: {e}")))?;

    eprintln!("memory: bridge idle, then {THREADS} threads x {calls} x 2 calls");
    let bridge = demo.start_bridge(codemode, &token)?;
    std::thread::sleep(Duration::from_millis(200));
    let idle_kb = status_kb(bridge.pid(), "VmHWM")
        .ok_or_else(|| Failure::Run("cannot read the bridge's VmHWM".into()))?;
    output(
        "python3 load.py",
        demo.python(&load, &bridge, &token)
            .arg(calls.to_string())
            .arg(THREADS.to_string()),
    )?;
    let loaded_kb = status_kb(bridge.pid(), "VmHWM")
        .ok_or_else(|| Failure::Run("cannot read the bridge's VmHWM".into()))?;
    drop(bridge);

    eprintln!("memory: codemode exec --sandbox native, {exec_runs} runs");
    let mut own = Vec::new();
    let mut tree = Vec::new();
    for _ in 0..exec_runs {
        let (o, t) = exec_once(codemode, &demo)?;
        own.push(o as f64);
        tree.push(t as f64);
    }
    Ok(Figures {
        date: utc_now(),
        cores: crate::cores(),
        calls: THREADS * calls * 2,
        idle_kb,
        loaded_kb,
        exec_self_kb: median(&own) as u64,
        exec_tree_kb: median(&tree) as u64,
        exec_runs,
    })
}

pub(crate) fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn table(f: &Figures) -> String {
    let mut out = format!("codemode-bench memory, {}, {} cores\n\n", f.date, f.cores);
    out += &format!("{:<58} {:>10}\n", "peak RSS", "MB");
    for (label, kb) in [
        ("bridge (news + summarizer), idle".to_string(), f.idle_kb),
        (
            format!("bridge after {} calls from {THREADS} threads", f.calls),
            f.loaded_kb,
        ),
        (
            format!(
                "exec news_summary.py, codemode itself (median of {})",
                f.exec_runs
            ),
            f.exec_self_kb,
        ),
        (
            "exec, largest process of its tree (wait4 maxrss)".to_string(),
            f.exec_tree_kb,
        ),
    ] {
        out += &format!("{label:<58} {:>10.1}\n", mb(kb));
    }
    out += "the bridge's figures are its own process; its MCP servers are not included\n";
    out
}

pub fn json(f: &Figures) -> Value {
    json!({
        "date": f.date,
        "cores": f.cores,
        "bridge_idle_kb": f.idle_kb,
        "bridge_loaded_kb": f.loaded_kb,
        "bridge_load_calls": f.calls,
        "exec_codemode_kb": f.exec_self_kb,
        "exec_tree_max_kb": f.exec_tree_kb,
        "exec_runs": f.exec_runs,
    })
}
