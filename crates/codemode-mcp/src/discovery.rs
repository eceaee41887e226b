//! Finding tools by what they do, as text a model reads: `serve`'s
//! `search_tools` and the bridge's `/search` (what `mcp_tools.search()` calls
//! inside the sandbox) answer with the same function, so a model gets the
//! same matches whichever way it asks.

use std::collections::HashMap;

use bridge_gen::{tool_signature, Detail};

use crate::catalog::{Catalog, Match};
use codemode_text::plural;

/// Matches listed when the caller names no limit.
pub const DEFAULT_LIMIT: usize = 20;
/// The most matches one answer lists, whatever the caller asks for: a `full`
/// answer of hundreds of signatures would flood the context it is meant to spare.
pub const MAX_LIMIT: usize = 100;

/// Words too common to tell tools apart; dropped when matching on some words.
const FILLER: &[&str] = &[
    "a", "an", "the", "to", "of", "in", "on", "for", "and", "or", "with", "by", "from", "at", "is",
    "it", "my", "me", "i", "some", "any", "all", "that", "this", "tool", "tools",
];

pub fn parse_detail(text: &str) -> Result<Detail, String> {
    match text {
        "name" => Ok(Detail::Name),
        "summary" => Ok(Detail::Summary),
        "full" => Ok(Detail::Full),
        other => Err(format!(
            "detail must be `name`, `summary` or `full`, not `{other}`"
        )),
    }
}

/// Tools matching `query`, best first, and whether each matched every word.
///
/// Every word must match, as `codemode tools --search` does; when no tool
/// matches them all, tools matching the most of them come instead, because a
/// model asks in sentences ("send an email to a customer") and one word the
/// tools do not use must not hide the rest. A query that is exactly a tool's
/// name (`fetch_latest`, `news.fetch_latest`) puts that tool first.
pub fn find<'a>(catalog: &'a Catalog, query: &str) -> (Vec<Match<'a>>, bool) {
    let mut matches = catalog.search(query);
    let mut every_word = true;
    if matches.is_empty() {
        matches = some_words(catalog, query);
        every_word = false;
    }
    let wanted = query.trim().to_lowercase();
    if let Some(exact) = matches.iter().position(|m| {
        m.tool.name.to_lowercase() == wanted
            || format!("{}.{}", m.server, m.tool.name).to_lowercase() == wanted
    }) {
        let first = matches.remove(exact);
        matches.insert(0, first);
    }
    (matches, every_word)
}

fn some_words<'a>(catalog: &'a Catalog, query: &str) -> Vec<Match<'a>> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !FILLER.contains(&w.as_str()))
        .collect();
    // (words matched, summed score), kept in first-seen order for stable ties.
    let mut found: Vec<(u32, Match<'a>)> = Vec::new();
    let mut at: HashMap<(&str, &str), usize> = HashMap::new();
    for word in &words {
        let mut hits = catalog.search(word);
        if hits.is_empty() {
            // "changed" should find "changes", "deploying" find "deploy".
            hits = catalog.search(stem(word));
        }
        for m in hits {
            let key = (m.server, m.tool.name.as_str());
            match at.get(&key) {
                Some(&i) => {
                    found[i].0 += 1;
                    found[i].1.score += m.score;
                }
                None => {
                    at.insert(key, found.len());
                    found.push((1, m));
                }
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.score.cmp(&a.1.score)));
    found.into_iter().map(|(_, m)| m).collect()
}

/// A word without its inflection (`changed` → `chang`), matched as a
/// substring: crude, but enough for the words of a tool description.
fn stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            if stem.chars().count() >= 4 {
                return stem;
            }
        }
    }
    word
}

/// The answer to a search, ready to show a model: one signature per match at
/// `detail`, best first, at most `limit` of them, with a line saying what was
/// left out and how to see it.
pub fn search_text(catalog: &Catalog, query: &str, detail: Detail, limit: usize) -> String {
    let limit = limit.clamp(1, MAX_LIMIT);
    let (matches, every_word) = find(catalog, query);
    if matches.is_empty() {
        let servers: Vec<String> = catalog
            .servers
            .iter()
            .map(|s| format!("{} ({})", s.name, plural(s.tools.len(), "tool")))
            .collect();
        let servers = if servers.is_empty() {
            "no servers are configured".to_string()
        } else {
            format!("servers: {}", servers.join(", "))
        };
        return format!(
            "No tool matches {query:?} ({servers}). Try other words, or an empty query to list every tool.\n"
        );
    }
    let mut out = String::new();
    if !every_word {
        out.push_str("No tool matches every word; these match some of them:\n");
    }
    let separator = if detail == Detail::Full { "\n" } else { "" };
    for (i, m) in matches.iter().take(limit).enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(tool_signature(m.server, m.tool, detail).trim_end());
        out.push('\n');
    }
    if matches.len() > limit {
        out.push_str(&format!(
            "… {} more match; narrow the query or raise the limit.\n",
            matches.len() - limit
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_gen::{ServerTools, ToolSpec};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn tool(name: &str, description: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: Some(description.into()),
            input_schema: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
            output_schema: None,
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            servers: vec![
                ServerTools {
                    name: "mail".into(),
                    tools: vec![
                        tool("send_email", "Send an email message to a recipient."),
                        tool("send_email_draft", "Send a saved draft."),
                        tool("list_inbox", "List the newest messages in the inbox."),
                    ],
                },
                ServerTools {
                    name: "time".into(),
                    tools: vec![tool("get_current_time", "The current time in a timezone.")],
                },
            ],
            raw: BTreeMap::new(),
        }
    }

    #[test]
    fn a_sentence_finds_tools_matching_some_of_its_words() {
        let text = search_text(&catalog(), "email my customer", Detail::Name, 5);
        assert!(text.starts_with("No tool matches every word"), "{text}");
        assert!(text.contains("mail.send_email\n"), "{text}");
        assert!(!text.contains("time."), "{text}");
    }

    #[test]
    fn inflected_words_match_their_stems() {
        let text = search_text(&catalog(), "who is sending emails", Detail::Name, 5);
        assert!(text.contains("mail.send_email\n"), "{text}");
        assert_eq!(stem("changed"), "chang");
        assert_eq!(stem("news"), "news");
    }

    #[test]
    fn an_exact_tool_name_comes_first() {
        let catalog = catalog();
        let (found, _) = find(&catalog, "send_email_draft");
        assert_eq!(found[0].tool.name, "send_email_draft");
        let (found, _) = find(&catalog, "mail.send_email");
        assert_eq!(found[0].tool.name, "send_email");
    }

    #[test]
    fn the_limit_is_kept_and_the_rest_is_counted() {
        let text = search_text(&catalog(), "", Detail::Summary, 2);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.ends_with("… 2 more match; narrow the query or raise the limit.\n"));
    }

    #[test]
    fn full_detail_gives_python_signatures() {
        let text = search_text(&catalog(), "inbox", Detail::Full, 5);
        assert!(text.contains("def list_inbox("), "{text}");
        assert!(text.contains("List the newest messages"), "{text}");
    }

    #[test]
    fn nothing_found_names_the_servers() {
        let text = search_text(&catalog(), "weather", Detail::Summary, 5);
        assert!(text.contains("mail (3 tools), time (1 tool)"), "{text}");
    }

    #[test]
    fn details_parse_from_their_names() {
        assert_eq!(parse_detail("full"), Ok(Detail::Full));
        assert!(parse_detail("everything").is_err());
    }
}
