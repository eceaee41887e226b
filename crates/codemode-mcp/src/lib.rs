//! codemode's side of MCP (docs/ARCHITECTURE.md, "Crates"): the `Registry` of
//! client sessions (one per configured server, started on first use and
//! shared by every run), the `catalog` of what they offer with the one
//! `discovery` ranking every search uses, and the `bridge` that sandboxed code
//! calls them through.

pub mod bridge;
pub mod catalog;
pub mod discovery;
pub mod index;
mod registry;
pub mod tokens;

pub use registry::{map_result, McpError, Registry, ServerState, ToolInfo};
