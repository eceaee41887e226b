//! The parent side of a run: starts the setup process, streams its output
//! into the sink, listens to its report pipe, and stops the run on timeout,
//! cancellation or an output flood.
//!
//! Stopping is closing the lifeline pipe: the setup process (which holds its
//! read end) then SIGKILLs the sandbox's init, which takes the whole pid
//! namespace with it, and exits once the init is reaped, which the kernel
//! allows only after every process of the namespace is gone. The same
//! happens when codemode dies, since its end of the pipe closes with it.
//! SIGKILL of the setup process itself is only a fallback (its death still
//! kills the init through PR_SET_PDEATHSIG).

use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::memfd::{memfd_create, MFdFlags};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::protocol::{InitSpec, Report};
use super::INIT_ARG;
use crate::{OutputSink, RunClock, SandboxError, Stream};

fn failed(reason: impl Into<String>) -> SandboxError {
    SandboxError::Failed {
        backend: "native",
        reason: reason.into(),
    }
}

/// How long the setup process gets to wind the sandbox down after the
/// lifeline closes before it is killed itself.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long output may keep arriving once the setup process has exited
/// (everything is dead by then; this only bounds the unexpected).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

pub struct Launched {
    child: tokio::process::Child,
    report: tokio::net::unix::pipe::Receiver,
    /// Dropping it stops the run.
    lifeline: Option<OwnedFd>,
}

