//! The stop signals, caught from the moment they are asked for: a signal that
//! arrived before the first poll would otherwise kill the process before it
//! could clean up after its runs.

use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A signal that stops codemode itself (not one that ended a script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Terminate => libc::SIGTERM,
        }
    }

    /// As shells name it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit status shells report for a process it ended (130, 143).
    pub fn exit_code(self) -> i32 {
        128 + self.number()
    }
}

/// Resolves to the first SIGINT or SIGTERM after the call (not after the
/// first poll).
pub fn stop_signal() -> impl std::future::Future<Output = Signal> + Send + 'static {
    let mut signals = StopSignals::new();
    async move { signals.next().await }
}

/// Cancels `cancel` on the first SIGINT or SIGTERM from now on; the signal
/// is then in the returned cell, for the exit code and the message.
pub fn cancel_on_stop(cancel: &CancellationToken) -> Arc<OnceLock<Signal>> {
    let signalled = Arc::new(OnceLock::new());
    let stopped = stop_signal();
    tokio::spawn({
        let (signalled, cancel) = (Arc::clone(&signalled), cancel.clone());
        async move {
            let _ = signalled.set(stopped.await);
            cancel.cancel();
        }
    });
    signalled
}

/// SIGINT and SIGTERM, caught from creation on, one after another: for a
/// command whose first signal starts a graceful stop and whose second cuts it
/// short. Handlers made anew for the second one could miss it.
pub struct StopSignals {
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    pub fn new() -> StopSignals {
        let handlers = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            _ => None,
        };
        StopSignals { handlers }
    }

    /// The next signal (never, if the handlers could not be set).
    pub async fn next(&mut self) -> Signal {
        let Some((int, term)) = self.handlers.as_mut() else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
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
    fn stop_signals_end_a_process_as_shells_report_it() {
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
        assert_eq!(Signal::Terminate.name(), "SIGTERM");
    }
}
