//! Sandboxes: where a script runs, isolated from the host, with the bridge as
//! its only way out.
//!
//! Every backend gives the same guarantees (docs/ARCHITECTURE.md, "Sandboxes"): no network
//! but the bridge's Unix socket, a fresh writable workspace, everything else
//! read-only, a sized tmpfs `/tmp`, an unprivileged user, limits on memory, CPU,
//! processes, time and output, every process of the run gone at the end, and
//! failing closed: a layer that cannot be set up is an error, never a reason to
//! run with less isolation.

mod clock;
pub mod docker;
mod host_user;
pub mod native;
mod output;
mod run_dir;
mod seccomp_rules;

use codemode_config::Backend as Choice;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use clock::{Pause, RunClock};
pub use output::{Live, OutputSink, Stream};
pub use run_dir::RunDir;

/// Where the sandbox sees the workspace; also the script's working directory.
pub const SANDBOX_WORKSPACE: &str = "/workspace";
/// Where the sandbox sees the directory holding the bridge socket.
pub const SANDBOX_BRIDGE_DIR: &str = "/run/codemode";
/// The bridge socket's file name, on the host and in the sandbox.
pub const BRIDGE_SOCKET_NAME: &str = "bridge.sock";
/// Where the sandbox sees the files given to it ([`RunSpec::input_files`]),
/// read-only.
pub const SANDBOX_INPUT_DIR: &str = "/workspace/in";
/// The user the script sees itself as in the native sandbox, which maps it
/// to [`RunSpec::host_user`]; also the host user of runs that cannot have
/// one of their own (see [`Backend::run_user`]).
pub const SANDBOX_UID: u32 = 65534;
pub const SANDBOX_GID: u32 = 65534;

/// How every backend starts the interpreter, before the script's path.
/// `-E -s`: no `PYTHON*` variables and no user site directory, so nothing
/// but the standard library is imported before the script starts (the
/// script's own directory, the workspace, is on `sys.path` only for the
/// script's imports, `mcp_tools` among them); `-u`: output written before an
/// OOM kill is not lost in a buffer; `-B`: no `.pyc` files.
pub const PYTHON_FLAGS: [&str; 4] = ["-E", "-s", "-u", "-B"];

/// Files of `/proc` that tell about the host rather than the sandbox: its
/// boot command line, kernel build, memory image, keys and scheduler state.
/// Both backends hide them.
pub const PROC_MASKED_FILES: [&str; 8] = [
    "/proc/cmdline",
    "/proc/config.gz",
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/latency_stats",
];

/// A uid and gid on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostUser {
    pub uid: u32,
    pub gid: u32,
}

/// The host user one run's script will have, from [`Backend::run_user`];
/// keep it until the run and its files are gone, as it may be reserved for
/// this run alone.
#[derive(Debug)]
pub struct RunUser {
    user: HostUser,
    _lease: Option<host_user::Lease>,
}

impl RunUser {
    pub fn user(&self) -> HostUser {
        self.user
    }

    /// Host uid and gid 65534, shared with every other such run and with
    /// whatever else on the host runs as `nobody`.
    fn nobody() -> RunUser {
        RunUser {
            user: HostUser {
                uid: SANDBOX_UID,
                gid: SANDBOX_GID,
            },
            _lease: None,
        }
    }

    /// The user running codemode: the only one an unprivileged codemode can
    /// give the run's directory to.
    fn invoking() -> RunUser {
        RunUser {
            user: HostUser {
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
            },
            _lease: None,
        }
    }

    /// An unused host uid and gid of this run's own; needs root, since only
    /// root can give the run's workspace to it.
    fn leased() -> Result<RunUser, String> {
        let (user, lease) = host_user::lease()?;
        Ok(RunUser {
            user,
            _lease: Some(lease),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub timeout: Duration,
    /// Memory of the whole run, shared mappings and tmpfs pages included;
    /// `None` when the user asked for no limit (`--memory none`).
    pub memory_bytes: Option<u64>,
    /// CPU share of the whole run, all threads: 0.5 is half of one core; 0
    /// is no limit.
    pub cpus: f64,
    /// Processes and threads at once.
    pub pids: u32,
    /// Size of the `/tmp` tmpfs.
    pub tmp_bytes: u64,
    /// Size of the workspace, a tmpfs of its own: what a script can store.
    pub disk_bytes: u64,
    /// What is kept of each of stdout and stderr; the rest is dropped and the
    /// result marked truncated.
    pub output_bytes: usize,
    /// Which limits the user set (a flag or the config file) rather than left
    /// at their defaults.
    pub chosen: Chosen,
}

/// Limits the user set themselves. A backend must enforce these for the
/// whole run or refuse it; a default it cannot enforce is only said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chosen {
    pub memory: bool,
    pub cpus: bool,
}

/// Files and directories a workspace may hold: bounds the kernel memory a
/// flood of empty files can take, which a size limit alone does not.
pub const WORKSPACE_INODES: u64 = 32_768;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: Some(512 * 1024 * 1024),
            cpus: 0.5,
            pids: 128,
            tmp_bytes: 64 * 1024 * 1024,
            disk_bytes: 256 * 1024 * 1024,
            output_bytes: 1024 * 1024,
            chosen: Chosen::default(),
        }
    }
}

