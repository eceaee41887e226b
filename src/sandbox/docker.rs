//! The Docker sandbox, through bollard, against whatever engine `DOCKER_HOST`
//! names. (Being built.)

use tokio_util::sync::CancellationToken;

use super::{Finished, OutputSink, RunSpec, SandboxError};

pub struct DockerSandbox {
    #[allow(dead_code)]
    image: String,
}

impl DockerSandbox {
    /// Connects to the engine and makes sure the image is there.
    pub async fn connect(image: &str) -> Result<DockerSandbox, SandboxError> {
        Err(SandboxError::Unavailable {
            backend: "docker",
            reason: format!("not built yet (image {image})"),
        })
    }

    pub async fn run(
        &self,
        _spec: &RunSpec,
        _sink: &OutputSink,
        _cancel: CancellationToken,
    ) -> Result<Finished, SandboxError> {
        Err(SandboxError::Unavailable {
            backend: "docker",
            reason: "not built yet".into(),
        })
    }
}
