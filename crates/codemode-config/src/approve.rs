//! Which tool calls wait for a person's yes: each server's `approve` list
//! (tool-name patterns) and the run's `server.tool` patterns (`--approve`).
//! Patterns are written as `allow`'s are ([`crate::glob_match`]).

use std::collections::BTreeMap;

use crate::{glob_match, ResolvedServer};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApprovalRules {
    servers: BTreeMap<String, Vec<String>>,
    run: Vec<String>,
}

impl ApprovalRules {
    /// Every server's `approve` list.
    pub fn new(servers: &[ResolvedServer]) -> ApprovalRules {
        ApprovalRules {
            servers: servers
                .iter()
                .filter(|s| !s.approve.is_empty())
                .map(|s| (s.name.clone(), s.approve.clone()))
                .collect(),
            run: Vec::new(),
        }
    }

    /// With `patterns` (`server.tool`, `*` wildcards) needing approval too.
    pub fn adding(mut self, patterns: &[String]) -> ApprovalRules {
        self.run.extend(patterns.iter().cloned());
        self
    }

    /// Whether a call of `server.tool` needs a person's yes.
    pub fn needs(&self, server: &str, tool: &str) -> bool {
        let by_server = self
            .servers
            .get(server)
            .is_some_and(|patterns| patterns.iter().any(|p| glob_match(p, tool)));
        by_server || {
            let name = format!("{server}.{tool}");
            self.run.iter().any(|p| glob_match(p, &name))
        }
    }

    /// Whether no call needs approval at all.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.run.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;
    use std::time::Duration;

    fn server(name: &str, approve: &[&str]) -> ResolvedServer {
        ResolvedServer {
            name: name.into(),
            transport: Transport::Http {
                url: "http://127.0.0.1:1/mcp".into(),
                headers: BTreeMap::new(),
            },
            allow: None,
            approve: approve.iter().map(|p| p.to_string()).collect(),
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_servers_approve_list_names_its_own_tools_only() {
        let rules =
            ApprovalRules::new(&[server("mail", &["send_*", "delete_*"]), server("news", &[])]);
        assert!(rules.needs("mail", "send_message"));
        assert!(rules.needs("mail", "delete_all"));
        assert!(!rules.needs("mail", "list_inbox"));
        assert!(
            !rules.needs("news", "send_digest"),
            "another server's list does not apply"
        );
    }

    #[test]
    fn run_patterns_name_server_dot_tool() {
        let rules = ApprovalRules::new(&[server("mail", &[])])
            .adding(&["mail.archive".into(), "git.*".into()]);
        assert!(rules.needs("mail", "archive"));
        assert!(rules.needs("git", "git_commit"));
        assert!(!rules.needs("mail", "archive_all"));
        assert!(!rules.needs("time", "get_current_time"));
    }

    #[test]
    fn no_lists_need_nothing() {
        let rules = ApprovalRules::new(&[server("mail", &[])]);
        assert!(rules.is_empty());
        assert!(!rules.needs("mail", "send"));
    }
}
