//! `codemode serve`: one MCP server in front of all the configured ones. A
//! client sees three tools instead of every wrapped server's schemas:
//! `execute_python` (code that calls the tools through `mcp_tools`, run as
//! `exec` runs it), `search_tools` and `get_api` for discovery; and the whole
//! stub module as a resource.
//!
//! The servers start in the background (`view`): `initialize` is answered at
//! once, what a client reads (the tool lists, the stub module, the index) is
//! rebuilt as each server comes up, and the servers stay warm for every run
//! after that.

mod approval;
mod files;
mod handler;
mod sessions;
mod view;
mod warm;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::context::Context;
use crate::error::Error;
use codemode_run::{signals, Options, Runner};

pub use handler::CodemodeServer;

/// The resource holding the whole stub module.
pub const MODULE_URI: &str = "codemode://mcp_tools.py";
/// Where the streamable HTTP endpoint is mounted.
pub const HTTP_PATH: &str = "/mcp";
/// The variable holding the bearer token HTTP clients must present.
pub const TOKEN_ENV: &str = "CODEMODE_SERVE_TOKEN";
/// Output of each stream a result holds unless configured: about 8,000
/// tokens, as much as a model should read of one run, and far from the
/// message sizes clients refuse.
pub const DEFAULT_MAX_OUTPUT: usize = 32 * 1024;

/// What every request reads.
pub struct Served {
    pub runner: Runner,
    pub options: Options,
    /// A session's limits: `options`' with the session's lifetime.
    pub session_options: Options,
    pub sessions: sessions::Sessions,
    pub warm: warm::Warm,
    pub max_timeout: Duration,
    /// Bytes of each stream a result holds.
    pub max_output: usize,
    /// Runs at once; others wait for a permit.
    pub slots: tokio::sync::Semaphore,
    /// The servers' tools as far as they have started.
    pub views: view::Views,
}

pub async fn run(ctx: &Context, args: &ServeArgs) -> Result<(), Error> {
    if args.json && args.http.is_none() {
        return Err(Error::Usage(
            "--json needs --http: it prints the address serve listens on, and over stdio \
             stdout carries the MCP messages and nothing else"
                .into(),
        ));
    }
    // Watched from the very start, not only once serving: a client that gives
    // up while the sandbox is picked or before it sends `initialize` stops us
    // with a signal too, and its default action would end us without
    // stopping the servers.
    let stop = CancellationToken::new();
    let stopped = signals::stop_signal();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            stopped.await;
            stop.cancel();
        }
    });

    let config = ctx.config()?;
    let specs = ctx.servers_or_none(&config, &args.servers)?;
    let mut options = Options::from_config(&config.sandbox);
    options.override_with(args.sandbox, args.timeout, &args.allow);
    args.approvals.apply(&mut options);
    let max_timeout = args.max_timeout.max(options.limits.timeout);
    let max_output = args
        .max_output
        .or(config.serve.max_output)
        .map_or(DEFAULT_MAX_OUTPUT as u64, |size| size.0);
    let max_output = usize::try_from(max_output).unwrap_or(usize::MAX);

    // Checked before any server starts: a bad address or a missing token is
    // a usage error the user should see at once.
    let http = match &args.http {
        Some(addr) => Some(HttpPlan::prepare(addr, args).await?),
        None => None,
    };

    let runner = tokio::select! {
        runner = ctx.runner(&config, specs.clone(), &options) => runner?,
        // Picking the sandbox may wait on an engine or pull an image; nothing
        // has started yet, so there is nothing to shut down.
        _ = stop.cancelled() => return Ok(()),
    };
    let shape = view::Shape {
        filter: runner.filter(&options.allow),
        default_timeout: options.limits.timeout,
        max_timeout,
        index_budget: args.index_budget,
        session_idle: config.serve.session_idle,
    };
    let mut session_options = options.clone();
    session_options.limits.timeout = config.serve.session_lifetime;
    // What code leaves in /workspace/out/ comes back with each result.
    let max_out_bytes = args
        .max_out_bytes
        .or(config.serve.max_out_bytes)
        .map_or(files::DEFAULT_MAX_OUT_BYTES, |size| size.0);
    session_options.outputs = Some(files::caps(max_out_bytes));
    let served = Arc::new(Served {
        runner,
        options,
        session_options,
        sessions: sessions::Sessions::new(config.serve.sessions, config.serve.session_idle),
        warm: warm::Warm::new(config.serve.warm, config.serve.session_lifetime),
        max_timeout,
        max_output,
        slots: tokio::sync::Semaphore::new(args.max_concurrent.max(1)),
        views: view::Views::new(specs, shape),
    });
    // The servers start while the client connects; see `view`.
    let starting = tokio::spawn({
        let served = Arc::clone(&served);
        async move {
            let registry = Arc::clone(served.runner.registry());
            served.views.start_all(&registry).await;
        }
    });
    let warming = warm::spawn(Arc::clone(&served));
    let sweeping = tokio::spawn({
        let served = Arc::clone(&served);
        async move {
            loop {
                tokio::time::sleep(served.sessions.sweep_every()).await;
                served.sessions.sweep();
            }
        }
    });
    // Until the tokenizer is loaded the index's sizes are guessed; then it is
    // built again with real counts.
    let counted = tokio::task::spawn_blocking({
        let served = Arc::clone(&served);
        move || {
            codemode_mcp::tokens::load();
            served.views.rebuild();
        }
    });

    let result = match http {
        None => serve_stdio(ctx, Arc::clone(&served), &stop).await,
        Some(plan) => plan.serve(ctx, Arc::clone(&served), &stop).await,
    };
    // A server still starting is dropped with its start, which kills it.
    starting.abort();
    let _ = starting.await;
    drop(counted);
    sweeping.abort();
    warming.abort();
    let _ = warming.await;
    served.warm.close_all().await;
    served.sessions.close_all().await;
    served.runner.shutdown().await;
    result
}

