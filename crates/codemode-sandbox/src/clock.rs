//! A run's clock: the time it has used, less the time it spent waiting for a
//! person (a call held for approval). A limit on a run's time bounds what
//! the script does, and a script blocked on a question does nothing.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Clones share one clock.
#[derive(Clone, Default)]
pub struct RunClock {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Pauses in force; the clock stands while there is one.
    holds: usize,
    since: Option<Instant>,
    /// Paused time before the pauses in force.
    paused: Duration,
}

impl std::fmt::Debug for RunClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunClock")
            .field("paused", &self.paused())
            .finish()
    }
}

/// The clock stands until this is dropped.
pub struct Pause {
    inner: Arc<Inner>,
}

impl RunClock {
    pub fn new() -> RunClock {
        RunClock::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the clock until the returned [`Pause`] is dropped; pauses may
    /// overlap (calls asked about at once).
    pub fn pause(&self) -> Pause {
        let mut state = self.state();
        if state.holds == 0 {
            state.since = Some(Instant::now());
        }
        state.holds += 1;
        drop(state);
        self.inner.changed.notify_waiters();
        Pause {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Time the clock has stood in all, a pause in force included.
    pub fn paused(&self) -> Duration {
        let state = self.state();
        state.paused + state.since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    fn is_paused(&self) -> bool {
        self.state().holds > 0
    }

    /// Resolves once `limit` of running time has passed from now.
    pub fn expiry(&self, limit: Duration) -> impl Future<Output = ()> + Send + 'static {
        let clock = self.clone();
        let started = Instant::now();
        let paused_before = clock.paused();
        async move {
            loop {
                let changed = clock.inner.changed.notified();
                tokio::pin!(changed);
                // Registered before the state is read, so no change is missed.
                changed.as_mut().enable();
                if clock.is_paused() {
                    changed.await;
                    continue;
                }
                let used = started
                    .elapsed()
                    .saturating_sub(clock.paused().saturating_sub(paused_before));
                let Some(left) = limit.checked_sub(used).filter(|left| !left.is_zero()) else {
                    return;
                };
                tokio::select! {
                    () = tokio::time::sleep(left) => {}
                    () = changed => {}
                }
            }
        }
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.holds -= 1;
        if state.holds == 0 {
            if let Some(since) = state.since.take() {
                state.paused += since.elapsed();
            }
        }
        drop(state);
        self.inner.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unpaused_clock_expires_after_its_limit() {
        let clock = RunClock::new();
        let started = Instant::now();
        clock.expiry(Duration::from_secs(10)).await;
        assert_eq!(started.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn time_paused_is_added_to_the_limit() {
        let clock = RunClock::new();
        let started = Instant::now();
        let expiry = tokio::spawn(clock.expiry(Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(4)).await;
        let pause = clock.pause();
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!expiry.is_finished(), "a paused clock does not expire");
        drop(pause);
        expiry.await.unwrap();
        assert_eq!(started.elapsed().as_secs(), 110);
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_pauses_stand_the_clock_until_the_last_ends() {
        let clock = RunClock::new();
        let started = Instant::now();
        let expiry = tokio::spawn(clock.expiry(Duration::from_secs(10)));
        let a = clock.pause();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let b = clock.pause();
        drop(a);
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(b);
        expiry.await.unwrap();
        assert_eq!(started.elapsed().as_secs(), 20);
        assert_eq!(clock.paused().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_before_an_expiry_starts_do_not_count_for_it() {
        let clock = RunClock::new();
        drop(clock.pause());
        {
            let _pause = clock.pause();
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let started = Instant::now();
        clock.expiry(Duration::from_secs(3)).await;
        assert_eq!(started.elapsed().as_secs(), 3);
    }
}
