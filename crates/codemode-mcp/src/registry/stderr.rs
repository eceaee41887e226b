//! A stdio server's stderr: every line goes to the log (never to our stdout), and
//! the last few are kept so an error can say what the server said before it died.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

const KEPT_LINES: usize = 20;
const MAX_LINE_CHARS: usize = 500;

#[derive(Debug)]
pub struct StderrTail {
    lines: Mutex<VecDeque<String>>,
    closed: watch::Sender<bool>,
}

impl StderrTail {
    pub fn new() -> Arc<StderrTail> {
        Arc::new(StderrTail {
            lines: Mutex::new(VecDeque::new()),
            closed: watch::channel(false).0,
        })
    }

    /// Reads `stream` to its end in a task of its own, logging each line under
    /// the server's name.
    pub fn follow(self: &Arc<Self>, server: &str, stream: impl AsyncRead + Send + Unpin + 'static) {
        let tail = Arc::clone(self);
        let server = server.to_string();
        tail.closed.send_replace(false);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "codemode::server", server = %server, "{line}");
                tail.push(line);
            }
            tail.closed.send_replace(true);
        });
    }

    /// Adds a line of codemode's own, so an error quoting the tail says it.
    pub fn push(&self, mut line: String) {
        if line.chars().count() > MAX_LINE_CHARS {
            line = line.chars().take(MAX_LINE_CHARS).collect::<String>() + "…";
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// Waits (briefly) for the stream to end, so the lines a dying server wrote
    /// last are in the tail before an error quotes it.
    pub async fn settle(&self, limit: Duration) {
        let mut closed = self.closed.subscribe();
        let _ = tokio::time::timeout(limit, closed.wait_for(|c| *c)).await;
    }

    /// The last `n` non-empty lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let kept: Vec<String> = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .cloned()
            .collect();
        kept[kept.len().saturating_sub(n)..].to_vec()
    }

    /// `"; stderr: a | b"` for a one-line error message, or nothing.
    pub fn summary(&self) -> String {
        let last = self.last(3);
        if last.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with: {}", last.join(" | "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_tail_keeps_the_last_lines_in_order() {
        let tail = StderrTail::new();
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        tail.follow("s", std::io::Cursor::new(text.into_bytes()));
        tail.settle(Duration::from_secs(5)).await;
        assert_eq!(tail.last(2), ["line 28", "line 29"]);
        assert_eq!(
            tail.summary(),
            "; its stderr ended with: line 27 | line 28 | line 29"
        );
    }

    #[tokio::test]
    async fn an_empty_stream_gives_no_summary() {
        let tail = StderrTail::new();
        tail.follow("s", std::io::Cursor::new(Vec::new()));
        tail.settle(Duration::from_secs(5)).await;
        assert_eq!(tail.summary(), "");
    }
}
