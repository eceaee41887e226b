//! One run of a created container, from attach to its exit status: output
//! into the sink, the timeout, cancellation and an output flood, each a kill
//! that never stops the reading, and an engine that stops answering told
//! apart from a script that ended.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{AttachContainerOptionsBuilder, KillContainerOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::engine::{self, ENGINE_REPLY};
use super::errors::{failed, start_error, Failure};
use crate::{Finished, OutputSink, RunSpec, Stream};

/// After the container is killed (timeout, flood, cancel), how long we wait
/// for the engine to report it gone before giving up on its exit status. The
/// force-remove that follows kills it regardless.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// After the script has exited, how long its last output may take to arrive.
/// Once the container is gone its pipes are closed, so this only matters if
/// the attach stream is wedged.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Why we stopped a run ourselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Flooded,
    Cancelled,
}

type Timer = Pin<Box<Sleep>>;

fn timer(after: Duration) -> Timer {
    Box::pin(tokio::time::sleep(after))
}

/// The kill request of a stopped run, while the engine has not answered it.
type Kill<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where a started run stands, as far as the engine has told. Each phase
/// holds only what can exist in it: a timeout or a cancel can only stop a
/// run that is still running, a kill is only ever in flight for a run we
/// stopped, and a wait for the last output needs a known exit or a stop.
enum Phase<'a> {
    /// Neither exited nor stopped by us.
    Running,
    /// Exited by itself with `code`; its last output may take until `drain`.
    Exited { code: i64, drain: Timer },
    /// Stopped by us; `code` once the engine has reported the exit.
    Stopped {
        stop: Stopping<'a>,
        code: Option<i64>,
    },
}

/// A run we stopped.
struct Stopping<'a> {
    why: Stop,
    /// Runs alongside the reading, never instead of it: the engine does not
    /// finish a kill while the container's output pipe is full and nobody
    /// reads the attach stream (a flood deadlocks until the request times
    /// out).
    kill: Option<Kill<'a>>,
    /// How long, from the stop, the engine has to report the exit and close
    /// the output.
    grace: Timer,
}

/// What came first of a phase's kill request and its timer.
enum Tick {
    KillAnswered,
    TimeUp,
}

impl<'a> Phase<'a> {
    fn is_running(&self) -> bool {
        matches!(self, Phase::Running)
    }

    fn exit_known(&self) -> bool {
        match self {
            Phase::Running => false,
            Phase::Exited { .. } => true,
            Phase::Stopped { code, .. } => code.is_some(),
        }
    }

    fn stopped(&self) -> Option<Stop> {
        match self {
            Phase::Stopped { stop, .. } => Some(stop.why),
            Phase::Running | Phase::Exited { .. } => None,
        }
    }

    /// Stops a run we have not stopped yet: `kill` goes out, and the engine
    /// has [`KILL_GRACE`] from now, even if the script had already exited.
    fn stop(&mut self, why: Stop, kill: Kill<'a>) {
        let code = match self {
            Phase::Running => None,
            Phase::Exited { code, .. } => Some(*code),
            Phase::Stopped { .. } => return,
        };
        *self = Phase::Stopped {
            stop: Stopping {
                why,
                kill: Some(kill),
                grace: timer(KILL_GRACE),
            },
            code,
        };
    }

    /// The engine reported the exit. A run we stopped keeps the time its
    /// stop gave it.
    fn exited(&mut self, status: i64) {
        match self {
            Phase::Running => {
                *self = Phase::Exited {
                    code: status,
                    drain: timer(DRAIN_AFTER_EXIT),
                }
            }
            Phase::Stopped { code, .. } => *code = Some(status),
            // The engine answers a wait once, and it is asked only until then.
            Phase::Exited { .. } => {}
        }
    }

    fn kill_answered(&mut self) {
        if let Phase::Stopped { stop, .. } = self {
            stop.kill = None;
        }
    }

    /// Never completes while the run is running.
    async fn tick(&mut self) -> Tick {
        match self {
            Phase::Running => std::future::pending().await,
            Phase::Exited { drain, .. } => {
                drain.as_mut().await;
                Tick::TimeUp
            }
            Phase::Stopped { stop, .. } => match &mut stop.kill {
                Some(kill) => tokio::select! {
                    () = kill.as_mut() => Tick::KillAnswered,
                    () = stop.grace.as_mut() => Tick::TimeUp,
                },
                None => {
                    stop.grace.as_mut().await;
                    Tick::TimeUp
                }
            },
        }
    }