/// Starts `exe __sandbox-init` with the spec in a memfd and the report and
/// lifeline pipes, all three passed as inherited descriptors.
pub fn spawn(exe: &Path, spec: &InitSpec) -> Result<Launched, SandboxError> {
    let json = serde_json::to_vec(spec).map_err(|e| failed(format!("encoding the run: {e}")))?;
    let spec_fd = memfd_with(&json).map_err(|e| failed(format!("memfd: {e}")))?;
    let (report_read, report_write) = pipe().map_err(|e| failed(format!("pipe: {e}")))?;
    let (lifeline_read, lifeline_write) = pipe().map_err(|e| failed(format!("pipe: {e}")))?;

    let inherited: [RawFd; 3] = [
        spec_fd.as_raw_fd(),
        report_write.as_raw_fd(),
        lifeline_read.as_raw_fd(),
    ];
    let mut command = tokio::process::Command::new(exe);
    command
        .arg(INIT_ARG)
        .args(inherited.iter().map(|fd| fd.to_string()))
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal is codemode's to
        // handle (through `cancel`), not a signal that kills the setup process.
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the hook runs between fork and exec, where only
    // async-signal-safe calls are sound; it makes only fcntl calls, which
    // are, and allocates nothing. F_SETFD takes no pointer, and the three
    // numbers are open in the child, which inherits them from this process.
    unsafe {
        command.pre_exec(move || {
            // All three were made close-on-exec so that no other child of
            // codemode inherits them; this child must.
            for fd in inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| failed(format!("starting {}: {e}", exe.display())))?;
    drop((spec_fd, report_write, lifeline_read));
    let report = tokio::net::unix::pipe::Receiver::from_owned_fd(report_read)
        .map_err(|e| failed(format!("report pipe: {e}")))?;
    Ok(Launched {
        child,
        report,
        lifeline: Some(lifeline_write),
    })
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// The spec in an anonymous file, read from the start by the child.
fn memfd_with(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    let fd = memfd_create(c"codemode-sandbox-run", MFdFlags::MFD_CLOEXEC)
        .map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(OwnedFd::from(file))
}

/// Reads from `source`; never completes when there is none (the branch that
/// uses it is disabled then anyway).
async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    source: Option<&mut R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match source {
        Some(source) => source.read(buf).await,
        None => std::future::pending().await,
    }
}

/// What happened, before it is turned into a `Finished`.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reports: Vec<Report>,
    pub setup_exit: Option<ExitStatus>,
    pub timed_out: bool,
    pub cancelled: bool,
    pub output_flooded: bool,
    /// A setup error came back (the run was stopped right away).
    pub setup_failed: bool,
}

impl Outcome {
    pub fn stopped_by_us(&self) -> bool {
        self.timed_out || self.cancelled || self.output_flooded || self.setup_failed
    }
}

/// Runs the launched sandbox to its end.
pub async fn supervise(
    mut launched: Launched,
    sink: &OutputSink,
    cancel: CancellationToken,
    timeout: Duration,
    clock: &RunClock,
) -> Result<Outcome, SandboxError> {
    let mut stdout = launched.child.stdout.take();
    let mut stderr = launched.child.stderr.take();
    let mut report = Some(launched.report);
    let (mut out_buf, mut err_buf, mut report_buf) =
        (vec![0u8; 65536], vec![0u8; 65536], [0u8; 4096]);
    let mut pending_line: Vec<u8> = Vec::new();
    let mut outcome = Outcome::default();

    let deadline = clock.expiry(timeout);
    tokio::pin!(deadline);
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let kill_fallback = tokio::time::sleep_until(far);
    tokio::pin!(kill_fallback);
    let drain_deadline = tokio::time::sleep_until(far);
    tokio::pin!(drain_deadline);
    let mut stopping = false;

    // Closing the lifeline is the one way to stop; the fallback timer covers
    // a setup process that does not react.
    macro_rules! stop {
        () => {
            if !stopping {
                stopping = true;
                launched.lifeline = None;
                kill_fallback.as_mut().reset(Instant::now() + KILL_GRACE);
            }
        };
    }

    loop {
        if stdout.is_none() && stderr.is_none() && report.is_none() && outcome.setup_exit.is_some()
        {
            break;
        }
        tokio::select! {
            read = read_some(stdout.as_mut(), &mut out_buf), if stdout.is_some() => {
                match read {
                    Ok(0) | Err(_) => stdout = None,
                    Ok(n) => if !sink.push(Stream::Stdout, &out_buf[..n]) && !outcome.output_flooded {
                        outcome.output_flooded = true;
                        stop!();
                    },
                }
            }
            read = read_some(stderr.as_mut(), &mut err_buf), if stderr.is_some() => {
                match read {
                    Ok(0) | Err(_) => stderr = None,
                    Ok(n) => if !sink.push(Stream::Stderr, &err_buf[..n]) && !outcome.output_flooded {
                        outcome.output_flooded = true;
                        stop!();
                    },
                }
            }
            read = read_some(report.as_mut(), &mut report_buf), if report.is_some() => {
                match read {
                    Ok(0) | Err(_) => report = None,
                    Ok(n) => {
                        pending_line.extend_from_slice(&report_buf[..n]);
                        while let Some(end) = pending_line.iter().position(|&b| b == b'\n') {
                            let line: Vec<u8> = pending_line.drain(..=end).collect();
                            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                            match Report::parse(&text) {
                                Some(Report::SetupFailed(why)) => {
                                    outcome.setup_failed = true;
                                    outcome.reports.push(Report::SetupFailed(why));
                                    stop!();
                                }
                                Some(Report::Note(note)) => tracing::debug!("native sandbox: {note}"),
                                Some(other) => outcome.reports.push(other),
                                None => tracing::debug!("native sandbox: unknown report line {text:?}"),
                            }
                        }
                    }
                }
            }
            status = launched.child.wait(), if outcome.setup_exit.is_none() => {
                let status = status.map_err(|e| failed(format!("waiting for the setup process: {e}")))?;
                outcome.setup_exit = Some(status);
                drain_deadline.as_mut().reset(Instant::now() + DRAIN_GRACE);
            }
            () = &mut deadline, if !stopping => {
                outcome.timed_out = true;
                stop!();
            }
            () = cancel.cancelled(), if !stopping => {
                outcome.cancelled = true;
                stop!();
            }
            () = &mut kill_fallback, if stopping && outcome.setup_exit.is_none() => {
                tracing::warn!("native sandbox: the setup process did not stop; killing it");
                let _ = launched.child.start_kill();
                kill_fallback.as_mut().reset(far);
            }
            () = &mut drain_deadline, if outcome.setup_exit.is_some() => {
                tracing::warn!("native sandbox: output still open after the run ended; not waiting for it");
                break;
            }
        }
    }
    Ok(outcome)
}
