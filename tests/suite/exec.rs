//! `codemode exec` end to end: what a user sees when running scripts, in the
//! native sandbox (always) and in Docker (when the engine is there; in CI it
//! must be).

use crate::common;

use common::{docker_ready, exec_config, exec_json, repo, stderr_of, stdout_of, Workdir};
use predicates::prelude::*;

fn native(work: &Workdir, script: &str) -> assert_cmd::assert::Assert {
    std::fs::write(work.path().join("job.py"), script).unwrap();
    work.codemode()
        .args(["exec", "--sandbox", "native", "job.py"])
        .assert()
}

#[test]
fn hello_world_prints_and_exits_zero() {
    let work = Workdir::with_config(&exec_config());
    native(&work, "print('hello from the sandbox')\n")
        .success()
        .stdout("hello from the sandbox\n");
}

#[test]
fn the_scripts_exit_status_is_execs() {
    let work = Workdir::with_config(&exec_config());
    native(&work, "import sys\nsys.exit(3)\n").code(3);
}

#[test]
fn a_traceback_goes_to_stderr_and_exits_one() {
    let work = Workdir::with_config(&exec_config());
    native(&work, "raise ValueError('boom')\n")
        .code(1)
        .stderr(predicate::str::contains("ValueError: boom"));
}

#[test]
fn a_timeout_exits_124_and_says_so() {
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("spin.py"), "while True:\n    pass\n").unwrap();
    let started = std::time::Instant::now();
    work.codemode()
        .args(["exec", "--sandbox", "native", "--timeout", "1s", "spin.py"])
        .assert()
        .code(124)
        .stderr(predicate::str::contains("timed out after 1s"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_script_can_come_from_stdin() {
    let work = Workdir::with_config(&exec_config());
    work.codemode()
        .args(["exec", "--sandbox", "native", "-"])
        .write_stdin("print(6 * 7)\n")
        .assert()
        .success()
        .stdout("42\n");
}

#[test]
fn arguments_after_dashes_reach_the_script() {
    let work = Workdir::with_config(&exec_config());
    std::fs::write(
        work.path().join("args.py"),
        "import sys\nprint(sys.argv[1:])\n",
    )
    .unwrap();
    work.codemode()
        .args([
            "exec",
            "--sandbox",
            "native",
            "args.py",
            "--",
            "--flag",
            "value",
        ])
        .assert()
        .success()
        .stdout("['--flag', 'value']\n");
}

#[test]
fn only_env_flags_enter_the_sandbox() {
    let work = Workdir::with_config(&exec_config());
    std::fs::write(
        work.path().join("env.py"),
        "import os\nprint(os.environ.get('GREETING'), os.environ.get('HOST_SECRET'), os.environ.get('PASSED'))\n",
    )
    .unwrap();
    work.codemode()
        .env("HOST_SECRET", "hunter2")
        .env("PASSED", "from-host")
        .args([
            "exec",
            "--sandbox",
            "native",
            "--env",
            "GREETING=hi",
            "--env",
            "PASSED",
            "env.py",
        ])
        .assert()
        .success()
        .stdout("hi None from-host\n");
}

#[test]
fn the_json_report_has_every_field() {
    let work = Workdir::with_config(&exec_config());
    let run = exec_json(
        &work,
        "native",
        "from mcp_tools import news\nprint(news.get_article(id='tech-001')['id'])\n",
        &[],
    );
    let report = &run.report;
    assert_eq!(run.code, 0, "{report}\n{}", run.stderr);
    assert_eq!(report["success"], true);
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["stdout"], "tech-001\n");
    assert_eq!(report["stderr"], "");
    assert_eq!(report["timed_out"], false);
    assert_eq!(report["truncated"], false);
    assert_eq!(report["sandbox"], "native");
    assert!(report["duration_ms"].as_u64().is_some());
    assert_eq!(report["error"], serde_json::Value::Null);
    let calls = report["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{report}");
    assert_eq!(calls[0]["server"], "news");
    assert_eq!(calls[0]["tool"], "get_article");
    assert_eq!(calls[0]["ok"], true);
    assert!(calls[0]["duration_ms"].as_f64().is_some());
}

#[test]
fn the_backend_used_is_reported() {
    let work = Workdir::with_config(&exec_config());
    native(&work, "pass\n").stderr(predicate::str::contains("sandbox: native"));
}

#[test]
fn the_news_example_runs_end_to_end() {
    let output = common::codemode()
        .current_dir(repo())
        .env("CODEMODE_EXAMPLES_DIR", common::example_bin_dir())
        .args([
            "--config",
            "config/codemode.toml",
            "exec",
            "--sandbox",
            "native",
            "examples/news_summary.py",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(
        stdout.contains("Summarized 5 technology articles"),
        "{stdout}"
    );
}

#[test]
fn allow_narrows_both_the_stubs_and_the_grant() {
    let work = Workdir::with_config(&exec_config());
    let script = r#"
import mcp_tools
print(hasattr(mcp_tools.news, "get_article"), hasattr(mcp_tools.news, "search"))
try:
    mcp_tools.call("news", "get_article", id="tech-001")
except mcp_tools.ToolError as err:
    print(err.kind)
"#;
    let run = exec_json(&work, "native", script, &["--allow", "news.search"]);
    assert_eq!(
        run.report["stdout"], "False True\nforbidden\n",
        "{}",
        run.report
    );
}

#[test]
fn reviewed_stubs_are_used_as_given() {
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("reviewed.py"), "MARK = 'reviewed'\n").unwrap();
    std::fs::write(
        work.path().join("job.py"),
        "import mcp_tools\nprint(mcp_tools.MARK)\n",
    )
    .unwrap();
    work.codemode()
        .args([
            "exec",
            "--sandbox",
            "native",
            "--stubs",
            "reviewed.py",
            "job.py",
        ])
        .assert()
        .success()
        .stdout("reviewed\n");
}

#[test]
fn a_script_runs_without_any_servers() {
    let work = Workdir::with_config("[sandbox]\ntimeout = \"10s\"\n");
    native(&work, "print('no tools needed')\n")
        .success()
        .stdout("no tools needed\n");
}

#[test]
fn an_unavailable_backend_refuses_to_run_and_exits_125() {
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("job.py"), "print('must not run')\n").unwrap();
    let output = work
        .codemode()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["exec", "--sandbox", "docker", "job.py"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125), "{}", stderr_of(&output));
    assert!(!stdout_of(&output).contains("must not run"));
    assert!(
        stderr_of(&output).contains("docker sandbox is unavailable"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(
        stderr_of(&output).trim().lines().count(),
        1,
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn output_past_the_cap_is_reported_as_truncated() {
    let work = Workdir::with_config(&exec_config());
    let run = exec_json(
        &work,
        "native",
        "print('x' * 5000)\n",
        &["--max-output", "1k"],
    );
    assert_eq!(run.report["truncated"], true);
    assert_eq!(run.report["stdout"].as_str().unwrap().len(), 1024);
    assert_eq!(run.report["stdout_dropped_bytes"], 5001 - 1024);
    assert!(run.report.get("stderr_dropped_bytes").is_none());
}

#[test]
fn docker_runs_a_script_with_tools() {
    if !docker_ready() {
        return;
    }
    let work = Workdir::with_config(&exec_config());
    let run = exec_json(
        &work,
        "docker",
        "from mcp_tools import news\nprint(len(news.fetch_latest(category='science', limit=3)['articles']))\n",
        &[],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!(run.report["stdout"], "3\n");
    assert_eq!(run.report["sandbox"], "docker");
}

#[test]
fn docker_timeout_exits_124() {
    if !docker_ready() {
        return;
    }
    let work = Workdir::with_config(&exec_config());
    let run = exec_json(
        &work,
        "docker",
        "while True:\n    pass\n",
        &["--timeout", "2s"],
    );
    assert_eq!(run.code, 124, "{}", run.report);
    assert_eq!(run.report["timed_out"], true);
}

/// Output that would set the clipboard (OSC 52), clear the screen and retitle
/// the window, on both streams, with a character beyond ASCII.
const HOSTILE_OUTPUT: &str = r#"import sys
sys.stdout.write("\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b]0;pwned\x07caf\u00e9\n")
sys.stderr.write("\x1b[31mred\n")
"#;

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What a terminal receives from `codemode exec --sandbox native job.py`
/// run with a pseudo-terminal as its stdin, stdout and stderr (`script`).
fn exec_on_a_terminal(work: &Workdir, script: &str) -> Vec<u8> {
    std::fs::write(work.path().join("job.py"), script).unwrap();
    let command = format!(
        "{} --config {} exec --sandbox native job.py",
        shell_quote(&common::codemode_bin().display().to_string()),
        shell_quote(&work.config().display().to_string()),
    );
    let output = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(work.path())
        .env_remove("CODEMODE_CONFIG")
        .env_remove("CODEMODE_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(output.status.success(), "{}", stderr_of(&output));
    output.stdout
}

#[test]
fn escape_sequences_do_not_reach_a_terminal() {
    let work = Workdir::with_config("[sandbox]\ntimeout = \"10s\"\n");
    let seen = exec_on_a_terminal(&work, HOSTILE_OUTPUT);
    let text = String::from_utf8_lossy(&seen);
    assert!(!seen.contains(&0x1b), "ESC reached the terminal: {text:?}");
    assert!(!seen.contains(&0x07), "BEL reached the terminal: {text:?}");
    assert!(
        text.contains(r"\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b]0;pwned\x07café"),
        "{text:?}"
    );
    assert!(text.contains(r"\x1b[31mred"), "{text:?}");
}

#[test]
fn through_a_pipe_the_scripts_bytes_pass_exactly() {
    let work = Workdir::with_config("[sandbox]\ntimeout = \"10s\"\n");
    let output = native(&work, HOSTILE_OUTPUT).success().get_output().clone();
    assert_eq!(
        output.stdout,
        "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b]0;pwned\x07café\n".as_bytes()
    );
    assert!(
        stderr_of(&output).contains("\x1b[31mred\n"),
        "{:?}",
        stderr_of(&output)
    );
}