    /// The exit status, if the engine reported one, and why we stopped the
    /// run, if we did.
    fn end(self) -> (Option<i64>, Option<Stop>) {
        match self {
            Phase::Running => (None, None),
            Phase::Exited { code, .. } => (Some(code), None),
            Phase::Stopped { stop, code } => (code, Some(stop.why)),
        }
    }
}

/// Starts the created container `name` and watches it to the end.
pub(super) async fn supervise(
    docker: &Docker,
    name: &str,
    spec: &RunSpec,
    sink: &OutputSink,
    cancel: CancellationToken,
) -> Result<Finished, Failure> {
    let cancelled = Finished {
        cancelled: true,
        ..Finished::default()
    };
    // Attach before start so no output is missed. `logs` stays off: there
    // is nothing to replay yet, and the `none` log driver cannot.
    let attaching = docker.attach_container(
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
        _ = cancel.cancelled() => return Ok(cancelled),
    };
    // The input half stays open as long as the output half is read.
    let AttachContainerResults {
        output,
        input: _input,
    } = attach;
    tokio::select! {
        started = tokio::time::timeout(ENGINE_REPLY, docker.start_container(name, None)) => {
            match started {
                // The engine may have started the script before it froze.
                Err(_) => return Err(Failure::EngineLost(format!(
                    "it stopped answering: the start request got no reply in {} s",
                    ENGINE_REPLY.as_secs()
                ))),
                Ok(started) => started.map_err(|err| start_error(spec, err))?,
            }
        }
        _ = cancel.cancelled() => return Ok(cancelled),
    }
    let (exit, stopped) = watch(docker, name, spec, sink, cancel, output).await?;
    conclude(docker, name, exit, stopped).await
}

/// Reads the output of the started container `name` until it has exited (or
/// we have given up on hearing so) and its output is closed.
async fn watch(
    docker: &Docker,
    name: &str,
    spec: &RunSpec,
    sink: &OutputSink,
    cancel: CancellationToken,
    mut output: Pin<Box<dyn futures::Stream<Item = Result<LogOutput, DockerError>> + Send>>,
) -> Result<(Option<i64>, Option<Stop>), Failure> {
    let deadline = spec.clock.expiry(spec.limits.timeout);
    tokio::pin!(deadline);
    // The default condition, "not-running", answers at once for a
    // container that has already exited, so asking after start is safe.
    let mut wait = docker.wait_container(name, None);
    let mut output_open = true;
    let mut phase = Phase::Running;

    while output_open || !phase.exit_known() {
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
                    match phase.stopped() {
                        Some(Stop::Flooded) => {}
                        Some(Stop::TimedOut | Stop::Cancelled) => {
                            sink.push(stream, &bytes);
                        }
                        None => {
                            if !sink.push(stream, &bytes) {
                                phase.stop(Stop::Flooded, Box::pin(kill(docker, name)));
                            }
                        }
                    }
                }
                Some(Err(err)) => {
                    // A lost engine breaks this stream and the wait together;
                    // the wait's error is the one the user sees, once.
                    if engine::unreachable(&err) {
                        tracing::debug!("docker sandbox: output stream of {name} broke: {err}");
                    } else {
                        tracing::warn!("docker sandbox: output stream of {name} broke: {err}");
                    }
                    output_open = false;
                }
                None => output_open = false,
            },
            status = wait.next(), if !phase.exit_known() => {
                phase.exited(match status {
                    Some(Ok(response)) => response.status_code,
                    // bollard turns a non-zero exit into this error.
                    Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
                    Some(Err(err)) if engine::unreachable(&err) => return Err(Failure::EngineLost(engine::innermost(&err))),
                    Some(Err(err)) => return Err(failed(format!("waiting for the container: {err}")).into()),
                    // The engine answers a wait with exactly one status; a
                    // stream that ends without one is a dropped connection.
                    None => return Err(Failure::EngineLost("the connection closed without an exit status".into())),
                });
            }
            _ = &mut deadline, if phase.is_running() => {
                phase.stop(Stop::TimedOut, Box::pin(kill(docker, name)));
            }
            _ = cancel.cancelled(), if phase.is_running() => {
                phase.stop(Stop::Cancelled, Box::pin(kill(docker, name)));
            }
            tick = phase.tick() => match tick {
                Tick::KillAnswered => phase.kill_answered(),
                Tick::TimeUp => {
                    if let Phase::Stopped { stop, code: None } = &phase {
                        // A live engine answers a kill at once, even a
                        // refused one; no answer in all this time is a
                        // wedged daemon, and the container may well still
                        // run.
                        if stop.kill.is_some() {
                            return Err(Failure::EngineLost(format!(
                                "it stopped answering: a kill got no reply in {} s",
                                KILL_GRACE.as_secs()
                            )));
                        }
                        tracing::warn!("docker sandbox: {name} did not report its exit in time");
                    }
                    break;
                }
            },
        }
    }
    Ok(phase.end())
}

