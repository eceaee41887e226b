//! A script's output made safe to show on a terminal.
//!
//! A terminal obeys the escape sequences it is sent: a script could set the
//! clipboard (OSC 52), retitle the window, clear the screen or rewrite lines
//! that came before. Where codemode's stdout or stderr is a terminal, every
//! control character the script writes is shown as text instead, `\xNN` with
//! its code in hex (ESC is `\x1b`), as is every byte that is not UTF-8. Newline
//! and tab pass, and so does `\r` right before `\n`; a `\r` alone, which would
//! move back to overwrite the line, is shown. Where the stream is not a
//! terminal (a pipe, a file), the bytes pass exactly as they are.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use codemode_sandbox::Stream;

/// Neutralises control characters in one stream's bytes, chunk by chunk: a
/// character split between two chunks is held until its end arrives.
#[derive(Debug, Default)]
pub struct Sanitizer {
    /// The start of a UTF-8 character cut off at the end of the last chunk, or
    /// a `\r` whose meaning depends on the byte after it.
    carry: Vec<u8>,
}

impl Sanitizer {
    pub fn new() -> Sanitizer {
        Sanitizer::default()
    }

    /// The bytes to show for `bytes`; some may be held back for the next call.
    pub fn feed<'a>(&mut self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        if self.carry.is_empty() {
            if let Ok(text) = std::str::from_utf8(bytes) {
                // Most output is plain text, shown as it came.
                let lone_cr =
                    (0..bytes.len()).any(|i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
                if !lone_cr && !text.chars().any(shown_as_code) {
                    return Cow::Borrowed(bytes);
                }
            }
        }
        let mut input = std::mem::take(&mut self.carry);
        input.extend_from_slice(bytes);
        let mut out = Vec::with_capacity(input.len() + 16);
        let mut rest = input.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.show(text, true, &mut out);
                    break;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    self.show(
                        std::str::from_utf8(valid).unwrap_or_default(),
                        false,
                        &mut out,
                    );
                    match err.error_len() {
                        Some(len) => {
                            after[..len].iter().for_each(|&b| code(b as u32, &mut out));
                            rest = &after[len..];
                        }
                        None => {
                            self.carry = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        Cow::Owned(out)
    }

    /// What is still held back, shown as codes: the stream has ended, so it
    /// will never be completed.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for byte in std::mem::take(&mut self.carry) {
            code(byte as u32, &mut out);
        }
        out
    }

    /// `text` as shown; `at_end`: nothing follows it in this chunk, so a `\r`
    /// it ends with waits for the next one.
    fn show(&mut self, text: &str, at_end: bool, out: &mut Vec<u8>) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\r' {
                match chars.peek() {
                    Some('\n') => out.push(b'\r'),
                    None if at_end => self.carry.push(b'\r'),
                    _ => code('\r' as u32, out),
                }
            } else if shown_as_code(c) {
                code(c as u32, out);
            } else {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// C0 controls but newline and tab (`\r` is decided by what follows it), DEL,
/// and the C1 controls, which some terminals obey as ESC sequences.
fn shown_as_code(c: char) -> bool {
    (c.is_ascii_control() && c != '\n' && c != '\t' && c != '\r')
        || ('\u{80}'..='\u{9f}').contains(&c)
}

fn code(value: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("\\x{value:02x}").as_bytes());
}

/// codemode's stdout and stderr as a script's output reaches them: each one
/// that is a terminal gets its own [`Sanitizer`], the others the bytes as
/// they are.
/// A script's output passed on as it arrives, its control characters shown
/// as text where it goes to a terminal (`exec`, `repl`).
pub fn live() -> codemode_sandbox::Live {
    let screen = Screen::new();
    Box::new(move |stream: Stream, bytes: &[u8]| {
        // Best effort: a closed terminal must not stop the run.
        let _ = screen.write(stream, bytes);
    })
}

pub struct Screen {
    stdout: Mutex<Option<Sanitizer>>,
    stderr: Mutex<Option<Sanitizer>>,
}

impl Screen {
    pub fn new() -> Screen {
        let sanitizer = |terminal: bool| Mutex::new(terminal.then(Sanitizer::new));
        Screen {
            stdout: sanitizer(std::io::stdout().is_terminal()),
            stderr: sanitizer(std::io::stderr().is_terminal()),
        }
    }

    pub fn write(&self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        let mut sanitizer = self.sanitizer(stream);
        let shown = match sanitizer.as_mut() {
            Some(sanitizer) => sanitizer.feed(bytes),
            None => Cow::Borrowed(bytes),
        };
        {
            let mut held = held();
            if let Some(held) = held.as_mut().filter(|h| h.bytes < HELD_MAX) {
                held.bytes += shown.len();
                held.chunks.push((stream, shown.into_owned()));
                return Ok(());
            }
        }
        write_to(stream, &shown)
    }

