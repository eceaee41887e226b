//! Starting one MCP session: a stdio child or a streamable HTTP endpoint, up to the
//! end of `initialize`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;

use super::stderr::StderrTail;
use super::McpError;
use crate::config::{ResolvedServer, Transport};

pub type Session = RunningService<RoleClient, ()>;

/// How long to wait for a dying child's last stderr lines before quoting them.
const STDERR_SETTLE: Duration = Duration::from_millis(300);

pub async fn open(spec: &ResolvedServer, stderr: &Arc<StderrTail>) -> Result<Session, McpError> {
    let server = spec.name.clone();
    let started = match &spec.transport {
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
            let (transport, child_stderr) = TokioChildProcess::builder(wrapped)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|source| McpError::Spawn {
                    server: server.clone(),
                    command: command.display().to_string(),
                    reason: spawn_reason(&source),
                })?;
            if let Some(child_stderr) = child_stderr {
                stderr.follow(&server, child_stderr);
            }
            tokio::time::timeout(spec.connect_timeout, ().serve(transport)).await
        }
        Transport::Http { url, headers } => {
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(header_map(&server, headers)?);
            let transport = StreamableHttpClientTransport::from_config(config);
            tokio::time::timeout(spec.connect_timeout, ().serve(transport)).await
        }
    };
    match started {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(err)) => {
            stderr.settle(STDERR_SETTLE).await;
            Err(McpError::Initialize {
                server,
                reason: err.to_string(),
                stderr: stderr.summary(),
            })
        }
        Err(_) => Err(McpError::ConnectTimeout {
            server,
            after: spec.connect_timeout,
            stderr: stderr.summary(),
        }),
    }
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
