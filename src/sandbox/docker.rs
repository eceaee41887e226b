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

use std::collections::HashMap;
use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{
    host_user, Finished, HostUser, OutputSink, RunSpec, RunUser, SandboxError, Stream,
    BRIDGE_SOCKET_NAME, PROC_MASKED_FILES, PYTHON_FLAGS, SANDBOX_BRIDGE_DIR, SANDBOX_WORKSPACE,
    WORKSPACE_INODES,
};

mod seccomp;

const BACKEND: &str = "docker";

/// Label on every container this backend creates; its value is the run's id.
pub const RUN_LABEL: &str = "codemode.run";

/// How long the engine gets to answer a ping before we call it unavailable:
/// long enough for a busy local daemon, short enough that `auto` falls back to
/// native without a noticeable pause.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// After the container is killed (timeout, flood, cancel), how long we wait
/// for the engine to report it gone before giving up on its exit status. The
/// force-remove that follows kills it regardless.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// After the script has exited, how long its last output may take to arrive.
/// Once the container is gone its pipes are closed, so this only matters if
/// the attach stream is wedged.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// How long a question about a finished run (its state) may take. A live
/// engine answers in milliseconds; a wedged one would otherwise hold the run
/// for bollard's two-minute request timeout.
const ENGINE_REPLY: Duration = Duration::from_secs(10);

/// A pull that reports no progress for this long is abandoned.
const PULL_STALL: Duration = Duration::from_secs(120);

/// The `PATH` every run gets: Debian's, which is what python images use.
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const SIGKILL: i32 = 9;

/// Where the container sees the run's inputs (read-only), to copy them into
/// its workspace.
const INPUTS_DIR: &str = "/run/codemode-inputs";

