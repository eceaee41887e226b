//! Starting one MCP session: a stdio child or a streamable HTTP endpoint, up to the
//! end of `initialize`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ClientHandler;
use tokio_util::sync::CancellationToken;

use super::stderr::StderrTail;
use super::McpError;
use codemode_config::{ResolvedServer, Transport};

pub type Session = RunningService<RoleClient, Client>;

/// What codemode tells a server about itself: its name and version, not the
/// SDK's.
#[derive(Clone)]
pub struct Client {
    config: ClientConfig,
}

impl Client {
    fn new(protocol_version: ProtocolVersion) -> Client {
        let mut config = ClientConfig::new(
            Default::default(),
            Implementation::new("codemode", env!("CARGO_PKG_VERSION")),
        );
        config.protocol_version = protocol_version;
        Client { config }
    }
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }
}

/// How to open the session: the `initialize` handshake at a version, or, for
/// a server that speaks only revisions without one, `server/discover`.
#[derive(Clone)]
enum Lifecycle {
    Initialize(ProtocolVersion),
    Discover(Vec<ProtocolVersion>),
}

enum Failure {
    /// Before any MCP: the command, the config.
    Setup(McpError),
    Handshake(Box<ClientInitializeError>),
}

/// How long to wait for a dying child's last stderr lines before quoting them.
const STDERR_SETTLE: Duration = Duration::from_millis(300);

/// `hurry`, once cancelled, makes stopping a stdio server kill it at once
/// instead of granting it the [`STOP_GRACE`]s.
pub async fn open(
    spec: &ResolvedServer,
    stderr: &Arc<StderrTail>,
    hurry: &CancellationToken,
) -> Result<Session, McpError> {
    let server = spec.name.clone();
    // One bound for every try: a retry at another version is part of starting.
    let deadline = tokio::time::Instant::now() + spec.connect_timeout;
    let mut lifecycle = Lifecycle::Initialize(ProtocolVersion::default());
    let mut retried = false;
    loop {
        let started =
            tokio::time::timeout_at(deadline, attempt(spec, stderr, hurry, lifecycle.clone()))
                .await;
        let err = match started {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err(Failure::Setup(err))) => return Err(err),
            Ok(Err(Failure::Handshake(err))) => *err,
            Err(_) => {
                return Err(McpError::ConnectTimeout {
                    server,
                    after: spec.connect_timeout,
                    stderr: stderr.summary(),
                })
            }
        };
        if !retried {
            if let Some(next) = other_version(&err) {
                // The server named the versions it speaks: the connection
                // ends with the refusal, so the next try starts afresh.
                retried = true;
                lifecycle = next;
                continue;
            }
        }
        if let (Some(status), Transport::Http { url, .. }) =
            (handshake_refused_status(&err), &spec.transport)
        {
            return Err(McpError::Auth {
                server,
                status,
                url: url.to_string(),
            });
        }
        stderr.settle(STDERR_SETTLE).await;
        return Err(McpError::Initialize {
            server,
            reason: err.to_string(),
            stderr: stderr.summary(),
        });
    }
}

async fn attempt(
    spec: &ResolvedServer,
    stderr: &Arc<StderrTail>,
    hurry: &CancellationToken,
    lifecycle: Lifecycle,
) -> Result<Session, Failure> {
    let server = spec.name.clone();
    match &spec.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env);
            if let Some(cwd) = cwd {
                cmd.current_dir(cwd);
            }
            // Its own process group, so stopping a server that runs through a
            // launcher (npx, uvx, a shell script) also stops what it launched.
            let mut wrapped = CommandWrap::from(cmd);
            wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
            let (transport, child_stderr) = ChildTransport::spawn(wrapped, stderr, hurry.clone())
                .map_err(|source| {
                Failure::Setup(McpError::Spawn {
                    server: server.clone(),
                    command: command.display().to_string(),
                    reason: spawn_reason(&source),
                })
            })?;
            if let Some(child_stderr) = child_stderr {
                stderr.follow(&server, child_stderr);
            }
            handshake(transport, lifecycle).await
        }
        Transport::Http { url, headers } => {
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(header_map(&server, headers).map_err(Failure::Setup)?);
            handshake(
                StreamableHttpClientTransport::from_config(config),
                lifecycle,
            )
            .await
        }
    }
}

