//! Serving the bridge's router on TCP and Unix sockets, with the timeouts that
//! keep a slow or stuck client from holding a connection, caps on how many may
//! be open, and a bounded graceful stop.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, UnixListener};

use super::wire::ErrorKind;

/// A socket the bridge accepts connections on.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

/// A bound Unix socket; the file is removed when this is dropped.
pub struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl UnixSocket {
    /// Binds a fresh socket at `path`, replacing a stale one (only ever a
    /// socket: any other file there is an error, never deleted). `mode` sets who
    /// may connect; the directory's own permissions decide who can reach it.
    pub fn bind(path: &Path, mode: u32) -> std::io::Result<UnixSocket> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(UnixSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bounds on what one connection may take, and on how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to send a request's headers once a connection is open or idle.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish once a stop is asked for.
    pub shutdown_grace: Duration,
    /// Connections open at once on one bridge (all its sockets together).
    pub max_connections: usize,
    /// Connections open at once on every bridge of this process together.
    pub max_process_connections: usize,
}

/// The generated client keeps one connection per thread, and a grant admits
/// 64 calls in flight by default: a run never needs more connections than
/// that to use its grant in full, and the cap keeps one run from taking the
/// descriptors the process's other runs need.
const MAX_CONNECTIONS: usize = 64;

/// Enough for four runs to use their whole share at once. Never more than a
/// quarter of the descriptor limit: the rest are what the bridge's calls need
/// to be served at all (the MCP servers' pipes, the sandboxes' pipes and
/// files, Docker's socket), so a flood of connections fails itself, not the
/// runs.
const MAX_PROCESS_CONNECTIONS: usize = 256;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_connections: MAX_CONNECTIONS,
            max_process_connections: process_default(),
        }
    }
}

fn process_default() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024);
    MAX_PROCESS_CONNECTIONS.min(soft / 4).max(16)
}

/// A count of open connections held against a cap.
#[derive(Default)]
struct Slots {
    open: AtomicUsize,
}

/// One open connection's place in a count, given back when dropped.
struct Slot(Arc<Slots>);

