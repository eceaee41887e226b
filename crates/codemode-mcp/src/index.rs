//! The index in `execute_python`'s description: what code can call, sized to
//! a token budget. A model reads it on every turn, so it says as much as fits
//! and no more: every tool with its one-line summary while that fits; past
//! that, every server with its tool count and what it covers, leaving the
//! detail to `search_tools`. Never a schema.

use std::collections::BTreeMap;

use bridge_gen::{tool_signature, Detail, ServerTools};

use crate::tokens;
use codemode_text::plural;

/// Verbs and fillers that say what a tool does, not what it is about: left
/// out of a server's topics.
const NOT_TOPICS: &[&str] = &[
    "get", "list", "set", "create", "update", "delete", "add", "remove", "fetch", "read", "write",
    "search", "find", "query", "by", "all", "new", "to", "of", "the", "a", "an", "and", "or",
    "for", "in", "on", "with", "id", "ids", "info", "details", "batch", "bulk", "put", "post",
    "patch", "do", "run", "make", "check", "is", "has", "from", "into", "item", "items",
];

/// How many names or topics a server line may show, tried largest first.
const PER_SERVER: &[usize] = &[usize::MAX, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1, 0];

/// The index text for `servers` (with their Python names as `attrs` gives
/// them, configured name → module attribute), within `budget` tokens.
pub fn index(servers: &[ServerTools], attrs: &BTreeMap<String, String>, budget: usize) -> String {
    index_counted(servers, attrs, budget, tokens::count)
}

/// [`index`] with tokens counted by `count`.
pub fn index_counted(
    servers: &[ServerTools],
    attrs: &BTreeMap<String, String>,
    budget: usize,
    count: fn(&str) -> usize,
) -> String {
    let servers: Vec<&ServerTools> = servers.iter().filter(|s| !s.tools.is_empty()).collect();
    let total: usize = servers.iter().map(|s| s.tools.len()).sum();
    if total == 0 {
        return "No MCP tools are configured: the code runs as plain Python.".into();
    }
    let attr = |s: &ServerTools| {
        attrs
            .get(&s.name)
            .cloned()
            .unwrap_or_else(|| s.name.clone())
    };

    let every_tool = every_tool(&servers, attrs);
    if count(&every_tool) <= budget {
        return every_tool;
    }

    let heading = format!(
        "{total} tools on {}; too many to list, so find them with search_tools. Servers:\n",
        plural(servers.len(), "server")
    );
    for &shown in PER_SERVER {
        let mut text = heading.clone();
        for server in &servers {
            text.push_str(&server_line(server, &attr(server), shown));
        }
        if count(&text) <= budget {
            return text;
        }
    }

    // Even one bare line per server is too much: as many servers as fit.
    let mut text = heading;
    for (i, server) in servers.iter().enumerate() {
        let line = server_line(server, &attr(server), 0);
        let rest = format!("- … and {} more\n", servers.len() - i);
        if count(&format!("{text}{line}{rest}")) > budget {
            text.push_str(&rest);
            return text;
        }
        text.push_str(&line);
    }
    text
}

/// Every tool with its summary, however long.
fn every_tool(servers: &[&ServerTools], attrs: &BTreeMap<String, String>) -> String {
    let mut text = String::from("Callable (server.tool: summary):\n");
    for server in servers.iter() {
        let attr = attrs
            .get(&server.name)
            .cloned()
            .unwrap_or_else(|| server.name.clone());
        for tool in &server.tools {
            let line = tool_signature(&server.name, tool, Detail::Summary);
            text.push_str(&with_attr(&line, &attr));
            text.push('\n');
        }
    }
    text
}

/// A summary line with the server's module attribute in front, which can
/// differ from the name `tool_signature` works out alone when two servers'
/// names collide.
fn with_attr(line: &str, attr: &str) -> String {
    match line.split_once('.') {
        Some((_, rest)) => format!("{attr}.{rest}"),
        None => line.to_string(),
    }
}

/// `- news (3 tools): fetch_latest, search, get_article` when the names fit
/// in `shown`, else `- github (900 tools) about issue, repo, …`.
fn server_line(server: &ServerTools, attr: &str, shown: usize) -> String {
    let count = plural(server.tools.len(), "tool");
    if shown == 0 {
        return format!("- {attr} ({count})\n");
    }
    if server.tools.len() <= shown {
        let names: Vec<String> = server
            .tools
            .iter()
            .map(|t| {
                let name = tool_signature(&server.name, t, Detail::Name);
                name.split_once('.')
                    .map(|(_, m)| m.to_string())
                    .unwrap_or(name)
            })
            .collect();
        return format!("- {attr} ({count}): {}\n", names.join(", "));
    }
    let topics = topics(server, shown);
    if topics.is_empty() {
        return format!("- {attr} ({count})\n");
    }
    format!("- {attr} ({count}) about {}, …\n", topics.join(", "))
}