async fn handshake<T>(transport: T, lifecycle: Lifecycle) -> Result<Session, Failure>
where
    T: rmcp::transport::Transport<RoleClient> + Send + 'static,
{
    let (client, mode) = match lifecycle {
        Lifecycle::Initialize(version) => (Client::new(version), ClientLifecycleMode::Initialize),
        Lifecycle::Discover(versions) => (
            Client::new(ProtocolVersion::default()),
            ClientLifecycleMode::Discover {
                preferred_versions: versions,
            },
        ),
    };
    client
        .serve_with_lifecycle(transport, mode)
        .await
        .map_err(|err| Failure::Handshake(Box::new(err)))
}

/// How to try again when the server refused the version asked for and named
/// those it speaks: the newest that codemode's MCP library knows, over
/// `initialize` while it has one, else over `server/discover`.
fn other_version(err: &ClientInitializeError) -> Option<Lifecycle> {
    let ClientInitializeError::JsonRpcError(data) = err else {
        return None;
    };
    let supported: Vec<ProtocolVersion> = data
        .data
        .as_ref()
        .and_then(|d| d.get("supported"))
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())?;
    let mut known: Vec<ProtocolVersion> = ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .filter(|v| supported.contains(v))
        .cloned()
        .collect();
    known.reverse();
    let newest = known.first()?.clone();
    if newest.has_initialize() {
        return Some(Lifecycle::Initialize(newest));
    }
    Some(Lifecycle::Discover(
        known.into_iter().filter(|v| !v.has_initialize()).collect(),
    ))
}

/// [`refused_status`] of a failed handshake, whose transport error is not
/// its `source`.
fn handshake_refused_status(err: &ClientInitializeError) -> Option<u16> {
    match err {
        ClientInitializeError::TransportError { error, .. } => refused_status(error),
        ClientInitializeError::LegacyFallbackFailed { fallback, .. } => {
            handshake_refused_status(fallback)
        }
        _ => None,
    }
}

/// The HTTP status (401 or 403) with which a server refused codemode, if
/// that is why `err` happened.
pub fn refused_status(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
    use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.downcast_ref::<AuthRequiredError>().is_some() {
            return Some(401);
        }
        if current.downcast_ref::<InsufficientScopeError>().is_some() {
            return Some(403);
        }
        // Without a challenge the status is only in the text.
        let text = current.to_string();
        for status in [401, 403] {
            if text.contains(&format!("HTTP {status}")) {
                return Some(status);
            }
        }
        source = current.source();
    }
    None
}

fn spawn_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such command (is it installed and on PATH?)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".into(),
        _ => err.to_string(),
    }
}

