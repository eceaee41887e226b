//! The one place where failures become a message on stderr and an exit code.

use crate::exec::Report;
use codemode_config::ConfigError;
use codemode_mcp::McpError;
use codemode_sandbox::SandboxError;

/// Exit codes other parts of the system and users' scripts rely on.
pub mod exit {
    pub const SUCCESS: i32 = 0;
    /// A general failure, and `gen-bridge --check` finding the file out of date.
    pub const FAILURE: i32 = 1;
    /// Bad usage or configuration.
    pub const USAGE: i32 = 2;
    /// An MCP server could not be started or reached.
    pub const UNAVAILABLE: i32 = 3;
    /// `ask`: the LLM provider failed (unreachable, still busy after the
    /// retries, a context too long, an answer that is not a completion).
    /// A missing key, an unknown provider or model, or a rejected key are
    /// configuration: USAGE.
    pub const PROVIDER: i32 = 4;
    /// `ask`: the step budget ran out before the model gave an answer.
    pub const STEP_BUDGET: i32 = 5;
    /// The script ran past its time limit (as `timeout(1)` reports it).
    pub const TIMEOUT: i32 = 124;
    /// The sandbox could not be set up, so the script did not run; or it was
    /// lost mid-run (the Docker engine went away), so how the script ended is
    /// unknown. Like `docker run`'s 125: a failure of the engine, not of the
    /// script, which is what 1 (a traceback) and 128+N (a signal) would claim.
    pub const SANDBOX: i32 = 125;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config error: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Mcp(#[from] McpError),
    #[error("{servers} failed (--allow-partial goes on without them)")]
    ServersFailed { servers: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Sandbox(SandboxError),
    /// The sandbox was lost mid-run ([`SandboxError::Lost`]); the report of
    /// what was seen until then goes with it, for `exec --json` and `serve`.
    #[error("{source}")]
    RunLost {
        report: Box<Report>,
        source: SandboxError,
    },
    #[error("{0}")]
    Llm(#[from] crate::agent::LlmError),
    #[error(
        "no answer after {steps} steps (the step budget); raise --max-steps or simplify the task"
    )]
    StepBudget { steps: u32 },
    #[error("stopped: {0}")]
    Declined(String),
    #[error("{0}")]
    Usage(String),
    /// The command already reported what happened; only the exit code is left.
    #[error("")]
    Reported(i32),
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => exit::USAGE,
            Error::Mcp(_) | Error::ServersFailed { .. } => exit::UNAVAILABLE,
            Error::Io { .. } | Error::Declined(_) => exit::FAILURE,
            Error::Llm(err) if err.is_configuration() => exit::USAGE,
            Error::Llm(_) => exit::PROVIDER,
            Error::StepBudget { .. } => exit::STEP_BUDGET,
            Error::Sandbox(_) | Error::RunLost { .. } => exit::SANDBOX,
            Error::Reported(code) => *code,
        }
    }
}

/// Prints the error as one line and returns the process exit code.
pub fn report(err: &Error) -> i32 {
    let message = err.to_string();
    if !message.is_empty() {
        // Errors from nested sources can carry newlines (a server's message); one
        // line keeps them greppable and keeps scripts' stderr parsing simple.
        eprintln!("codemode: error: {}", codemode_text::one_line(&message));
    }
    err.exit_code()
}