/// How the run ended, from the exit status the wait gave (if any), why we
/// stopped it (if we did) and the container's state.
async fn conclude(
    docker: &Docker,
    name: &str,
    exit: Option<i64>,
    stopped: Option<Stop>,
) -> Result<Finished, Failure> {
    let mut finished = Finished {
        timed_out: stopped == Some(Stop::TimedOut),
        output_flooded: stopped == Some(Stop::Flooded),
        cancelled: stopped == Some(Stop::Cancelled),
        ..Finished::default()
    };
    // OOMKilled is only in the container's state, not in the wait answer.
    let state = match tokio::time::timeout(ENGINE_REPLY, docker.inspect_container(name, None)).await
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
        Ok(Err(err)) if engine::unreachable(&err) => {
            return Err(Failure::EngineLost(engine::innermost(&err)))
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
        if stopped.is_none() && !finished.oom_killed && !engine::answers_anew().await {
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
            if (stopped.is_some() || finished.oom_killed) && (129..=128 + 64).contains(&code) =>
        {
            finished.signal = Some(code as i32 - 128);
        }
        Some(code) => finished.exit_code = Some(code as i32),
        // Nothing reported how it ended, but we killed it.
        None if stopped.is_some() => finished.signal = Some(libc::SIGKILL),
        None => return Err(failed("the container's exit status is unknown".into()).into()),
    }
    Ok(finished)
}

/// SIGKILL to every process of the container. A container that has already
/// stopped answers 409, which is fine: it is stopped either way.
async fn kill(docker: &Docker, name: &str) {
    let options = KillContainerOptionsBuilder::new().signal("KILL").build();
    match docker.kill_container(name, Some(options)).await {
        Ok(()) => {}
        Err(DockerError::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => {}
        Err(err) => tracing::warn!("docker sandbox: killing {name}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered<'a>() -> Kill<'a> {
        Box::pin(async {})
    }

    #[tokio::test]
    async fn a_stop_after_the_exit_keeps_the_exit_status() {
        let mut phase = Phase::Running;
        phase.exited(0);
        assert!(phase.exit_known() && phase.stopped().is_none());
        phase.stop(Stop::Flooded, answered());
        assert_eq!(phase.end(), (Some(0), Some(Stop::Flooded)));
    }

    #[tokio::test]
    async fn an_exit_after_a_stop_keeps_why_it_was_stopped() {
        let mut phase = Phase::Running;
        phase.stop(Stop::TimedOut, answered());
        assert!(!phase.is_running() && !phase.exit_known());
        phase.exited(137);
        assert_eq!(phase.end(), (Some(137), Some(Stop::TimedOut)));
    }

    #[tokio::test]
    async fn only_the_first_stop_counts() {
        let mut phase = Phase::Running;
        phase.stop(Stop::Cancelled, answered());
        phase.stop(Stop::Flooded, answered());
        assert_eq!(phase.end(), (None, Some(Stop::Cancelled)));
    }

    #[tokio::test]
    async fn an_answered_kill_leaves_the_grace_running() {
        let mut phase = Phase::Running;
        phase.stop(Stop::TimedOut, answered());
        assert!(matches!(phase.tick().await, Tick::KillAnswered));
        phase.kill_answered();
        let Phase::Stopped { stop, code: None } = &phase else {
            panic!("no longer stopped");
        };
        assert!(stop.kill.is_none());
    }
}
