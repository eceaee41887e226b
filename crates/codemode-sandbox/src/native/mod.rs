//! The native Linux sandbox: namespaces, a minimal read-only root, Landlock,
//! seccomp, rlimits and cgroups, with no daemon.
//!
//! codemode re-executes itself (`/proc/self/exe __sandbox-init`) as the
//! setup process, which builds the sandbox layer by layer and finally
//! `execve`s the interpreter; see [`init`] for the processes and the order of
//! the layers, [`launch`] for how the parent drives and stops a run, and
//! [`protocol`] for what the two say to each other.
//!
//! Layers, in the order they are applied:
//! 1. cgroup (memory, pids, cpu; where the host allows: as root, v1 or v2;
//!    see [`NativeSandbox::check`] for what happens elsewhere),
//! 2. an unprivileged host uid: the invoking user's, or, when codemode runs
//!    as root, one of the run's own, picked at random from a range no
//!    account uses (see [`super::host_user`]), so that no other host process
//!    (a daemon running as `nobody`, another run) can read or trace the script,
//! 3. user, mount, pid, net, ipc, uts and cgroup namespaces (that host uid
//!    is 65534, `nobody`, inside),
//! 4. a new root of read-only binds, a sized tmpfs `/workspace` holding
//!    copies of the run's inputs, a sized `/tmp`, a read-only minimal `/dev`,
//!    a fresh `/proc` with the host's details masked; hostname `sandbox`,
//! 5. rlimits, 6. no capabilities, 7. Landlock (+ no_new_privs), 8. seccomp,
//! 9. `execve` of `python -E -s -u -B <script>` with only the run's
//!    environment.
//!
//! Every layer is required: if one cannot be set up the run fails with the
//! layer and the reason, and nothing of the script runs. The cgroup layer is
//! required for the limits the user set; defaults it cannot give are bounded
//! by the other layers instead, and said once.

mod cgroup;
mod init;
mod landlock;
mod launch;
mod mounts;
mod protocol;
mod python;
mod rlimits;
mod seccomp;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::{
    host_user, Finished, HostUser, Limits, OutputSink, RunSpec, RunUser, SandboxError,
    BRIDGE_SOCKET_NAME, PYTHON_FLAGS, SANDBOX_BRIDGE_DIR, SANDBOX_GID, SANDBOX_UID,
    SANDBOX_WORKSPACE,
};
use cgroup::Controller;
use protocol::{InitSpec, Report};

pub use init::init_main;

/// The hidden first argument with which codemode re-executes itself as the
/// sandbox's setup process.
pub const INIT_ARG: &str = "__sandbox-init";

pub struct NativeSandbox {
    python: python::Interpreter,
    /// The binary to run as the setup process: codemode itself, except in
    /// unit tests, whose own binary is the test harness.
    exe: PathBuf,
    /// The cgroup controllers runs get on this host, probed once.
    controllers: Vec<Controller>,
}

fn unavailable(reason: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable {
        backend: "native",
        reason: reason.into(),
    }
}

fn failed(reason: impl Into<String>) -> SandboxError {
    SandboxError::Failed {
        backend: "native",
        reason: reason.into(),
    }
}

impl NativeSandbox {
    /// Checks the interpreter (`python`: `sandbox.python`) and that the host
    /// allows user namespaces at all. Everything else is checked by each
    /// run, which fails closed.
    pub fn new(python: Option<PathBuf>) -> Result<NativeSandbox, SandboxError> {
        if let Some(why) = init::userns_disabled() {
            return Err(unavailable(why));
        }
        let python = python::resolve(python.as_deref()).map_err(unavailable)?;
        Ok(NativeSandbox {
            python,
            exe: PathBuf::from("/proc/self/exe"),
            controllers: cgroup::RunCgroup::probe(),
        })
    }

    /// Which limits this host lets the native sandbox enforce for a whole
    /// run, as (limit, how) pairs, for `doctor`.
    pub fn enforcement(&self) -> Vec<(&'static str, String)> {
        let via = |controller: Controller, otherwise: &str| {
            if self.controllers.contains(&controller) {
                format!("whole run (cgroup {})", controller.name())
            } else {
                otherwise.to_string()
            }
        };
        vec![
            (
                "memory",
                via(
                    Controller::Memory,
                    "per process only (RLIMIT_AS; no memory cgroup): a limit you set is refused",
                ),
            ),
            (
                "cpus",
                via(
                    Controller::Cpu,
                    "not enforced (no cpu cgroup; the timeout and RLIMIT_CPU bound each run): a limit you set is refused",
                ),
            ),
            (
                "pids",
                via(
                    Controller::Pids,
                    "whole run (RLIMIT_NPROC in the run's own user namespace)",
                ),
            ),
            ("disk", "whole run (sized tmpfs workspace and /tmp)".into()),
            ("timeout", "whole run (the run is killed)".into()),
        ]
    }

