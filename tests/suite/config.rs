//! Finding and reading the config, and what a user sees when it is wrong.

use crate::common;

use common::{codemode, example_bin, stderr_of, stdout_of, ServeProcess, Workdir};
use predicates::prelude::*;

#[test]
fn a_missing_config_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    codemode()
        .current_dir(dir.path())
        .arg("tools")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no config found"))
        .stderr(predicate::str::contains("codemode.toml"));
}

#[test]
fn a_named_config_that_does_not_exist_is_reported_with_its_path() {
    codemode()
        .args(["--config", "/nonexistent/codemode.toml", "tools"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/codemode.toml"));
}

#[test]
fn malformed_toml_is_reported_with_path_line_and_column() {
    let work = Workdir::with_config("[servers.news]\ncommand = \"x\"\nargs = [\"a\",\n");
    let output = work
        .codemode()
        .arg("tools")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    let expected = format!("{}:3:", work.config().display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_misspelled_key_is_rejected() {
    let work = Workdir::with_config("[servers.news]\ncomand = \"x\"\n");
    work.codemode()
        .arg("tools")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("comand"));
}

#[test]
fn an_unset_variable_is_named() {
    let work = Workdir::with_config(
        "[servers.news]\ncommand = \"news-server\"\nenv = { NEWS_API_KEY = \"${CODEMODE_TEST_UNSET_KEY}\" }\n",
    );
    work.codemode()
        .env_remove("CODEMODE_TEST_UNSET_KEY")
        .arg("tools")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("${CODEMODE_TEST_UNSET_KEY}"))
        .stderr(predicate::str::contains("not set"));
}

#[test]
fn the_config_is_found_through_codemode_config() {
    let work = Workdir::with_config("[servers.broken]\ncommand = \"/nonexistent/server\"\n");
    codemode()
        .env("CODEMODE_CONFIG", work.config())
        .arg("tools")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("/nonexistent/server"));
}

#[test]
fn the_config_is_found_in_the_working_directory() {
    let work = Workdir::with_config("[servers.broken]\ncommand = \"/nonexistent/server\"\n");
    codemode()
        .current_dir(work.path())
        .arg("tools")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("/nonexistent/server"));
}

#[test]
fn the_config_is_found_in_the_user_config_directory() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("codemode");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("codemode.toml"),
        "[servers.userlevel]\ncommand = \"/nonexistent/user-server\"\n",
    )
    .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    codemode()
        .current_dir(cwd.path())
        .env("XDG_CONFIG_HOME", home.path())
        .arg("tools")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("/nonexistent/user-server"));
}

#[test]
fn an_unknown_server_name_lists_the_configured_ones() {
    let work =
        Workdir::with_config("[servers.alpha]\ncommand = \"x\"\n[servers.beta]\ncommand = \"y\"\n");
    work.codemode()
        .args(["tools", "--server", "gamma"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown server `gamma` (configured: alpha, beta)",
        ));
}

#[test]
fn mcp_json_servers_are_used_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("claude_desktop_config.json");
    std::fs::write(
        &json,
        r#"{"mcpServers": {"fromjson": {"command": "/nonexistent/json-server", "args": []}}}"#,
    )
    .unwrap();
    codemode()
        .current_dir(dir.path())
        .arg("--mcp-json")
        .arg(&json)
        .arg("tools")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("server `fromjson`"));
}

#[test]
fn malformed_mcp_json_is_reported_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("mcp.json");
    std::fs::write(
        &json,
        "{\n \"mcpServers\": {\n  \"a\": {\"command\": }\n }\n}\n",
    )
    .unwrap();
    codemode()
        .current_dir(dir.path())
        .arg("--mcp-json")
        .arg(&json)
        .arg("tools")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mcp.json:3:"));
}

/// `codemode --mcp-json FILE ARGS` run from FILE's directory, where FILE holds `json`.
fn with_mcp_json(json: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcp.json");
    std::fs::write(&file, json).unwrap();
    codemode()
        .current_dir(dir.path())
        .arg("--mcp-json")
        .arg(&file)
        .args(args)
        .output()
        .unwrap()
}

/// The summarizer example as an `mcpServers` entry.
fn summarizer_entry() -> String {
    serde_json::json!({"command": example_bin("summarizer-server")}).to_string()
}

