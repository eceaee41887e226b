//! A run's output: kept up to a cap per stream (its start, or its start and
//! end), passed on live as it arrives, and the run stopped if it keeps
//! flooding long past the cap. Whatever is dropped is reported as truncated
//! and counted, never silently.

use std::collections::VecDeque;
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
    /// Bytes of each stream passed on live, and the base of the flood bound.
    cap: usize,
    keep: Keep,
    live: Option<Live>,
    state: Mutex<State>,
}

/// What is kept of each stream for the result.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The first `cap` bytes: a terminal has already shown them live.
    Head,
    /// Nothing, and no flood bound: everything goes to `live`, which keeps
    /// and bounds what it wants (a session, cell by cell).
    Nothing,
    /// The first and the last half of this many bytes: a result read at the
    /// end, where a traceback or a summary printed last matters as much as
    /// what came first.
    Ends(usize),
}

#[derive(Default)]
struct State {
    streams: [Kept; 2],
    seen: u64,
}

#[derive(Default)]
struct Kept {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    seen: u64,
    /// Bytes between `head` and `tail` (or after `head`) that are gone.
    dropped: u64,
}

/// What was kept of a run's output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
}

impl OutputSink {
    /// Keeps the first `cap` bytes of each stream.
    pub fn new(cap: usize, live: Option<Live>) -> OutputSink {
        OutputSink::with(cap, Keep::Head, live)
    }

    /// Keeps the start and the end of each stream, `keep` bytes in all, with
    /// the middle cut out and noted; the first `cap` bytes are passed on live
    /// and the flood bound is that of `new(cap)` (or of `keep`, if larger).
    pub fn ends(keep: usize, cap: usize, live: Option<Live>) -> OutputSink {
        OutputSink::with(cap, Keep::Ends(keep), live)
    }

    /// Passes everything on to `live` and keeps nothing itself.
    pub fn relay(live: Live) -> OutputSink {
        OutputSink::with(usize::MAX, Keep::Nothing, Some(live))
    }

