//! Finding and reading the config, and what a user sees when it is wrong.

mod common;

use common::{codemode, stderr_of, Workdir};
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
