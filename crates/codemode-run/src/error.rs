/// Why a run could not be made or finished. How the script itself ended is
/// never an error: it is in the [`crate::Report`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Sandbox(#[from] codemode_sandbox::SandboxError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The system's random source failed, so no grant token could be made.
    #[error("cannot make a token for the run: {0}")]
    Token(String),
}

impl RunError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
        let context = context.into();
        move |source| RunError::Io { context, source }
    }
}