    /// Refuses `limits` if it holds a limit the user set that no layer here
    /// can enforce for the whole run; otherwise returns what is said once
    /// about defaults that are bounded some other way.
    pub fn check(&self, limits: &Limits) -> Result<Vec<String>, SandboxError> {
        let mut notes = Vec::new();
        if let Some(bytes) = limits.memory_bytes {
            if !self.controllers.contains(&Controller::Memory) {
                let size = codemode_text::human_bytes(bytes);
                if limits.chosen.memory {
                    return Err(unavailable(format!(
                        "the memory limit of {size} (--memory, sandbox.memory) cannot be enforced \
                         for the whole run: this host gives codemode no memory cgroup. Run codemode as \
                         root, or pass --memory none to run without a memory limit"
                    )));
                }
                notes.push(format!(
                    "no memory cgroup here (not root): each process of a run may map up to \
                         {size} plus {} (RLIMIT_AS), not the run as a whole",
                    codemode_text::human_bytes(rlimits::AS_HEADROOM)
                ));
            }
        }
        if limits.cpus > 0.0 && !self.controllers.contains(&Controller::Cpu) {
            if limits.chosen.cpus {
                return Err(unavailable(format!(
                    "the CPU share of {} (--cpus, sandbox.cpus) cannot be enforced: this host \
                         gives codemode no cpu cgroup. Run codemode as root, \
                         or pass --cpus 0 to run without a CPU limit",
                    limits.cpus
                )));
            }
            notes.push(format!(
                "no cpu cgroup here (not root): the CPU share of {} is not enforced; the \
                         timeout and RLIMIT_CPU bound each run",
                limits.cpus
            ));
        }
        Ok(notes)
    }

    #[cfg(test)]
    fn with_exe(mut self, exe: PathBuf) -> NativeSandbox {
        self.exe = exe;
        self
    }

    /// A fresh unused host user as root; otherwise the invoking user, the
    /// only one an unprivileged user namespace can map.
    pub fn run_user(&self) -> Result<RunUser, SandboxError> {
        if nix::unistd::geteuid().is_root() && !host_user::range_is_mapped() {
            // Root of a container's user namespace: the unused range does
            // not exist here, so runs share `nobody`.
            tracing::debug!(
                "native sandbox: no unused uid range mapped here; runs as uid {SANDBOX_UID}"
            );
            return Ok(RunUser::nobody());
        }
        if nix::unistd::geteuid().is_root() {
            return RunUser::leased().map_err(unavailable);
        }
        Ok(RunUser::invoking())
    }