const MIB: u64 = 1024 * 1024;

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
        let docker = engine().await.map_err(unavailable)?;
        ensure_image(&docker, image, pull).await?;
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
        let body = self.container_body(spec, &run_id)?;
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
                self.supervise(&name, spec, sink, cancel).await
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

    fn container_body(
        &self,
        spec: &RunSpec,
        run_id: &str,
    ) -> Result<ContainerCreateBody, SandboxError> {
        let limits = &spec.limits;
        // The workspace is a tmpfs, which the engine cannot upload into
        // under a read-only root, so the inputs are copied in by the
        // container itself before the interpreter replaces the shell. `$0`
        // and `$@` carry the interpreter's argv unquoted.
        let mut cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("cp -- {INPUTS_DIR}/* {SANDBOX_WORKSPACE}/ && exec \"$0\" \"$@\""),
            "python3".to_string(),
        ];
        cmd.extend(PYTHON_FLAGS.iter().map(|f| f.to_string()));
        cmd.push(format!("{SANDBOX_WORKSPACE}/{}", spec.script));
        cmd.extend(spec.args.iter().cloned());
        let HostUser { uid, gid } = spec.host_user;

        let mut labels = self.labels.clone();
        labels.insert(RUN_LABEL.into(), run_id.into());

        let host_config = HostConfig {
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec![
                "no-new-privileges".into(),
                format!("seccomp={}", seccomp::profile()),
            ]),
            readonly_rootfs: Some(true),
            // Docker adds nosuid,nodev,noexec to tmpfs mounts by default.
            // Sized, and counted in the container's memory cgroup: filling
            // them is ENOSPC for the script and nothing for the host's disk.
            tmpfs: Some(HashMap::from([
                (
                    "/tmp".to_string(),
                    format!(
                        "rw,size={},nr_inodes={WORKSPACE_INODES},mode=1777",
                        limits.tmp_bytes.max(MIB)
                    ),
                ),
                (
                    SANDBOX_WORKSPACE.to_string(),
                    format!(
                        "rw,size={},nr_inodes={WORKSPACE_INODES},uid={uid},gid={gid},mode=0700",
                        limits.disk_bytes.max(MIB)
                    ),
                ),
            ])),
            ipc_mode: Some("private".into()),
            // Replaces the engine's default list, so it is repeated here.
            masked_paths: Some(
                PROC_MASKED_FILES
                    .iter()
                    .chain(&["/proc/asound", "/proc/acpi", "/proc/scsi", "/sys/firmware"])
                    .map(|path| path.to_string())
                    .collect(),
            ),
            pids_limit: Some(i64::from(limits.pids)),
            memory: limits.memory_bytes.map(clamp_i64),
            // Equal to `memory`: no swap, so the memory limit is the limit.
            memory_swap: limits.memory_bytes.map(clamp_i64),
            nano_cpus: (limits.cpus > 0.0).then(|| (limits.cpus * 1e9).round() as i64),
            // docker-init as PID 1 reaps zombies (a script's orphaned children
            // would otherwise pile up against the pids limit) and passes on
            // signals; Python as PID 1 does neither.
            init: Some(true),
            mounts: Some(vec![
                bind(&spec.inputs, INPUTS_DIR, true)?,
                // Read-only: the script connects to the socket (sockets are
                // exempt from the read-only check) but cannot plant files.
                bind(&spec.bridge_dir, SANDBOX_BRIDGE_DIR, true)?,
            ]),
            // Output reaches us through the attach stream only; the default
            // json-file driver would also copy every byte (floods included)
            // to the engine's disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..HostConfig::default()
        };

        Ok(ContainerCreateBody {
            image: Some(self.image.clone()),
            // An image's own entrypoint would change what runs; ours is the
            // whole command line.
            entrypoint: Some(vec![]),
            cmd: Some(cmd),
            user: Some(format!("{uid}:{gid}")),
            working_dir: Some(SANDBOX_WORKSPACE.into()),
            env: Some(container_env(spec)?),
            labels: Some(labels),
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(false),
            tty: Some(false),
            network_disabled: Some(true),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        })
    }

    /// Starts the created container `name` and watches it to the end.
    async fn supervise(
        &self,
        name: &str,
        spec: &RunSpec,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<Finished, Failure> {
        let mut finished = Finished::default();

        // Attach before start so no output is missed. `logs` stays off: there
        // is nothing to replay yet, and the `none` log driver cannot.
        let attaching = self.docker.attach_container(
            name,
            Some(
                AttachContainerOptionsBuilder::new()
                    .stdout(true)
                    .stderr(true)
                    .stream(true)
                    .build(),
            ),
        );
        let attach = tokio::select! {
            attached = tokio::time::timeout(ENGINE_REPLY, attaching) => match attached {
                Err(_) => return Err(Failure::Unanswered("attaching to the container")),
                Ok(attached) => attached
                    .map_err(|err| failed(format!("attaching to the container: {err}")))?,
            },
            _ = cancel.cancelled() => {
                finished.cancelled = true;
                return Ok(finished);
            }
        };
        let mut output = attach.output;
        tokio::select! {
            started = tokio::time::timeout(ENGINE_REPLY, self.docker.start_container(name, None)) => {
                match started {
                    // The engine may have started the script before it froze.
                    Err(_) => return Err(Failure::EngineLost(format!(
                        "it stopped answering: the start request got no reply in {} s",
                        ENGINE_REPLY.as_secs()
                    ))),
                    Ok(started) => started.map_err(|err| start_error(spec, err))?,
                }
            }
            _ = cancel.cancelled() => {
                finished.cancelled = true;
                return Ok(finished);
            }
        }

        let deadline = tokio::time::sleep(spec.limits.timeout);
        tokio::pin!(deadline);
        // The default condition, "not-running", answers at once for a
        // container that has already exited, so asking after start is safe.
        let mut wait = self.docker.wait_container(name, None);
        let mut output_open = true;
        let mut exit: Option<i64> = None;
        let mut stopped: Option<Stop> = None;
        // Once the container is killed or has exited, how long the rest may take.
        let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
        // The kill request runs alongside the reading, never instead of it:
        // the engine does not finish a kill while the container's output
        // pipe is full and nobody reads the attach stream (a flood deadlocks
        // until the request times out).
        let mut killing: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;

        while output_open || exit.is_none() {
            tokio::select! {
                chunk = output.next(), if output_open => match chunk {
                    Some(Ok(log)) => {
                        let (stream, bytes) = match log {
                            LogOutput::StdOut { message } => (Stream::Stdout, message),
                            LogOutput::StdErr { message } => (Stream::Stderr, message),
                            _ => continue,
                        };
                        // After a flood nothing more is kept: just drain. After
                        // a timeout or cancel, what is still in flight is kept.
                        if stopped != Some(Stop::Flooded)
                            && !sink.push(stream, &bytes)
                            && stopped.is_none()
                        {
                            stopped = Some(Stop::Flooded);
                            killing = Some(Box::pin(self.kill(name)));
                            grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
                        }
                    }
                    Some(Err(err)) => {
                        // A lost engine breaks this stream and the wait together;
                        // the wait's error is the one the user sees, once.
                        if engine_unreachable(&err) {
                            tracing::debug!("docker sandbox: output stream of {name} broke: {err}");
                        } else {
                            tracing::warn!("docker sandbox: output stream of {name} broke: {err}");
                        }
                        output_open = false;
                    }
                    None => output_open = false,
                },
                status = wait.next(), if exit.is_none() => {
                    exit = Some(match status {
                        Some(Ok(response)) => response.status_code,
                        // bollard turns a non-zero exit into this error.
                        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
                        Some(Err(err)) if engine_unreachable(&err) => return Err(Failure::EngineLost(innermost(&err))),
                        Some(Err(err)) => return Err(failed(format!("waiting for the container: {err}")).into()),
                        // The engine answers a wait with exactly one status; a
                        // stream that ends without one is a dropped connection.
                        None => return Err(Failure::EngineLost("the connection closed without an exit status".into())),
                    });
                    if output_open && grace.is_none() {
                        grace = Some(Box::pin(tokio::time::sleep(DRAIN_AFTER_EXIT)));
                    }
                }
                _ = &mut deadline, if stopped.is_none() && exit.is_none() => {
                    stopped = Some(Stop::TimedOut);
                    killing = Some(Box::pin(self.kill(name)));
                    grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
                }
                _ = cancel.cancelled(), if stopped.is_none() && exit.is_none() => {
                    stopped = Some(Stop::Cancelled);
                    killing = Some(Box::pin(self.kill(name)));
                    grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
                }
                _ = async { killing.as_mut().expect("guarded").await }, if killing.is_some() => {
                    killing = None;
                }
                _ = async { grace.as_mut().expect("guarded").await }, if grace.is_some() => {
                    // A live engine answers a kill at once, even a refused
                    // one; no answer in all this time is a wedged daemon, and
                    // the container may well still run.
                    if exit.is_none() && killing.is_some() {
                        return Err(Failure::EngineLost(format!(
                            "it stopped answering: a kill got no reply in {} s",
                            KILL_GRACE.as_secs()
                        )));
                    }
                    if exit.is_none() {
                        tracing::warn!("docker sandbox: {name} did not report its exit in time");
                    }
                    break;
                }
            }
        }
        drop(output);

        match stopped {
            Some(Stop::TimedOut) => finished.timed_out = true,
            Some(Stop::Flooded) => finished.output_flooded = true,
            Some(Stop::Cancelled) => finished.cancelled = true,
            None => {}
        }
        // OOMKilled is only in the container's state, not in the wait answer.
        let state =
            match tokio::time::timeout(ENGINE_REPLY, self.docker.inspect_container(name, None))
                .await
            {
                Err(_) => {
                    return Err(Failure::EngineLost(format!(
                        "it stopped answering: no reply in {} s",
                        ENGINE_REPLY.as_secs()
                    )))
                }
                Ok(Ok(inspect)) => inspect.state,
                // A daemon shutting down (SIGTERM) stops its containers and still
                // answers the wait (143 here), then closes: that status is the
                // engine's doing, not the script's, so it must not pass as one.
                Ok(Err(err)) if engine_unreachable(&err) => {
                    return Err(Failure::EngineLost(innermost(&err)))
                }
                Ok(Err(_)) => None,
            };
        finished.oom_killed = state
            .as_ref()
            .and_then(|state| state.oom_killed)
            .unwrap_or(false);
        let exit = exit.or_else(|| {
            state
                .as_ref()
                .filter(|state| state.running != Some(true))
                .and_then(|state| state.exit_code)
        });

        // A daemon shutting down stops its containers (SIGTERM, then SIGKILL)
        // and may still answer over a kept-alive connection; it closes its
        // socket first, though, so a fresh connection tells whether this
        // 143 or 137 was the engine going away or the script's own.
        if let Some(code @ (137 | 143)) = exit {
            if stopped.is_none() && !finished.oom_killed && !engine_answers_anew().await {
                return Err(Failure::EngineLost(format!(
                    "it shut down and stopped the container (exit {code})"
                )));
            }
        }
        match exit {
            // A process killed by a signal shows up as 128 + the signal. Only
            // read it that way when we know something killed it: a script may
            // well `sys.exit(137)` by itself.
            Some(code)
                if (stopped.is_some() || finished.oom_killed)
                    && (129..=128 + 64).contains(&code) =>
            {
                finished.signal = Some(code as i32 - 128);
            }
            Some(code) => finished.exit_code = Some(code as i32),
            None if stopped.is_some() => finished.signal = Some(SIGKILL),
            None => return Err(failed("the container's exit status is unknown".into()).into()),
        }
        Ok(finished)
    }

    /// SIGKILL to every process of the container. A container that has already
    /// stopped answers 409, which is fine: it is stopped either way.
    async fn kill(&self, name: &str) {
        let options = KillContainerOptionsBuilder::new().signal("KILL").build();
        match self.docker.kill_container(name, Some(options)).await {
            Ok(()) => {}
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(err) => tracing::warn!("docker sandbox: killing {name}: {err}"),
        }
    }
}