/// The words a server's tool names use most, verbs left out: `issue, repo,
/// pull, branch` says what a server covers in a few tokens.
fn topics(server: &ServerTools, n: usize) -> Vec<String> {
    #[derive(Default)]
    struct Seen {
        count: usize,
        /// Times it was the first word of a name, where verbs go (`archive_issue`).
        leading: usize,
        first_seen: usize,
    }
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut order = 0;
    for tool in &server.tools {
        let words = words(&tool.name);
        let several = words.len() > 1;
        for (i, word) in words.into_iter().enumerate() {
            if word.len() < 2 || word.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            if NOT_TOPICS.contains(&word.as_str()) {
                continue;
            }
            let entry = seen.entry(word).or_insert_with(|| Seen {
                first_seen: order,
                ..Seen::default()
            });
            entry.count += 1;
            if i == 0 && several {
                entry.leading += 1;
            }
            order += 1;
        }
    }
    let mut ranked: Vec<(String, Seen)> = seen
        .into_iter()
        .filter(|(_, s)| s.leading * 2 < s.count)
        .collect();
    // Most used first; among equals, the one met first.
    ranked.sort_by(|a, b| {
        b.1.count
            .cmp(&a.1.count)
            .then(a.1.first_seen.cmp(&b.1.first_seen))
    });
    ranked.into_iter().take(n).map(|(w, _)| w).collect()
}

/// A tool name's words: split at punctuation and at camelCase humps.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_gen::ToolSpec;
    use serde_json::json;

    fn server(name: &str, tools: &[(&str, &str)]) -> ServerTools {
        ServerTools {
            name: name.into(),
            tools: tools
                .iter()
                .map(|(n, d)| ToolSpec {
                    name: n.to_string(),
                    description: Some(d.to_string()),
                    input_schema: json!({"type": "object"}),
                    output_schema: None,
                })
                .collect(),
        }
    }

    fn attrs(servers: &[ServerTools]) -> BTreeMap<String, String> {
        servers
            .iter()
            .map(|s| (s.name.clone(), s.name.replace('-', "_")))
            .collect()
    }

    #[test]
    fn while_it_fits_every_tool_is_listed_with_its_summary() {
        let servers = vec![server(
            "news",
            &[("fetch_latest", "Fetch the newest articles. More text.")],
        )];
        let text = index(&servers, &attrs(&servers), 1000);
        assert_eq!(
            text,
            "Callable (server.tool: summary):\nnews.fetch_latest: Fetch the newest articles.\n"
        );
    }

    #[test]
    fn past_the_budget_servers_are_listed_with_counts_and_topics() {
        let many: Vec<(String, String)> = (0..300)
            .map(|i| {
                let noun = ["issue", "repo", "branch"][i % 3];
                let verb = ["archive", "close", "open", "rename", "star"][i % 5];
                (
                    format!("{verb}_{noun}_{i}"),
                    format!("Does {noun} number {i}."),
                )
            })
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let servers = vec![
            server("git-hub", &many),
            server("time", &[("get_time", "Now.")]),
        ];
        let text = index(&servers, &attrs(&servers), 200);
        assert!(tokens::count(&text) <= 200, "{text}");
        assert!(text.starts_with("301 tools on 2 servers;"), "{text}");
        assert!(
            text.contains("- git_hub (300 tools) about issue, repo, branch"),
            "{text}"
        );
        assert!(text.contains("- time (1 tool): get_time\n"), "{text}");
    }

    #[test]
    fn a_tiny_budget_still_names_what_it_can() {
        let servers: Vec<ServerTools> = (0..50)
            .map(|i| server(&format!("server{i}"), &[("t", "T.")]))
            .collect();
        let text = index(&servers, &attrs(&servers), 60);
        assert!(tokens::count(&text) <= 60, "{text}");
        assert!(text.contains("- server0 (1 tool)"), "{text}");
        assert!(text.contains("more\n"), "{text}");
    }

    #[test]
    fn words_split_at_punctuation_and_camel_case() {
        assert_eq!(words("getPullRequest"), ["get", "pull", "request"]);
        assert_eq!(words("list-repos_v2"), ["list", "repos", "v2"]);
    }
}
