//! One run of a created container, from attach to its exit status: output
//! into the sink, the timeout, cancellation and an output flood, each a kill
//! that never stops the reading, and an engine that stops answering told
//! apart from a script that ended.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{AttachContainerOptionsBuilder, KillContainerOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::engine::{self, ENGINE_REPLY};
use super::errors::{failed, start_error, Failure};
use crate::sandbox::{Finished, OutputSink, RunSpec, Stream};

/// After the container is killed (timeout, flood, cancel), how long we wait
/// for the engine to report it gone before giving up on its exit status. The
/// force-remove that follows kills it regardless.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// After the script has exited, how long its last output may take to arrive.
/// Once the container is gone its pipes are closed, so this only matters if
/// the attach stream is wedged.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

pub(super) const SIGKILL: i32 = 9;

/// Why we stopped a run ourselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Flooded,
    Cancelled,
}

/// Starts the created container `name` and watches it to the end.
pub(super) async fn supervise(
    docker: &Docker,
    name: &str,
    spec: &RunSpec,
    sink: &OutputSink,
    cancel: CancellationToken,
) -> Result<Finished, Failure> {
    let mut finished = Finished::default();

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
        _ = cancel.cancelled() => {
            finished.cancelled = true;
            return Ok(finished);
        }
    };
    let mut output = attach.output;
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
        _ = cancel.cancelled() => {
            finished.cancelled = true;
            return Ok(finished);
        }
    }

    let deadline = tokio::time::sleep(spec.limits.timeout);
    tokio::pin!(deadline);
    // The default condition, "not-running", answers at once for a
    // container that has already exited, so asking after start is safe.
    let mut wait = docker.wait_container(name, None);
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
                        killing = Some(Box::pin(kill(docker, name)));
                        grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
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
            status = wait.next(), if exit.is_none() => {
                exit = Some(match status {
                    Some(Ok(response)) => response.status_code,
                    // bollard turns a non-zero exit into this error.
                    Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
                    Some(Err(err)) if engine::unreachable(&err) => return Err(Failure::EngineLost(engine::innermost(&err))),
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
                killing = Some(Box::pin(kill(docker, name)));
                grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
            }
            _ = cancel.cancelled(), if stopped.is_none() && exit.is_none() => {
                stopped = Some(Stop::Cancelled);
                killing = Some(Box::pin(kill(docker, name)));
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
        None if stopped.is_some() => finished.signal = Some(SIGKILL),
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
