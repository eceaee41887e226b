//! `codemode init` run as a script would run it (no terminal): it finds the
//! MCP client configs under a throwaway home, writes a config that works,
//! keeps secrets out of it, and never prompts.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{codemode, example_bin, stderr_of, stdout_of};
use serde_json::json;

/// A home directory with a project directory in it, as `init` sees the world.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let home = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(home.project()).unwrap();
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn project(&self) -> PathBuf {
        self.path().join("project")
    }

    fn config_dir(&self) -> PathBuf {
        self.path().join(".config")
    }

    /// Where `init` writes by default, and where `codemode` finds it.
    fn user_config(&self) -> PathBuf {
        self.config_dir().join("codemode/codemode.toml")
    }

    fn write(&self, relative: &str, value: &str) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, value).unwrap();
        path
    }

    /// `codemode ARGS` with this home, from the project directory.
    fn codemode(&self) -> assert_cmd::Command {
        let mut cmd = codemode();
        cmd.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.config_dir())
            .current_dir(self.project());
        cmd
    }

    fn init(&self, args: &[&str]) -> std::process::Output {
        self.codemode().arg("init").args(args).output().unwrap()
    }
}

fn claude_desktop(home: &Home) -> PathBuf {
    let config = json!({"mcpServers": {
        "news": {"command": example_bin("news-server"), "env": {"NEWS_API_KEY": "sk-live-123456", "REGION": "eu"}},
        "summarizer": {"command": example_bin("summarizer-server")},
        "old": {"type": "sse", "url": "http://localhost:9/sse"},
    }});
    home.write(
        ".config/Claude/claude_desktop_config.json",
        &serde_json::to_string_pretty(&config).unwrap(),
    )
}

