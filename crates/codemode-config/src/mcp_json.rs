//! The `mcpServers` JSON that desktop MCP clients and editors keep, read the
//! same way for `--mcp-json` and for `init`, so a file one accepts the other
//! accepts too.
//!
//! Clients differ: editors allow comments and trailing commas (JSONC); the
//! list is `mcpServers` (most clients), `servers` (VS Code's mcp.json) or
//! `mcp.servers` (VS Code's settings.json); an HTTP server's address is `url`,
//! `serverUrl` (Windsurf) or `httpUrl` (Gemini CLI). Entries codemode cannot
//! or must not start (legacy SSE, a transport it does not know, codemode
//! itself, which would start codemode again and again) are skipped with the
//! reason: one such entry must not take the others away. Entries marked
//! `"disabled": true` are kept but disabled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigError, ServerConfig};

/// A server as a client config describes it, in codemode's terms: only the
/// fields that apply to its transport are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub disabled: bool,
}

impl From<Entry> for ServerConfig {
    fn from(entry: Entry) -> ServerConfig {
        ServerConfig {
            command: entry.command,
            args: entry.args,
            env: entry.env,
            cwd: entry.cwd,
            url: entry.url,
            headers: entry.headers,
            disabled: entry.disabled,
            ..ServerConfig::default()
        }
    }
}

/// What one file holds: its servers by name, and the entries left out with why.
#[derive(Debug, Default)]
pub struct Servers {
    pub found: Vec<(String, Entry)>,
    pub skipped: Vec<(String, String)>,
}

pub fn read(path: &Path) -> Result<Servers, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// `path` is for messages only.
pub fn parse(text: &str, path: &Path) -> Result<Servers, ConfigError> {
    parse_with(text, path, std::env::current_exe().ok().as_deref())
}

/// `exe`: the running codemode, whose own entry is skipped whatever it is
/// called in the file.
fn parse_with(text: &str, path: &Path, exe: Option<&Path>) -> Result<Servers, ConfigError> {
    // Some Windows editors start the file with a byte order mark; editors do
    // not count it as a column.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value =
        jsonc_parser::parse_to_serde_value(text, &jsonc()).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            line: err.line_display(),
            column: err.column_display(),
            message: err.kind().to_string(),
        })?;
    let list = value
        .get("mcpServers")
        .or_else(|| value.get("servers"))
        .or_else(|| value.get("mcp").and_then(|m| m.get("servers")))
        .and_then(Value::as_object)
        .ok_or_else(|| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "no `mcpServers`, `servers` or `mcp.servers` object".into(),
        })?;
    let mut servers = Servers::default();
    for (name, raw) in list {
        match entry(raw, exe) {
            Ok(entry) => servers.found.push((name.clone(), entry)),
            Err(why) => servers.skipped.push((name.clone(), why)),
        }
    }
    // The order does not depend on how serde_json keeps maps.
    servers.found.sort_by(|a, b| a.0.cmp(&b.0));
    servers.skipped.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(servers)
}

