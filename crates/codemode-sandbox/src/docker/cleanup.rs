//! Removing a run's container, on every path: in line when the run ends,
//! and from a background thread when the run's future is dropped mid-way.
//!
//! The background removals are counted process-wide, so that the process can
//! wait for them before it exits ([`crate::finish_cleanup`]).
//! Nothing narrower can hold them: a removal starts in a `Drop` impl, which
//! has no async context and no caller to hand the work back to, and the
//! runtime that ran the run is often the very thing being shut down.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;

use super::engine;

/// Removes the container when the run is over. `remove` does it in line;
/// dropping the guard without calling it (the run's future was dropped)
/// removes it from a background thread.
pub(super) struct ContainerGuard {
    docker: Docker,
    name: String,
    armed: bool,
    /// Whether the process waits for the background removal before exiting.
    waited: bool,
}

impl ContainerGuard {
    pub(super) fn new(docker: Docker, name: String) -> ContainerGuard {
        ContainerGuard {
            docker,
            name,
            armed: true,
            waited: true,
        }
    }

    /// For an engine that stopped answering: the background removal is still
    /// tried, but exiting does not wait for it, since the user has already
    /// been told the container may be left behind.
    pub(super) fn leave_to_chance(mut self) {
        self.waited = false;
    }

    pub(super) async fn remove(mut self) {
        if force_remove(&self.docker, &self.name).await {
            self.armed = false;
        }
        // Otherwise Drop tries again in the background.
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let name = self.name.clone();
        // Counted until the thread ends, so the process can wait for it
        // before exiting.
        let pending = self.waited.then(|| PendingRemoval::new(&name));
        // A thread with its own runtime and its own connection, not a task on
        // the caller's runtime: the future is often dropped because that
        // runtime is shutting down, which would cancel a spawned task (and the
        // pooled connections that belong to it) before the container is gone.
        let spawned = std::thread::Builder::new()
            .name("codemode-docker-cleanup".into())
            .spawn(move || {
                let _pending = pending;
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    let Ok(docker) = Docker::connect_with_defaults() else {
                        return;
                    };
                    // A create request may still be in flight: if the
                    // container is not there yet, look again a few times.
                    for _ in 0..5 {
                        match remove_container(&docker, &name).await {
                            Removal::Removed => return,
                            Removal::NotThere | Removal::Unreachable(_) | Removal::Failed(_) => {
                                tokio::time::sleep(Duration::from_millis(500)).await
                            }
                        }
                    }
                    tracing::warn!("docker sandbox: could not remove container {name}");
                });
            });
        if let Err(err) = spawned {
            tracing::warn!(
                "docker sandbox: cannot remove container {}: {err}",
                self.name
            );
        }
    }
}

/// The containers that dropped guards are removing in the background. A
/// stopped command drops its runs with the runtime and then exits, which
/// would kill those threads mid-removal and leave the containers behind.
static REMOVALS: (Mutex<Vec<String>>, Condvar) = (Mutex::new(Vec::new()), Condvar::new());

/// One background removal under way; done when dropped, however the thread
/// ends (or if it never starts).
struct PendingRemoval(String);

impl PendingRemoval {
    fn new(name: &str) -> PendingRemoval {
        let (names, _) = &REMOVALS;
        names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_string());
        PendingRemoval(name.to_string())
    }
}

impl Drop for PendingRemoval {
    fn drop(&mut self) {
        let (names, done) = &REMOVALS;
        let mut names = names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = names.iter().position(|name| *name == self.0) {
            names.swap_remove(at);
        }
        done.notify_all();
    }
}

/// Waits up to `limit` for the containers being removed in the background
/// (by runs dropped mid-way) to be gone; returns those still pending.
pub(crate) fn wait_for_removals(limit: Duration) -> Vec<String> {
    let (names, done) = &REMOVALS;
    let names = names.lock().unwrap_or_else(PoisonError::into_inner);
    let (names, _) = done
        .wait_timeout_while(names, limit, |names| !names.is_empty())
        .unwrap_or_else(PoisonError::into_inner);
    names.clone()
}

enum Removal {
    Removed,
    NotThere,
    /// No engine answers: retrying at once is pointless.
    Unreachable(DockerError),
    Failed(DockerError),
}

async fn remove_container(docker: &Docker, name: &str) -> Removal {
    // force: kill it first if it still runs; v: its anonymous volumes too.
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => Removal::Removed,
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Removal::NotThere,
        Err(err) if engine::unreachable(&err) => Removal::Unreachable(err),
        Err(err) => Removal::Failed(err),
    }
}

/// Force-removes `name`, retrying briefly: the engine answers 409 while a
/// removal it already started is in progress. True once it is gone.
async fn force_remove(docker: &Docker, name: &str) -> bool {
    for attempt in 0..3 {
        match remove_container(docker, name).await {
            Removal::Removed | Removal::NotThere => return true,
            // The run already failed for this reason and said so; the guard
            // tries once more in the background in case the engine is back.
            Removal::Unreachable(err) => {
                tracing::debug!("docker sandbox: removing {name}: {err}");
                return false;
            }
            Removal::Failed(err) => {
                tracing::warn!(
                    "docker sandbox: removing {name} (attempt {}): {err}",
                    attempt + 1
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    false
}
