//! Sessions started ahead: their sandbox up, the interpreter running and
//! `mcp_tools` imported, so that a new session costs a hand-over instead
//! of a start. Each serves one session only; its token reaches it when it
//! is handed out, never before. A warm session whose stubs no longer match
//! the servers' (one came up since) is ended instead of handed out.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use codemode_run::Session;

use super::Served;

pub struct Warm {
    want: usize,
    /// Ready sessions, each with the stub module it imported.
    ready: Mutex<Vec<(String, Session)>>,
    wanted: Notify,
}

impl Warm {
    pub fn new(want: usize) -> Warm {
        Warm {
            want,
            ready: Mutex::new(Vec::new()),
            wanted: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Session)>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready session that imported `module`, if there is one; the pool
    /// refills in the background either way.
    pub fn take(&self, module: &str) -> Option<Session> {
        let (found, stale) = {
            let mut ready = self.lock();
            let all = std::mem::take(&mut *ready);
            let mut found = None;
            let mut stale = Vec::new();
            for (stubs, session) in all {
                if stubs != module || !session.is_alive() {
                    stale.push(session);
                } else if found.is_none() {
                    found = Some(session);
                } else {
                    ready.push((stubs, session));
                }
            }
            (found, stale)
        };
        for mut session in stale {
            tokio::spawn(async move {
                let _ = session.close().await;
            });
        }
        self.wanted.notify_one();
        found
    }

    /// Keeps the pool full, for as long as serve runs.
    pub async fn keep_filled(&self, served: &Served) {
        if self.want == 0 {
            return;
        }
        // Started once the servers are: a session takes the stubs of its start.
        served.views.settled_all(super::view::START_GRACE).await;
        loop {
            while self.lock().len() < self.want {
                let module = served.views.current().module.text.clone();
                match served
                    .runner
                    .prepare_session(&module, &served.session_options)
                    .await
                {
                    Ok(session) => self.lock().push((module, session)),
                    Err(err) => {
                        // Sessions then start cold; said once, not per try.
                        tracing::warn!("no warm session: {err}");
                        return;
                    }
                }
            }
            self.wanted.notified().await;
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
