//! How this backend's failures are sorted for the caller: unavailable (nothing
//! ran, another backend or a fix may help), failed, or lost (the engine went
//! away mid-run, so the script's outcome is unknown).

use bollard::errors::Error as DockerError;

use super::engine::{self, ENGINE_REPLY};
use super::RUN_LABEL;
use crate::{RunSpec, SandboxError};

const BACKEND: &str = "docker";

/// Why a run could not be seen through.
pub(super) enum Failure {
    /// The engine stopped answering mid-run (why, in a few words): the
    /// container's fate is unknown and asking it anything more is pointless.
    EngineLost(String),
    /// The engine stopped answering `request` before the container started:
    /// the script never ran.
    Unanswered(&'static str),
    Other(SandboxError),
}

impl From<SandboxError> for Failure {
    fn from(err: SandboxError) -> Failure {
        Failure::Other(err)
    }
}

pub(super) fn create_error(image: &str, err: DockerError) -> SandboxError {
    match err {
        // The image went away between connect and this run.
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => unavailable(format!(
            "image {image} is not on the engine ({message}); run `docker pull {image}` \
             or set `sandbox.image` to a local image"
        )),
        err => failed(format!("creating the container: {err}")),
    }
}

pub(super) fn start_error(spec: &RunSpec, err: DockerError) -> SandboxError {
    // Most start failures are mounts: the engine cannot see our paths (a
    // remote engine) or the image lacks python3.
    failed(format!(
        "starting the container (inputs {}, bridge {}): {err}",
        spec.inputs.display(),
        spec.bridge_dir.display()
    ))
}

/// The engine went away while `name` ran. The run's outcome is unknown and
/// the container may outlive it (a crashed daemon leaves it running, and no
/// one can remove it now), so the message says where to look.
pub(super) fn engine_lost(name: &str, cause: &dyn std::fmt::Display) -> SandboxError {
    SandboxError::Lost {
        backend: BACKEND,
        reason: format!(
            "the Docker engine at {} went away during the run ({cause}); the script's \
             outcome is unknown and its container {name} may be left behind \
             (`docker ps -a --filter label={RUN_LABEL}`)",
            engine::host()
        ),
    }
}

/// The engine answered the ping but then stopped answering before the script
/// started: nothing ran, so the sandbox is unavailable rather than the run lost.
pub(super) fn unanswered(request: &str, name: &str) -> SandboxError {
    unavailable(format!(
        "the Docker engine at {} stopped answering: {request} got no reply in {} s; \
         its container {name} may be left behind (`docker ps -a --filter label={RUN_LABEL}`)",
        engine::host(),
        ENGINE_REPLY.as_secs()
    ))
}

pub(super) fn unavailable(reason: String) -> SandboxError {
    SandboxError::Unavailable {
        backend: BACKEND,
        reason,
    }
}

pub(super) fn failed(reason: String) -> SandboxError {
    SandboxError::Failed {
        backend: BACKEND,
        reason,
    }
}
