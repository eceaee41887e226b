//! The native Linux sandbox: namespaces, a minimal read-only root, Landlock,
//! seccomp, rlimits and cgroups, with no daemon. (Being built.)

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::{Finished, OutputSink, RunSpec, SandboxError};

/// The hidden first argument with which codemode re-executes itself as the
/// sandbox's setup process.
pub const INIT_ARG: &str = "__sandbox-init";

pub struct NativeSandbox {
    #[allow(dead_code)]
    python: Option<PathBuf>,
}

impl NativeSandbox {
    pub fn new(python: Option<PathBuf>) -> Result<NativeSandbox, SandboxError> {
        Ok(NativeSandbox { python })
    }

    pub async fn run(
        &self,
        _spec: &RunSpec,
        _sink: &OutputSink,
        _cancel: CancellationToken,
    ) -> Result<Finished, SandboxError> {
        Err(SandboxError::Unavailable {
            backend: "native",
            reason: "not built yet".into(),
        })
    }
}

/// The setup process's entry point (`codemode __sandbox-init ...`).
pub fn init_main() -> ! {
    eprintln!("codemode: the native sandbox is not built yet");
    std::process::exit(125)
}
