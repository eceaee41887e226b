//! The catalog: what the configured servers offer, as listed by the registry and
//! narrowed by the run's [`ToolFilter`]. `gen-bridge` renders it, `tools`
//! prints and searches it.

use std::collections::BTreeMap;

use bridge_gen::{ServerTools, ToolSpec};
use serde_json::Value;

use crate::registry::{McpError, Registry};
use codemode_config::{ResolvedServer, ToolFilter};

#[derive(Default)]
pub struct Catalog {
    /// Sorted by server name; tools in the order the server listed them.
    pub servers: Vec<ServerTools>,
    /// Each server's tools exactly as `tools/list` sent them, for token counts.
    pub raw: BTreeMap<String, Vec<Value>>,
}

/// Told when each server's listing starts and how it ended, for a command to
/// show progress its own way (spinners, lines, nothing).
pub trait Watch: Sync {
    type Task: Send;
    fn started(&self, server: &str, doing: &str) -> Self::Task;
    fn succeeded(&self, task: Self::Task, note: &str);
    fn failed(&self, task: Self::Task, error: &str);
}

/// Shows nothing: for callers with no one to show progress to.
pub struct Unwatched;

impl Watch for Unwatched {
    type Task = ();
    fn started(&self, _: &str, _: &str) {}
    fn succeeded(&self, (): (), _: &str) {}
    fn failed(&self, (): (), _: &str) {}
}

/// Lists the tools of every server at once. Servers that fail are returned with
/// their errors; the catalog holds the rest.
pub async fn collect(
    registry: &Registry,
    specs: &[ResolvedServer],
    filter: &ToolFilter,
    watch: &impl Watch,
) -> (Catalog, Vec<McpError>) {
    let listings = specs.iter().map(|spec| async move {
        let task = watch.started(&spec.name, "connecting and listing tools…");
        let result = registry.list_tools(&spec.name).await;
        match &result {
            Ok(tools) => {
                let kept = tools
                    .iter()
                    .filter(|t| filter.permits(&spec.name, &t.name))
                    .count();
                let note = if kept == tools.len() {
                    codemode_text::plural(kept, "tool")
                } else {
                    format!(
                        "{kept} of {} allowed",
                        codemode_text::plural(tools.len(), "tool")
                    )
                };
                watch.succeeded(task, &note);
            }
            Err(err) => watch.failed(task, &err.to_string()),
        }
        (spec, result)
    });
    let results = futures::future::join_all(listings).await;
    from_listings(results, filter)
}

/// The catalog of the servers whose tool lists are in, narrowed by
/// `filter`; the failures apart.
pub fn from_listings<'a>(
    results: impl IntoIterator<Item = (&'a ResolvedServer, Result<Vec<rmcp::model::Tool>, McpError>)>,
    filter: &ToolFilter,
) -> (Catalog, Vec<McpError>) {
    let mut catalog = Catalog {
        servers: Vec::new(),
        raw: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    for (spec, result) in results {
        match result {
            Ok(tools) => {
                let tools: Vec<_> = tools
                    .into_iter()
                    .filter(|t| filter.permits(&spec.name, &t.name))
                    .collect();
                catalog.raw.insert(
                    spec.name.clone(),
                    tools
                        .iter()
                        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
                        .collect(),
                );
                catalog.servers.push(ServerTools {
                    name: spec.name.clone(),
                    tools: tools.iter().map(tool_spec).collect(),
                });
            }
            Err(err) => failures.push(err),
        }
    }
    catalog.servers.sort_by(|a, b| a.name.cmp(&b.name));
    (catalog, failures)
}

fn tool_spec(tool: &rmcp::model::Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name.to_string(),
        description: tool.description.as_ref().map(|d| d.to_string()),
        input_schema: Value::Object((*tool.input_schema).clone()),
        output_schema: tool
            .output_schema
            .as_ref()
            .map(|s| Value::Object((**s).clone())),
    }
}

/// A tool found by `search`, with how well it matched.
pub struct Match<'a> {
    pub server: &'a str,
    pub tool: &'a ToolSpec,
    pub score: u32,
}

impl Catalog {
    pub fn tool_count(&self) -> usize {
        self.servers.iter().map(|s| s.tools.len()).sum()
    }

    /// Tools matching the words of `query`, best first. Every word must match
    /// somewhere (tool name, server name or description); a word in the tool's
    /// name counts more than one in its description, so "time" finds
    /// `get_current_time` before a tool that mentions time in passing.
    pub fn search(&self, query: &str) -> Vec<Match<'_>> {
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let mut matches = Vec::new();
        for server in &self.servers {
            let server_name = server.name.to_lowercase();
            for tool in &server.tools {
                let name = tool.name.to_lowercase();
                let name_parts: Vec<&str> = name
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|p| !p.is_empty())
                    .collect();
                let description = tool.description.as_deref().unwrap_or("").to_lowercase();
                let mut score = 0;
                let mut all = true;
                for word in &words {
                    let hit = if name_parts.contains(&word.as_str()) {
                        8
                    } else if name.contains(word.as_str()) {
                        5
                    } else if server_name.contains(word.as_str()) {
                        3
                    } else if description.contains(word.as_str()) {
                        1 + description.matches(word.as_str()).count().min(3) as u32
                    } else {
                        0
                    };
                    all &= hit > 0;
                    score += hit;
                }
                if all && (score > 0 || words.is_empty()) {
                    matches.push(Match {
                        server: &server.name,
                        tool,
                        score,
                    });
                }
            }
        }
        // Stable: equal scores keep server and tool order.
        matches.sort_by_key(|m| std::cmp::Reverse(m.score));
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: Some(description.into()),
            input_schema: json!({"type": "object"}),
            output_schema: None,
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            servers: vec![
                ServerTools {
                    name: "news".into(),
                    tools: vec![
                        tool("fetch_latest", "Fetch the newest articles of a category."),
                        tool(
                            "search",
                            "Search articles by words; matches any time period.",
                        ),
                    ],
                },
                ServerTools {
                    name: "time".into(),
                    tools: vec![
                        tool("get_current_time", "Get the current time in a timezone."),
                        tool("convert_time", "Convert a time between timezones."),
                    ],
                },
            ],
            raw: BTreeMap::new(),
        }
    }

    fn names(query: &str) -> Vec<String> {
        catalog()
            .search(query)
            .iter()
            .map(|m| format!("{}.{}", m.server, m.tool.name))
            .collect()
    }

    #[test]
    fn a_word_in_the_tool_name_ranks_above_one_in_a_description() {
        let found = names("time");
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[2], "news.search");
    }

    #[test]
    fn every_word_must_match() {
        assert_eq!(names("current time"), ["time.get_current_time"]);
    }

    #[test]
    fn search_ignores_case_and_punctuation() {
        assert_eq!(names("FETCH-latest"), ["news.fetch_latest"]);
    }

    #[test]
    fn no_match_finds_nothing() {
        assert!(names("weather").is_empty());
    }
}