/// JSON plus what editors allow in theirs: comments and trailing commas.
/// Nothing looser, so a typo is still an error where it is.
fn jsonc() -> jsonc_parser::ParseOptions {
    jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// The transports clients name that codemode speaks: stdio and streamable HTTP.
const KINDS: &[&str] = &[
    "stdio",
    "http",
    "streamable-http",
    "streamable_http",
    "streamableHttp",
];

/// One client entry in codemode's terms, or why it is left out.
fn entry(raw: &Value, exe: Option<&Path>) -> Result<Entry, String> {
    if !raw.is_object() {
        return Err("it is not an object".into());
    }
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_string);
    // Clients write numbers and booleans where strings are meant; they are
    // passed on as the text they stand for.
    let plain = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let map = |key: &str| -> BTreeMap<String, String> {
        raw.get(key)
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
            .unwrap_or_default()
    };
    match text("type").or_else(|| text("transport")).as_deref() {
        Some("sse") => {
            return Err("it uses the legacy SSE transport, which codemode does not speak".into())
        }
        Some(kind) if !KINDS.contains(&kind) => {
            return Err(format!(
                "its type `{kind}` is not a transport codemode speaks (stdio, http)"
            ))
        }
        _ => {}
    }
    let command = text("command");
    let url = text("url")
        .or_else(|| text("serverUrl"))
        .or_else(|| text("httpUrl"));
    let args: Vec<String> = raw
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(plain).collect())
        .unwrap_or_default();
    match (&command, &url) {
        (None, None) => return Err("it has neither a command nor a url".into()),
        (Some(_), Some(_)) => return Err("it has both a command and a url".into()),
        (Some(command), None) if command.trim().is_empty() => {
            return Err("its command is empty".into())
        }
        _ => {}
    }
    if let Some(command) = &command {
        if is_codemode(command, &args, exe) {
            return Err("it is codemode itself".into());
        }
    }
    let stdio = command.is_some();
    Ok(Entry {
        env: if stdio { map("env") } else { BTreeMap::new() },
        headers: if stdio {
            BTreeMap::new()
        } else {
            map("headers")
        },
        args: if stdio { args } else { Vec::new() },
        cwd: if stdio { text("cwd") } else { None },
        command,
        url,
        disabled: raw
            .get("disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Whether `command args` starts codemode: a `codemode` asked to `serve`, or
/// the running executable under any name or path.
fn is_codemode(command: &str, args: &[String], exe: Option<&Path>) -> bool {
    let program = Path::new(command).file_name().and_then(|n| n.to_str());
    if program == Some("codemode") && args.iter().any(|a| a == "serve") {
        return true;
    }
    match (exe, find_program(command)) {
        (Some(exe), Some(program)) => same_file(exe, &program),
        _ => false,
    }
}

/// Where `command` is, as a shell would find it.
fn find_program(command: &str) -> Option<PathBuf> {
    if command.contains('/') {
        return Some(PathBuf::from(command));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
}

/// The same file whatever the path: through symlinks and hard links alike.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Servers, ConfigError> {
        parse_with(text, Path::new("claude_desktop_config.json"), None)
    }

    fn skipped(text: &str) -> BTreeMap<String, String> {
        parse_str(text).unwrap().skipped.into_iter().collect()
    }

    #[test]
    fn stdio_and_http_entries_are_read() {
        let servers = parse_str(
            r#"{"mcpServers": {
                "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
                "docs": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${T}"}}
            }}"#,
        )
        .unwrap()
        .found;
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].0, "docs");
        assert_eq!(servers[0].1.url.as_deref(), Some("https://example.com/mcp"));
        assert_eq!(servers[1].1.command.as_deref(), Some("uvx"));
        assert_eq!(servers[1].1.env["TZ"], "UTC");
    }

    #[test]
    fn the_editor_servers_key_is_accepted() {
        let servers = parse_str(r#"{"servers": {"t": {"command": "x"}}}"#).unwrap();
        assert_eq!(servers.found[0].0, "t");
    }

    #[test]
    fn vs_code_settings_mcp_servers_is_accepted() {
        let servers = parse_str(r#"{"mcp": {"servers": {"t": {"command": "x"}}}}"#).unwrap();
        assert_eq!(servers.found[0].0, "t");
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let servers = parse_str("\u{feff}{\"mcpServers\": {\"t\": {\"command\": \"x\"}}}").unwrap();
        assert_eq!(servers.found[0].0, "t");
    }

    #[test]
    fn a_file_without_a_server_list_is_an_error() {
        let err = parse_str(r#"{"editor.fontSize": 12}"#).unwrap_err();
        assert!(err.to_string().contains("no `mcpServers`"), "{err}");
    }

    #[test]
    fn server_url_and_http_url_are_urls() {
        let servers = parse_str(
            r#"{"mcpServers": {"w": {"serverUrl": "https://w/mcp"}, "g": {"httpUrl": "https://g/mcp"}}}"#,
        )
        .unwrap()
        .found;
        let urls: Vec<_> = servers.iter().map(|(_, e)| e.url.as_deref()).collect();
        assert_eq!(urls, [Some("https://g/mcp"), Some("https://w/mcp")]);
    }

    #[test]
    fn a_disabled_entry_stays_disabled() {
        let servers =
            parse_str(r#"{"mcpServers": {"t": {"command": "x", "disabled": true}}}"#).unwrap();
        assert!(servers.found[0].1.disabled);
    }

    #[test]
    fn comments_and_trailing_commas_are_read() {
        let servers = parse_str(
            "{\n  // my servers\n  \"servers\": {\n    \"time\": {\"type\": \"stdio\", \"command\": \"uvx\", \"args\": [\"mcp-server-time\",],}, /* done */\n  },\n}",
        )
        .unwrap()
        .found;
        assert_eq!(servers[0].0, "time");
        assert_eq!(servers[0].1.args, ["mcp-server-time"]);
    }

    #[test]
    fn strings_that_look_like_comments_are_kept() {
        let servers = parse_str(
            r#"{"mcpServers": {"t": {"command": "x", "args": ["http://x/y", "/* no */"]}}}"#,
        )
        .unwrap()
        .found;
        assert_eq!(servers[0].1.args, ["http://x/y", "/* no */"]);
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let err = parse_str("{\n  \"mcpServers\": {,}\n}").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Parse {
                    line: 2,
                    column: 18,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn an_error_after_a_comment_is_placed_where_it_is() {
        // A comment removed before parsing would shift the column.
        let err = parse_str("{\"mcpServers\": {/* a long comment */ \"t\": {\"command\" \"x\"}}}")
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Parse {
                    line: 1,
                    column: 54,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn legacy_sse_entries_are_skipped_with_a_reason() {
        let servers = parse_str(
            r#"{"mcpServers": {"s": {"type": "sse", "url": "http://h/sse"}, "ok": {"command": "x"}}}"#,
        )
        .unwrap();
        assert_eq!(servers.found.len(), 1);
        assert!(servers.skipped[0].1.contains("legacy SSE"), "{servers:?}");
    }

    #[test]
    fn unknown_transports_are_skipped_with_their_name() {
        let reasons = skipped(r#"{"mcpServers": {"w": {"type": "websocket", "url": "ws://h"}}}"#);
        assert!(reasons["w"].contains("`websocket`"), "{reasons:?}");
    }

    #[test]
    fn entries_with_neither_or_both_of_command_and_url_are_skipped() {
        let reasons = skipped(
            r#"{"mcpServers": {"none": {"args": []}, "both": {"command": "x", "url": "http://h"}, "blank": {"command": " "}}}"#,
        );
        assert!(reasons["none"].contains("neither"), "{reasons:?}");
        assert!(reasons["both"].contains("both"), "{reasons:?}");
        assert!(reasons["blank"].contains("empty"), "{reasons:?}");
    }

    #[test]
    fn codemode_serve_is_skipped_as_codemode_itself() {
        let reasons = skipped(
            r#"{"mcpServers": {"codemode": {"command": "/usr/local/bin/codemode", "args": ["--config", "/x.toml", "serve"]}}}"#,
        );
        assert!(
            reasons["codemode"].contains("codemode itself"),
            "{reasons:?}"
        );
    }

    #[test]
    fn the_running_executable_is_codemode_itself_under_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("codemode");
        std::fs::write(&exe, "").unwrap();
        let alias = dir.path().join("mcp-gateway");
        std::os::unix::fs::symlink(&exe, &alias).unwrap();
        let other = dir.path().join("other-server");
        std::fs::write(&other, "").unwrap();
        let text = serde_json::json!({"mcpServers": {
            "alias": {"command": alias, "args": ["--mcp-json", "x.json"]},
            "other": {"command": other},
        }})
        .to_string();
        let servers = parse_with(&text, Path::new("x.json"), Some(&exe)).unwrap();
        assert_eq!(servers.skipped.len(), 1, "{servers:?}");
        assert_eq!(servers.skipped[0].0, "alias");
        assert_eq!(servers.found[0].0, "other");
    }

    #[test]
    fn fields_of_the_other_transport_are_dropped() {
        let servers = parse_str(
            r#"{"mcpServers": {"h": {"url": "http://h/mcp", "env": {"A": "1"}, "args": ["x"]},
                                "s": {"command": "x", "headers": {"A": "1"}, "args": [1, true]}}}"#,
        )
        .unwrap()
        .found;
        assert!(servers[0].1.env.is_empty() && servers[0].1.args.is_empty());
        assert!(servers[1].1.headers.is_empty());
        assert_eq!(servers[1].1.args, ["1", "true"]);
    }
}
