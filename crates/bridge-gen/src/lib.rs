//! MCP tool lists → `mcp_tools.py`, the standard-library-only Python module a
//! codemode script imports to call MCP tools as ordinary methods.
//!
//! The crate is pure: strings and [`serde_json::Value`]s in, Python source out.
//! Everything the generated module must honour (the RPC wire, naming rules, the
//! manifest comment lines) is decided here, so the binary only has to fetch the
//! tool lists and write the text somewhere.
//!
//! Naming policy: Python names are ASCII identifiers. Non-ASCII letters are
//! folded to ASCII where there is an obvious fold (`é` → `e`) and replaced by
//! `_` otherwise; keywords get a trailing `_` (`class` → `class_`); collisions
//! get `_2`, `_3`… in sorted order of the original names, with names that were
//! already valid identifiers served first so that adding a tool never renames an
//! existing one. The original names always travel on the wire unchanged.

mod docs;
mod literal;
mod manifest;
mod naming;
mod render;
mod types;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use docs::summary_line;

/// The tools of one configured MCP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerTools {
    /// The server's name as configured (e.g. `news_api`; may contain dashes,
    /// dots or anything else). Travels on the wire unchanged.
    pub name: String,
    /// The server's tools, in any order (the output is sorted).
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
}

/// One tool as an MCP server's `tools/list` describes it.
///
/// Deserializes from raw `tools/list` tool objects (`inputSchema` /
/// `outputSchema`) as well as from snake_case field names; unknown fields such
/// as `annotations` or `title` are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolSpec {
    /// The original MCP tool name (travels on the wire unchanged).
    pub name: String,
    /// Becomes the method's docstring; its first sentence is the summary.
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON Schema object; `{}`, a missing `properties` or even a non-object
    /// value are accepted and mean "no parameters".
    #[serde(default = "empty_object", alias = "inputSchema")]
    pub input_schema: serde_json::Value,
    /// The JSON Schema of the structured result; gives the method's return
    /// type (unwrapped when it carries `"x-fastmcp-wrap-result": true`).
    #[serde(default, alias = "outputSchema")]
    pub output_schema: Option<serde_json::Value>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// How much [`tool_signature`] says about a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// `news_api.fetch_latest`
    Name,
    /// `news_api.fetch_latest: Fetch the latest headlines.`
    Summary,
    /// The Python `def` with type hints and docstring, preceded by the
    /// `TypedDict`s its hints refer to.
    Full,
}

/// What changed between two manifests (each list sorted, keys `server.tool`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestDiff {
    /// In the new manifest only.
    pub added: Vec<String>,
    /// In the old manifest only.
    pub removed: Vec<String>,
    /// In both, with different fingerprints.
    pub changed: Vec<String>,
}

/// Renders the whole `mcp_tools.py` for these servers.
///
/// Deterministic: servers and tools are sorted by their original names, so a
/// review diff shows only real changes. Never panics, whatever the schemas hold;
/// parts of a schema it cannot express become `Any`. A server or tool name that
/// appears twice is generated once (the first occurrence wins). Object types
/// that would render the same but for their names are defined once, under the
/// name of their first occurrence, across tools and servers, so the model reads
/// each shape once.
pub fn generate(servers: &[ServerTools]) -> String {
    render::module(servers).text
}

/// [`generate`]'s module, with each server's part of it as a model reads it.
pub fn generate_module(servers: &[ServerTools]) -> Module {
    render::module(servers)
}

/// A generated `mcp_tools.py` and the parts of it each server contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The module's source, as [`generate`] returns it.
    pub text: String,
    /// One entry per server, in the module's order (sorted by configured name).
    pub servers: Vec<ServerApi>,
}

impl Module {
    /// The API of the server configured as `name`.
    pub fn server(&self, name: &str) -> Option<&ServerApi> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Configured server name → the attribute scripts import.
    pub fn attrs(&self) -> BTreeMap<String, String> {
        self.servers
            .iter()
            .map(|s| (s.name.clone(), s.attr.clone()))
            .collect()
    }
}

/// One server's API as `get_api` shows it: its class with each method's
/// signature and docstring (the call itself left out: every line a model
/// reads is context it keeps), the `TypedDict`s those name, and the
/// instance, under the names scripts really import (collision suffixes
/// included).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerApi {
    /// The server's name as configured.
    pub name: String,
    /// The module attribute scripts import (`from mcp_tools import ATTR`).
    pub attr: String,
    /// Python source: the shapes, the class and the instance.
    pub api: String,
}

/// Reads the `# codemode-tool: server.tool FINGERPRINT` lines back out of a
/// module produced by [`generate`]: original `server.tool` names → fingerprint
/// of that tool's name, description and schemas. Lines that are not manifest
/// lines are ignored, so any text is accepted.
pub fn manifest(module_text: &str) -> BTreeMap<String, String> {
    manifest::parse(module_text)
}

/// Which tools were added, removed or changed between two manifests.
pub fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> ManifestDiff {
    manifest::diff(old, new)
}

/// Describes one tool for search UIs, as a script would call it
/// (`news_api.fetch_latest`).
///
/// The names are worked out for this tool alone; in a full module a collision
/// with a sibling tool can add a `_2` suffix that this does not know about, and
/// a shape the tool shares with a tool before it carries that tool's name.
pub fn tool_signature(server: &str, tool: &ToolSpec, detail: Detail) -> String {
    render::signature(server, tool, detail)
}