#[test]
fn servers_found_in_claude_desktop_become_a_working_config() {
    let home = Home::new();
    claude_desktop(&home);
    let output = home.init(&["--yes"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("Found 2 servers in") && stderr.contains("(Claude Desktop)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped `old`: it uses the legacy SSE transport"),
        "{stderr}"
    );

    let written = std::fs::read_to_string(home.user_config()).unwrap();
    assert!(
        written.contains("[servers.news]") && written.contains("[servers.summarizer]"),
        "{written}"
    );
    assert!(
        !written.contains("sk-live-123456"),
        "a secret was copied:\n{written}"
    );
    assert!(
        written.contains(r#"env = { NEWS_API_KEY = "${NEWS_API_KEY}", REGION = "eu" }"#),
        "{written}"
    );
    let mode = std::fs::metadata(home.user_config())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The client entry: this binary, this config, `serve`, the secret to set.
    let snippet_start = stdout.find('{').unwrap();
    let snippet_end = stdout[snippet_start..].find("\n}\n").unwrap() + snippet_start + 2;
    let snippet: serde_json::Value =
        serde_json::from_str(&stdout[snippet_start..snippet_end]).unwrap();
    let entry = &snippet["mcpServers"]["codemode"];
    assert_eq!(entry["args"][0], "--config");
    assert_eq!(entry["args"][1], home.user_config().display().to_string());
    assert_eq!(entry["args"][2], "serve");
    assert!(entry["env"]["NEWS_API_KEY"]
        .as_str()
        .unwrap()
        .contains("news: env NEWS_API_KEY"));
    assert!(!stdout.contains("sk-live-123456"), "{stdout}");

    // codemode finds it where init put it, and the servers answer.
    let tools = home
        .codemode()
        .env("NEWS_API_KEY", "anything")
        .arg("tools")
        .output()
        .unwrap();
    assert!(tools.status.success(), "{}", stderr_of(&tools));
    assert!(stdout_of(&tools).contains("news.fetch_latest"));
    assert!(stdout_of(&tools).contains("summarizer.summarize"));
}

#[test]
fn without_a_terminal_it_asks_nothing_and_says_which_flag_answers() {
    let home = Home::new();
    claude_desktop(&home);
    let output = home.init(&[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("no terminal") && stderr.contains("--yes") && stderr.contains("--servers"),
        "{stderr}"
    );
    assert!(!home.user_config().exists());
}

#[test]
fn an_existing_config_is_replaced_only_with_force() {
    let home = Home::new();
    claude_desktop(&home);
    let existing = home.write(".config/codemode/codemode.toml", "# mine\n");
    let output = home.init(&["--yes"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("--force"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "# mine\n");

    let output = home.init(&["--yes", "--force"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(std::fs::read_to_string(&existing)
        .unwrap()
        .contains("[servers.news]"));
}

#[test]
fn servers_picks_only_the_named_ones() {
    let home = Home::new();
    claude_desktop(&home);
    let output = home.init(&["--servers", "summarizer"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let written = std::fs::read_to_string(home.user_config()).unwrap();
    assert!(
        written.contains("[servers.summarizer]") && !written.contains("[servers.news]"),
        "{written}"
    );
}

#[test]
fn a_named_server_not_found_is_a_usage_error_listing_those_found() {
    let home = Home::new();
    claude_desktop(&home);
    let output = home.init(&["--servers", "news,weather", "--force"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("no server `weather`") && stderr.contains("news, summarizer"),
        "{stderr}"
    );
}

#[test]
fn a_named_file_can_be_printed_instead_of_written() {
    let home = Home::new();
    let file = home.write(
        "elsewhere/mcp.json",
        r#"{"mcpServers": {"docs": {"url": "https://docs.example.com/mcp", "headers": {"Authorization": "Bearer abc123"}}}}"#,
    );
    let output = home.init(&["--from", file.to_str().unwrap(), "--output", "-", "--yes"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let toml_text = stdout_of(&output);
    let parsed: toml::Table = toml::from_str(&toml_text).unwrap();
    assert_eq!(
        parsed["servers"]["docs"]["url"].as_str(),
        Some("https://docs.example.com/mcp")
    );
    assert_eq!(
        parsed["servers"]["docs"]["headers"]["Authorization"].as_str(),
        Some("Bearer ${DOCS_AUTHORIZATION}")
    );
    // The next steps go to stderr, so stdout is the config alone.
    assert!(stderr_of(&output).contains("\"mcpServers\""));
    assert!(!home.user_config().exists());

    let inline = home.init(&[
        "--from",
        file.to_str().unwrap(),
        "-o",
        "-",
        "--yes",
        "--inline-secrets",
    ]);
    assert!(stdout_of(&inline).contains("Bearer abc123"));
}

#[test]
fn editor_configs_with_comments_are_read_and_get_their_own_snippet() {
    let home = Home::new();
    home.write(
        "project/.vscode/mcp.json",
        r#"{
  // VS Code's format: "servers", comments, trailing commas, prompted inputs
  "inputs": [{"id": "team", "type": "promptString"}],
  "servers": {
    "tickets": {"type": "http", "url": "https://t.example.com/mcp", "headers": {"X-Team": "${input:team}"},},
  },
}"#,
    );
    home.write(
        ".cursor/mcp.json",
        &json!({"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "${env:TZ}"}}}})
            .to_string(),
    );
    let output = home.init(&["--yes", "-o", "out.toml"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let written = std::fs::read_to_string(home.project().join("out.toml")).unwrap();
    assert!(
        written.contains(r#"headers = { X-Team = "${TICKETS_TEAM}" }"#),
        "{written}"
    );
    assert!(written.contains(r#"env = { TZ = "${TZ}" }"#), "{written}");
    let stdout = stdout_of(&output);
    assert!(
        stdout.contains("In VS Code's mcp.json:") && stdout.contains("\"type\": \"stdio\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("TICKETS_TEAM") && stdout.contains("<a value for tickets: header X-Team>"),
        "{stdout}"
    );
}

#[test]
fn with_nothing_found_yes_writes_a_starter_config() {
    let home = Home::new();
    let output = home.init(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("no MCP servers found"),
        "{}",
        stderr_of(&output)
    );

    let output = home.init(&["--yes"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let written = std::fs::read_to_string(home.user_config()).unwrap();
    assert!(written.contains("# [servers.time]"), "{written}");
    let parsed: toml::Table = toml::from_str(&written).unwrap();
    assert!(parsed.get("servers").is_none());
}

#[test]
fn codemode_itself_is_not_wrapped_again() {
    let home = Home::new();
    home.write(
        ".cursor/mcp.json",
        &json!({"mcpServers": {
            "codemode": {"command": "/usr/local/bin/codemode", "args": ["--config", "/x.toml", "serve"]},
            "summarizer": {"command": example_bin("summarizer-server")},
        }})
        .to_string(),
    );
    let output = home.init(&["--yes"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("skipped `codemode`: it is codemode itself"));
    let written = std::fs::read_to_string(home.user_config()).unwrap();
    assert!(!written.contains("[servers.codemode]"), "{written}");
}
