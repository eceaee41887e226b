//! The `codemode` binary's library: the command line, the commands, and the
//! one error type. The work is done by the crates under `crates/`
//! (docs/ARCHITECTURE.md, "Layout and dependencies"); `main.rs` only parses
//! the command line, dispatches and sets the exit code.

pub mod approval;
mod atomic;
pub mod cli;
pub mod commands;
pub mod context;
pub mod error;
mod progress;
pub mod serve;
mod terminal;