/// Why a run could not be seen through.
enum Failure {
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

/// Why we stopped a run ourselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Flooded,
    Cancelled,
}

/// Removes the container when the run is over. `remove` does it in line;
/// dropping the guard without calling it (the run's future was dropped)
/// removes it from a background thread.
struct ContainerGuard {
    docker: Docker,
    name: String,
    armed: bool,
    /// Whether the process waits for the background removal before exiting.
    waited: bool,
}

impl ContainerGuard {
    fn new(docker: Docker, name: String) -> ContainerGuard {
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
    fn leave_to_chance(mut self) {
        self.waited = false;
    }

    async fn remove(mut self) {
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
        // before exiting (see `wait_for_removals`).
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
/// (by runs dropped mid-way) to be gone; returns those still pending. Call it
/// before the process exits, once the runtime that ran the runs is shut down.
pub fn wait_for_removals(limit: Duration) -> Vec<String> {
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
        Err(err) if engine_unreachable(&err) => Removal::Unreachable(err),
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

/// Connects to the engine `DOCKER_HOST` names (or the local socket) and checks
/// that it answers.
async fn engine() -> Result<Docker, String> {
    let host = docker_host();
    let docker = Docker::connect_with_defaults()
        .map_err(|err| format!("cannot connect to a Docker engine at {host}: {err}"))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(format!("no Docker engine answers at {host}: {err}")),
        Err(_) => {
            return Err(format!(
                "the Docker engine at {host} did not answer within {} s",
                PING_TIMEOUT.as_secs()
            ))
        }
    }
    // Older engines (20.10 speaks API 1.41) reject requests versioned newer
    // than they know; negotiating keeps bollard at or below the engine's API.
    // A failure here is not fatal: the ping already proved the engine works.
    if let Ok(Err(err)) =
        tokio::time::timeout(PING_TIMEOUT, docker.clone().negotiate_version()).await
    {
        tracing::debug!("docker sandbox: API version negotiation failed: {err}");
    }
    Ok(docker)
}

/// Whether the engine answers a ping on a connection of its own (not one a
/// shutting-down daemon may still be serving).
async fn engine_answers_anew() -> bool {
    let Ok(docker) = Docker::connect_with_defaults() else {
        return false;
    };
    matches!(
        tokio::time::timeout(ENGINE_REPLY, docker.ping()).await,
        Ok(Ok(_))
    )
}

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Makes sure the engine has `image`, pulling it if not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pull {
    IfMissing,
    Never,
}

async fn ensure_image(docker: &Docker, image: &str, pull_it: Pull) -> Result<(), SandboxError> {
    let inspect = match tokio::time::timeout(ENGINE_REPLY, docker.inspect_image(image)).await {
        Ok(inspect) => inspect,
        Err(_) => {
            return Err(unavailable(format!(
                "the Docker engine at {} stopped answering: looking up image {image} got no reply in {} s",
                docker_host(),
                ENGINE_REPLY.as_secs()
            )))
        }
    };
    match inspect {
        Ok(_) => Ok(()),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) if pull_it == Pull::Never => Err(unavailable(format!(
            "image {image} is not on the engine (run `docker pull {image}`, or set \
             `sandbox.image` to an image the engine has; it needs python3)"
        ))),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => pull(docker, image).await.map_err(|why| {
            unavailable(format!(
                "image {image} is not on the engine and pulling it failed: {why}. \
                 Run `docker pull {image}`, set `sandbox.image` to an image the engine \
                 has (it needs python3), or use `--sandbox native`"
            ))
        }),
        Err(err) => Err(unavailable(format!("cannot look up image {image}: {err}"))),
    }
}

/// Pulls `image`, with a progress bar on stderr when it is a terminal and one
/// line otherwise.
async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
    let (from_image, tag) = split_reference(image);
    let mut options = CreateImageOptionsBuilder::new().from_image(from_image);
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} pulling {prefix}: {msg} {wide_bar} {bytes}/{total_bytes}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(image.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    } else {
        eprintln!("docker: pulling {image} ...");
        indicatif::ProgressBar::hidden()
    };

    // Bytes per layer, summed: the engine reports each layer on its own.
    let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
    let mut stream = docker.create_image(Some(options.build()), None, None);
    let result = loop {
        let next = match tokio::time::timeout(PULL_STALL, stream.next()).await {
            Ok(next) => next,
            Err(_) => break Err(format!("no progress for {} s", PULL_STALL.as_secs())),
        };
        match next {
            None => break Ok(()),
            Some(Err(err)) => break Err(err.to_string()),
            Some(Ok(info)) => {
                if let Some(detail) = info.error_detail {
                    break Err(detail.message.unwrap_or_else(|| "unknown error".into()));
                }
                if let (Some(id), Some(progress)) = (info.id, info.progress_detail) {
                    if let (Some(current), Some(total)) = (progress.current, progress.total) {
                        if info.status.as_deref() == Some("Downloading") {
                            layers.insert(id, (current.max(0) as u64, total.max(0) as u64));
                            let (done, total) = layers
                                .values()
                                .fold((0, 0), |(d, t), (c, s)| (d + c, t + s));
                            bar.set_length(total);
                            bar.set_position(done);
                        }
                    }
                }
                if let Some(status) = info.status {
                    bar.set_message(status);
                }
            }
        }
    };
    bar.finish_and_clear();
    if !terminal {
        match &result {
            Ok(()) => eprintln!("docker: pulled {image}"),
            Err(why) => eprintln!("docker: pulling {image} failed: {why}"),
        }
    }
    result
}