#[test]
fn mcp_json_with_comments_and_trailing_commas_is_read() {
    let json = format!(
        "{{\n  // VS Code's mcp.json\n  \"servers\": {{\n    /* ours */ \"sum\": {},\n  }},\n}}\n",
        summarizer_entry()
    );
    let output = with_mcp_json(&json, &["tools"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("sum.summarize"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn a_syntax_error_after_a_comment_in_mcp_json_is_placed_where_it_is() {
    let output = with_mcp_json(
        "{\n  // comments must not shift the position\n  \"mcpServers\": {\n    /* one */ \"a\": {\"command\" \"x\"}\n  }\n}\n",
        &["tools"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("mcp.json:4:31:"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn an_sse_entry_in_mcp_json_is_skipped_with_a_note() {
    let json = format!(
        r#"{{"mcpServers": {{"old": {{"type": "sse", "url": "http://127.0.0.1:9/sse"}}, "sum": {}}}}}"#,
        summarizer_entry()
    );
    let output = with_mcp_json(&json, &["tools"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("skipped server `old`") && stderr.contains("legacy SSE transport"),
        "{stderr}"
    );
    assert!(stdout_of(&output).contains("sum.summarize"));
}

#[test]
fn server_url_and_http_url_in_mcp_json_are_http_servers() {
    let server = ServeProcess::start(&common::serve_config(), &[], &[]);
    let json = serde_json::json!({"mcpServers": {
        "windsurf": {"serverUrl": server.url},
        "gemini": {"httpUrl": server.url},
    }})
    .to_string();
    let output = with_mcp_json(&json, &["tools"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(
        stdout.contains("windsurf.search_tools") && stdout.contains("gemini.search_tools"),
        "{stdout}"
    );
}

#[test]
fn every_command_reading_mcp_json_leaves_codemode_itself_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.py"), "print('ran')\n").unwrap();
    // The entry names another file than the one read: were it wrapped after
    // all, the test would fail on one extra codemode instead of starting
    // codemode after codemode.
    let inner = dir.path().join("inner.json");
    std::fs::write(
        &inner,
        format!(r#"{{"mcpServers": {{"sum": {}}}}}"#, summarizer_entry()),
    )
    .unwrap();
    let file = dir.path().join("claude_desktop_config.json");
    let json = format!(
        r#"{{"mcpServers": {{"codemode": {{"command": {:?}, "args": ["--mcp-json", {:?}, "serve", "--sandbox", "native"]}}, "sum": {}}}}}"#,
        common::codemode_bin(),
        inner,
        summarizer_entry()
    );
    std::fs::write(&file, json).unwrap();
    for args in [
        &["tools"][..],
        &["gen-bridge", "--output", "-"],
        &["exec", "--sandbox", "native", "job.py"],
    ] {
        let output = codemode()
            .current_dir(dir.path())
            .arg("--mcp-json")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("skipped server `codemode`")
                && stderr.contains("it is codemode itself"),
            "{args:?}: {stderr}"
        );
        if args[0] == "tools" {
            let stdout = stdout_of(&output);
            assert!(stdout.contains("sum.summarize"), "{stdout}");
            assert!(!stdout.contains("codemode."), "{stdout}");
        }
    }
}

#[test]
fn a_bad_value_is_reported_with_its_key_line_and_column() {
    let work = Workdir::with_config("[sandbox]\nmemory = \"lots\"\n");
    let output = work
        .codemode()
        .args(["exec", "-"])
        .write_stdin("print(1)\n")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    let expected = format!(
        "{}:2:10: sandbox.memory: invalid size",
        work.config().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn a_bad_bridge_address_in_the_config_blames_the_config_not_a_flag() {
    let work = Workdir::with_config(&format!(
        "{}\n[bridge]\nlisten = \"localhost\"\n",
        common::examples_config()
    ));
    let output = work
        .codemode()
        .arg("bridge")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(stderr.contains(": bridge.listen: "), "{stderr}");
    assert!(!stderr.contains("--listen"), "{stderr}");
}

#[test]
fn a_flag_takes_the_same_values_as_its_config_key() {
    let work = Workdir::with_config(&common::examples_config());
    let output = work
        .codemode()
        .args(["exec", "--memory", "lots", "-"])
        .write_stdin("print(1)\n")
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("--memory") && stderr.contains("invalid size `lots`"),
        "{stderr}"
    );
}

#[test]
fn tools_search_ranks_as_search_tools_does() {
    // A model asks in sentences: a word no tool uses must not hide the rest,
    // in `codemode tools --search` as in `search_tools` and `mcp_tools.search`.
    let work = Workdir::with_config(&common::examples_config());
    let output = work
        .codemode()
        .args(["tools", "--search", "fetch the latest headlines please"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = stdout_of(&output);
    assert!(
        stdout
            .lines()
            .next()
            .unwrap_or("")
            .starts_with("news.fetch_latest"),
        "{stdout}"
    );
    assert!(
        stderr_of(&output).contains("no tool matches every word"),
        "{}",
        stderr_of(&output)
    );
}