    fn with(cap: usize, keep: Keep, live: Option<Live>) -> OutputSink {
        OutputSink {
            cap,
            keep,
            live,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes a chunk; `false` means the run has flooded and must be stopped.
    pub fn push(&self, stream: Stream, bytes: &[u8]) -> bool {
        if let (Keep::Nothing, Some(live)) = (self.keep, &self.live) {
            live(stream, bytes);
            return true;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.seen += bytes.len() as u64;
        let kept = &mut state.streams[stream as usize];
        let live_room = (self.cap as u64).saturating_sub(kept.seen);
        let live_part = &bytes[..bytes
            .len()
            .min(usize::try_from(live_room).unwrap_or(usize::MAX))];
        kept.seen += bytes.len() as u64;
        let base = match self.keep {
            Keep::Nothing => usize::MAX,
            Keep::Head => {
                kept.head.extend_from_slice(live_part);
                kept.dropped += (bytes.len() - live_part.len()) as u64;
                self.cap
            }
            Keep::Ends(keep) => {
                let head_max = keep / 2;
                let tail_max = keep - head_max;
                let room = head_max.saturating_sub(kept.head.len());
                let (to_head, rest) = bytes.split_at(bytes.len().min(room));
                kept.head.extend_from_slice(to_head);
                let skipped = rest.len().saturating_sub(tail_max);
                kept.tail.extend(&rest[skipped..]);
                let over = kept.tail.len().saturating_sub(tail_max);
                kept.tail.drain(..over);
                kept.dropped += (skipped + over) as u64;
                self.cap.max(keep)
            }
        };
        let flooded = state.seen > (base as u64).saturating_mul(2 * FLOOD_FACTOR);
        drop(state);
        if let (Some(live), false) = (&self.live, live_part.is_empty()) {
            live(stream, live_part);
        }
        !flooded
    }

    pub fn captured(&self) -> Captured {
        self.captured_within(usize::MAX)
    }

    /// As [`captured`](Self::captured), with at most `keep` bytes of each
    /// stream: the start and the end of what was kept, for a result that
    /// must fit in a message.
    pub fn captured_within(&self, keep: usize) -> Captured {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let [(stdout, stdout_dropped), (stderr, stderr_dropped)] =
            [&state.streams[0], &state.streams[1]].map(|kept| self.render(kept, keep));
        Captured {
            stdout,
            stderr,
            truncated: stdout_dropped > 0 || stderr_dropped > 0,
            stdout_dropped,
            stderr_dropped,
        }
    }

    fn render(&self, kept: &Kept, keep: usize) -> (String, u64) {
        let tail: Vec<u8> = kept.tail.iter().copied().collect();
        if let Keep::Head | Keep::Nothing = self.keep {
            let head = &kept.head[..kept.head.len().min(keep)];
            let dropped = kept.dropped + (kept.head.len() - head.len()) as u64;
            return (String::from_utf8_lossy(head).into_owned(), dropped);
        }
        let (mut head, mut tail) = (kept.head.as_slice(), tail.as_slice());
        if head.len() + tail.len() > keep {
            let t = tail.len().min(keep - head.len().min(keep / 2));
            let h = head.len().min(keep - t);
            head = &head[..h];
            tail = &tail[tail.len() - t..];
        }
        let mut dropped =
            kept.dropped + (kept.head.len() - head.len() + kept.tail.len() - tail.len()) as u64;
        if dropped > 0 {
            // A cut through a character would show as U+FFFD on each side.
            let whole = head.len() - incomplete_end(head);
            let start = continuation_start(tail);
            dropped += (head.len() - whole + start) as u64;
            head = &head[..whole];
            tail = &tail[start..];
        }
        let text = codemode_text::join_ends(
            &String::from_utf8_lossy(head),
            dropped,
            &String::from_utf8_lossy(tail),
        );
        (text, dropped)
    }
}

/// How many bytes at the end of `bytes` begin a UTF-8 character they do not
/// finish.
fn incomplete_end(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 != 0x80 {
            let width = match byte {
                b if b >= 0xF0 => 4,
                b if b >= 0xE0 => 3,
                b if b >= 0xC0 => 2,
                _ => 1,
            };
            return if width > back { back } else { 0 };
        }
    }
    0
}

/// How many continuation bytes (the rest of a character cut off) `bytes`
/// starts with.
fn continuation_start(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take(3)
        .take_while(|&&b| b & 0xC0 == 0x80)
        .count()
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
    fn a_relay_passes_everything_on_and_never_floods() {
        let seen = std::sync::Arc::new(Mutex::new(0usize));
        let counter = std::sync::Arc::clone(&seen);
        let sink = OutputSink::relay(Box::new(move |_, bytes: &[u8]| {
            *counter.lock().unwrap() += bytes.len();
        }));
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..64 {
            assert!(sink.push(Stream::Stdout, &chunk));
        }
        assert_eq!(*seen.lock().unwrap(), 64 << 20);
        assert_eq!(sink.captured(), Captured::default());
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

    #[test]
    fn the_ends_of_a_long_stream_are_kept_and_the_middle_counted() {
        let sink = OutputSink::ends(10, 1000, None);
        sink.push(Stream::Stdout, b"abc");
        sink.push(Stream::Stdout, b"defghijklmnop");
        sink.push(Stream::Stdout, b"qrstuvwxyz");
        let captured = sink.captured();
        assert_eq!(
            captured.stdout,
            "abcde\n… [16 bytes cut from the middle] …\nvwxyz"
        );
        assert_eq!(captured.stdout_dropped, 16);
        assert_eq!(captured.stderr_dropped, 0);
        assert!(captured.truncated);
    }

    #[test]
    fn a_stream_within_its_ends_is_kept_whole() {
        let sink = OutputSink::ends(10, 1000, None);
        sink.push(Stream::Stderr, b"abcdefgh");
        sink.push(Stream::Stderr, b"ij");
        let captured = sink.captured();
        assert_eq!(captured.stderr, "abcdefghij");
        assert!(!captured.truncated);
    }

    #[test]
    fn kept_ends_can_be_cut_further_and_still_count_everything_dropped() {
        let sink = OutputSink::ends(10, 1000, None);
        sink.push(Stream::Stdout, b"abcdefghijklmnopqrstuvwxyz");
        let captured = sink.captured_within(4);
        assert_eq!(
            captured.stdout,
            "ab\n… [22 bytes cut from the middle] …\nyz"
        );
        assert_eq!(captured.stdout_dropped, 22);
    }

    #[test]
    fn a_cut_through_a_character_drops_the_whole_character() {
        let sink = OutputSink::ends(5, 1000, None);
        sink.push(Stream::Stdout, "ééééé".as_bytes());
        let captured = sink.captured();
        assert!(!captured.stdout.contains('\u{FFFD}'), "{}", captured.stdout);
        assert!(captured.stdout.starts_with("é\n"), "{}", captured.stdout);
        assert!(captured.stdout.ends_with("\né"), "{}", captured.stdout);
        assert_eq!(captured.stdout_dropped, 6);
    }

    #[test]
    fn keeping_ends_passes_on_live_only_the_first_cap_bytes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = Arc::clone(&seen);
        let sink = OutputSink::ends(
            2,
            5,
            Some(Box::new(move |_, bytes| {
                sink_seen.lock().unwrap().extend_from_slice(bytes)
            })),
        );
        sink.push(Stream::Stdout, b"abc");
        sink.push(Stream::Stdout, b"defgh");
        assert_eq!(&*seen.lock().unwrap(), b"abcde");
    }

    #[test]
    fn keeping_ends_floods_only_past_the_live_cap() {
        let sink = OutputSink::ends(2, 100, None);
        for _ in 0..100 {
            assert!(sink.push(Stream::Stdout, &[b'x'; 10]));
        }
    }
}
