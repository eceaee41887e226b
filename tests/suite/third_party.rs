//! codemode against real third-party MCP servers, as `.ci/test` installs them:
//! mcp-server-time, mcp-server-git and mcp-server-fetch from PyPI, and the
//! reference `everything` and `filesystem` servers from npm.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{python, run_python, stdout_of, tools_dir, BridgeProcess, Workdir};
use serde_json::Value;

fn config(tools: &Path, scratch: &Path) -> String {
    let repo = scratch.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let init = Command::new("git")
        .args(["init", "-q"])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(init.success());
    let bin = tools.join("bin");
    let node = tools.join("node/node_modules/.bin");
    format!(
        r#"
[servers.time]
command = {time:?}
args = ["--local-timezone", "UTC"]

[servers.git]
command = {git:?}
args = ["--repository", {repo:?}]

[servers.fetch]
command = {fetch:?}

[servers.everything]
command = {everything:?}
args = ["stdio"]

[servers.filesystem]
command = {filesystem:?}
args = [{scratch:?}]
"#,
        time = bin.join("mcp-server-time"),
        git = bin.join("mcp-server-git"),
        fetch = bin.join("mcp-server-fetch"),
        everything = node.join("mcp-server-everything"),
        filesystem = node.join("mcp-server-filesystem"),
        repo = repo,
        scratch = scratch,
    )
}

#[test]
fn gen_bridge_writes_a_module_that_passes_mypy_strict() {
    let Some(tools) = tools_dir() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let work = Workdir::with_config(&config(&tools, scratch.path()));
    work.codemode()
        .args(["gen-bridge", "-o", "mcp_tools.py"])
        .assert()
        .success();
    let module = work.path().join("mcp_tools.py");
    let text = std::fs::read_to_string(&module).unwrap();
    for name in [
        "def get_current_time(",
        "def git_log(",
        "def fetch(",
        "def get_sum(",
        "def read_text_file(",
    ] {
        assert!(text.contains(name), "`{name}` missing");
    }
    // Dashed tool names keep their original spelling on the wire.
    assert!(
        text.contains("\"get-sum\""),
        "the original name `get-sum` must travel on the wire"
    );

    let compiled = Command::new(python())
        .args(["-m", "py_compile"])
        .arg(&module)
        .status()
        .unwrap();
    assert!(compiled.success());
    let mypy = tools.join("bin/mypy");
    let checked = Command::new(&mypy)
        .args(["--strict", "--no-incremental", "--cache-dir", "/dev/null"])
        .arg(&module)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "mypy --strict: {}",
        stdout_of(&checked)
    );
}

#[test]
fn stats_show_the_python_api_smaller_than_the_mcp_json() {
    let Some(tools) = tools_dir() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let work = Workdir::with_config(&config(&tools, scratch.path()));
    let output = work
        .codemode()
        .args(["gen-bridge", "--stats", "--json", "-o", "mcp_tools.py"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stats: Value = serde_json::from_slice(&output.stdout).unwrap();
    let total = &stats["total"];
    assert_eq!(
        total["tools"].as_u64().unwrap(),
        2 + 12 + 1 + 13 + 14,
        "{stats}"
    );
    assert!(
        total["python_api_tokens"].as_u64().unwrap() < total["mcp_json_tokens"].as_u64().unwrap(),
        "{stats}"
    );
}

#[test]
fn tools_search_finds_a_third_party_tool() {
    let Some(tools) = tools_dir() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let work = Workdir::with_config(&config(&tools, scratch.path()));
    let output = work
        .codemode()
        .args([
            "tools",
            "--server",
            "time",
            "--server",
            "git",
            "--search",
            "current time",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let first = stdout_of(&output)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        first.starts_with("time.get_current_time"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn python_calls_a_third_party_tool_through_the_bridge() {
    let Some(tools) = tools_dir() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let bridge = BridgeProcess::start(
        &config(&tools, scratch.path()),
        &["--server", "time", "--server", "everything"],
    );
    common::codemode()
        .current_dir(bridge.work.path())
        .arg("--config")
        .arg(bridge.work.config())
        .args([
            "gen-bridge",
            "-o",
            "mcp_tools.py",
            "--server",
            "time",
            "--server",
            "everything",
        ])
        .assert()
        .success();
    let code = r#"
from mcp_tools import time, everything
now = time.get_current_time(timezone="UTC")
print(now["timezone"])
print(everything.get_sum(a=2, b=3))
"#;
    let (status, stdout, stderr) =
        run_python(bridge.work.path(), code, &bridge.url_unix(), &bridge.token);
    assert_eq!(status, 0, "{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("UTC"));
    assert!(lines.next().unwrap_or("").contains('5'), "{stdout}");
}
