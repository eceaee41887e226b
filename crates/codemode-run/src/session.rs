//! A session: one sandbox running codemode's kernel (`kernel.py`), which
//! runs cells one after another in one `__main__`, so that variables,
//! imports, functions and the workspace's files stay from one cell to the
//! next. One grant serves the session's life and is revoked when it ends.
//!
//! The kernel is reached over a Unix socket next to the bridge's; a cell's
//! output is the sandbox's own stdout and stderr, cut per cell at an end
//! marker the kernel writes to both once the cell is done (so output of
//! anything the cell started is the cell's too). A session that cannot go
//! on (a cell past its time limit that would not stop, a crash, an OOM kill,
//! an output flood) is lost, and says so: it never comes back with its
//! variables gone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use codemode_mcp::bridge::{
    Approver, ApproverSlot, Bridge, ConnectionLimits, Grant, GrantSpec, Listener,
};
use codemode_sandbox::{
    self as sandbox, Backend, Finished, OutputSink, RunClock, RunDir, RunSpec, RunUser,
    SandboxError, Stream,
};

use crate::outbox::{Outbox, COLLECTOR};
use crate::place::Place;
use crate::runner::give_input_files;
use crate::{Collection, Options, OutputCaps, Report, RunError};

/// The kernel with the collector's functions before it.
fn kernel_source() -> String {
    format!("{COLLECTOR}\n{KERNEL}")
}

/// The kernel the sandbox runs (standard library only).
const KERNEL: &str = include_str!("kernel.py");
const KERNEL_FILE: &str = "codemode_kernel.py";
const KERNEL_SOCKET: &str = "kernel.sock";
/// How long a cell that was interrupted for its time limit may take to stop
/// before the session is given up.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
/// How long the kernel may take to start and import `mcp_tools`.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long after a cell's answer its end markers may still be on their way.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// How long the kernel may take to send a cell's files.
const COLLECT_LIMIT: Duration = Duration::from_secs(30);
/// Output between cells (the kernel's start) kept for the next cell.
const BETWEEN_CELLS: usize = 64 * 1024;

/// Why the kernel's answer did not come.
enum Unanswered {
    /// Not within the time given.
    Late,
    /// The cell flooded its output.
    Flooded,
    /// The kernel or its sandbox went, or answered out of turn.
    Gone(String),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::Late => f.write_str("no answer in time"),
            Unanswered::Flooded => f.write_str("the output flooded"),
            Unanswered::Gone(what) => f.write_str(what),
        }
    }
}

/// What a cell did. A lost session's report says why in `error`.
#[derive(Debug)]
pub enum CellOutcome {
    Done(Report),
    /// The session is gone, and its state with it.
    SessionLost(Report),
}

/// Interrupts the running cell of a session (`KeyboardInterrupt`), from
/// anywhere: a Ctrl-C handler while the cell runs.
#[derive(Clone)]
pub struct Interrupter {
    writer: Writer,
}

type Writer = Arc<tokio::sync::Mutex<Option<OwnedWriteHalf>>>;

impl Interrupter {
    /// Asks the kernel to interrupt the cell it runs (nothing if none runs).
    pub async fn interrupt(&self) {
        if let Some(write) = self.writer.lock().await.as_mut() {
            let _ = write.write_all(b"{\"op\": \"interrupt\"}\n").await;
        }
    }
}

pub struct Session {
    reader: Option<BufReader<OwnedReadHalf>>,
    writer: Writer,
    router: Arc<Router>,
    running: Option<JoinHandle<Result<Finished, SandboxError>>>,
    kill: CancellationToken,
    stop_bridge: CancellationToken,
    serving: Option<JoinHandle<()>>,
    grant: Option<Grant>,
    dirs: Option<RunDir>,
    user: Option<RunUser>,
    backend_name: &'static str,
    cells: u64,
    armed: bool,
    in_flight: bool,
    started: Instant,
    calls_seen: usize,
    dropped_seen: u64,
    lost: Option<String>,
    /// Whom the grant's approval questions go to.
    asker: Arc<ApproverSlot>,
    /// The session's and its cells' time limits run on it.
    clock: RunClock,
    /// Where the kernel sends what is new in `out/` after each cell.
    outbox: Option<(Outbox, OutputCaps)>,
}

