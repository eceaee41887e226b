//! One execution: a fresh workspace with the script and its stubs, an
//! ephemeral bridge on a Unix socket with a grant for this run only, and a
//! sandbox to run the script in. `exec` prints what happened; `serve` and `ask`
//! use the same `Execution` and read its `Report`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::ExecArgs;
use crate::context::Context;
use crate::error::{exit, Error};
use crate::progress::Progress;
use codemode_config::{Config, ResolvedServer, ToolFilter};
use codemode_mcp::bridge::{
    Bridge, CallRecord, ConnectionLimits, GrantSpec, Listener, Records, RequestLimits, UnixSocket,
};
use codemode_mcp::catalog;
use codemode_mcp::Registry;
use codemode_sandbox::{Backend, Limits, OutputSink, RunDir, RunSpec, Stream};
use codemode_text::human_bytes;

/// Everything one execution needs besides the script.
pub struct Options {
    pub backend: codemode_config::Backend,
    pub limits: Limits,
    /// Extra `server.tool` patterns the grant is narrowed to.
    pub allow: Vec<String>,
    /// A reviewed `mcp_tools.py` to use instead of generating one.
    pub stubs: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub allow_partial: bool,
}

/// What happened, as `exec --json` prints it (docs/ARCHITECTURE.md, "exec --json").
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub truncated: bool,
    /// Bytes of each stream that were dropped; absent when none were.
    #[serde(skip_serializing_if = "is_zero")]
    pub stdout_dropped_bytes: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub stderr_dropped_bytes: u64,
    pub duration_ms: u64,
    pub sandbox: String,
    pub tool_calls: Vec<CallRecord>,
    /// Calls made beyond the ones `tool_calls` keeps; absent when none were,
    /// so that the usual report keeps its usual keys.
    #[serde(skip_serializing_if = "is_zero")]
    pub tool_calls_dropped: u64,
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Report {
    /// The exit code `exec` ends with: the script's own, 124 on timeout, 128+N
    /// for a signal (as shells report it).
    pub fn exit_code(&self) -> i32 {
        if self.timed_out {
            return exit::TIMEOUT;
        }
        self.exit_code.unwrap_or(exit::FAILURE)
    }
}

pub async fn run(ctx: &Context, args: &ExecArgs) -> Result<(), Error> {
    let config = ctx.config()?;
    let (script_name, source) = read_script(&args.file)?;
    let options = options(&config, args)?;
    let specs = ctx.servers_or_none(&config, &args.servers)?;

    let sink = OutputSink::new(options.limits.output_bytes, (!args.json).then(terminal));
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signalled = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let stopped = stop_signals();
    tokio::spawn({
        let signalled = Arc::clone(&signalled);
        async move {
            signalled.store(stopped.await, std::sync::atomic::Ordering::SeqCst);
            on_signal.cancel();
        }
    });

    let runner = tokio::select! {
        runner = Runner::start(ctx, &config, specs, &options) => runner?,
        // Picking the sandbox may wait on an engine or pull an image; a
        // signal must not wait for that.
        _ = cancel.cancelled() => {
            let signal = signalled.load(std::sync::atomic::Ordering::SeqCst);
            eprintln!(
                "codemode: stopped by {} before the script started",
                signal_name(signal)
            );
            return Err(Error::Reported(128 + signal));
        }
    };
    let report = async {
        let stubs = match &options.stubs {
            Some(path) => std::fs::read_to_string(path)
                .map_err(Error::io(format!("reading {}", path.display())))?,
            None => {
                // Stub generation is routine here: show it only when asked with -v.
                let progress = Progress::new(ctx.global.quiet || ctx.global.verbose == 0);
                // A signal while servers start must not wait for their timeouts.
                tokio::select! {
                    stubs = runner.stubs(ctx, &options.allow, options.allow_partial, &progress) => stubs?,
                    // Replaced below by the signal's own exit code.
                    _ = cancel.cancelled() => return Err(Error::Reported(exit::FAILURE)),
                }
            }
        };
        runner
            .run(&stubs, &script_name, &source, &options, &sink, cancel)
            .await
    }
    .await;
    runner.shutdown().await;
    // Stopped by a signal: say which, and end as shells report it (130, 143).
    let signal = signalled.load(std::sync::atomic::Ordering::SeqCst);
    let report = match report {
        Err(Error::RunLost { report, source }) => {
            if args.json {
                print_json(&report);
            }
            if signal != 0 {
                // The user stopped it (the engine then failed to answer the
                // kill): the exit code says so, as for any run a signal ended.
                eprintln!(
                    "codemode: error: {}",
                    codemode_text::one_line(&source.to_string())
                );
                return Err(Error::Reported(128 + signal));
            }
            // The one-line error still follows on stderr (main prints it).
            return Err(Error::RunLost { report, source });
        }
        other => other,
    };
    let name = signal_name(signal);
    if signal != 0 && report.is_err() {
        eprintln!("codemode: stopped by {name} before the script started");
        return Err(Error::Reported(128 + signal));
    }
    let mut report = report?;
    if signal != 0 {
        report.success = false;
        report.error = Some(format!(
            "stopped by {name}: the script and everything it started were killed"
        ));
    }

    if args.json {
        print_json(&report);
    } else {
        let _ = std::io::stdout().flush();
        if report.truncated {
            eprintln!(
                "codemode: output truncated: kept the first {} of each stream",
                human_bytes(options.limits.output_bytes as u64)
            );
        }
        if let Some(error) = &report.error {
            eprintln!("codemode: {error}");
        }
    }
    if signal != 0 {
        return Err(Error::Reported(128 + signal));
    }
    match report.exit_code() {
        0 => Ok(()),
        code => Err(Error::Reported(code)),
    }
}

