//! Sessions started ahead: their sandbox up, the interpreter running and
//! `mcp_tools` imported, so that a new session costs a hand-over instead
//! of a start. Each serves one session only; its token reaches it when it
//! is handed out, never before. A warm session whose stubs no longer match
//! the servers' (one came up since) is ended instead of handed out.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use codemode_run::Session;

use super::Served;

/// How long a new session waits for the warm one being started.
const PREPARE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the pool waits for the servers to be up before it fills anyway.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

pub struct Warm {
    want: usize,
    /// A ready session older than this is ended rather than handed out: it
    /// would leave its user little of its lifetime.
    max_age: std::time::Duration,
    /// Ready sessions, each with the stub module it imported.
    ready: Mutex<Vec<(String, Session)>>,
    wanted: Notify,
    /// Whether one is being started, and told when it is ready.
    preparing: std::sync::atomic::AtomicBool,
    readied: Notify,
}

impl Warm {
    pub fn new(want: usize, lifetime: std::time::Duration) -> Warm {
        Warm {
            want,
            max_age: lifetime / 2,
            ready: Mutex::new(Vec::new()),
            wanted: Notify::new(),
            preparing: std::sync::atomic::AtomicBool::new(false),
            readied: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Session)>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready session that imported `module`: one ready now, or the one
    /// being started (sooner ready than a cold start); `None` when neither
    /// is. The pool refills in the background either way.
    pub async fn take(&self, module: &str) -> Option<Session> {
        loop {
            let readied = self.readied.notified();
            if let Some(found) = self.take_ready(module) {
                return Some(found);
            }
            if !self.preparing.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            if tokio::time::timeout(PREPARE_WAIT, readied).await.is_err() {
                return None;
            }
        }
    }

    fn take_ready(&self, module: &str) -> Option<Session> {
        self.prune(module);
        let found = self.lock().pop().map(|(_, session)| session);
        self.wanted.notify_one();
        found
    }

    /// Keeps the pool full, for as long as serve runs.
    pub async fn keep_filled(&self, served: &Served) {
        if self.want == 0 {
            return;
        }
        // Started once the servers are: a session takes the stubs of its
        // start, and one made while a server starts would be stale soon.
        served.views.settled_all(SETTLE_LIMIT).await;
        let mut views = served.views.subscribe();
        loop {
            // A server that came up (or went) since makes the ready ones stale.
            let current = served.views.current().module.text.clone();
            self.prune(&current);
            while self.lock().len() < self.want {
                let module = served.views.current().module.text.clone();
                self.preparing
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let prepared = served
                    .runner
                    .prepare_session(&module, &served.session_options)
                    .await;
                self.preparing
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                match prepared {
                    Ok(session) => {
                        self.lock().push((module, session));
                        self.readied.notify_waiters();
                    }
                    Err(err) => {
                        self.readied.notify_waiters();
                        // Sessions then start cold; said once, not per try.
                        tracing::warn!("no warm session: {err}");
                        return;
                    }
                }
            }
            tokio::select! {
                () = self.wanted.notified() => {}
                changed = views.changed() => if changed.is_err() {
                    return;
                },
            }
        }
    }

    /// Ends the ready sessions whose stubs are not `module`.
    fn prune(&self, module: &str) {
        let stale: Vec<Session> = {
            let mut ready = self.lock();
            let (keep, stale): (Vec<_>, Vec<_>) = std::mem::take(&mut *ready)
                .into_iter()
                .partition(|(stubs, session)| {
                    stubs == module && session.is_alive() && session.age() <= self.max_age
                });
            *ready = keep;
            stale.into_iter().map(|(_, session)| session).collect()
        };
        for mut session in stale {
            tokio::spawn(async move {
                let _ = session.close().await;
            });
        }
    }

    /// Ends every ready session.
    pub async fn close_all(&self) {
        let all = std::mem::take(&mut *self.lock());
        for (_, mut session) in all {
            let _ = session.close().await;
        }
    }
}

/// Keeps `served`'s pool filled until the task is dropped.
pub fn spawn(served: Arc<Served>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { served.warm.keep_filled(&served).await })
}
