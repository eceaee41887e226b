//! The one place where failures become a message on stderr and an exit code
//! (docs/ARCHITECTURE.md, "Exit codes"): every command returns an [`Error`],
//! and `main` asks it for its [`Error::code`] after [`Error::print_message`].

use codemode_config::ConfigError;
use codemode_mcp::McpError;
use codemode_run::{Exit, RunError, Signal};
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
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    Run(#[from] RunError),
    #[error("{0}")]
    Llm(#[from] codemode_agent::LlmError),
    #[error(
        "no answer after {steps} steps (the step budget); raise --max-steps or simplify the task"
    )]
    StepBudget { steps: u32 },
    #[error("stopped: {0}")]
    Declined(String),
    #[error("{0}")]
    Usage(String),
    /// The script ran and ended this way; its output and the report said
    /// the rest, so there is nothing to add.
    #[error("")]
    Script(Exit),
    /// A signal stopped codemode before the script started.
    #[error("stopped by {} before the script started", .0.name())]
    StoppedEarly(Signal),
    /// A signal stopped codemode; what it cut short was already reported.
    #[error("")]
    Stopped(Signal),
    /// A signal stopped codemode, and the sandbox then failed to answer.
    #[error("{cause}")]
    StoppedLost { signal: Signal, cause: SandboxError },
    /// `gen-bridge --check`: the module is out of date; the difference was printed.
    #[error("")]
    OutOfDate,
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The process exit code for this failure.
    pub fn code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => exit::USAGE,
            Error::Mcp(_) | Error::ServersFailed { .. } => exit::UNAVAILABLE,
            Error::Io { .. } | Error::Declined(_) | Error::OutOfDate => exit::FAILURE,
            Error::Llm(err) if err.is_configuration() => exit::USAGE,
            Error::Llm(_) => exit::PROVIDER,
            Error::StepBudget { .. } => exit::STEP_BUDGET,
            Error::Sandbox(_) | Error::Run(RunError::Sandbox(_)) => exit::SANDBOX,
            Error::Run(RunError::Io { .. } | RunError::Token(_)) => exit::FAILURE,
            Error::Script(Exit::Status(code)) => *code,
            Error::Script(Exit::TimedOut) => exit::TIMEOUT,
            Error::Script(Exit::Failed) => exit::FAILURE,
            Error::StoppedEarly(signal)
            | Error::Stopped(signal)
            | Error::StoppedLost { signal, .. } => signal.exit_code(),
        }
    }

    /// Says what failed on stderr, as one line, unless it was already said.
    pub fn print_message(&self) {
        let message = self.to_string();
        if message.is_empty() {
            return;
        }
        // Errors from nested sources can carry newlines (a server's message); one
        // line keeps them greppable and keeps scripts' stderr parsing simple.
        let message = codemode_text::one_line(&message);
        match self {
            // Not a failure of codemode's: the user stopped it.
            Error::StoppedEarly(_) => eprintln!("codemode: {message}"),
            _ => eprintln!("codemode: error: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_exit_is_passed_through_and_a_timeout_is_124() {
        assert_eq!(Error::Script(Exit::Status(3)).code(), 3);
        assert_eq!(Error::Script(Exit::Status(137)).code(), 137);
        assert_eq!(Error::Script(Exit::TimedOut).code(), exit::TIMEOUT);
        assert_eq!(Error::Script(Exit::Failed).code(), exit::FAILURE);
    }

    #[test]
    fn a_stop_signal_ends_codemode_as_shells_report_it() {
        assert_eq!(Error::StoppedEarly(Signal::Interrupt).code(), 130);
        assert_eq!(Error::Stopped(Signal::Terminate).code(), 143);
    }

    #[test]
    fn a_failed_random_source_is_not_a_usage_error() {
        let err = Error::Run(RunError::Token("no entropy".into()));
        assert_eq!(err.code(), exit::FAILURE);
    }

    #[test]
    fn only_failures_the_output_did_not_already_tell_have_a_message() {
        assert!(Error::Script(Exit::Status(1)).to_string().is_empty());
        assert!(Error::Stopped(Signal::Interrupt).to_string().is_empty());
        assert!(Error::OutOfDate.to_string().is_empty());
        assert_eq!(
            Error::StoppedEarly(Signal::Terminate).to_string(),
            "stopped by SIGTERM before the script started"
        );
    }
}
