//! `codemode gen-bridge` end to end, against the example servers and against
//! servers that misbehave.

use crate::common;

use std::process::Command;

use common::{examples_config, python, stderr_of, stdout_of, Workdir};
use predicates::prelude::*;

fn py_compile(path: &std::path::Path) {
    let status = Command::new(python())
        .args(["-m", "py_compile"])
        .arg(path)
        .status()
        .expect("python runs");
    assert!(status.success(), "{} does not compile", path.display());
}

#[test]
fn it_writes_a_module_with_every_example_tool() {
    let work = Workdir::with_config(&examples_config());
    work.codemode()
        .args(["gen-bridge", "-o", "mcp_tools.py"])
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote mcp_tools.py: 2 servers"));
    let module = std::fs::read_to_string(work.path().join("mcp_tools.py")).unwrap();
    for name in [
        "news",
        "summarizer",
        "fetch_latest",
        "search",
        "summarize",
        "ToolError",
        "def call(",
    ] {
        assert!(module.contains(name), "`{name}` missing from the module");
    }
    py_compile(&work.path().join("mcp_tools.py"));
}

#[test]
fn generation_is_deterministic() {
    let work = Workdir::with_config(&examples_config());
    let first = work
        .codemode()
        .args(["gen-bridge", "-o", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let second = work
        .codemode()
        .args(["gen-bridge", "-o", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

#[test]
fn dash_writes_the_module_to_stdout_and_no_file() {
    let work = Workdir::with_config(&examples_config());
    let output = work
        .codemode()
        .args(["gen-bridge", "-o", "-"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout_of(&output).contains("def fetch_latest("));
    assert!(!work.path().join("mcp_tools.py").exists());
    assert!(!work.path().join("-").exists());
}

#[test]
fn server_selects_only_the_named_servers() {
    let work = Workdir::with_config(&examples_config());
    let output = work
        .codemode()
        .args(["gen-bridge", "-o", "-", "--server", "summarizer"])
        .assert()
        .success()
        .get_output()
        .clone();
    let module = stdout_of(&output);
    assert!(module.contains("def summarize("));
    assert!(!module.contains("def fetch_latest("));
}

#[test]
fn the_allow_list_keeps_other_tools_out_of_the_module() {
    let config = examples_config().replace(
        "[servers.summarizer]",
        "allow = [\"fetch_*\"]\n\n[servers.summarizer]",
    );
    let work = Workdir::with_config(&config);
    let output = work
        .codemode()
        .args(["gen-bridge", "-o", "-", "--server", "news"])
        .assert()
        .success()
        .get_output()
        .clone();
    let module = stdout_of(&output);
    assert!(module.contains("def fetch_latest("));
    assert!(
        !module.contains("def get_article("),
        "a tool outside `allow` was generated"
    );
}

#[test]
fn check_passes_when_the_file_is_current() {
    let work = Workdir::with_config(&examples_config());
    work.codemode().args(["gen-bridge"]).assert().success();
    work.codemode()
        .args(["gen-bridge", "--check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("up to date"));
}

#[test]
fn check_fails_and_names_the_tools_that_changed() {
    let narrow = examples_config().replace(
        "[servers.summarizer]",
        "allow = [\"fetch_latest\"]\n\n[servers.summarizer]",
    );
    let work = Workdir::with_config(&narrow);
    work.codemode().args(["gen-bridge"]).assert().success();
    let before = std::fs::read(work.path().join("mcp_tools.py")).unwrap();

    std::fs::write(work.config(), examples_config()).unwrap();
    let output = work
        .codemode()
        .args(["gen-bridge", "--check"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let report = stdout_of(&output);
    assert!(report.contains("out of date"), "{report}");
    assert!(report.contains("added"), "{report}");
    assert!(report.contains("news.search"), "{report}");
    assert_eq!(
        std::fs::read(work.path().join("mcp_tools.py")).unwrap(),
        before,
        "--check wrote the file"
    );
}

#[test]
fn check_reports_removed_tools_as_json() {
    let work = Workdir::with_config(&examples_config());
    work.codemode().args(["gen-bridge"]).assert().success();
    let narrow = examples_config().replace(
        "[servers.summarizer]",
        "allow = [\"fetch_latest\"]\n\n[servers.summarizer]",
    );
    std::fs::write(work.config(), narrow).unwrap();
    let output = work
        .codemode()
        .args(["gen-bridge", "--check", "--json"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["up_to_date"], false);
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(removed.contains(&"news.search"), "{report}");
    assert!(!removed.contains(&"news.fetch_latest"), "{report}");
}

#[test]
fn check_fails_when_the_file_is_missing() {
    let work = Workdir::with_config(&examples_config());
    work.codemode()
        .args(["gen-bridge", "--check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("does not exist"));
}

#[test]
fn stats_count_tokens_per_server_and_in_total() {
    let work = Workdir::with_config(&examples_config());
    let output = work
        .codemode()
        .args(["gen-bridge", "--stats", "--json", "-o", "out.py"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["encoding"], "o200k_base");
    let servers = stats["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    for server in servers {
        assert!(server["mcp_json_tokens"].as_u64().unwrap() > 50, "{server}");
        assert!(
            server["python_api_tokens"].as_u64().unwrap() > 20,
            "{server}"
        );
    }
    let total = stats["total"]["mcp_json_tokens"].as_u64().unwrap();
    let sum: u64 = servers
        .iter()
        .map(|s| s["mcp_json_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(total, sum);
}

#[test]
fn stats_print_a_table() {
    let work = Workdir::with_config(&examples_config());
    work.codemode()
        .args(["gen-bridge", "--stats", "-o", "out.py"])
        .assert()
        .success()
        .stdout(predicate::str::contains("MCP JSON"))
        .stdout(predicate::str::contains("total"));
}

#[test]
fn a_missing_command_is_named_and_nothing_is_written() {
    let config = format!(
        "{}\n[servers.ghost]\ncommand = \"/nonexistent/ghost-server\"\n",
        examples_config()
    );
    let work = Workdir::with_config(&config);
    work.codemode()
        .args(["gen-bridge"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("server `ghost`"))
        .stderr(predicate::str::contains("/nonexistent/ghost-server"));
    assert!(!work.path().join("mcp_tools.py").exists());
}

#[test]
fn a_server_that_crashes_during_initialize_is_named_with_its_last_words() {
    let config = format!(
        "{}\n[servers.crashy]\ncommand = \"sh\"\nargs = [\"-c\", \"echo 'fatal: CRASHY_API_KEY is invalid' >&2; exit 7\"]\n",
        examples_config()
    );
    let work = Workdir::with_config(&config);
    let output = work
        .codemode()
        .args(["gen-bridge"])
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(stderr.contains("server `crashy`"), "{stderr}");
    assert!(stderr.contains("CRASHY_API_KEY is invalid"), "{stderr}");
}

#[test]
fn a_server_that_hangs_times_out() {
    let config = format!(
        "{}\n[servers.sleepy]\ncommand = \"sleep\"\nargs = [\"600\"]\nconnect_timeout = \"1s\"\n",
        examples_config()
    );
    let work = Workdir::with_config(&config);
    let started = std::time::Instant::now();
    work.codemode()
        .args(["gen-bridge"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "server `sleepy`: did not finish starting within 1s",
        ));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn allow_partial_writes_the_servers_that_answered() {
    let config = format!(
        "{}\n[servers.ghost]\ncommand = \"/nonexistent/ghost-server\"\n",
        examples_config()
    );
    let work = Workdir::with_config(&config);
    work.codemode()
        .args(["gen-bridge", "--allow-partial"])
        .assert()
        .success()
        .stderr(predicate::str::contains("skipped server `ghost`"));
    let module = std::fs::read_to_string(work.path().join("mcp_tools.py")).unwrap();
    assert!(module.contains("def fetch_latest("));
}

#[test]
fn a_servers_stderr_never_reaches_stdout() {
    let noisy = format!(
        "echo SERVER_NOISE >&2; exec {:?}",
        common::example_bin("news-server")
    );
    let config = format!("[servers.news]\ncommand = \"sh\"\nargs = [\"-c\", {noisy:?}]\n");
    let work = Workdir::with_config(&config);
    let output = work
        .codemode()
        .args(["-vv", "gen-bridge", "-o", "-"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!stdout_of(&output).contains("SERVER_NOISE"));
    assert!(
        stderr_of(&output).contains("SERVER_NOISE"),
        "the log should carry the server's stderr"
    );
}

#[test]
fn a_new_module_is_readable_by_everyone() {
    use std::os::unix::fs::PermissionsExt;
    let work = Workdir::with_config(&examples_config());
    work.codemode().args(["gen-bridge"]).assert().success();
    let mode = std::fs::metadata(work.path().join("mcp_tools.py"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn writing_through_a_symlink_updates_its_target() {
    let work = Workdir::with_config(&examples_config());
    std::fs::write(work.path().join("real.py"), "old").unwrap();
    std::os::unix::fs::symlink("real.py", work.path().join("link.py")).unwrap();
    work.codemode()
        .args(["gen-bridge", "-o", "link.py"])
        .assert()
        .success();
    assert!(std::fs::symlink_metadata(work.path().join("link.py"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(work.path().join("real.py"))
        .unwrap()
        .contains("def fetch_latest("));
}

#[test]
fn writing_to_a_pipe_writes_into_it_instead_of_replacing_it() {
    use std::os::unix::fs::FileTypeExt;
    let work = Workdir::with_config(&examples_config());
    let fifo = work.path().join("stubs.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    work.codemode()
        .arg("gen-bridge")
        .arg("-o")
        .arg(&fifo)
        .assert()
        .success();
    assert!(reader.join().unwrap().contains("def fetch_latest("));
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the pipe was replaced by a file"
    );
}

#[test]
fn several_failing_servers_are_all_named_and_nothing_is_written() {
    let config = format!(
        "{}\n[servers.ghost]\ncommand = \"/nonexistent/ghost-server\"\n[servers.phantom]\ncommand = \"/nonexistent/phantom-server\"\n",
        examples_config()
    );
    let work = Workdir::with_config(&config);
    work.codemode()
        .args(["gen-bridge"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "servers `ghost`, `phantom` failed",
        ))
        .stderr(predicate::str::contains("--allow-partial"));
    assert!(!work.path().join("mcp_tools.py").exists());
}
