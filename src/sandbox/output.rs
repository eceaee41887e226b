//! A run's output: kept up to a cap per stream, passed on live as it arrives,
//! and the run stopped if it keeps flooding long past the cap. Whatever is
//! dropped is reported as truncated, never silently.

use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Called with every kept chunk as it arrives (a terminal, MCP notifications).
pub type Live = Box<dyn Fn(Stream, &[u8]) + Send + Sync>;

/// How far past the cap a run may keep writing before it is stopped: enough to
/// finish a line or two, little enough that a flood ends quickly.
const FLOOD_FACTOR: u64 = 8;

pub struct OutputSink {
    cap: usize,
    live: Option<Live>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    seen: u64,
    truncated: bool,
}

/// What was kept of a run's output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

impl OutputSink {
    pub fn new(cap: usize, live: Option<Live>) -> OutputSink {
        OutputSink {
            cap,
            live,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes a chunk; `false` means the run has flooded and must be stopped.
    pub fn push(&self, stream: Stream, bytes: &[u8]) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.seen += bytes.len() as u64;
        let buffer = match stream {
            Stream::Stdout => &mut state.stdout,
            Stream::Stderr => &mut state.stderr,
        };
        let room = self.cap.saturating_sub(buffer.len());
        let kept = &bytes[..bytes.len().min(room)];
        buffer.extend_from_slice(kept);
        if kept.len() < bytes.len() {
            state.truncated = true;
        }
        let flooded = state.seen > (self.cap as u64).saturating_mul(2 * FLOOD_FACTOR);
        drop(state);
        if let (Some(live), false) = (&self.live, kept.is_empty()) {
            live(stream, kept);
        }
        !flooded
    }

    pub fn captured(&self) -> Captured {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Captured {
            stdout: String::from_utf8_lossy(&state.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&state.stderr).into_owned(),
            truncated: state.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn output_under_the_cap_is_kept_whole() {
        let sink = OutputSink::new(10, None);
        assert!(sink.push(Stream::Stdout, b"hello"));
        assert!(sink.push(Stream::Stderr, b"oops"));
        let captured = sink.captured();
        assert_eq!(
            (captured.stdout.as_str(), captured.stderr.as_str()),
            ("hello", "oops")
        );
        assert!(!captured.truncated);
    }

    #[test]
    fn output_past_the_cap_is_cut_and_marked_truncated() {
        let sink = OutputSink::new(4, None);
        sink.push(Stream::Stdout, b"abcdef");
        let captured = sink.captured();
        assert_eq!(captured.stdout, "abcd");
        assert!(captured.truncated);
    }

    #[test]
    fn each_stream_has_its_own_cap() {
        let sink = OutputSink::new(3, None);
        sink.push(Stream::Stdout, b"aaaa");
        sink.push(Stream::Stderr, b"bb");
        assert_eq!(sink.captured().stderr, "bb");
    }

    #[test]
    fn a_flood_far_past_the_cap_asks_for_the_run_to_stop() {
        let sink = OutputSink::new(10, None);
        let mut pushes = 0;
        while sink.push(Stream::Stdout, &[b'x'; 10]) {
            pushes += 1;
            assert!(pushes < 1000, "never asked to stop");
        }
        assert!(pushes >= 10);
    }

    #[test]
    fn only_kept_output_is_passed_on_live() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = Arc::clone(&seen);
        let sink = OutputSink::new(
            5,
            Some(Box::new(move |_, bytes| {
                sink_seen.lock().unwrap().extend_from_slice(bytes)
            })),
        );
        sink.push(Stream::Stdout, b"abc");
        sink.push(Stream::Stdout, b"defgh");
        sink.push(Stream::Stdout, b"ijk");
        assert_eq!(&*seen.lock().unwrap(), b"abcde");
    }
}
