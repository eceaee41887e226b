//! `execute_python`'s sessions: each result names one, and passing its id
//! back runs the next code in it. A session ends when it has been idle too
//! long, when more are open than allowed (the least recently used goes), when
//! it is lost, or when serve stops; an id that names none is a clear error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use codemode_run::Session;

/// One open session. A cell holds `session` while it runs; `kill` ends the
/// sandbox without waiting for it.
#[derive(Clone)]
pub struct Entry {
    pub session: Arc<tokio::sync::Mutex<Session>>,
    kill: CancellationToken,
}

struct Open {
    entry: Entry,
    last_used: Instant,
}

impl Open {
    /// Whether a call holds the session (the map holds one reference).
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.entry.session) > 1
    }
}

pub struct Sessions {
    open: Mutex<HashMap<String, Open>>,
    max: usize,
    idle: Duration,
}

/// Why an id names no session.
pub fn unknown(id: &str, idle: Duration) -> String {
    format!(
        "no session `{id}`: it ended (idle for {}, ended to make room for newer ones, lost, or serve \
         restarted) and its variables are gone. Omit `session` to start a new one.",
        humantime::format_duration(idle)
    )
}

impl Sessions {
    pub fn new(max: usize, idle: Duration) -> Sessions {
        Sessions {
            open: Mutex::new(HashMap::new()),
            max: max.max(1),
            idle,
        }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session `id` names, marked as used now.
    pub fn get(&self, id: &str) -> Option<Entry> {
        let mut open = self.lock();
        let found = open.get_mut(id)?;
        found.last_used = Instant::now();
        Some(found.entry.clone())
    }

    /// Marks `id` as used now: idle time counts from the end of its last call.
    pub fn touch(&self, id: &str) {
        if let Some(open) = self.lock().get_mut(id) {
            open.last_used = Instant::now();
        }
    }

    /// Keeps `session` as `id`, ending the least recently used ones past the
    /// limit.
    pub fn insert(&self, id: String, session: Session) -> Entry {
        let entry = Entry {
            kill: session.killer(),
            session: Arc::new(tokio::sync::Mutex::new(session)),
        };
        let mut open = self.lock();
        open.insert(
            id,
            Open {
                entry: entry.clone(),
                last_used: Instant::now(),
            },
        );
        while open.len() > self.max {
            // Idle ones go first: one a call holds is cut off only when
            // every session is in use.
            let Some(oldest) = open
                .iter()
                .min_by_key(|(_, o)| (o.in_use(), o.last_used))
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            if let Some(evicted) = open.remove(&oldest) {
                tracing::info!("session {oldest}: ended to make room");
                end(evicted.entry);
            }
        }
        entry
    }

    /// Forgets `id` and ends its session.
    pub fn remove(&self, id: &str) {
        if let Some(gone) = self.lock().remove(id) {
            end(gone.entry);
        }
    }

    /// Ends the sessions idle for longer than allowed.
    pub fn sweep(&self) {
        let mut open = self.lock();
        let expired: Vec<String> = open
            .iter()
            .filter(|(_, o)| o.last_used.elapsed() > self.idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            // A call that holds it (running, or waiting for its turn) keeps
            // a session in use, however long it waits.
            if let Some(gone) = open.remove(&id) {
                if gone.in_use() {
                    open.insert(id, gone);
                    continue;
                }
                tracing::info!("session {id}: ended after being idle");
                end(gone.entry);
            }
        }
    }

    /// How often [`Self::sweep`] should run.
    pub fn sweep_every(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    /// Ends every session and waits until each is gone.
    pub async fn close_all(&self) {
        let all: Vec<Entry> = self.lock().drain().map(|(_, o)| o.entry).collect();
        for entry in all {
            entry.kill.cancel();
            let _ = entry.session.lock().await.close().await;
        }
    }
}

/// Kills the session's sandbox now; the directory and the grant go once a
/// cell still holding it lets go.
fn end(entry: Entry) {
    entry.kill.cancel();
    tokio::spawn(async move {
        let _ = entry.session.lock().await.close().await;
    });
}
