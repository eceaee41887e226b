//! `codemode bridge`: the bridge as a long-running server of its own, for
//! sandboxes that codemode does not start itself.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cli::BridgeArgs;
use crate::context::Context;
use crate::error::Error;
use codemode_mcp::bridge::{
    Bridge, ConnectionLimits, GrantSpec, Listener, RequestLimits, UnixSocket,
};
use codemode_mcp::Registry;

/// Where the bridge listens when neither `--listen`, `--socket` nor the config
/// says.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8765,
));

pub async fn run(ctx: &Context, args: &BridgeArgs) -> Result<(), Error> {
    // Watched from the start, not only once serving: a stop while `--warm`
    // waits for a slow server would otherwise take the default action, which
    // leaves the socket file and the starting servers behind.
    let stop = CancellationToken::new();
    // The first signal lets calls in flight finish; a second one (someone
    // tired of waiting, or a supervisor's escalation) ends it at once.
    let force = CancellationToken::new();
    let mut signals = codemode_run::StopSignals::new();
    tokio::spawn({
        let (stop, force) = (stop.clone(), force.clone());
        async move {
            signals.next().await;
            stop.cancel();
            signals.next().await;
            force.cancel();
        }
    });

    let config = ctx.config()?;
    let specs = ctx.servers(&config, &args.servers)?;
    let filter = codemode_config::ToolFilter::new(&specs).narrowed(&args.allow);

    let listen: Option<SocketAddr> = match (args.listen, &args.socket) {
        (Some(addr), _) => Some(addr),
        (None, Some(_)) => None,
        (None, None) => Some(config.bridge.listen.unwrap_or(DEFAULT_LISTEN)),
    };

    let env_token = std::env::var("CODEMODE_BRIDGE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() && env_token.is_none() && args.token_file.is_none() {
            return Err(Error::Usage(format!(
                "refusing to listen on {addr}, beyond this machine, with a token nobody was told: set CODEMODE_BRIDGE_TOKEN or pass --token-file"
            )));
        }
    }

    let registry = Arc::new(Registry::new(specs.clone()));
    // Also while the servers are being stopped: a slow one's grace is a wait
    // like any other.
    tokio::spawn({
        let (registry, force) = (Arc::clone(&registry), force.clone());
        async move {
            force.cancelled().await;
            registry.hurry_shutdown();
        }
    });
    let bridge = Bridge::new(Arc::clone(&registry), RequestLimits::default());
    let spec = GrantSpec {
        calls_per_second: args.rate.unwrap_or(0.0),
        max_concurrent: args.max_concurrent,
        approvals: args
            .approvals
            .standalone(&specs, config.sandbox.approval_timeout),
        ..GrantSpec::new(filter)
    };
    let grant = match &env_token {
        Some(token) => bridge.grant_token(token.clone(), spec),
        None => bridge.grant(spec).map_err(|err| {
            Error::io("making a random token")(std::io::Error::other(err.to_string()))
        })?,
    };
    let token_file = match (&env_token, &args.token_file) {
        (_, Some(path)) => {
            write_token(path, &grant.token())?;
            Some(path.clone())
        }
        (Some(_), None) => None,
        (None, None) => {
            let path = default_token_path();
            write_token(&path, &grant.token())?;
            Some(path)
        }
    };

    let mut listeners = Vec::new();
    let mut addresses = Vec::new();
    if let Some(addr) = listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("listening on {addr}")))?;
        addresses.push(format!(
            "http://{}",
            tcp.local_addr()
                .map_err(Error::io("reading the bound address"))?
        ));
        listeners.push(Listener::Tcp(tcp));
    }
    if let Some(path) = &args.socket {
        // Anyone who can reach the directory may connect; the token still decides
        // what they may call.
        let socket = UnixSocket::bind(path, 0o666)
            .map_err(Error::io(format!("binding {}", path.display())))?;
        addresses.push(format!("unix://{}", socket.path().display()));
        listeners.push(Listener::Unix(socket));
    }

    if args.warm {
        let progress = crate::progress::Progress::new(ctx.global.quiet);
        let names: Vec<String> = registry.names().map(String::from).collect();
        let warmups = names.iter().map(|name| {
            let registry = &registry;
            let task = progress.start(name, "starting…");
            async move {
                match registry.list_tools(name).await {
                    Ok(tools) => task.succeed(&format!("{} tools", tools.len())),
                    Err(err) => task.fail(&err.to_string()),
                }
            }
        });
        let warmed = tokio::select! {
            _ = futures::future::join_all(warmups) => true,
            // Not held up by a server's connect timeout.
            _ = stop.cancelled() => false,
        };
        if !warmed {
            ctx.say("codemode bridge stopping");
            drop(listeners);
            drop(grant);
            registry.shutdown().await;
            return Ok(());
        }
    }

    let servers: Vec<&str> = registry.names().collect();
    ctx.say(&format!(
        "codemode bridge on {} (servers: {}){}",
        addresses.join(" and "),
        servers.join(", "),
        token_file
            .as_ref()
            .map(|p| format!("; token in {}", p.display()))
            .unwrap_or_else(|| "; token from CODEMODE_BRIDGE_TOKEN".into())
    ));
    if args.json {
        // For supervisors and tests: where to connect, without parsing the
        // sentence above. Bound already, so connections are taken from now.
        let line = serde_json::json!({
            "event": "listening",
            "addresses": addresses,
            "servers": servers,
            "token_file": token_file.map(|p| p.display().to_string()),
        });
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(Error::io("writing the listening line to stdout"))?;
    }
    // The only bridge in the process, shared by every sandbox pointed at it:
    // its share is the whole process's.
    let limits = ConnectionLimits::default();
    let limits = ConnectionLimits {
        max_connections: limits.max_process_connections,
        ..limits
    };
    let serving = bridge.serve(listeners, limits, stop.cancelled_owned());
    tokio::select! {
        _ = serving => ctx.say("codemode bridge stopping"),
        // Dropping the server ends its grace; the calls still in flight fail
        // as their servers are killed below.
        _ = force.cancelled() => {
            ctx.say("codemode bridge stopping now (second signal): calls in flight are cut off")
        }
    }
    drop(grant);
    registry.shutdown().await;
    Ok(())
}

/// Writes the token readable by its owner only, replacing any older file.
fn write_token(path: &Path, token: &str) -> Result<(), Error> {
    let context = format!("writing the token to {}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(Error::io(context.clone()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {
            std::fs::remove_file(path).map_err(Error::io(context.clone()))?
        }
        Ok(_) => {
            return Err(Error::Usage(format!(
                "--token-file {} exists and is not a regular file",
                path.display()
            )))
        }
        Err(_) => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(context.clone()))?;
    file.write_all(token.as_bytes())
        .map_err(Error::io(context))?;
    Ok(())
}

fn default_token_path() -> PathBuf {
    dirs::runtime_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("codemode-bridge-{}.token", std::process::id()))
}
