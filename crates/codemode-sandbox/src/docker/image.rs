//! The image every container starts from: looked up on the engine and, where
//! allowed, pulled.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;

use super::engine::{self, ENGINE_REPLY};
use super::errors::unavailable;
use crate::SandboxError;

/// A pull that reports no progress for this long is abandoned.
const PULL_STALL: Duration = Duration::from_secs(120);

/// What to do about an image the engine lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pull {
    IfMissing,
    /// For questions about this machine, which must not start a download.
    Never,
}

/// Makes sure the engine has `image`, pulling it if `pull_it` allows.
pub(super) async fn ensure(
    docker: &Docker,
    image: &str,
    pull_it: Pull,
) -> Result<(), SandboxError> {
    let inspect = match tokio::time::timeout(ENGINE_REPLY, docker.inspect_image(image)).await {
        Ok(inspect) => inspect,
        Err(_) => {
            return Err(unavailable(format!(
                "the Docker engine at {} stopped answering: looking up image {image} got no reply in {} s",
                engine::host(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