/// The stop signals by the names shells use.
fn signal_name(signal: i32) -> &'static str {
    if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

fn print_json(report: &Report) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
}

/// Passes output on as it arrives, its control characters shown as text
/// where it goes to a terminal.
fn terminal() -> codemode_sandbox::Live {
    let screen = crate::terminal::Screen::new();
    Box::new(move |stream: Stream, bytes: &[u8]| {
        // Best effort: a closed terminal must not stop the run.
        let _ = screen.write(stream, bytes);
    })
}

/// What executions share: the MCP servers (started once, kept warm) and the
/// sandbox backend. `exec` makes one for one run; `serve` keeps one for all.
pub struct Runner {
    registry: Arc<Registry>,
    specs: Vec<ResolvedServer>,
    backend: Backend,
}

impl Runner {
    /// Picks the backend (saying which, and why, on stderr), checks that it
    /// can enforce `options`' limits (saying once what it bounds otherwise)
    /// and prepares the registry; servers start when first used.
    pub async fn start(
        ctx: &Context,
        config: &Config,
        specs: Vec<ResolvedServer>,
        options: &Options,
    ) -> Result<Runner, Error> {
        let (backend, note) = codemode_sandbox::select(
            options.backend,
            &config.sandbox.image,
            config.sandbox.python.as_ref().map(PathBuf::from),
        )
        .await
        .map_err(Error::Sandbox)?;
        ctx.say(&format!("codemode: sandbox: {note}"));
        for note in backend.check(&options.limits).map_err(Error::Sandbox)? {
            ctx.say(&format!("codemode: note: {note}"));
        }
        Ok(Runner {
            registry: Arc::new(Registry::new(specs.clone())),
            specs,
            backend,
        })
    }

