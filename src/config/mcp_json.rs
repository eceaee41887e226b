//! The `mcpServers` JSON that desktop MCP clients and editors keep, read into
//! server tables so an existing setup works without rewriting it.
//!
//! Accepts both the common `{"mcpServers": {...}}` and the `{"servers": {...}}`
//! shape some editors use. Entries marked `"disabled": true` are kept but disabled.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, ServerConfig};

#[derive(Deserialize)]
struct File {
    #[serde(rename = "mcpServers", alias = "servers", default)]
    servers: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    disabled: bool,
}

pub fn read(path: &Path) -> Result<Vec<(String, ServerConfig)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<Vec<(String, ServerConfig)>, ConfigError> {
    let file: File = serde_json::from_str(text).map_err(|err| ConfigError::Parse {
        path: path.to_path_buf(),
        line: err.line(),
        column: err.column(),
        message: err.to_string(),
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if file.servers.is_empty() {
        return Err(invalid("no `mcpServers` entries found".into()));
    }
    let mut servers = Vec::new();
    for (name, entry) in file.servers {
        if entry.kind.as_deref() == Some("sse") {
            return Err(invalid(format!(
                "server `{name}` uses the legacy SSE transport, which codemode does not speak; use its streamable HTTP endpoint"
            )));
        }
        let server = ServerConfig {
            command: entry.command,
            args: entry.args,
            env: entry.env,
            cwd: entry.cwd,
            url: entry.url,
            headers: entry.headers,
            disabled: entry.disabled,
            ..ServerConfig::default()
        };
        server
            .validate()
            .map_err(|message| invalid(format!("server `{name}`: {message}")))?;
        servers.push((name, server));
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<(String, ServerConfig)>, ConfigError> {
        parse(text, Path::new("claude_desktop_config.json"))
    }

    #[test]
    fn stdio_and_http_entries_are_read() {
        let servers = parse_str(
            r#"{"mcpServers": {
                "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
                "docs": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${T}"}}
            }}"#,
        )
        .unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].0, "docs");
        assert_eq!(servers[0].1.url.as_deref(), Some("https://example.com/mcp"));
        assert_eq!(servers[1].1.command.as_deref(), Some("uvx"));
        assert_eq!(servers[1].1.env["TZ"], "UTC");
    }

    #[test]
    fn the_editor_servers_key_is_accepted() {
        let servers = parse_str(r#"{"servers": {"t": {"command": "x"}}}"#).unwrap();
        assert_eq!(servers[0].0, "t");
    }

    #[test]
    fn a_disabled_entry_stays_disabled() {
        let servers =
            parse_str(r#"{"mcpServers": {"t": {"command": "x", "disabled": true}}}"#).unwrap();
        assert!(servers[0].1.disabled);
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let err = parse_str("{\n  \"mcpServers\": {,}\n}").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn legacy_sse_entries_are_refused_with_a_reason() {
        let err = parse_str(r#"{"mcpServers": {"s": {"type": "sse", "url": "http://h/sse"}}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("legacy SSE"), "{err}");
    }
}