/// Splits `repo[:tag]` for the pull API, which would fetch every tag of a repo
/// given without one. A digest (`repo@sha256:...`) stays whole.
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_component = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[last_component..].rfind(':') {
        Some(colon) => {
            let at = last_component + colon;
            (&image[..at], Some(&image[at + 1..]))
        }
        None => (image, Some("latest")),
    }
}

/// The script's environment: the spec's, the few variables every run gets
/// (they win: the sandbox depends on them), and the bridge's address and the
/// user's name unless the spec names others.
fn container_env(spec: &RunSpec) -> Result<Vec<String>, SandboxError> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(spec.env.len() + 8);
    for (key, value) in &spec.env {
        // Docker splits each entry at its first `=`: such a key would set a
        // different variable than the one asked for.
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(failed(format!("invalid environment variable name {key:?}")));
        }
        env.push((key.clone(), value.clone()));
    }
    let fixed = [
        ("PATH", CONTAINER_PATH.to_string()),
        ("HOME", "/tmp".to_string()),
        ("LANG", "C.UTF-8".to_string()),
    ];
    env.retain(|(key, _)| !fixed.iter().any(|(fixed, _)| fixed == key));
    env.extend(
        fixed
            .into_iter()
            .map(|(key, value)| (key.to_string(), value)),
    );
    // A leased uid has no entry in the image's /etc/passwd, and
    // `getpass.getuser()` (and what calls it) raises without one unless
    // these say who the user is: `nobody`, as in the native sandbox.
    for name in ["USER", "LOGNAME"] {
        if !spec.env.contains_key(name) {
            env.push((name.into(), "nobody".into()));
        }
    }
    if !spec.env.contains_key("CODEMODE_BRIDGE_URL") {
        env.push((
            "CODEMODE_BRIDGE_URL".into(),
            format!("unix://{SANDBOX_BRIDGE_DIR}/{BRIDGE_SOCKET_NAME}"),
        ));
    }
    Ok(env
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect())
}

fn bind(source: &std::path::Path, target: &str, read_only: bool) -> Result<Mount, SandboxError> {
    // The engine resolves bind sources on its own host: a relative path would
    // mean nothing there.
    let source = std::path::absolute(source)
        .map_err(|err| failed(format!("cannot resolve {}: {err}", source.display())))?;
    let source = source
        .to_str()
        .ok_or_else(|| failed(format!("{} is not valid UTF-8", source.display())))?
        .to_string();
    Ok(Mount {
        target: Some(target.into()),
        source: Some(source),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Mount::default()
    })
}