    /// What a run narrowed to `allow` (`server.tool` patterns) may see and
    /// call: its stubs and its grant are both cut by this one filter.
    pub fn filter(&self, allow: &[String]) -> ToolFilter {
        ToolFilter::new(&self.specs).narrowed(allow)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The stub module for the servers' current tools, narrowed to `allow`
    /// (`server.tool` patterns) when it is not empty.
    pub async fn stubs(
        &self,
        ctx: &Context,
        allow: &[String],
        allow_partial: bool,
        progress: &Progress,
    ) -> Result<String, Error> {
        if self.specs.is_empty() {
            return Ok(bridge_gen::generate(&[]));
        }
        let filter = self.filter(allow);
        let (catalog, failures) =
            catalog::collect(&self.registry, &self.specs, &filter, progress).await;
        ctx.check_failures(&catalog, failures, allow_partial)?;
        Ok(bridge_gen::generate(&catalog.servers))
    }

    /// Runs `source` once, start to finish, with its own workspace, socket
    /// and grant, and cleans up after it whatever happens.
    pub async fn run(
        &self,
        stubs: &str,
        script_name: &str,
        source: &str,
        options: &Options,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<Report, Error> {
        let started = Instant::now();
        let (finished, records) = self
            .run_in_sandbox(stubs, script_name, source, options, sink, cancel)
            .await?;
        let (finished, lost) = match finished {
            Ok(finished) => (finished, None),
            // The output and calls so far are all the caller will ever get of
            // this run, so they travel with the error instead of being dropped.
            Err(err @ codemode_sandbox::SandboxError::Lost { .. }) => {
                (codemode_sandbox::Finished::default(), Some(err))
            }
            Err(err) => return Err(Error::Sandbox(err)),
        };
        let captured = sink.captured();
        let error = if let Some(lost) = &lost {
            Some(lost.to_string())
        } else if finished.timed_out {
            Some(format!(
                "timed out after {}",
                humantime::format_duration(options.limits.timeout)
            ))
        } else if finished.output_flooded {
            Some("stopped: the script kept writing output far past the cap".into())
        } else if finished.oom_killed {
            Some(match options.limits.memory_bytes {
                Some(bytes) => format!("killed: over the memory limit of {}", human_bytes(bytes)),
                None => "killed: out of memory".into(),
            })
        } else if finished.cancelled {
            Some("cancelled".into())
        } else {
            finished.signal.map(|sig| format!("killed by signal {sig}"))
        };
        let exit_code = finished.exit_code.or(finished.signal.map(|sig| 128 + sig));
        let report = Report {
            success: exit_code == Some(0) && error.is_none(),
            exit_code,
            stdout: captured.stdout,
            stderr: captured.stderr,
            timed_out: finished.timed_out,
            truncated: captured.truncated,
            stdout_dropped_bytes: captured.stdout_dropped,
            stderr_dropped_bytes: captured.stderr_dropped,
            duration_ms: started.elapsed().as_millis() as u64,
            sandbox: self.backend.name().to_string(),
            tool_calls: records.kept,
            tool_calls_dropped: records.dropped,
            error,
        };
        match lost {
            None => Ok(report),
            Some(source) => Err(Error::RunLost {
                report: Box::new(report),
                source,
            }),
        }
    }

    async fn run_in_sandbox(
        &self,
        stubs: &str,
        script_name: &str,
        source: &str,
        options: &Options,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<
        (
            Result<codemode_sandbox::Finished, codemode_sandbox::SandboxError>,
            Records,
        ),
        Error,
    > {
        let user = self.backend.run_user().map_err(Error::Sandbox)?;
        // Named, since a full or read-only TMPDIR is the user's to fix.
        let dirs = RunDir::create(user.user()).map_err(Error::io(format!(
            "creating the run's directory in {}",
            std::env::temp_dir().display()
        )))?;
        for (name, text) in [(script_name, source), ("mcp_tools.py", stubs)] {
            dirs.write(name, text).map_err(Error::io(format!(
                "writing {}",
                dirs.inputs().join(name).display()
            )))?;
        }

        let bridge = Bridge::new(Arc::clone(&self.registry), RequestLimits::default());
        let grant = bridge
            .grant(GrantSpec::new(self.filter(&options.allow)))
            .map_err(|err| Error::Usage(format!("cannot make a token: {err}")))?;
        let socket_path = dirs.bridge().join(codemode_sandbox::BRIDGE_SOCKET_NAME);
        // The run's user alone may connect: the token is the second lock.
        let socket = UnixSocket::bind(&socket_path, 0o600)
            .and_then(|socket| dirs.give(&socket_path).map(|()| socket))
            .map_err(Error::io(format!("binding {}", socket_path.display())))?;

        let mut env = options.env.clone();
        env.insert("CODEMODE_BRIDGE_TOKEN".into(), grant.token());
        let spec = RunSpec {
            inputs: dirs.inputs().to_path_buf(),
            script: script_name.to_string(),
            args: options.args.clone(),
            env,
            bridge_dir: dirs.bridge().to_path_buf(),
            host_user: user.user(),
            limits: options.limits.clone(),
        };

        let stop_bridge = CancellationToken::new();
        let serving = {
            let bridge = bridge.clone();
            let stop = stop_bridge.clone();
            tokio::spawn(async move {
                let limits = ConnectionLimits {
                    shutdown_grace: Duration::from_secs(2),
                    ..ConnectionLimits::default()
                };
                bridge
                    .serve(vec![Listener::Unix(socket)], limits, stop.cancelled_owned())
                    .await;
            })
        };
        let finished = self.backend.run(&spec, sink, cancel).await;
        stop_bridge.cancel();
        let _ = serving.await;
        let records = grant.records();
        drop(grant);
        let removed = dirs.remove();
        // Only now that no file of the run is left may another run get its uid.
        drop(user);
        removed.map_err(Error::io("cleaning up after the run"))?;
        Ok((finished, records))
    }

    /// Stops every MCP server the runs used.
    pub async fn shutdown(&self) {
        self.registry.shutdown().await;
    }
}

fn read_script(file: &Path) -> Result<(String, String), Error> {
    if file == Path::new("-") {
        let mut source = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut source)
            .map_err(Error::io("reading the script from stdin"))?;
        return Ok(("main.py".into(), source));
    }
    let source =
        std::fs::read_to_string(file).map_err(Error::io(format!("reading {}", file.display())))?;
    Ok((script_file_name(file), source))
}

/// The script keeps its own name (tracebacks then name the file the user
/// knows), unless that name would clash with the stubs or is not a plain name.
fn script_file_name(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("main.py");
    let plain = name.ends_with(".py")
        && name != "mcp_tools.py"
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.');
    if plain {
        name.to_string()
    } else {
        "main.py".into()
    }
}

impl Options {
    /// The config's defaults: its backend and limits, no extra narrowing.
    pub fn from_config(config: &Config) -> Result<Options, Error> {
        Ok(Options {
            backend: config.sandbox.backend,
            limits: limits_from(&config.sandbox),
            allow: Vec::new(),
            stubs: None,
            env: BTreeMap::new(),
            args: Vec::new(),
            allow_partial: false,
        })
    }
}

/// The config's limits over the defaults; what it sets is the user's
/// choice, enforced or refused (see [`codemode_sandbox::Chosen`]).
fn limits_from(config: &codemode_config::SandboxConfig) -> Limits {
    let mut limits = Limits {
        timeout: config.timeout,
        pids: config.pids,
        ..Limits::default()
    };
    if let Some(memory) = config.memory {
        limits.memory_bytes = memory.bytes();
        limits.chosen.memory = true;
    }
    if let Some(cpus) = config.cpus {
        limits.cpus = cpus.0;
        limits.chosen.cpus = true;
    }
    if let Some(disk) = config.disk {
        limits.disk_bytes = disk.0;
    }
    limits
}

impl Options {
    /// The flags every command that runs code shares: `--sandbox`,
    /// `--timeout` and `--allow`.
    pub fn override_with(
        &mut self,
        backend: Option<codemode_config::Backend>,
        timeout: Option<Duration>,
        allow: &[String],
    ) {
        if let Some(choice) = backend {
            self.backend = choice;
        }
        if let Some(timeout) = timeout {
            self.limits.timeout = timeout;
        }
        self.allow = allow.to_vec();
    }
}

fn options(config: &Config, args: &ExecArgs) -> Result<Options, Error> {
    let mut options = Options::from_config(config)?;
    options.override_with(args.sandbox, args.timeout, &args.allow);
    if let Some(memory) = args.memory {
        options.limits.memory_bytes = memory.bytes();
        options.limits.chosen.memory = true;
    }
    if let Some(cpus) = args.cpus {
        options.limits.cpus = cpus.0;
        options.limits.chosen.cpus = true;
    }
    if let Some(disk) = args.disk {
        options.limits.disk_bytes = disk.0;
    }
    if let Some(size) = args.max_output {
        options.limits.output_bytes = usize::try_from(size.0).unwrap_or(usize::MAX);
    }
    for pair in &args.env {
        let (key, value) = match pair.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => {
                let value = std::env::var(pair).map_err(|_| {
                    Error::Usage(format!("--env {pair}: no such variable in the environment"))
                })?;
                (pair.clone(), value)
            }
        };
        if key.is_empty() || key.contains(['\0', '=']) {
            return Err(Error::Usage(format!("--env `{pair}` is not KEY=VALUE")));
        }
        options.env.insert(key, value);
    }
    options.stubs = args.stubs.clone();
    options.args = args.args.clone();
    options.allow_partial = args.allow_partial;
    Ok(options)
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn stop_signal() {
    stop_signals().await;
}

/// Catches SIGINT and SIGTERM from the moment it is called (not from the first
/// poll: a signal in between would otherwise kill the process before it could
/// clean up); resolves to the number of the first one.
pub fn stop_signals() -> impl std::future::Future<Output = i32> + Send + 'static {
    let mut signals = StopSignals::new();
    async move { signals.next().await }
}

/// SIGINT and SIGTERM, caught from creation on, one after another: for a
/// command whose first signal starts a graceful stop and whose second cuts it
/// short. Handlers made anew for the second one could miss it.
pub struct StopSignals {
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    pub fn new() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            _ => None,
        };
        StopSignals { handlers }
    }

    /// The number of the next signal (never, if the handlers could not be set).
    pub async fn next(&mut self) -> i32 {
        let Some((int, term)) = self.handlers.as_mut() else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        }
    }
}

impl Default for StopSignals {
    fn default() -> Self {
        StopSignals::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_script_name_is_kept() {
        assert_eq!(
            script_file_name(Path::new("examples/news_summary.py")),
            "news_summary.py"
        );
    }

    #[test]
    fn names_that_would_clash_or_surprise_become_main_py() {
        for name in [
            "mcp_tools.py",
            "notes.txt",
            ".hidden.py",
            "weird name.py",
            "-",
        ] {
            assert_eq!(script_file_name(Path::new(name)), "main.py", "{name}");
        }
    }
}
