//! Serving the bridge's router on TCP and Unix sockets, with the timeouts that
//! keep a slow or stuck client from holding a connection, and a bounded graceful
//! stop.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, UnixListener};

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

/// Bounds on what one connection may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to send a request's headers once a connection is open or idle.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish once a stop is asked for.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Accepts connections on every listener until `stop` resolves, then lets the
/// requests in flight finish within the grace period.
pub async fn serve(
    router: Router,
    listeners: Vec<Listener>,
    limits: ConnectionLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel::<Connection>(64);
    let mut acceptors = tokio::task::JoinSet::new();
    for listener in listeners {
        let tx = conn_tx.clone();
        match listener {
            Listener::Tcp(tcp) => {
                acceptors.spawn(async move {
                    loop {
                        match tcp.accept().await {
                            Ok((stream, _)) => {
                                let _ = stream.set_nodelay(true);
                                if tx.send(Connection::Tcp(stream)).await.is_err() {
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
                                if tx.send(Connection::Unix(stream)).await.is_err() {
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
                Some(conn) => spawn_connection(&graceful, router.clone(), conn, limits),
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

fn spawn_connection(
    graceful: &GracefulShutdown,
    router: Router,
    conn: Connection,
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
            });
        }
        Connection::Unix(stream) => {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let watched = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = watched.await;
            });
        }
    }
}

/// Out of file descriptors and similar: say so, pause, keep serving.
async fn accept_error(err: std::io::Error) {
    tracing::warn!("accepting a connection failed: {err}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