impl Session {
    /// Starts the kernel in a sandbox of `backend` with `options`' limits
    /// (its `timeout` bounds the whole session's life) and waits until it
    /// has imported `stubs`.
    pub(crate) async fn start(
        backend: Arc<Backend>,
        bridge: Bridge,
        grant_spec: GrantSpec,
        (asker, clock): (Arc<ApproverSlot>, RunClock),
        stubs: &str,
        options: &Options,
    ) -> Result<Session, RunError> {
        let Place {
            user,
            dirs,
            grant,
            socket,
        } = Place::make(
            &backend,
            &bridge,
            grant_spec,
            [(KERNEL_FILE, &kernel_source()), ("mcp_tools.py", stubs)],
        )?;
        let input_files = give_input_files(&dirs, &options.input_files)?;
        let outbox = match options.outputs {
            Some(caps) => Some((Outbox::bind(&dirs)?, caps)),
            None => None,
        };
        let kernel_path = dirs.bridge().join(KERNEL_SOCKET);
        let kernel_listener = UnixListener::bind(&kernel_path)
            .and_then(|listener| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&kernel_path, std::fs::Permissions::from_mode(0o600))?;
                dirs.give(&kernel_path).map(|()| listener)
            })
            .map_err(RunError::io(format!("binding {}", kernel_path.display())))?;

        let marker = format!("\u{1e}codemode-cell-end-{}", random_hex(8)?);
        let mut env = options.env.clone();
        env.insert(
            "CODEMODE_KERNEL_SOCKET".into(),
            format!("{}/{KERNEL_SOCKET}", sandbox::SANDBOX_BRIDGE_DIR),
        );
        env.insert("CODEMODE_KERNEL_MARKER".into(), marker.clone());
        let spec = RunSpec {
            inputs: dirs.inputs().to_path_buf(),
            script: KERNEL_FILE.into(),
            args: Vec::new(),
            env,
            bridge_dir: dirs.bridge().to_path_buf(),
            host_user: user.user(),
            limits: options.limits.clone(),
            clock: clock.clone(),
            input_files,
            parent: None,
        };

        let stop_bridge = CancellationToken::new();
        let serving = tokio::spawn({
            let (bridge, stop) = (bridge.clone(), stop_bridge.clone());
            async move {
                let limits = ConnectionLimits {
                    shutdown_grace: Duration::from_secs(2),
                    ..ConnectionLimits::default()
                };
                bridge
                    .serve(vec![Listener::Unix(socket)], limits, stop.cancelled_owned())
                    .await;
            }
        });
        let router = Arc::new(Router::new(marker));
        let kill = CancellationToken::new();
        let running = tokio::spawn({
            let (router, kill, backend) = (Arc::clone(&router), kill.clone(), Arc::clone(&backend));
            async move {
                let relay = Arc::clone(&router);
                let sink = OutputSink::relay(Box::new(move |stream, bytes: &[u8]| {
                    relay.take(stream, bytes)
                }));
                let finished = backend.run(&spec, &sink, kill).await;
                // A kernel can outlive what watched its sandbox (an engine
                // gone mid-run): the session ends with the watching.
                router.sandbox_gone.store(true, Ordering::SeqCst);
                router.sandbox_ended.notify_one();
                finished
            }
        });
        let mut session = Session {
            reader: None,
            writer: Arc::new(tokio::sync::Mutex::new(None)),
            router,
            running: Some(running),
            kill,
            stop_bridge,
            serving: Some(serving),
            grant: Some(grant),
            dirs: Some(dirs),
            user: Some(user),
            backend_name: backend.name(),
            cells: 0,
            armed: false,
            in_flight: false,
            started: Instant::now(),
            calls_seen: 0,
            dropped_seen: 0,
            lost: None,
            asker,
            clock,
            outbox,
        };
        match session.connect(kernel_listener).await {
            Ok(()) => Ok(session),
            Err(why) => {
                // Why it did not start is what the user needs; a failed
                // clean-up after it is logged.
                if let Err(err) = session.end().await {
                    tracing::warn!("{err}");
                }
                Err(RunError::Io {
                    context: "starting the session's kernel".into(),
                    source: std::io::Error::other(why),
                })
            }
        }
    }

    /// Accepts the kernel's connection and waits for it to be ready.
    async fn connect(&mut self, listener: UnixListener) -> Result<(), String> {
        let running = self.running.as_mut().ok_or("the sandbox is gone")?;
        let accepted = tokio::select! {
            accepted = tokio::time::timeout(START_LIMIT, listener.accept()) => Ok(accepted),
            ended = running => Err(ended),
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(ended) => {
                // Its outcome is taken: the handle must not be awaited again.
                self.running = None;
                return Err(match ended {
                    Ok(Ok(finished)) => format!(
                        "the kernel ended before it was ready ({})",
                        ended_how(&finished)
                    ),
                    Ok(Err(err)) => err.to_string(),
                    Err(err) => err.to_string(),
                });
            }
        };
        let (stream, _) = accepted
            .map_err(|_| format!("the kernel did not start within {START_LIMIT:?}"))?
            .map_err(|err| err.to_string())?;
        let (read, write) = stream.into_split();
        self.reader = Some(BufReader::new(read));
        *self.writer.lock().await = Some(write);
        let ready = self
            .ask_kernel(None, START_LIMIT)
            .await
            .map_err(|why| why.to_string())?;
        if ready.get("ready").and_then(serde_json::Value::as_bool) != Some(true) {
            return Err(format!("the kernel said {ready} instead of being ready"));
        }
        Ok(())
    }

    /// Hands the kernel the grant's token, so that its cells can call
    /// tools: done when the session is given to its user, so that a session
    /// started ahead (a warm one) never held it in its environment.
    pub async fn arm(&mut self) -> Result<(), RunError> {
        let token = self.grant.as_ref().map(Grant::token).unwrap_or_default();
        let env = serde_json::json!({"op": "env", "vars": {"CODEMODE_BRIDGE_TOKEN": token}});
        match self.ask_kernel(Some(env), START_LIMIT).await {
            Ok(_) => {
                self.armed = true;
                Ok(())
            }
            Err(why) => {
                let why = why.to_string();
                self.lose(why.clone()).await;
                Err(RunError::Io {
                    context: "handing the session its token".into(),
                    source: std::io::Error::other(why),
                })
            }
        }
    }

    /// Sends a cell's `request` and reads its answer; past `timeout` on the
    /// session's clock the cell is interrupted, and given
    /// [`INTERRUPT_GRACE`] to answer.
    async fn cell_answer(
        &mut self,
        request: serde_json::Value,
        cell: u64,
        timeout: Duration,
    ) -> Result<serde_json::Value, Unanswered> {
        let expiry = self.clock.expiry(timeout);
        let writer = Arc::clone(&self.writer);
        let answer = self.ask_kernel(Some(request), Duration::MAX);
        tokio::pin!(answer, expiry);
        tokio::select! {
            answer = &mut answer => return answer,
            () = &mut expiry => {}
        }
        if let Some(write) = writer.lock().await.as_mut() {
            let interrupt = serde_json::json!({"op": "interrupt", "cell": cell, "timed_out": true});
            let _ = write
                .write_all((interrupt.to_string() + "\n").as_bytes())
                .await;
        }
        tokio::time::timeout(INTERRUPT_GRACE, answer)
            .await
            .unwrap_or(Err(Unanswered::Late))
    }

    /// Sends `request` (if any) and reads the kernel's next answer.
    async fn ask_kernel(
        &mut self,
        request: Option<serde_json::Value>,
        within: Duration,
    ) -> Result<serde_json::Value, Unanswered> {
        let gone = |what: String| Unanswered::Gone(what);
        if let Some(request) = request {
            let line = request.to_string() + "\n";
            let mut writer = self.writer.lock().await;
            let write = writer.as_mut().ok_or_else(|| gone("no kernel".into()))?;
            write
                .write_all(line.as_bytes())
                .await
                .map_err(|err| gone(format!("the kernel is gone ({err})")))?;
        }
        let read = self
            .reader
            .as_mut()
            .ok_or_else(|| gone("no kernel".into()))?;
        let mut line = String::new();
        match tokio::time::timeout(within, read.read_line(&mut line)).await {
            Err(_) => Err(Unanswered::Late),
            Ok(Err(err)) => Err(gone(format!("the kernel is gone ({err})"))),
            Ok(Ok(0)) => Err(gone("the kernel is gone".into())),
            Ok(Ok(_)) => serde_json::from_str(&line)
                .map_err(|err| gone(format!("the kernel said `{}`: {err}", line.trim()))),
        }
    }

    /// How long ago the session started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether [`Session::arm`] has handed the kernel its token.
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// Interrupts this session's cells while one runs elsewhere.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            writer: Arc::clone(&self.writer),
        }
    }

    /// Asks `approver` the approval questions of the calls from now on:
    /// whoever makes the next call answers for it.
    pub fn ask_with(&self, approver: Arc<dyn Approver>) {
        self.asker.set(approver);
    }

    /// Whether the session can run another cell.
    pub fn is_alive(&self) -> bool {
        self.lost.is_none() && !self.router.sandbox_gone.load(Ordering::SeqCst) && !self.in_flight
    }

    /// Runs `code` as the next cell, its output passed on to `live` as it
    /// arrives and kept as a run's is, interrupted (KeyboardInterrupt) past
    /// `timeout`; a cell that will not stop loses the session.
    pub async fn execute(
        &mut self,
        code: &str,
        timeout: Duration,
        sink: Arc<OutputSink>,
    ) -> CellOutcome {
        let started = Instant::now();
        if self.lost.is_none() && self.in_flight {
            self.lose("an earlier call left its cell half-done: the session was ended, and its variables are gone".into()).await;
        }
        if let Some(why) = &self.lost {
            let report = self.report(&sink, started, None, false, Some(why.clone()));
            return CellOutcome::SessionLost(report);
        }
        self.cells += 1;
        let cell = self.cells;
        self.router.begin(cell, Arc::clone(&sink));
        // The cell's time limit is kept here, on the session's clock, so a
        // call held for a person's answer does not count against it.
        let mut request = serde_json::json!({"op": "run", "cell": cell, "code": code});
        if let Some((_, caps)) = &self.outbox {
            request["collect"] =
                serde_json::json!({"max_bytes": caps.max_bytes, "max_files": caps.max_files});
        }
        let router = Arc::clone(&self.router);
        // Set until the answer is read: a cell dropped half-way (its caller
        // gone) leaves an answer no later cell may take for its own.
        self.in_flight = true;
        let flooded = async {
            loop {
                router.flooded.notified().await;
                // A flood of an earlier cell, noticed late, is not this one's.
                if router.flood_cell.load(Ordering::SeqCst) == cell {
                    return;
                }
            }
        };
        let answer = tokio::select! {
            answer = self.cell_answer(request, cell, timeout) => answer,
            () = flooded => Err(Unanswered::Flooded),
            () = router.sandbox_ended.notified() => Err(Unanswered::Gone("the sandbox ended".into())),
        };
        let answer = answer.and_then(|answer| {
            if answer.get("cell").and_then(serde_json::Value::as_u64) == Some(cell) {
                Ok(answer)
            } else {
                Err(Unanswered::Gone(format!(
                    "the kernel answered {answer} for cell {cell}"
                )))
            }
        });
        if answer.is_ok() {
            self.in_flight = false;
        }
        let answer = match answer {
            Ok(answer) => answer,
            Err(unanswered) => {
                let timed_out = matches!(unanswered, Unanswered::Late);
                let why = match unanswered {
                    Unanswered::Late => format!(
                        "the cell ran past its time limit of {} and did not stop when interrupted: \
                         the session was ended, and its variables are gone",
                        humantime::format_duration(timeout)
                    ),
                    Unanswered::Flooded => "the cell kept writing output far past the cap: the session was ended, and its variables are gone".into(),
                    // How the sandbox ended says more than how the kernel went.
                    Unanswered::Gone(_) => {
                        let how = self.ended().await;
                        format!("the session's sandbox ended ({how}): its variables are gone")
                    }
                };
                // Reported before the grant goes: its calls are the cell's.
                let mut report = self.report(&sink, started, None, timed_out, Some(why.clone()));
                if self.outbox.is_some() {
                    report = report.with_files(Collection::not_collected(
                        "out/ was not collected: the session was lost",
                    ));
                }
                self.lose(why).await;
                return CellOutcome::SessionLost(report);
            }
        };
        // The kernel sends the files once it has answered, so that their
        // time is not the cell's.
        let collected = match &self.outbox {
            Some((outbox, caps))
                if answer.get("files").and_then(serde_json::Value::as_bool) == Some(true) =>
            {
                let collecting = outbox.collect(*caps, COLLECT_LIMIT);
                Some(
                    tokio::time::timeout(COLLECT_LIMIT, collecting)
                        .await
                        .unwrap_or_else(|_| {
                            Collection::not_collected(
                                "out/ was not collected: the kernel did not send it",
                            )
                        }),
                )
            }
            Some(_) => Some(Collection::not_collected(
                "out/ was not collected: the kernel did not offer it",
            )),
            None => None,
        };
        self.router.drained(DRAIN_LIMIT).await;
        let status = answer
            .get("status")
            .and_then(serde_json::Value::as_i64)
            .map(|s| s as i32);
        let timed_out = answer.get("timed_out").and_then(serde_json::Value::as_bool) == Some(true);
        let error = timed_out.then(|| {
            format!(
                "timed out after {}: the cell was interrupted; the session goes on",
                humantime::format_duration(timeout)
            )
        });
        let report = self.report(&sink, started, status, timed_out, error);
        CellOutcome::Done(match collected {
            Some(collection) => report.with_files(collection),
            None => report,
        })
    }

    fn report(
        &mut self,
        sink: &OutputSink,
        started: Instant,
        exit_code: Option<i32>,
        timed_out: bool,
        error: Option<String>,
    ) -> Report {
        self.router.end();
        let captured = sink.captured();
        let records = self.grant.as_ref().map(Grant::records).unwrap_or_default();
        // A session keeps the records of its first calls only; past them a
        // cell's calls are counted, not listed.
        let calls: Vec<_> = records.kept.into_iter().skip(self.calls_seen).collect();
        self.calls_seen += calls.len();
        let dropped = records.dropped - self.dropped_seen;
        self.dropped_seen = records.dropped;
        Report {
            success: exit_code == Some(0) && error.is_none(),
            exit_code,
            stdout: captured.stdout,
            stderr: captured.stderr,
            timed_out,
            truncated: captured.truncated,
            stdout_dropped_bytes: captured.stdout_dropped,
            stderr_dropped_bytes: captured.stderr_dropped,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            sandbox: self.backend_name.to_string(),
            tool_calls: calls,
            tool_calls_dropped: dropped,
            error,
            ..Report::default()
        }
    }

    /// How the sandbox ended, once it has.
    async fn ended(&mut self) -> String {
        let Some(running) = self.running.take() else {
            return "already ended".into();
        };
        match tokio::time::timeout(Duration::from_secs(5), running).await {
            Ok(Ok(Ok(finished))) => ended_how(&finished),
            Ok(Ok(Err(err))) => err.to_string(),
            Ok(Err(err)) => err.to_string(),
            Err(_) => {
                self.kill.cancel();
                "it stopped answering".into()
            }
        }
    }

    async fn lose(&mut self, why: String) {
        self.lost = Some(why);
        let _ = self.end().await;
    }

    /// Ends the session: the sandbox and all it started killed, the grant
    /// revoked, the directory removed. Closing it again does nothing.
    pub async fn close(&mut self) -> Result<(), RunError> {
        self.lost
            .get_or_insert_with(|| "the session was ended".into());
        self.end().await
    }

    /// A handle that kills the session's sandbox without waiting for the
    /// session (a cell may be running): the cell then finds it lost.
    pub fn killer(&self) -> CancellationToken {
        self.kill.clone()
    }

    async fn end(&mut self) -> Result<(), RunError> {
        self.reader = None;
        *self.writer.lock().await = None;
        self.kill.cancel();
        if let Some(running) = self.running.take() {
            let _ = running.await;
        }
        self.stop_bridge.cancel();
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
        // Revoked: the token is worthless from here on.
        self.grant = None;
        let removed = self.dirs.take().map(RunDir::remove);
        // Only now that no file of the session is left may another run get its uid.
        self.user = None;
        if let Some(removed) = removed {
            removed.map_err(RunError::io("cleaning up after the session"))?;
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Not closed (a dropped task): the sandbox goes with the token.
        self.kill.cancel();
        self.stop_bridge.cancel();
    }
}

