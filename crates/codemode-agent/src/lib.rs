//! `codemode ask`: an LLM → code → sandbox loop (docs/ARCHITECTURE.md, "The `ask` loop").
//!
//! Each step the model answers the signature in `prompt` with its reasoning
//! and either a script or the final answer. A script is checked (it parses,
//! it uses the tools, it prints), run exactly as `exec` runs one, and what
//! happened (output, traceback, time-out, tool errors) goes back as the next
//! observation, as `dspy.Refine` feeds back failures, until the model answers
//! or the step budget ends.

mod agent;
mod check;
mod prompt;
pub mod provider;
mod signature;
pub mod trace;

pub use agent::{Agent, AgentError, Pending, Scripts, Ui};
pub use prompt::{tools_text, SESSION_SIGNATURE, SIGNATURE};
pub use provider::{Client, LlmError};