fn header_map(
    server: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HashMap<HeaderName, HeaderValue>, McpError> {
    headers
        .iter()
        .map(|(name, value)| {
            let bad = |what: &str| McpError::Config {
                server: server.to_string(),
                // The value may be a secret: name the header, never its value.
                reason: format!("header `{name}` has an invalid {what}"),
            };
            let name = HeaderName::try_from(name.as_str()).map_err(|_| bad("name"))?;
            let mut value = HeaderValue::try_from(value.as_str()).map_err(|_| bad("value"))?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}

/// The largest message a stdio server may send: rmcp's own line cap (and its
/// cap on one streamable HTTP event).
pub const MAX_MESSAGE_BYTES: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// How long a stopping server gets after its stdin closes, and again after
/// SIGTERM, before it is killed (as rmcp's own child transport does).
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A stdio server's transport. Like rmcp's `TokioChildProcess`, except for a
/// message over [`MAX_MESSAGE_BYTES`]: rmcp drops such a line and keeps the
/// connection open, so the call it answered waits until its timeout and then
/// says the server may have acted. Here the connection closes at once instead:
/// every call in flight fails fast as upstream_unavailable, the error says why,
/// and the next call starts the server afresh.
struct ChildTransport {
    /// Killed (its whole process group) when dropped, unless it has exited.
    child: Option<Box<dyn ChildWrapper>>,
    hurry: CancellationToken,
    io: rmcp::transport::async_rw::AsyncRwTransport<
        RoleClient,
        CappedLines<tokio::process::ChildStdout>,
        tokio::process::ChildStdin,
    >,
}

impl ChildTransport {
    fn spawn(
        mut command: CommandWrap,
        tail: &Arc<StderrTail>,
        hurry: CancellationToken,
    ) -> std::io::Result<(ChildTransport, Option<tokio::process::ChildStderr>)> {
        command
            .command_mut()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let missing = || std::io::Error::other("the child's stdio was not piped");
        let stdin = child.inner_mut().stdin().take().ok_or_else(missing)?;
        let stdout = child.inner_mut().stdout().take().ok_or_else(missing)?;
        let stderr = child.inner_mut().stderr().take();
        let stdout = CappedLines {
            inner: stdout,
            since_newline: 0,
            tail: Arc::clone(tail),
        };
        let io = rmcp::transport::async_rw::AsyncRwTransport::new_client(stdout, stdin)
            .with_max_line_length(usize::MAX);
        Ok((
            ChildTransport {
                child: Some(child),
                hurry,
                io,
            },
            stderr,
        ))
    }

    /// The MCP stdio shutdown: close stdin and wait; then SIGTERM and wait;
    /// then kill. Straight to the kill once `hurry` is cancelled, before or
    /// during the waits.
    async fn stop(&mut self) -> std::io::Result<()> {
        use rmcp::transport::Transport;
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let io = &mut self.io;
        let polite = async {
            let _ = io.close().await;
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
                return true;
            }
            let _ = child.signal(libc::SIGTERM);
            tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok()
        };
        let exited = tokio::select! {
            biased;
            _ = self.hurry.cancelled() => false,
            exited = polite => exited,
        };
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if exited {
            return Ok(());
        }
        Box::into_pin(child.kill()).await
    }
}

impl Drop for ChildTransport {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // kill() also reaps it, so no zombie is left.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = Box::into_pin(child.kill()).await;
                });
            } else {
                let _ = child.start_kill();
            }
        }
    }
}

impl rmcp::transport::Transport<RoleClient> for ChildTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<RoleClient>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.io.send(item)
    }

    fn receive(
        &mut self,
    ) -> impl std::future::Future<Output = Option<rmcp::service::RxJsonRpcMessage<RoleClient>>> + Send
    {
        self.io.receive()
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.stop()
    }
}

/// A stdout that fails once a line grows past [`MAX_MESSAGE_BYTES`], after
/// noting why in the server's stderr tail (which the error then quotes).
struct CappedLines<R> {
    inner: R,
    since_newline: usize,
    tail: Arc<StderrTail>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CappedLines<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            self.since_newline = match new.iter().rposition(|b| *b == b'\n') {
                Some(at) => new.len() - at - 1,
                None => self.since_newline + new.len(),
            };
            if self.since_newline > MAX_MESSAGE_BYTES {
                let reason = format!(
                    "codemode: the server sent a message larger than {} MiB (the limit), so its connection was closed",
                    MAX_MESSAGE_BYTES / (1024 * 1024)
                );
                self.tail.push(reason.clone());
                return std::task::Poll::Ready(Err(std::io::Error::other(reason)));
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(supported: &[&str]) -> ClientInitializeError {
        ClientInitializeError::JsonRpcError(rmcp::model::ErrorData::new(
            rmcp::model::ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            Some(serde_json::json!({"requested": "2026-07-28", "supported": supported})),
        ))
    }

    #[test]
    fn a_server_of_only_revisions_without_initialize_is_asked_with_discover() {
        match other_version(&refusal(&["2026-07-28", "2099-01-01"])) {
            Some(Lifecycle::Discover(versions)) => {
                assert_eq!(versions, [ProtocolVersion::V_2026_07_28])
            }
            _ => panic!("not discover"),
        }
    }

    #[test]
    fn a_server_of_older_revisions_gets_initialize_at_its_newest() {
        match other_version(&refusal(&["2024-11-05", "2025-06-18"])) {
            Some(Lifecycle::Initialize(version)) => {
                assert_eq!(version, ProtocolVersion::V_2025_06_18)
            }
            _ => panic!("not initialize"),
        }
    }

    #[test]
    fn a_refusal_naming_no_known_version_is_not_retried() {
        assert!(other_version(&refusal(&["2099-01-01"])).is_none());
    }
}