/// One run of one script.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Host directory holding the script and `mcp_tools.py` ([`RunDir`]).
    /// The sandbox never writes it: its files are copied into the workspace,
    /// a fresh tmpfs of [`Limits::disk_bytes`] that the sandbox sees at
    /// [`SANDBOX_WORKSPACE`] as its working directory.
    pub inputs: PathBuf,
    /// The script's file name among the inputs.
    pub script: String,
    pub args: Vec<String>,
    /// The script's whole environment, apart from the few variables a backend
    /// sets itself (`PATH`, `HOME`, `LANG`). The host's environment never
    /// enters. The interpreter ignores `PYTHON*` variables (see
    /// [`PYTHON_FLAGS`]).
    pub env: BTreeMap<String, String>,
    /// Host directory holding the bridge socket [`BRIDGE_SOCKET_NAME`]; the
    /// sandbox sees it at [`SANDBOX_BRIDGE_DIR`].
    pub bridge_dir: PathBuf,
    /// Who the script is on the host, from [`Backend::run_user`]: the owner
    /// the workspace needs.
    pub host_user: HostUser,
    pub limits: Limits,
    /// What `limits.timeout` is measured on: time waiting for a person does
    /// not count.
    pub clock: RunClock,
    /// Host directory of files given to the script, which it sees read-only
    /// at [`SANDBOX_INPUT_DIR`]; `None`: no such directory. Readable by
    /// [`RunSpec::host_user`], and only codemode writes it.
    pub input_files: Option<PathBuf>,
    /// Python source run as the script's parent: the sandbox starts
    /// `python -I -B -c SOURCE -- ARGV`, ARGV being exactly the command it
    /// would run otherwise, so that the parent can act once the script is
    /// done while the script itself runs as it always does.
    pub parent: Option<String>,
}

impl RunSpec {
    /// The interpreter's command line for `python` (the interpreter as the
    /// backend names it), with [`RunSpec::parent`] in front when there is one.
    pub fn argv(&self, python: &str) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(parent) = &self.parent {
            argv.extend([python, "-I", "-B", "-c", parent.as_str(), "--"].map(String::from));
        }
        argv.push(python.to_string());
        argv.extend(PYTHON_FLAGS.iter().map(|f| f.to_string()));
        argv.push(format!("{SANDBOX_WORKSPACE}/{}", self.script));
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// The script's exit status, when it exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Killed for going over its memory limit, where the backend can tell.
    pub oom_killed: bool,
    /// Killed because it kept writing output far past the cap.
    pub output_flooded: bool,
    /// Stopped because the caller cancelled the run (Ctrl-C, an MCP cancel).
    pub cancelled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Isolation could not be set up; nothing ran.
    #[error("the {backend} sandbox is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("the {backend} sandbox failed: {reason}")]
    Failed {
        backend: &'static str,
        reason: String,
    },
    /// The run was under way when the sandbox was lost (the Docker engine
    /// went away): how the script ended is unknown, but what it printed and
    /// called until then is known, and callers report it.
    #[error("the {backend} sandbox failed: {reason}")]
    Lost {
        backend: &'static str,
        reason: String,
    },
}

pub enum Backend {
    Docker(docker::DockerSandbox),
    Native(native::NativeSandbox),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Docker(_) => "docker",
            Backend::Native(_) => "native",
        }
    }

    /// The host user the next run's script will have, to be given its
    /// workspace and passed back in [`RunSpec::host_user`].
    pub fn run_user(&self) -> Result<RunUser, SandboxError> {
        match self {
            Backend::Docker(_) => docker::DockerSandbox::run_user(),
            Backend::Native(native) => native.run_user(),
        }
    }

    /// Refuses `limits` if it holds a limit the user set that this backend
    /// cannot enforce for a whole run here; else what to say, once, about
    /// defaults it bounds some other way. The engine enforces Docker's.
    pub fn check(&self, limits: &Limits) -> Result<Vec<String>, SandboxError> {
        match self {
            Backend::Docker(_) => Ok(Vec::new()),
            Backend::Native(native) => native.check(limits),
        }
    }

    /// Runs `spec`, streaming its output into `sink`, until it exits, times out,
    /// floods its output or `cancel` fires. Every process of the run is gone
    /// when this returns.
    pub async fn run(
        &self,
        spec: &RunSpec,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<Finished, SandboxError> {
        match self {
            Backend::Docker(docker) => docker.run(spec, sink, cancel).await,
            Backend::Native(native) => native.run(spec, sink, cancel).await,
        }
    }
}

/// Waits up to `limit` for the cleanup that runs dropped mid-way left to the
/// background, and returns the Docker containers still not removed (find
/// them by [`docker::RUN_LABEL`]). Call it once, just before the process
/// exits, after the runtime that ran the runs has shut down.
///
/// It is process-wide because the work is: a run's future dropped mid-way
/// (a stopped `serve` drops its runs with its runtime) removes its container
/// from a `Drop` impl, which has no async context and no caller to hand the
/// work back to, so a thread of its own does it, and exiting would cut that
/// thread off and leave the container behind.
pub fn finish_cleanup(limit: Duration) -> Vec<String> {
    docker::wait_for_removals(limit)
}

/// The backend `choice` names. `auto` takes Docker where an engine answers and
/// has (or can pull) the image, else native; `note` says why, for the user.
pub async fn select(
    choice: Choice,
    image: &str,
    python: Option<PathBuf>,
) -> Result<(Backend, String), SandboxError> {
    match choice {
        Choice::Docker => Ok((
            Backend::Docker(docker::DockerSandbox::connect(image).await?),
            format!("docker (image {image})"),
        )),
        Choice::Native => Ok((
            Backend::Native(native::NativeSandbox::new(python)?),
            "native".into(),
        )),
        Choice::Auto => match docker::DockerSandbox::connect(image).await {
            Ok(docker) => Ok((Backend::Docker(docker), format!("docker (image {image})"))),
            Err(why_not) => {
                let native = native::NativeSandbox::new(python)?;
                Ok((Backend::Native(native), format!("native ({why_not})")))
            }
        },
    }
}
