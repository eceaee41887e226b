//! Which tools a run may see and call. The catalog narrows the stubs with it
//! and the bridge's grant admits calls with it, so a script is shown exactly
//! what it may call and nothing it may not.

use std::collections::BTreeMap;

use crate::ResolvedServer;

/// Each server's own `allow` list (tool-name patterns, from the config),
/// narrowed by the run's `server.tool` patterns (`--allow`, a grant's spec).
/// No list at either level admits everything at that level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolFilter {
    servers: BTreeMap<String, Vec<String>>,
    run: Option<Vec<String>>,
}

impl ToolFilter {
    /// Every tool each server's `allow` list lets through.
    pub fn new(servers: &[ResolvedServer]) -> ToolFilter {
        ToolFilter {
            servers: servers
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.allow.clone()?)))
                .collect(),
            run: None,
        }
    }

    /// Narrowed further to `patterns` (`server.tool`, `*` wildcards), which
    /// adds to any narrowing already made; none leaves it as it is.
    pub fn narrowed(mut self, patterns: &[String]) -> ToolFilter {
        if !patterns.is_empty() {
            self.run
                .get_or_insert_with(Vec::new)
                .extend(patterns.iter().cloned());
        }
        self
    }

    /// Whether `server.tool` may be seen and called.
    pub fn permits(&self, server: &str, tool: &str) -> bool {
        let by_server = self
            .servers
            .get(server)
            .is_none_or(|patterns| patterns.iter().any(|p| glob_match(p, tool)));
        by_server
            && self.run.as_ref().is_none_or(|patterns| {
                let name = format!("{server}.{tool}");
                patterns.iter().any(|p| glob_match(p, &name))
            })
    }

    /// Whether some tool of `server` may be permitted, judged from the
    /// patterns alone, so that asking never has to start the server.
    pub fn may_reach(&self, server: &str) -> bool {
        let Some(patterns) = &self.run else {
            return true;
        };
        let prefix = format!("{server}.");
        patterns
            .iter()
            .any(|pattern| match pattern.split_once('*') {
                None => pattern.starts_with(&prefix),
                // A `*` takes any text, so once the literal head agrees with
                // `server.` the rest of the pattern can always be met.
                Some((head, _)) => prefix.starts_with(head) || head.starts_with(&prefix),
            })
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;
    use std::time::Duration;

    fn server(name: &str, allow: Option<&[&str]>) -> ResolvedServer {
        ResolvedServer {
            name: name.into(),
            transport: Transport::Http {
                url: "http://127.0.0.1:1/mcp".into(),
                headers: BTreeMap::new(),
            },
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            approve: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(1),
        }
    }

    fn patterns(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_lists_permit_every_tool() {
        let filter = ToolFilter::new(&[server("news", None)]);
        assert!(filter.permits("news", "search"));
        assert!(filter.permits("other", "anything"));
        assert!(filter.may_reach("news"));
    }

    #[test]
    fn a_servers_allow_list_names_its_tools() {
        let filter = ToolFilter::new(&[server("news", Some(&["fetch_*"])), server("time", None)]);
        assert!(filter.permits("news", "fetch_latest"));
        assert!(!filter.permits("news", "search"));
        assert!(filter.permits("time", "convert_time"));
    }

    #[test]
    fn run_patterns_match_server_dot_tool() {
        let filter = ToolFilter::default().narrowed(&patterns(&["news.fetch_*", "time.*"]));
        assert!(filter.permits("news", "fetch_latest"));
        assert!(filter.permits("time", "convert_time"));
        assert!(!filter.permits("news", "search"));
        assert!(!filter.permits("git", "git_log"));
    }

    #[test]
    fn run_patterns_narrow_a_server_list_and_never_widen_it() {
        let filter =
            ToolFilter::new(&[server("news", Some(&["fetch_*"]))]).narrowed(&patterns(&["news.*"]));
        assert!(filter.permits("news", "fetch_latest"));
        assert!(!filter.permits("news", "search"));
    }

    #[test]
    fn an_empty_narrowing_changes_nothing() {
        let filter = ToolFilter::default().narrowed(&[]);
        assert_eq!(filter, ToolFilter::default());
        assert!(filter.permits("news", "search"));
    }

    #[test]
    fn run_patterns_reach_the_servers_they_can_name() {
        let filter =
            ToolFilter::default().narrowed(&patterns(&["news.fetch_*", "ti*", "*.search"]));
        assert!(filter.may_reach("news"));
        assert!(filter.may_reach("time"));
        assert!(filter.may_reach("anything"));
        let filter = ToolFilter::default().narrowed(&patterns(&["news.fetch_*"]));
        assert!(!filter.may_reach("git"));
        assert!(!filter.may_reach("new"));
    }

    #[test]
    fn glob_stars_match_any_run_of_characters() {
        assert!(glob_match("get_*_time", "get_current_time"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("get_*", "set_time"));
        assert!(!glob_match("a*a", "a"));
    }
}