/// A stop (SIGINT, SIGTERM) ends it cleanly at any point: as the bridge
/// does, since for a server being told to stop is the normal way to end.
async fn serve_stdio(
    ctx: &Context,
    served: Arc<Served>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    use rmcp::ServiceExt;
    ctx.say(&format!(
        "codemode serve: MCP on stdio ({} behind it, starting)",
        codemode_text::plural(served.runner.registry().names().count(), "server")
    ));
    let service = tokio::select! {
        service = CodemodeServer::new(served).serve(stdio_transport()) => service
            .map_err(|err| Error::Usage(format!("the MCP client's initialize failed: {err}")))?,
        // A client that never sends `initialize` would otherwise hold us
        // until it closes stdin.
        _ = stop.cancelled() => return Ok(()),
    };
    let session = service.cancellation_token();
    tokio::select! {
        ended = service.waiting() => {
            if let Err(err) = ended {
                tracing::warn!("the MCP session ended abnormally: {err}");
            }
        }
        _ = stop.cancelled() => session.cancel(),
    }
    Ok(())
}

/// stdin and stdout as rmcp's `stdio_pipes` opens them, read and written
/// by `wire::LineTransport` so that what rmcp cannot read is answered.
fn stdio_transport(
) -> wire::LineTransport<rmcp::transport::StdioReader, rmcp::transport::StdioWriter> {
    let (read, write) = rmcp::transport::stdio_pipes();
    wire::LineTransport::new(read, write)
}

/// The HTTP side, checked and bound before anything else starts.
struct HttpPlan {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    /// `None`: any Host (a wildcard bind behind a token).
    allowed_hosts: Option<Vec<String>>,
    allowed_origins: Vec<String>,
    token: Option<String>,
    /// `--json`: say on stdout, as one JSON line, once it is listening.
    json: bool,
}

impl HttpPlan {
    async fn prepare(addr: &str, args: &ServeArgs) -> Result<HttpPlan, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("listening on {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(Error::io(format!("listening on {addr}")))?;
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        if !local.ip().is_loopback() && token.is_none() {
            return Err(Error::Usage(format!(
                "--http {addr} is reachable from other machines, and anyone who reaches it could run code: \
                 set {TOKEN_ENV} to a secret that clients send as `Authorization: Bearer TOKEN`"
            )));
        }
        Ok(HttpPlan {
            listener,
            local,
            allowed_hosts: allowed_hosts(local, &args.allow_hosts),
            allowed_origins: allowed_origins(local, &args.allow_origins),
            token,
            json: args.json,
        })
    }