    fn sanitizer(&self, stream: Stream) -> std::sync::MutexGuard<'_, Option<Sanitizer>> {
        let slot = match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Screen {
    fn default() -> Self {
        Screen::new()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = self.sanitizer(stream).as_mut().map(Sanitizer::finish);
            if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                let _ = write_to(stream, &rest);
            }
        }
    }
}

/// Output that arrived while a question was on the terminal, in order.
#[derive(Default)]
struct Held {
    chunks: Vec<(Stream, Vec<u8>)>,
    bytes: usize,
}

/// Past this much, output held for a question is written anyway: the
/// question is then interrupted rather than memory spent without bound.
const HELD_MAX: usize = 8 * 1024 * 1024;

static HELD: Mutex<Option<Held>> = Mutex::new(None);

fn held() -> std::sync::MutexGuard<'static, Option<Held>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds back the live output of runs while a question is on the terminal,
/// and writes what arrived once the returned guard is dropped.
pub fn hold() -> Hold {
    held().get_or_insert_with(Held::default);
    Hold { _private: () }
}

pub struct Hold {
    _private: (),
}

impl Drop for Hold {
    fn drop(&mut self) {
        let taken = held().take();
        for (stream, bytes) in taken.map(|h| h.chunks).unwrap_or_default() {
            let _ = write_to(stream, &bytes);
        }
    }
}

fn write_to(stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
    match stream {
        Stream::Stdout => std::io::stdout().lock().write_all(bytes),
        Stream::Stderr => std::io::stderr().lock().write_all(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `chunks`, fed one after another and then finished, show.
    fn shown(chunks: &[&[u8]]) -> String {
        let mut sanitizer = Sanitizer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&sanitizer.feed(chunk));
        }
        out.extend_from_slice(&sanitizer.finish());
        String::from_utf8(out).expect("always UTF-8")
    }

    #[test]
    fn an_osc_52_clipboard_write_is_shown_as_text() {
        assert_eq!(
            shown(&[b"\x1b]52;c;ZXZpbA==\x07done\n"]),
            "\\x1b]52;c;ZXZpbA==\\x07done\n"
        );
    }

    #[test]
    fn a_csi_screen_clear_is_shown_as_text() {
        assert_eq!(shown(&[b"\x1b[2J\x1b[H"]), "\\x1b[2J\\x1b[H");
    }

    #[test]
    fn a_title_change_is_shown_as_text() {
        assert_eq!(shown(&[b"\x1b]0;pwned\x1b\\"]), "\\x1b]0;pwned\\x1b\\");
    }

    #[test]
    fn c1_controls_in_utf8_are_shown_as_text() {
        // U+009B is CSI on its own, U+009D is OSC.
        assert_eq!(shown(&["\u{9b}2J\u{9d}0;t".as_bytes()]), "\\x9b2J\\x9d0;t");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_text() {
        assert_eq!(shown(&[b"a\x9b2Jb\xff"]), "a\\x9b2Jb\\xff");
    }

    #[test]
    fn del_and_backspace_are_shown_as_text() {
        assert_eq!(shown(&[b"ab\x08\x7f"]), "ab\\x08\\x7f");
    }

    #[test]
    fn a_character_split_between_chunks_arrives_whole() {
        let text = "naïve — 日本 🦀\n";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(shown(&[a, b]), text, "cut at {cut}");
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(shown(&one_by_one), text);
    }

    #[test]
    fn a_c1_control_split_between_chunks_is_still_shown_as_text() {
        assert_eq!(shown(&[b"x\xc2", b"\x9by"]), "x\\x9by");
    }

    #[test]
    fn a_character_cut_off_at_the_end_is_shown_as_codes() {
        assert_eq!(shown(&[b"ok\xe6\x97"]), "ok\\xe6\\x97");
    }

    #[test]
    fn newlines_and_tabs_pass() {
        let mut sanitizer = Sanitizer::new();
        let text = b"a\tb\nc\r\nd\n";
        assert!(matches!(sanitizer.feed(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn a_lone_carriage_return_is_shown_as_text() {
        assert_eq!(shown(&[b"secret\rpublic\n"]), "secret\\x0dpublic\n");
        assert_eq!(shown(&[b"50%\r"]), "50%\\x0d");
    }

    #[test]
    fn a_crlf_split_between_chunks_stays_a_line_end() {
        assert_eq!(shown(&[b"a\r", b"\nb\n"]), "a\r\nb\n");
        assert_eq!(shown(&[b"a\r", b"b\n"]), "a\\x0db\n");
    }
}