    /// Runs `spec`, streaming its output into `sink`, until it exits, times
    /// out, floods its output or `cancel` fires. Every process of the run is
    /// gone when this returns.
    pub async fn run(
        &self,
        spec: &RunSpec,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<Finished, SandboxError> {
        // Refused before anything is made (exit 125, as for a missing
        // layer): a limit the user set must hold.
        self.check(&spec.limits)?;
        let cgroup = cgroup::RunCgroup::create(&cgroup::new_id(), &spec.limits);
        let in_effect = cgroup
            .as_ref()
            .map(|c| c.controllers.clone())
            .unwrap_or_default();
        // The probe said yes, this run's group said no: still fail closed.
        let limits = &spec.limits;
        for (controller, wanted) in [
            (
                Controller::Memory,
                limits.chosen.memory && limits.memory_bytes.is_some(),
            ),
            (Controller::Cpu, limits.chosen.cpus && limits.cpus > 0.0),
        ] {
            if wanted && !in_effect.contains(&controller) {
                return Err(unavailable(format!(
                    "could not make the run's {} cgroup",
                    controller.name()
                )));
            }
        }
        let mut init_spec = self.init_spec(spec, in_effect.contains(&Controller::Memory))?;
        init_spec.cgroup_procs = cgroup
            .as_ref()
            .map(cgroup::RunCgroup::procs_files)
            .unwrap_or_default();

        let outcome = match launch::spawn(&self.exe, &init_spec) {
            Ok(launched) => {
                launch::supervise(launched, sink, cancel, spec.limits.timeout, &spec.clock).await
            }
            Err(e) => Err(e),
        };
        let oom_killed = cgroup.as_ref().is_some_and(cgroup::RunCgroup::oom_killed);
        if let Some(cgroup) = cgroup {
            cgroup.remove().await;
        }
        finish(outcome?, oom_killed)
    }

    fn init_spec(&self, spec: &RunSpec, memory_in_cgroup: bool) -> Result<InitSpec, SandboxError> {
        check_script_name(&spec.script)?;
        // Canonical: the setup process resolves them again from below a
        // different root, where an absolute symlink would lead astray.
        let canonical = |what: &str, path: &Path| {
            std::fs::canonicalize(path)
                .map_err(|e| failed(format!("{what} {}: {e}", path.display())))
        };
        let inputs = canonical("inputs", &spec.inputs)?;
        let bridge_dir = canonical("bridge directory", &spec.bridge_dir)?;
        let mounts = mounts::plan(
            &mounts::Host,
            &mounts::PlanInputs {
                inputs: &inputs,
                bridge_dir: &bridge_dir,
                python_dirs: &self.python.extra_dirs,
                tmp_bytes: spec.limits.tmp_bytes,
                disk_bytes: spec.limits.disk_bytes,
            },
        );
        let mut argv = vec![self.python.path.to_string_lossy().into_owned()];
        argv.extend(PYTHON_FLAGS.iter().map(|f| f.to_string()));
        argv.push(format!("{SANDBOX_WORKSPACE}/{}", spec.script));
        argv.extend(spec.args.iter().cloned());
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(failed("an argument contains a NUL byte"));
        }
        let drop_to = if nix::unistd::geteuid().is_root() {
            let HostUser { uid, gid } = spec.host_user;
            if uid == 0 || gid == 0 {
                return Err(failed(format!(
                    "refusing to run the script as host uid {uid}, gid {gid}"
                )));
            }
            Some((uid, gid))
        } else {
            None
        };
        Ok(InitSpec {
            cgroup_procs: Vec::new(),
            drop_to,
            sandbox_uid: SANDBOX_UID,
            sandbox_gid: SANDBOX_GID,
            hostname: mounts::HOSTNAME.into(),
            landlock: landlock::plan(&mounts),
            mounts,
            rlimits: rlimits::plan(&spec.limits, memory_in_cgroup),
            cwd: SANDBOX_WORKSPACE.into(),
            argv,
            env: script_env(&spec.env)?,
        })
    }
}

/// The script's file name must name a file directly in the workspace.
fn check_script_name(name: &str) -> Result<(), SandboxError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if plain {
        Ok(())
    } else {
        Err(failed(format!(
            "script name {name:?} is not a plain file name"
        )))
    }
}

/// The run's environment plus the few variables the backend owns; nothing of
/// the host's. The bridge URL is the caller's to override.
fn script_env(user: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, SandboxError> {
    let mut env = user.clone();
    for (name, value) in [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/tmp"),
        ("LANG", "C.UTF-8"),
    ] {
        env.insert(name.into(), value.into());
    }
    env.entry("CODEMODE_BRIDGE_URL".into())
        .or_insert_with(|| format!("unix://{SANDBOX_BRIDGE_DIR}/{BRIDGE_SOCKET_NAME}"));
    for (name, value) in &env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(failed(format!("invalid environment variable {name:?}")));
        }
    }
    Ok(env.into_iter().collect())
}

fn finish(outcome: launch::Outcome, oom_killed: bool) -> Result<Finished, SandboxError> {
    if let Some(why) = outcome.reports.iter().find_map(|r| match r {
        Report::SetupFailed(why) => Some(why.clone()),
        _ => None,
    }) {
        return Err(unavailable(why));
    }
    let mut finished = Finished {
        timed_out: outcome.timed_out,
        cancelled: outcome.cancelled,
        output_flooded: outcome.output_flooded,
        oom_killed,
        ..Finished::default()
    };
    match outcome.reports.iter().rev().find_map(|r| match r {
        Report::Exited(code) => Some(Ok(*code)),
        Report::Signaled(sig) => Some(Err(*sig)),
        _ => None,
    }) {
        Some(Ok(code)) => finished.exit_code = Some(code),
        Some(Err(sig)) => finished.signal = Some(sig),
        // Killed before the init could report: by us, or the init was.
        None if outcome.stopped_by_us() || oom_killed => finished.signal = Some(libc::SIGKILL),
        None => {
            let how = outcome
                .setup_exit
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err(failed(format!(
                "the sandbox ended without reporting the script's status (setup process: {how})"
            )));
        }
    }
    Ok(finished)
}