impl Slots {
    fn take(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot(Arc::clone(self)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every bridge in the process counts its connections here too.
fn process_slots() -> &'static Arc<Slots> {
    static SLOTS: OnceLock<Arc<Slots>> = OnceLock::new();
    SLOTS.get_or_init(Arc::default)
}

/// Decides, as each connection is accepted, whether it may stay open.
struct Gate {
    bridge: Arc<Slots>,
    process: Arc<Slots>,
    limits: ConnectionLimits,
    /// Refused since a connection was last let in: a flood is logged when it
    /// starts and when it ends, never once per connection.
    refused: AtomicU64,
}

/// An accepted connection's places in the counts.
struct Admitted {
    _bridge: Slot,
    _process: Slot,
}

impl Gate {
    fn new(limits: ConnectionLimits, process: Arc<Slots>) -> Gate {
        Gate {
            bridge: Arc::default(),
            process,
            limits,
            refused: AtomicU64::new(0),
        }
    }

    /// The connection's places, or `None` once `refuse` was given a last
    /// answer to send it: the caller then closes it at once, so a flood
    /// costs one accept per connection, and the ones already open keep going.
    fn admit(&self, refuse: impl FnOnce(&[u8])) -> Option<Admitted> {
        let admitted = self
            .bridge
            .take(self.limits.max_connections)
            .ok_or(("this bridge", self.limits.max_connections))
            .and_then(|bridge| {
                let process = self
                    .process
                    .take(self.limits.max_process_connections)
                    .ok_or((
                        "the bridges of this process together",
                        self.limits.max_process_connections,
                    ))?;
                Ok(Admitted {
                    _bridge: bridge,
                    _process: process,
                })
            });
        match admitted {
            Ok(admitted) => {
                let refused = self.refused.swap(0, Ordering::AcqRel);
                if refused > 0 {
                    tracing::warn!("accepting connections again, after refusing {refused}");
                }
                Some(admitted)
            }
            Err((whose, max)) => {
                let message = format!(
                    "{whose}: {max} connections are open, the limit; close one (or call from fewer threads) and try again"
                );
                if self.refused.fetch_add(1, Ordering::AcqRel) == 0 {
                    tracing::warn!("refusing connections: {message}");
                }
                refuse(&refusal(&message));
                None
            }
        }
    }
}

/// A whole HTTP answer in the wire's error shape, sent before the request is
/// read: a client reading it learns why its connection closed.
fn refusal(message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "success": false,
        "error": {"kind": ErrorKind::RateLimited.as_str(), "message": message},
    })
    .to_string();
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts connections on every listener until `stop` resolves, then lets the
/// requests in flight finish within the grace period.
pub async fn serve(
    router: Router,
    listeners: Vec<Listener>,
    limits: ConnectionLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    serve_counted(router, listeners, limits, Arc::clone(process_slots()), stop).await;
}

async fn serve_counted(
    router: Router,
    listeners: Vec<Listener>,
    limits: ConnectionLimits,
    process: Arc<Slots>,
    stop: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let gate = Arc::new(Gate::new(limits, process));
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel::<(Connection, Admitted)>(64);
    let mut acceptors = tokio::task::JoinSet::new();
    for listener in listeners {
        let tx = conn_tx.clone();
        let gate = Arc::clone(&gate);
        match listener {
            Listener::Tcp(tcp) => {
                acceptors.spawn(async move {
                    loop {
                        match tcp.accept().await {
                            Ok((stream, _)) => {
                                let Some(admitted) = gate.admit(|answer| {
                                    let _ = stream.try_write(answer);
                                }) else {
                                    continue;
                                };
                                let _ = stream.set_nodelay(true);
                                if tx.send((Connection::Tcp(stream), admitted)).await.is_err() {
                                    break;
                                }
                            }
                            Err(err) => accept_error(err).await,
                        }
                    }
                });
            }
            Listener::Unix(socket) => {
                // The task owns the socket, so stopping the task removes the file.
                acceptors.spawn(async move {
                    loop {
                        match socket.listener.accept().await {
                            Ok((stream, _)) => {
                                let Some(admitted) = gate.admit(|answer| {
                                    let _ = stream.try_write(answer);
                                }) else {
                                    continue;
                                };
                                if tx.send((Connection::Unix(stream), admitted)).await.is_err() {
                                    break;
                                }
                            }
                            Err(err) => accept_error(err).await,
                        }
                    }
                });
            }
        }
    }
    drop(conn_tx);

    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            conn = conn_rx.recv() => match conn {
                Some((conn, admitted)) => {
                    spawn_connection(&graceful, router.clone(), conn, admitted, limits)
                }
                None => break,
            },
        }
    }
    acceptors.shutdown().await;
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after {}; stopping them",
            humantime::format_duration(limits.shutdown_grace)
        );
    }
}

enum Connection {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Serves one connection in a task of its own, which holds the connection's
/// places in the counts until it ends.
fn spawn_connection(
    graceful: &GracefulShutdown,
    router: Router,
    conn: Connection,
    admitted: Admitted,
    limits: ConnectionLimits,
) {
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    match conn {
        Connection::Tcp(stream) => {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let watched = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = watched.await;
                drop(admitted);
            });
        }
        Connection::Unix(stream) => {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let watched = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = watched.await;
                drop(admitted);
            });
        }
    }
}