    async fn serve(
        self,
        ctx: &Context,
        served: Arc<Served>,
        stop: &CancellationToken,
    ) -> Result<(), Error> {
        use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
        use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

        let mut config = StreamableHttpServerConfig::default()
            .with_cancellation_token(stop.child_token())
            // A client that drops a response stream (its way to cancel on the
            // stateless protocol) is noticed on the next write: a frequent
            // keep-alive makes that write come soon, so the run dies soon.
            .with_sse_keep_alive(Some(Duration::from_secs(1)))
            // Browsers always send an Origin; other clients do not. Only the
            // named browser origins may call, so a web page cannot drive a
            // server on the user's machine.
            .with_allowed_origins(self.allowed_origins.clone())
            .enforce_origin_validation()
            .with_max_request_body_bytes(wire::MAX_BODY);
        config = match &self.allowed_hosts {
            Some(hosts) => config.with_allowed_hosts(hosts.clone()),
            None => config.disable_allowed_hosts(),
        };
        let factory_served = Arc::clone(&served);
        let sessions = Arc::new(LocalSessionManager::default());
        let service: StreamableHttpService<CodemodeServer, LocalSessionManager> =
            StreamableHttpService::new(
                // One handler per session: each keeps its own log level.
                move || Ok(CodemodeServer::new(Arc::clone(&factory_served))),
                Arc::clone(&sessions),
                config,
            );
        // Inside the token check: a client without the token learns nothing
        // about bodies or sessions.
        let mut router = axum::Router::new().nest_service(HTTP_PATH, service).layer(
            axum::middleware::from_fn_with_state(sessions, wire::reject_bad_bodies),
        );
        if let Some(token) = self.token.clone() {
            router = router.layer(axum::middleware::from_fn_with_state(
                Arc::new(token),
                require_token,
            ));
        }
        let url = format!("http://{}{HTTP_PATH}", self.local);
        ctx.say(&format!(
            "codemode serve on {url} ({} behind it, starting{})",
            codemode_text::plural(served.runner.registry().names().count(), "server"),
            if self.token.is_some() {
                format!("; clients send the {TOKEN_ENV} token")
            } else {
                String::new()
            }
        ));
        if self.json {
            // Only over HTTP: on stdio, stdout is the MCP stream.
            use std::io::Write;
            let line = serde_json::json!({"event": "listening", "url": url});
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .map_err(Error::io("writing the listening line to stdout"))?;
        }
        let serving = axum::serve(self.listener, router);
        tokio::select! {
            result = serving => result.map_err(Error::io("serving HTTP"))?,
            // Not a graceful shutdown: an open response stream would hold it
            // for as long as its run lasts. Dropping the server closes the
            // port; runs still going are dropped with the runtime, which
            // kills their sandboxes and removes their directories.
            _ = stop.cancelled() => {}
        }
        Ok(())
    }
}

/// The `Host` values the HTTP server answers to. Loopback names always (a
/// local client), the bound address when it is a specific one, and those
/// named with `--allow-host`. A wildcard bind (`0.0.0.0`) is reached under
/// names this process cannot know; there the token (required off loopback)
/// is the protection, and the Host check applies only when hosts are named.
fn allowed_hosts(local: SocketAddr, extra: &[String]) -> Option<Vec<String>> {
    let ip = local.ip();
    if ip.is_unspecified() && extra.is_empty() {
        return None;
    }
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    if !ip.is_unspecified() && !ip.is_loopback() {
        hosts.push(ip.to_string());
    }
    hosts.extend(extra.iter().cloned());
    Some(hosts)
}

/// The browser origins that may call: those named with `--allow-origin`,
/// and on a loopback bind this server's own origin under each loopback
/// name (a page it served, were it to serve one). A DNS-rebinding page has
/// its own name in its origin, so it is still refused; so is any other
/// port, which is another server's.
fn allowed_origins(local: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut origins = extra.to_vec();
    if local.ip().is_loopback() {
        let port = local.port();
        for host in ["127.0.0.1", "localhost", "[::1]"] {
            origins.push(format!("http://{host}:{port}"));
        }
    }
    origins
}

async fn require_token(
    axum::extract::State(token): axum::extract::State<Arc<String>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use subtle::ConstantTimeEq;
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let valid = presented.is_some_and(|p| bool::from(p.ct_eq(token.as_bytes())));
    if valid {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({
            "error": format!("send `Authorization: Bearer TOKEN` with the token in {TOKEN_ENV}")
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_answer_to_loopback_names_only() {
        let hosts = allowed_hosts("127.0.0.1:8080".parse().unwrap(), &[]).unwrap();
        assert_eq!(hosts, ["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn a_specific_address_is_allowed_with_the_named_hosts() {
        let hosts = allowed_hosts(
            "192.168.1.5:80".parse().unwrap(),
            &["mcp.example.com".into()],
        )
        .unwrap();
        assert!(hosts.contains(&"192.168.1.5".to_string()));
        assert!(hosts.contains(&"mcp.example.com".to_string()));
    }

    #[test]
    fn a_loopback_bind_lets_in_its_own_origin_only() {
        let origins = allowed_origins("127.0.0.1:8931".parse().unwrap(), &[]);
        assert_eq!(
            origins,
            [
                "http://127.0.0.1:8931",
                "http://localhost:8931",
                "http://[::1]:8931"
            ]
        );
        let named = allowed_origins("0.0.0.0:80".parse().unwrap(), &["https://a.example".into()]);
        assert_eq!(named, ["https://a.example"]);
    }

    #[test]
    fn a_wildcard_bind_checks_hosts_only_when_named() {
        assert_eq!(allowed_hosts("0.0.0.0:80".parse().unwrap(), &[]), None);
        let hosts = allowed_hosts("[::]:80".parse().unwrap(), &["box.lan".into()]).unwrap();
        assert!(hosts.contains(&"box.lan".to_string()));
        assert!(!hosts.contains(&"::".to_string()));
    }
}