fn ended_how(finished: &Finished) -> String {
    if finished.cancelled {
        "ended by codemode: to make room, or because serve is stopping".into()
    } else if finished.oom_killed {
        "killed: out of memory".into()
    } else if finished.timed_out {
        "past the session's lifetime".into()
    } else if let Some(signal) = finished.signal {
        format!("killed by signal {signal}")
    } else if let Some(code) = finished.exit_code {
        format!("the kernel exited with status {code}")
    } else {
        "stopped".into()
    }
}

/// `bytes` random bytes as hex, from the system's random source: the
/// cells' end marker (which no cell can know in advance), session ids.
pub fn random_hex(bytes: usize) -> Result<String, RunError> {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).map_err(|err| RunError::Token(err.to_string()))?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}

/// Cuts the sandbox's output into cells at the kernel's end markers and
/// passes each cell's part to that cell's sink.
struct Router {
    marker: String,
    state: Mutex<Route>,
    marked: Notify,
    flooded: Notify,
    sandbox_ended: Notify,
    sandbox_gone: AtomicBool,
    /// The cell whose output flooded (0: none).
    flood_cell: AtomicU64,
}

#[derive(Default)]
struct Route {
    cell: u64,
    sink: Option<Arc<OutputSink>>,
    /// Per stream: bytes not yet passed on (a marker may be arriving).
    pending: [Vec<u8>; 2],
    ended: [bool; 2],
}

