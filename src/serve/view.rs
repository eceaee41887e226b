//! What clients of `serve` see of the wrapped servers, while they start.
//!
//! `initialize` must not wait for them: one server that hangs on start, or a
//! first `npx` install, would hold the answer for its connect timeout, and
//! desktop clients give up sooner. So every server starts in the background,
//! and the view (tool list, stub module, index) is rebuilt each time one
//! finishes starting; sessions are told with `notifications/tools/list_changed`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::Tool;
use tokio::sync::watch;

use super::handler;
use codemode_config::{ResolvedServer, ToolFilter};
use codemode_mcp::catalog::{self, Catalog};
use codemode_mcp::{McpError, Registry};

/// How long a request that reads the view (tools/list, search, get_api, the
/// module) waits for servers still starting: servers that come up at once
/// are then in the first answer, and a hung one delays it no more than this.
pub const START_GRACE: Duration = Duration::from_secs(1);

/// One consistent picture of the servers, replaced whole.
pub struct View {
    pub catalog: Catalog,
    /// The stub module every run imports (also the resource), with each
    /// server's part of it for `get_api`.
    pub module: bridge_gen::Module,
    pub tools: Vec<Tool>,
    /// Servers that failed to start, each as `name (why)` in codemode's words.
    pub unavailable: Vec<String>,
    /// Servers still starting, by configured name.
    pub starting: Vec<String>,
}

/// How the tools are described, fixed at startup.
pub struct Shape {
    /// What runs may see and call: the servers' `allow` lists and `--allow`.
    pub filter: ToolFilter,
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub index_budget: usize,
    /// How long an unused session lives.
    pub session_idle: Duration,
}

enum Status {
    Starting,
    Ready(Vec<Tool>),
    Failed(McpError),
}

pub struct Views {
    specs: Vec<ResolvedServer>,
    shape: Shape,
    statuses: Mutex<BTreeMap<String, Status>>,
    current: watch::Sender<Arc<View>>,
}

impl Views {
    /// Every server starting, nothing listed yet.
    pub fn new(specs: Vec<ResolvedServer>, shape: Shape) -> Views {
        let statuses = specs
            .iter()
            .map(|s| (s.name.clone(), Status::Starting))
            .collect();
        let views = Views {
            specs,
            shape,
            statuses: Mutex::new(statuses),
            current: watch::Sender::new(Arc::new(View::empty())),
        };
        views.rebuild();
        views
    }

    pub fn current(&self) -> Arc<View> {
        self.current.borrow().clone()
    }

    /// Told of every new view; a session forwards them as list changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.current.subscribe()
    }

    /// Starts every server and lists its tools, each on its own; returns when
    /// all have answered or failed. Each start is bounded by the server's own
    /// connect and call timeouts.
    pub async fn start_all(&self, registry: &Registry) {
        let starts = self.specs.iter().map(|spec| async move {
            let status = match registry.list_tools(&spec.name).await {
                Ok(tools) => Status::Ready(tools),
                Err(err) => {
                    // A desktop client starts `serve` with every server it
                    // knows; one that fails must not take the others away.
                    eprintln!("codemode: warning: {err}; its tools are left out");
                    Status::Failed(err)
                }
            };
            self.lock().insert(spec.name.clone(), status);
            self.rebuild();
        });
        futures::future::join_all(starts).await;
    }

    /// The view once none of `names` is starting any more, or at `deadline`,
    /// whichever comes first.
    pub async fn settled(&self, names: &BTreeSet<String>, within: Duration) -> Arc<View> {
        let mut watching = self.subscribe();
        let done = watching.wait_for(|view| !view.starting.iter().any(|s| names.contains(s)));
        let _ = tokio::time::timeout(within, done).await;
        self.current()
    }

    /// The view once every server has started or `within` has passed.
    pub async fn settled_all(&self, within: Duration) -> Arc<View> {
        let all: BTreeSet<String> = self.specs.iter().map(|s| s.name.clone()).collect();
        self.settled(&all, within).await
    }

    /// The servers `code` names that are still starting, each with its
    /// connect timeout: a script that imports a server must wait for it,
    /// while one that does not must not wait for a server that hangs.
    pub fn named_and_starting(&self, code: &str) -> (BTreeSet<String>, Duration) {
        let words: BTreeSet<&str> = code
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        let view = self.current();
        let mut names = BTreeSet::new();
        let mut longest = Duration::ZERO;
        for spec in &self.specs {
            if view.starting.contains(&spec.name)
                && words.contains(python_name(&spec.name).as_str())
            {
                names.insert(spec.name.clone());
                // Its start lists tools after connecting, so both bound it.
                longest = longest.max(spec.connect_timeout + spec.call_timeout);
            }
        }
        (names, longest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Status>> {
        self.statuses.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the view afresh from what the servers said: when one has
    /// started or failed, and once the tokenizer is loaded.
    pub fn rebuild(&self) {
        let statuses = self.lock();
        let mut listings = Vec::new();
        let mut starting = Vec::new();
        let mut unavailable = Vec::new();
        for spec in &self.specs {
            match statuses.get(&spec.name) {
                Some(Status::Ready(tools)) => listings.push((spec, Ok(tools.clone()))),
                Some(Status::Failed(err)) => {
                    // The model reads this: codemode's own reason only, since
                    // a server's stderr can quote its secrets.
                    unavailable.push(format!("{} ({})", spec.name, err.brief()));
                    listings.push((spec, Err(err.clone())));
                }
                Some(Status::Starting) | None => starting.push(spec.name.clone()),
            }
        }
        let (catalog, _failures) = catalog::from_listings(listings, &self.shape.filter);
        let module = bridge_gen::generate_module(&catalog.servers);
        let tools = handler::tools(&catalog, &module, &self.shape, &starting, &unavailable);
        // Sent with the statuses still locked, so a view built from older
        // statuses never replaces a newer one.
        self.current.send_replace(Arc::new(View {
            catalog,
            module,
            tools,
            unavailable,
            starting,
        }));
        drop(statuses);
    }
}

impl View {
    fn empty() -> View {
        let catalog = Catalog {
            servers: Vec::new(),
            raw: BTreeMap::new(),
        };
        View {
            catalog,
            module: bridge_gen::generate_module(&[]),
            tools: Vec::new(),
            unavailable: Vec::new(),
            starting: Vec::new(),
        }
    }

    /// What is left out of the tools for now, if anything.
    pub fn missing_note(&self) -> Option<String> {
        missing_note(&self.starting, &self.unavailable)
    }
}

/// Lines naming the servers still starting and those that failed to.
pub fn missing_note(starting: &[String], unavailable: &[String]) -> Option<String> {
    let mut text = String::new();
    if !starting.is_empty() {
        text.push_str(&format!(
            "Still starting, so not listed yet (the tool list changes when they are up): {}.\n",
            starting.join(", ")
        ));
    }
    if !unavailable.is_empty() {
        text.push_str(&format!(
            "Failed to start, so left out: {}.\n",
            unavailable.join(", ")
        ));
    }
    (!text.is_empty()).then_some(text)
}

/// The name a script would use for a server: the module attribute
/// `bridge_gen` derives, as far as it matters for spotting it in code.
fn python_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_name_is_spotted_as_a_script_writes_it() {
        assert_eq!(python_name("my-server"), "my_server");
        assert_eq!(python_name("news"), "news");
        assert_eq!(python_name("a.b--c"), "a_b_c");
    }
}