/// A fresh id for a run: random, so concurrent codemode processes sharing an
/// engine never collide on container names.
fn run_id() -> Result<String, SandboxError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|err| failed(format!("no randomness for a run id: {err}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn create_error(image: &str, err: DockerError) -> SandboxError {
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

fn start_error(spec: &RunSpec, err: DockerError) -> SandboxError {
    // Most start failures are mounts: the engine cannot see our paths (a
    // remote engine) or the image lacks python3.
    failed(format!(
        "starting the container (inputs {}, bridge {}): {err}",
        spec.inputs.display(),
        spec.bridge_dir.display()
    ))
}

/// Whether `err` means no engine answers any more (it stopped, crashed or
/// the connection broke) rather than an engine answering with an error.
fn engine_unreachable(err: &DockerError) -> bool {
    matches!(
        err,
        DockerError::HyperLegacyError { .. }
            | DockerError::HyperResponseError { .. }
            | DockerError::IOError { .. }
            | DockerError::RequestTimeoutError
            | DockerError::SocketNotFoundError(_)
    )
}

/// The first cause in `err`'s chain that says something: bollard's own
/// wrappers ("Error in the hyper legacy client: client error (Connect)") name
/// the layer, the OS error below them names what happened.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    // A bare "No such file or directory" reads as if the script were missing.
    match cause.downcast_ref::<std::io::Error>().map(|io| io.kind()) {
        Some(std::io::ErrorKind::NotFound) => "its socket is gone".into(),
        Some(std::io::ErrorKind::ConnectionRefused) => "nothing listens on its socket".into(),
        _ => cause.to_string(),
    }
}

/// The engine went away while `name` ran. The run's outcome is unknown and
/// the container may outlive it (a crashed daemon leaves it running, and no
/// one can remove it now), so the message says where to look.
fn engine_lost(name: &str, cause: &dyn std::fmt::Display) -> SandboxError {
    SandboxError::Lost {
        backend: BACKEND,
        reason: format!(
            "the Docker engine at {} went away during the run ({cause}); the script's \
             outcome is unknown and its container {name} may be left behind \
             (`docker ps -a --filter label={RUN_LABEL}`)",
            docker_host()
        ),
    }
}

/// The engine answered the ping but then stopped answering before the script
/// started: nothing ran, so the sandbox is unavailable rather than the run lost.
fn unanswered(request: &str, name: &str) -> SandboxError {
    unavailable(format!(
        "the Docker engine at {} stopped answering: {request} got no reply in {} s; \
         its container {name} may be left behind (`docker ps -a --filter label={RUN_LABEL}`)",
        docker_host(),
        ENGINE_REPLY.as_secs()
    ))
}

fn unavailable(reason: String) -> SandboxError {
    SandboxError::Unavailable {
        backend: BACKEND,
        reason,
    }
}

fn failed(reason: String) -> SandboxError {
    SandboxError::Failed {
        backend: BACKEND,
        reason,
    }
}

#[cfg(test)]
mod tests {
    //! These run real containers. Without an engine (or the image) they are
    //! skipped, except under `CI`, where that is a failure: .ci/docker-setup.sh
    //! provides both.

    use super::*;
    use crate::sandbox::output::Captured;
    use crate::sandbox::{Limits, RunDir, SANDBOX_GID, SANDBOX_UID};
    use bollard::query_parameters::ListContainersOptionsBuilder;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::time::Instant;

    const TEST_LABEL: &str = "codemode.test";

    fn image() -> String {
        std::env::var("CODEMODE_TEST_DOCKER_IMAGE")
            .unwrap_or_else(|_| "codemode-python:bookworm".into())
    }

    /// A sandbox whose containers carry a label unique to this test, so the
    /// test can count its own containers while others run in parallel.
    struct Harness {
        sandbox: DockerSandbox,
        docker: Docker,
        tag: String,
    }

    async fn harness(test: &str) -> Option<Harness> {
        match DockerSandbox::connect(&image()).await {
            Ok(sandbox) => {
                let tag = format!("{test}-{}-{}", std::process::id(), run_id().unwrap());
                let docker = sandbox.docker.clone();
                Some(Harness {
                    sandbox: sandbox.with_label(TEST_LABEL, &tag),
                    docker,
                    tag,
                })
            }
            Err(err) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "no Docker engine with image {} ({err}); run .ci/docker-setup.sh",
                    image()
                );
                eprintln!("skipped: no Docker engine with image {}: {err}", image());
                None
            }
        }
    }

    impl Harness {
        /// Containers with this test's label, running or not.
        async fn containers(&self) -> usize {
            let filters = HashMap::from([(
                "label".to_string(),
                vec![format!("{TEST_LABEL}={}", self.tag)],
            )]);
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            self.docker
                .list_containers(Some(options))
                .await
                .expect("listing containers")
                .len()
        }

        async fn run(&self, job: &Job) -> (Finished, Captured) {
            let sink = OutputSink::new(job.spec.limits.output_bytes, None);
            let finished = self
                .sandbox
                .run(&job.spec, &sink, CancellationToken::new())
                .await
                .expect("the run fails");
            (finished, sink.captured())
        }

        async fn assert_no_containers_left(&self) {
            assert_eq!(self.containers().await, 0, "a container was left behind");
        }
    }

    /// A run's directory, as exec makes it.
    struct Job {
        dir: RunDir,
        /// Dropped after the directory, as the exec code does.
        _user: RunUser,
        spec: RunSpec,
    }

    fn job(script: &str) -> Job {
        let user = DockerSandbox::run_user().unwrap();
        let dir = RunDir::create(user.user()).unwrap();
        dir.write("job.py", script).unwrap();
        Job {
            spec: RunSpec {
                inputs: dir.inputs().to_path_buf(),
                script: "job.py".into(),
                args: vec![],
                env: BTreeMap::new(),
                bridge_dir: dir.bridge().to_path_buf(),
                host_user: user.user(),
                limits: Limits {
                    timeout: Duration::from_secs(30),
                    ..Limits::default()
                },
            },
            dir,
            _user: user,
        }
    }

    #[tokio::test]
    async fn hello_world_prints_and_exits_zero() {
        let Some(h) = harness("hello").await else {
            return;
        };
        let (finished, out) = h.run(&job("print('hello, world')\n")).await;
        assert_eq!(out.stdout, "hello, world\n");
        assert_eq!(out.stderr, "");
        assert_eq!(
            finished,
            Finished {
                exit_code: Some(0),
                ..Finished::default()
            }
        );
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn the_exit_status_passes_through() {
        let Some(h) = harness("exit").await else {
            return;
        };
        let (finished, _) = h.run(&job("import sys\nsys.exit(3)\n")).await;
        assert_eq!(finished.exit_code, Some(3));
        assert_eq!(finished.signal, None);
        // An uncaught exception is Python's 1.
        let (finished, out) = h.run(&job("raise SystemError('boom')\n")).await;
        assert_eq!(finished.exit_code, Some(1));
        assert!(out.stderr.contains("SystemError: boom"), "{}", out.stderr);
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn a_script_that_signals_itself_keeps_its_exit_status() {
        let Some(h) = harness("selfkill").await else {
            return;
        };
        // 143 with the engine up is the script's own, not a lost engine.
        let script = "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n";
        let (finished, _) = h.run(&job(script)).await;
        assert_eq!(finished.exit_code, Some(143));
        assert_eq!(finished.signal, None);
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn stdout_and_stderr_stay_apart() {
        let Some(h) = harness("streams").await else {
            return;
        };
        let script = "import sys\nfor i in range(3):\n    print('out', i)\n    print('err', i, file=sys.stderr)\n";
        let (finished, out) = h.run(&job(script)).await;
        assert_eq!(finished.exit_code, Some(0));
        assert_eq!(out.stdout, "out 0\nout 1\nout 2\n");
        assert_eq!(out.stderr, "err 0\nerr 1\nerr 2\n");
    }

    #[tokio::test]
    async fn args_env_and_working_dir_are_the_specs() {
        let Some(h) = harness("env").await else {
            return;
        };
        let mut job = job(concat!(
            "import os, sys\n",
            "print(sys.argv[1:])\n",
            "print(os.getcwd())\n",
            "for k in ['GREETING', 'HOME', 'LANG', 'CODEMODE_BRIDGE_URL', 'HOSTILE']:\n",
            "    print(k, os.environ.get(k))\n",
            "print('/elsewhere' in sys.path)\n",
            "import json, http.client\n",
        ));
        job.spec.args = vec!["one".into(), "two words".into()];
        job.spec.env.insert("GREETING".into(), "hi there".into());
        // The backend's own variables win over the spec's, and the
        // interpreter ignores PYTHON* ones.
        job.spec.env.insert("HOME".into(), "/elsewhere".into());
        job.spec
            .env
            .insert("PYTHONPATH".into(), "/elsewhere".into());
        let (finished, out) = h.run(&job).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(
            out.stdout,
            "['one', 'two words']\n/workspace\nGREETING hi there\nHOME /tmp\nLANG C.UTF-8\n\
             CODEMODE_BRIDGE_URL unix:///run/codemode/bridge.sock\n\
             HOSTILE None\nFalse\n"
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_script_and_removes_the_container() {
        let Some(h) = harness("timeout").await else {
            return;
        };
        let mut job = job("print('spinning', flush=True)\nwhile True:\n    pass\n");
        job.spec.limits.timeout = Duration::from_secs(2);
        let started = Instant::now();
        let (finished, out) = h.run(&job).await;
        let took = started.elapsed();
        assert!(finished.timed_out, "{finished:?}");
        assert_eq!(finished.exit_code, None);
        assert_eq!(finished.signal, Some(SIGKILL));
        // Output from before the kill is kept.
        assert_eq!(out.stdout, "spinning\n");
        assert!(took < Duration::from_secs(15), "took {took:?}");
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn there_is_no_network() {
        let Some(h) = harness("network").await else {
            return;
        };
        // Nothing is aimed off this machine: no interface but loopback and
        // no route prove there is no way out; a listener on the host's
        // loopback proves that the container's 127.0.0.1 is its own.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let port = tcp.local_addr().unwrap().port();
        let script = format!(
            r#"
import os, socket
print("interfaces:", sorted(os.listdir("/sys/class/net")))
routes = open("/proc/net/route").read().splitlines()[1:]
routes6 = [l for l in open("/proc/net/ipv6_route").read().splitlines() if l.split()[-1] != "lo"]
print("routes:", len(routes), len(routes6))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3)
    print("host loopback: connected")
except OSError:
    print("host loopback: refused")
"#
        );
        let (finished, out) = h.run(&job(&script)).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(
            out.stdout,
            "interfaces: ['lo']\nroutes: 0 0\nhost loopback: refused\n"
        );
        assert!(tcp.accept().is_err(), "a connection reached the host");
    }

    #[tokio::test]
    async fn the_script_runs_as_its_own_user_without_capabilities() {
        let Some(h) = harness("uid").await else {
            return;
        };
        let script = r#"
import getpass, os
print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), getpass.getuser())
status = open("/proc/self/status").read()
caps = {l.split(":")[0]: l.split()[1] for l in status.splitlines() if l.startswith("Cap")}
print(caps["CapEff"], caps["CapPrm"], caps["CapBnd"])
print([l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0])
"#;
        let job = job(script);
        let (finished, out) = h.run(&job).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        let crate::sandbox::HostUser { uid, gid } = job.spec.host_user;
        assert_eq!(
            out.stdout,
            format!(
                "{uid} {uid} {gid} {gid} nobody\n\
                 0000000000000000 0000000000000000 0000000000000000\n1\n"
            )
        );
        if nix::unistd::geteuid().is_root() {
            assert!(host_user::UNUSED_IDS.contains(&uid), "{uid}");
            assert_eq!(uid, gid);
        } else {
            // The invoking user's: the only one that can own the run's files.
            let me = (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            );
            assert_eq!((uid, gid), me);
        }
    }

    /// The pids of the host's processes with `mark` among their arguments,
    /// and whether one of them is the script (the other is docker-init).
    fn pids_marked(mark: &str) -> (Vec<i32>, bool) {
        let mut pids = Vec::new();
        let mut script = false;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            if args.contains(&mark.as_bytes()) {
                pids.push(pid);
                script |= args[0] == b"python3";
            }
        }
        (pids, script)
    }

    #[tokio::test]
    async fn a_host_process_running_as_nobody_cannot_read_the_scripts_environment() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let Some(h) = harness("environ").await else {
            return;
        };
        let mut job = job("import time\ntime.sleep(30)\n");
        let mark = format!("codemode-test-{}", run_id().unwrap());
        job.spec.args = vec![mark.clone()];
        job.spec
            .env
            .insert("CODEMODE_BRIDGE_TOKEN".into(), "cm_secret".into());
        let cancel = CancellationToken::new();
        let sink = OutputSink::new(1024, None);
        let run = h.sandbox.run(&job.spec, &sink, cancel.clone());
        let peek = async {
            let deadline = Instant::now() + Duration::from_secs(20);
            let pids = loop {
                let (pids, script) = pids_marked(&mark);
                if script {
                    break pids;
                }
                assert!(Instant::now() < deadline, "the script never showed up");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let mut peeks = Vec::new();
            for pid in pids {
                let environ = format!("/proc/{pid}/environ");
                let peek = tokio::process::Command::new("/bin/cat")
                    .arg(&environ)
                    .uid(SANDBOX_UID)
                    .gid(SANDBOX_GID)
                    .output()
                    .await
                    .unwrap();
                // Still there: a refusal, not a process that had already gone.
                let alive = std::path::Path::new(&environ).exists();
                peeks.push((pid, peek, alive));
            }
            cancel.cancel();
            peeks
        };
        let (finished, peeks) = tokio::join!(run, peek);
        assert!(finished.unwrap().cancelled);
        for (pid, peek, alive) in peeks {
            assert!(alive, "{pid} was gone");
            let stderr = String::from_utf8_lossy(&peek.stderr);
            assert!(
                !peek.status.success() && stderr.contains("Permission denied"),
                "{pid}: {}: read {:?}; {stderr}",
                peek.status,
                String::from_utf8_lossy(&peek.stdout)
            );
        }
    }

    #[tokio::test]
    async fn the_seccomp_profile_refuses_ptrace_io_uring_and_inet_sockets() {
        let Some(h) = harness("seccomp").await else {
            return;
        };
        let script = r#"
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    result = getattr(libc, name)(*args)
    return errno.errorcode.get(ctypes.get_errno(), "0") if result == -1 else "ok"
print("ptrace", call("ptrace", 0, 0, None, None))
print("io_uring_setup", call("syscall", 425, 8, ctypes.create_string_buffer(120)))
print("unshare", call("unshare", 0x10000000))
for family in ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"]:
    try:
        socket.socket(getattr(socket, family), socket.SOCK_DGRAM).close()
        print(family, "ok")
    except OSError as e:
        print(family, errno.errorcode[e.errno])
a, b = socket.socketpair()
print("AF_UNIX", "ok")
"#;
        let (finished, out) = h.run(&job(script)).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(
            out.stdout,
            "ptrace EPERM\nio_uring_setup EPERM\nunshare EPERM\nAF_INET EPERM\nAF_INET6 EPERM\n\
             AF_NETLINK EPERM\nAF_PACKET EPERM\nAF_UNIX ok\n"
        );
    }

    #[tokio::test]
    async fn modify_ldt_memfd_secret_move_pages_and_personality_changes_are_refused() {
        use crate::sandbox::seccomp_rules::probe;
        let Some(h) = harness("seccomp-table").await else {
            return;
        };
        let (finished, out) = h.run(&job(&probe::script())).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(out.stdout, probe::expected());
    }

    /// The i386 entry point (`int 0x80`) has its own syscall numbers and
    /// `socketcall`, which the profile could not filter by family: it must
    /// not be a way around the rules.
    #[cfg(target_arch = "x86_64")]
    #[tokio::test]
    async fn the_32_bit_syscall_entry_is_closed() {
        let Some(h) = harness("ia32").await else {
            return;
        };
        let script = r#"
import ctypes, mmap
# mov eax, 359 (i386 socket); mov ebx, 2 (AF_INET); mov ecx, 2 (SOCK_DGRAM);
# xor edx, edx; int 0x80; ret
code = (bytes([0xB8]) + (359).to_bytes(4, "little")
        + bytes([0xBB, 2, 0, 0, 0, 0xB9, 2, 0, 0, 0, 0x31, 0xD2, 0xCD, 0x80, 0xC3]))
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
entry = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
print("socket", entry(), flush=True)
"#;
        let (finished, out) = h.run(&job(script)).await;
        let refused = out
            .stdout
            .strip_prefix("socket ")
            .and_then(|n| n.trim().parse::<i32>().ok())
            .is_some_and(|n| n < 0);
        // runc 1.1 kills a foreign-architecture call (SIGSYS, 128 + 31);
        // other runtimes answer it with an error.
        let killed = finished.exit_code == Some(128 + 31);
        assert!(refused || killed, "{finished:?} {out:?}");
    }

    #[tokio::test]
    async fn ordinary_python_still_works_under_the_profile() {
        let Some(h) = harness("ordinary").await else {
            return;
        };
        let script = r#"
import asyncio, concurrent.futures, json, multiprocessing, subprocess, tempfile, threading

def square(n):
    return n * n

async def main():
    await asyncio.sleep(0.01)
    return "asyncio"

if __name__ == "__main__":
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        print("threads", sum(pool.map(square, range(10))))
    with multiprocessing.Pool(2) as pool:
        print("processes", sum(pool.map(square, range(10))))
    print(subprocess.run(["sh", "-c", "echo subprocess"], capture_output=True, text=True).stdout.strip())
    print(asyncio.run(main()))
    with tempfile.TemporaryFile() as f:
        f.write(b"tmp")
        f.seek(0)
        print(f.read().decode())
    print(json.dumps({"ok": True}))
"#;
        let (finished, out) = h.run(&job(script)).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(
            out.stdout,
            "threads 285\nprocesses 285\nsubprocess\nasyncio\ntmp\n{\"ok\": true}\n"
        );
    }

    #[tokio::test]
    async fn only_the_workspace_and_tmp_are_writable() {
        let Some(h) = harness("readonly").await else {
            return;
        };
        let script = r#"
import errno
for path in ["/etc/x", "/usr/x", "/x", "/run/codemode/x", "/workspace/out.txt", "/tmp/x"]:
    try:
        with open(path, "w") as f:
            f.write("written")
        print(path, "ok")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
"#;
        let job = job(script);
        let (finished, out) = h.run(&job).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines,
            [
                "/etc/x EROFS",
                "/usr/x EROFS",
                "/x EROFS",
                "/run/codemode/x EROFS",
                "/workspace/out.txt ok",
                "/tmp/x ok",
            ]
        );
        // The workspace is the container's own tmpfs: nothing reached the host.
        assert!(!job.dir.inputs().join("out.txt").exists());
    }

    #[tokio::test]
    async fn the_interpreter_imports_nothing_from_the_workspace_before_the_script() {
        let Some(h) = harness("planted").await else {
            return;
        };
        let mut job = job("import sys\nprint('script', [n for n, m in sys.modules.items() if (getattr(m, '__file__', None) or '').startswith('/workspace/') and n != '__main__'])\n");
        for (name, text) in [
            ("sitecustomize.py", "print('planted')\n"),
            ("usercustomize.py", "print('planted')\n"),
            ("encodings.py", "raise SystemExit(9)\n"),
        ] {
            job.dir.write(name, text).unwrap();
        }
        job.spec
            .env
            .insert("PYTHONPATH".into(), "/workspace".into());
        let (finished, out) = h.run(&job).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(out.stdout, "script []\n");
    }

    #[tokio::test]
    async fn the_workspace_holds_the_inputs_and_is_sized_by_the_disk_limit() {
        let Some(h) = harness("disksize").await else {
            return;
        };
        let mut job = job(concat!(
            "import os, errno, mcp_tools\n",
            "print(sorted(os.listdir('/workspace')), mcp_tools.VALUE)\n",
            "st = os.statvfs('/workspace')\n",
            "print(st.f_blocks * st.f_frsize // (1 << 20))\n",
            "try:\n",
            "    with open('/workspace/fill', 'wb') as f:\n",
            "        while True:\n",
            "            f.write(b'x' * (1 << 20))\n",
            "except OSError as e:\n",
            "    print(errno.errorcode[e.errno])\n",
        ));
        job.dir.write("mcp_tools.py", "VALUE = 7\n").unwrap();
        job.spec.limits.disk_bytes = 8 * 1024 * 1024;
        let (finished, out) = h.run(&job).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(out.stdout, "['job.py', 'mcp_tools.py'] 7\n8\nENOSPC\n");
    }

    #[tokio::test]
    async fn tmp_is_sized_by_the_limit() {
        let Some(h) = harness("tmpsize").await else {
            return;
        };
        let mut job = job(concat!(
            "import os\n",
            "st = os.statvfs('/tmp')\n",
            "print(st.f_blocks * st.f_frsize)\n",
        ));
        job.spec.limits.tmp_bytes = 8 * 1024 * 1024;
        let (finished, out) = h.run(&job).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(out.stdout.trim(), (8 * 1024 * 1024).to_string());
    }

    #[tokio::test]
    async fn the_bridge_socket_is_reachable() {
        let Some(h) = harness("bridge").await else {
            return;
        };
        let job = job(concat!(
            "import os, socket\n",
            "path = os.environ['CODEMODE_BRIDGE_URL'].removeprefix('unix://')\n",
            "s = socket.socket(socket.AF_UNIX)\n",
            "s.connect(path)\n",
            "s.sendall(b'ping')\n",
            "print(s.recv(16).decode())\n",
        ));
        let socket_path = job.spec.bridge_dir.join(BRIDGE_SOCKET_NAME);
        let listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
        // As the exec code does: the run's user's alone.
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        job.dir.give(&socket_path).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            conn.write_all(b"pong").unwrap();
        });
        let (finished, out) = h.run(&job).await;
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        assert_eq!(out.stdout, "pong\n");
        server.join().unwrap();
    }

    #[tokio::test]
    async fn a_memory_bomb_is_killed() {
        let Some(h) = harness("oom").await else {
            return;
        };
        let mut job = job(concat!(
            "print('allocating')\n",
            "blocks = []\n",
            "while True:\n",
            "    blocks.append(bytearray(8 << 20))\n",
        ));
        job.spec.limits.memory_bytes = Some(64 * 1024 * 1024);
        let (finished, out) = h.run(&job).await;
        assert!(
            finished.oom_killed || finished.exit_code.is_some_and(|code| code != 0),
            "{finished:?} {out:?}"
        );
        assert!(!finished.timed_out);
        // Written before the kill, and not lost in a buffer (python3 -u).
        assert_eq!(out.stdout, "allocating\n");
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn a_fork_bomb_hits_the_pids_limit_and_the_run_ends() {
        let Some(h) = harness("forkbomb").await else {
            return;
        };
        let mut job = job(r#"
import os
made = failed = 0
for _ in range(300):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        # Every child forks on, forever: the pids limit is all that stops it.
        while True:
            try:
                os.fork()
            except OSError:
                pass
    made += 1
print(made, failed, flush=True)
"#);
        job.spec.limits.pids = 32;
        job.spec.limits.timeout = Duration::from_secs(20);
        let started = Instant::now();
        let (finished, out) = h.run(&job).await;
        assert!(!finished.timed_out, "{finished:?} {out:?}");
        assert_eq!(finished.exit_code, Some(0), "{}", out.stderr);
        let counts: Vec<u32> = out
            .stdout
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(counts[0] < 32 && counts[1] > 0, "made, failed: {counts:?}");
        assert!(started.elapsed() < Duration::from_secs(20));
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn an_output_flood_is_stopped() {
        let Some(h) = harness("flood").await else {
            return;
        };
        let mut job = job("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n");
        job.spec.limits.output_bytes = 64 * 1024;
        let (finished, out) = h.run(&job).await;
        assert!(finished.output_flooded, "{finished:?}");
        assert!(!finished.timed_out);
        assert_eq!(out.stdout.len(), 64 * 1024);
        assert!(out.truncated);
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn cancelling_kills_the_run_and_removes_the_container() {
        let Some(h) = harness("cancel").await else {
            return;
        };
        let job = job("import time\nprint('started')\nwhile True:\n    time.sleep(0.1)\n");
        let cancel = CancellationToken::new();
        let on_output = cancel.clone();
        let sink = OutputSink::new(
            1024,
            Some(Box::new(move |_, bytes| {
                if bytes.windows(7).any(|w| w == b"started") {
                    on_output.cancel();
                }
            })),
        );
        let started = Instant::now();
        let finished = h.sandbox.run(&job.spec, &sink, cancel).await.unwrap();
        assert!(finished.cancelled, "{finished:?}");
        assert!(!finished.timed_out);
        assert!(started.elapsed() < Duration::from_secs(15));
        h.assert_no_containers_left().await;
    }

    #[tokio::test]
    async fn a_dropped_run_still_removes_its_container() {
        let Some(h) = harness("dropped").await else {
            return;
        };
        let job = job("import time\nprint('started')\ntime.sleep(60)\n");
        let seen = Arc::new(tokio::sync::Notify::new());
        let notify = Arc::clone(&seen);
        let sink = OutputSink::new(1024, Some(Box::new(move |_, _| notify.notify_one())));
        let run = h.sandbox.run(&job.spec, &sink, CancellationToken::new());
        tokio::select! {
            _ = run => panic!("the run ended by itself"),
            _ = seen.notified() => {}
        }
        // The run's future is dropped here, mid-run, with the container running.
        let deadline = Instant::now() + Duration::from_secs(15);
        while h.containers().await > 0 {
            assert!(Instant::now() < deadline, "the container outlived its run");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn a_missing_image_is_unavailable_with_a_fix() {
        if harness("missing").await.is_none() {
            return;
        }
        let missing = "codemode-test-no-such-image:never";
        match DockerSandbox::connect(missing).await {
            Ok(_) => panic!("connected with a missing image"),
            Err(SandboxError::Unavailable { reason, .. }) => {
                assert!(
                    reason.contains(&format!("docker pull {missing}")),
                    "{reason}"
                );
                assert!(reason.contains("sandbox.image"), "{reason}");
                assert!(reason.contains("--sandbox native"), "{reason}");
            }
            Err(err) => panic!("wrong error: {err}"),
        }
        match DockerSandbox::connect_without_pull(missing).await {
            Err(SandboxError::Unavailable { reason, .. }) => {
                assert!(reason.contains("is not on the engine ("), "{reason}");
            }
            _ => panic!("connected with a missing image"),
        }
        assert!(DockerSandbox::connect_without_pull(&image()).await.is_ok());
    }

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(
            split_reference("python:3.12-slim"),
            ("python", Some("3.12-slim"))
        );
        assert_eq!(split_reference("python"), ("python", Some("latest")));
        assert_eq!(
            split_reference("localhost:5000/team/py"),
            ("localhost:5000/team/py", Some("latest"))
        );
        assert_eq!(
            split_reference("localhost:5000/py:3"),
            ("localhost:5000/py", Some("3"))
        );
        assert_eq!(split_reference("py@sha256:abc"), ("py@sha256:abc", None));
    }

    #[test]
    fn env_keys_that_docker_would_misread_are_refused() {
        let mut job = job("");
        job.spec.env.insert("A=B".into(), "c".into());
        assert!(container_env(&job.spec).is_err());
    }

    /// Cold start, this backend against a bare `docker run`: `cargo test -p
    /// codemode cold_start -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement, not a test"]
    async fn cold_start() {
        let Some(h) = harness("coldstart").await else {
            return;
        };
        let job = job("print(1)\n");
        let rounds = 15;
        let mut ours = Vec::new();
        let mut bare = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let (finished, out) = h.run(&job).await;
            ours.push(started.elapsed());
            assert_eq!((finished.exit_code, out.stdout.as_str()), (Some(0), "1\n"));
            let started = Instant::now();
            let status = std::process::Command::new("docker")
                .args([
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    &image(),
                    "python3",
                    "-c",
                    "print(1)",
                ])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            bare.push(started.elapsed());
            assert!(status.success());
        }
        let median = |times: &mut Vec<Duration>| {
            times.sort();
            times[times.len() / 2]
        };
        eprintln!(
            "cold start, median of {rounds}: backend {:?}, docker run {:?}",
            median(&mut ours),
            median(&mut bare)
        );
    }
}
