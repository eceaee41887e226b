//! The Docker sandbox, through bollard, against whatever engine `DOCKER_HOST`
//! names.
//!
//! One fresh container per run, created from the configured image with every
//! isolation knob Docker has turned to its tightest (docs/ARCHITECTURE.md, "Sandboxes"):
//! no network, all capabilities dropped, no-new-privileges, a seccomp
//! allowlist (sockets only of family AF_UNIX, no ptrace, no io_uring: the same
//! rules as the native sandbox), a read-only root, a sized tmpfs `/tmp`, the
//! run's own host uid (see [`DockerSandbox::run_user`]), and memory / CPU /
//! pids limits. The run's workspace and the bridge socket's directory come in
//! as bind mounts, so the engine must see the same filesystem as codemode (a
//! local engine, or a remote one sharing the paths).
//!
//! The container is always removed: on every normal and error path `run`
//! removes it before returning, and a guard removes it in the background if the
//! future is dropped mid-run. Every container carries the label
//! [`RUN_LABEL`]`=<run id>` so leftovers can be found (`docker ps -a --filter
//! label=codemode.run`).
//!
//! `engine` reaches the engine, `image` makes sure it has the image,
//! `container` says what the container is, `supervise` sees one run through,
//! `cleanup` removes the container, `errors` sorts what goes wrong.

use std::collections::HashMap;

use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::Docker;
use tokio_util::sync::CancellationToken;

use super::{host_user, Finished, OutputSink, RunSpec, RunUser, SandboxError};

mod cleanup;
mod container;
mod engine;
mod errors;
mod image;
mod seccomp;
mod supervise;
#[cfg(test)]
mod tests;

pub(super) use cleanup::wait_for_removals;

use cleanup::ContainerGuard;
use engine::ENGINE_REPLY;
use errors::{create_error, engine_lost, failed, unanswered, unavailable, Failure};
use image::Pull;

/// Label on every container this backend creates; its value is the run's id.
pub const RUN_LABEL: &str = "codemode.run";

pub struct DockerSandbox {
    docker: Docker,
    image: String,
    /// Extra labels on every container (tests use one to count their own).
    labels: HashMap<String, String>,
}

impl DockerSandbox {
    /// Connects to the engine and makes sure the image is there, pulling it
    /// (with a progress bar on stderr) if it is not.
    pub async fn connect(image: &str) -> Result<DockerSandbox, SandboxError> {
        DockerSandbox::connect_to(image, Pull::IfMissing).await
    }

    /// As [`DockerSandbox::connect`], but an image the engine lacks is an
    /// error rather than a pull: for questions about this machine.
    pub async fn connect_without_pull(image: &str) -> Result<DockerSandbox, SandboxError> {
        DockerSandbox::connect_to(image, Pull::Never).await
    }

    async fn connect_to(image: &str, pull: Pull) -> Result<DockerSandbox, SandboxError> {
        let docker = engine::connect().await.map_err(unavailable)?;
        image::ensure(&docker, image, pull).await?;
        Ok(DockerSandbox {
            docker,
            image: image.to_string(),
            labels: HashMap::new(),
        })
    }

    /// The host user the next run's container will run as. The engine runs
    /// as root and, without user namespace remapping, a container's uid is
    /// that uid on the host, whoever runs codemode: as root, one of the
    /// run's own, like the native sandbox's (see [`host_user`]).
    pub fn run_user() -> Result<RunUser, SandboxError> {
        let euid = nix::unistd::geteuid();
        if euid.is_root() && host_user::range_is_mapped() {
            return RunUser::leased().map_err(unavailable);
        }
        if euid.is_root() {
            // Root of a user namespace without the unused range cannot
            // give the run's directory to one of them.
            return Ok(RunUser::nobody());
        }
        // Without root only the invoking user can own the run's directory
        // and socket, which keeps them private; the container then runs as
        // that uid, as the native sandbox does, rather than as `nobody`,
        // whose processes (host daemons among them) could read the
        // script's environment, token included.
        Ok(RunUser::invoking())
    }

    /// Adds a label to every container this sandbox creates.
    #[cfg(test)]
    fn with_label(mut self, key: &str, value: &str) -> DockerSandbox {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Runs `spec` in a fresh container, streaming its output into `sink`,
    /// until it exits, times out, floods its output or `cancel` fires. The
    /// container is gone when this returns (or, if this future is dropped,
    /// shortly after).
    pub async fn run(
        &self,
        spec: &RunSpec,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<Finished, SandboxError> {
        if cancel.is_cancelled() {
            return Ok(Finished {
                cancelled: true,
                ..Finished::default()
            });
        }
        let run_id = run_id()?;
        let name = format!("codemode-{run_id}");
        let body = container::body(&self.image, &self.labels, spec, &run_id)?;
        // The guard exists before the create request is sent: if this future
        // is dropped while the engine is still creating, the container is
        // removed by name once it exists.
        let guard = ContainerGuard::new(self.docker.clone(), name.clone());
        let create = self.docker.create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        );
        let outcome = match tokio::time::timeout(ENGINE_REPLY, create).await {
            Err(_) => Err(Failure::Unanswered("creating the container")),
            Ok(Ok(created)) => {
                // E.g. "no swap limit support": the run goes ahead (the
                // memory limit itself holds), but the operator should know.
                for warning in created.warnings {
                    tracing::warn!("docker sandbox: the engine warns: {warning}");
                }
                supervise::supervise(&self.docker, &name, spec, sink, cancel).await
            }
            Ok(Err(err)) => Err(Failure::Other(create_error(&self.image, err))),
        };
        match outcome {
            Ok(finished) => {
                guard.remove().await;
                Ok(finished)
            }
            Err(Failure::Other(err)) => {
                guard.remove().await;
                Err(err)
            }
            // Asking a gone or wedged engine to remove the container would
            // only add its timeouts to the user's wait; the guard tries in
            // the background in case the engine comes back.
            Err(Failure::EngineLost(cause)) => {
                guard.leave_to_chance();
                Err(engine_lost(&name, &cause))
            }
            Err(Failure::Unanswered(request)) => {
                guard.leave_to_chance();
                Err(unanswered(request, &name))
            }
        }
    }
}

/// A fresh id for a run: random, so concurrent codemode processes sharing an
/// engine never collide on container names.
fn run_id() -> Result<String, SandboxError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|err| failed(format!("no randomness for a run id: {err}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