/// Out of file descriptors and similar: say so, pause, keep serving.
async fn accept_error(err: std::io::Error) {
    tracing::warn!("accepting a connection failed: {err}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;
    use tokio_util::sync::CancellationToken;

    const WAIT: Duration = Duration::from_secs(5);

    fn limits(bridge: usize, process: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: bridge,
            max_process_connections: process,
            ..ConnectionLimits::default()
        }
    }

    /// A bridge-like server on a fresh socket, counting into `process`.
    struct Served {
        _dir: tempfile::TempDir,
        path: PathBuf,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Served {
        fn start(limits: ConnectionLimits, process: &Arc<Slots>) -> Served {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bridge.sock");
            let socket = UnixSocket::bind(&path, 0o600).unwrap();
            let router = Router::new().route("/ping", get(|| async { "pong" }));
            let stop = CancellationToken::new();
            let task = tokio::spawn(serve_counted(
                router,
                vec![Listener::Unix(socket)],
                limits,
                Arc::clone(process),
                stop.clone().cancelled_owned(),
            ));
            Served {
                _dir: dir,
                path,
                stop,
                task,
            }
        }

        async fn connect(&self) -> UnixStream {
            UnixStream::connect(&self.path).await.unwrap()
        }

        async fn stop(self) {
            self.stop.cancel();
            let _ = self.task.await;
        }
    }

    /// Everything the server sends until it closes the connection.
    async fn read_until_closed(stream: &mut UnixStream) -> String {
        let mut got = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the connection was not closed");
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Sends one request on an open connection and reads its answer's status line.
    async fn ping(stream: &mut UnixStream) -> String {
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nHost: bridge\r\n\r\n")
            .await
            .unwrap();
        let mut got = vec![0u8; 1024];
        let n = tokio::time::timeout(WAIT, stream.read(&mut got))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&got[..n]).into_owned();
        text.lines().next().unwrap_or_default().to_string()
    }

    /// Waits until `count` connections hold places, so that the next one is
    /// judged against a full count.
    async fn until_open(slots: &Slots, count: usize) {
        let started = std::time::Instant::now();
        while slots.open.load(Ordering::Acquire) != count {
            assert!(started.elapsed() < WAIT, "never {count} open");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_connection_past_the_bridge_cap_is_answered_429_and_closed() {
        let process = Arc::new(Slots::default());
        let served = Served::start(limits(2, 100), &process);
        let _held = [served.connect().await, served.connect().await];
        until_open(&process, 2).await;
        let mut refused = served.connect().await;
        let answer = read_until_closed(&mut refused).await;
        assert!(
            answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{answer}"
        );
        let body: serde_json::Value =
            serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"]["kind"], "rate_limited", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("2 connections"),
            "{body}"
        );
        served.stop().await;
    }

    #[tokio::test]
    async fn connections_already_open_keep_working_while_others_are_refused() {
        let process = Arc::new(Slots::default());
        let served = Served::start(limits(1, 100), &process);
        let mut held = served.connect().await;
        until_open(&process, 1).await;
        for _ in 0..20 {
            let mut refused = served.connect().await;
            read_until_closed(&mut refused).await;
        }
        assert_eq!(ping(&mut held).await, "HTTP/1.1 200 OK");
        served.stop().await;
    }

    #[tokio::test]
    async fn a_closed_connection_gives_its_place_back() {
        let process = Arc::new(Slots::default());
        let served = Served::start(limits(1, 100), &process);
        let first = served.connect().await;
        until_open(&process, 1).await;
        drop(first);
        until_open(&process, 0).await;
        let mut next = served.connect().await;
        assert_eq!(ping(&mut next).await, "HTTP/1.1 200 OK");
        served.stop().await;
    }

    #[tokio::test]
    async fn the_process_cap_counts_every_bridge_together() {
        let process = Arc::new(Slots::default());
        let first = Served::start(limits(10, 2), &process);
        let second = Served::start(limits(10, 2), &process);
        let _held = [first.connect().await, second.connect().await];
        until_open(&process, 2).await;
        let mut refused = first.connect().await;
        let answer = read_until_closed(&mut refused).await;
        assert!(answer.contains("bridges of this process"), "{answer}");
        first.stop().await;
        second.stop().await;
    }

    #[test]
    fn a_burst_of_refusals_is_logged_once_and_counted_when_it_ends() {
        let process = Arc::new(Slots::default());
        let gate = Gate::new(limits(1, 100), process);
        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let log = Arc::clone(&log);
            move || LogWriter(Arc::clone(&log))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let held = gate.admit(|_| {}).expect("room for one");
            let mut answers = 0;
            for _ in 0..50 {
                assert!(gate.admit(|_| answers += 1).is_none());
            }
            assert_eq!(answers, 50, "every refused connection gets its answer");
            drop(held);
            assert!(gate.admit(|_| {}).is_some());
        });
        let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("refusing connections").count(), 1, "{text}");
        assert!(text.contains("after refusing 50"), "{text}");
    }

    struct LogWriter(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_default_process_cap_leaves_most_descriptors_to_the_runs() {
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let cap = ConnectionLimits::default().max_process_connections as u64;
        assert!(cap <= soft / 4 || cap == 16, "{cap} of {soft}");
    }
}