impl Router {
    fn new(marker: String) -> Router {
        Router {
            marker,
            state: Mutex::new(Route::default()),
            marked: Notify::new(),
            flooded: Notify::new(),
            sandbox_ended: Notify::new(),
            sandbox_gone: AtomicBool::new(false),
            flood_cell: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Route> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self, cell: u64, sink: Arc<OutputSink>) {
        let mut route = self.lock();
        route.cell = cell;
        route.sink = Some(sink);
        route.ended = [false, false];
        // What came between cells (the kernel's start) is this cell's.
        for stream in [Stream::Stdout, Stream::Stderr] {
            self.pass(&mut route, stream, &[]);
        }
    }

    fn end(&self) {
        self.lock().sink = None;
    }

    /// Waits (at most `limit`) until both streams have shown the cell's end.
    async fn drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.marked.notified();
            if self.lock().ended == [true, true] {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    fn take(&self, stream: Stream, bytes: &[u8]) {
        let mut route = self.lock();
        self.pass(&mut route, stream, bytes);
    }

    fn pass(&self, route: &mut Route, stream: Stream, bytes: &[u8]) {
        let index = stream as usize;
        route.pending[index].extend_from_slice(bytes);
        // Between cells, or after this stream's end: kept for the next cell.
        let sink = match (&route.sink, route.ended[index]) {
            (Some(sink), false) => Arc::clone(sink),
            _ => {
                let pending = &mut route.pending[index];
                let over = pending.len().saturating_sub(BETWEEN_CELLS);
                pending.drain(..over);
                return;
            }
        };
        let end = format!("{}:{}\n", self.marker, route.cell).into_bytes();
        let pending = std::mem::take(&mut route.pending[index]);
        let (now, later) = match find(&pending, &end) {
            Some(at) => {
                route.ended[index] = true;
                self.marked.notify_waiters();
                (&pending[..at], &pending[at + end.len()..])
            }
            // Hold back what could be the start of the marker.
            None => pending.split_at(pending.len() - partial_suffix(&pending, &end)),
        };
        if !now.is_empty()
            && !sink.push(stream, now)
            && self.flood_cell.swap(route.cell, Ordering::SeqCst) != route.cell
        {
            self.flooded.notify_one();
        }
        route.pending[index] = later.to_vec();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest end of `bytes` that begins `marker`.
fn partial_suffix(bytes: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(bytes.len() + 1))
        .rev()
        .find(|&n| bytes.ends_with(&marker[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(sink: &OutputSink) -> String {
        sink.captured().stdout
    }

    #[test]
    fn output_is_cut_at_the_cells_end_marker_even_across_chunks() {
        let router = Router::new("\u{1e}m".into());
        let sink = Arc::new(OutputSink::new(1024, None));
        router.begin(1, Arc::clone(&sink));
        router.take(Stream::Stdout, b"one\n\x1e");
        router.take(Stream::Stdout, b"m:1\nleftover");
        assert_eq!(captured(&sink), "one\n");
        let next = Arc::new(OutputSink::new(1024, None));
        router.end();
        router.begin(2, Arc::clone(&next));
        router.take(Stream::Stdout, b" two\n\x1em:2\n");
        assert_eq!(captured(&next), "leftover two\n");
    }

    #[test]
    fn a_partial_marker_is_held_back_only_while_it_could_be_one() {
        assert_eq!(partial_suffix(b"abc\x1e", b"\x1em:1\n"), 1);
        assert_eq!(partial_suffix(b"abc", b"\x1em:1\n"), 0);
        assert_eq!(partial_suffix(b"\x1em:", b"\x1em:1\n"), 3);
    }
}
