//! The engine itself: reaching it where `DOCKER_HOST` says, how long it may
//! take to answer, and telling an engine that is gone from one that answers
//! with an error.

use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::Docker;

/// How long the engine gets to answer a ping before we call it unavailable:
/// long enough for a busy local daemon, short enough that `auto` falls back to
/// native without a noticeable pause.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one request about a run (create, attach, start, inspect) may
/// take. A live engine answers in milliseconds; a wedged one would otherwise
/// hold the run for bollard's two-minute request timeout.
pub(super) const ENGINE_REPLY: Duration = Duration::from_secs(10);

/// Connects to the engine `DOCKER_HOST` names (or the local socket) and checks
/// that it answers.
pub(super) async fn connect() -> Result<Docker, String> {
    let host = host();
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
pub(super) async fn answers_anew() -> bool {
    let Ok(docker) = Docker::connect_with_defaults() else {
        return false;
    };
    matches!(
        tokio::time::timeout(ENGINE_REPLY, docker.ping()).await,
        Ok(Ok(_))
    )
}

/// The engine's address as messages name it.
pub(super) fn host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Whether `err` means no engine answers any more (it stopped, crashed or
/// the connection broke) rather than an engine answering with an error.
pub(super) fn unreachable(err: &DockerError) -> bool {
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
pub(super) fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
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
