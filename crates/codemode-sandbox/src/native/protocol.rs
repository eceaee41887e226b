//! What the parent (codemode, in `run`) and the setup process
//! (`codemode __sandbox-init`) say to each other.
//!
//! Down: one JSON [`InitSpec`] in a memfd, so nothing of it (the bridge token
//! is in the environment it carries) shows in `/proc/<pid>/cmdline`.
//! Up: one line per [`Report`] on a dedicated pipe, never on stdout/stderr,
//! which belong to the script. Each line goes out in one `write` of less than
//! `PIPE_BUF` bytes, so lines from the setup process, the sandbox's init and
//! the script process (before its `execve`) never interleave.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::mounts::MountStep;
use super::rlimits::Rlimit;

/// Everything the setup process needs; computed by the parent so that the
/// setup process only carries it out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitSpec {
    /// `cgroup.procs` files the setup process writes its pid into, as root,
    /// before anything else (the parent created and configured the groups).
    pub cgroup_procs: Vec<PathBuf>,
    /// The host uid/gid to become before creating the user namespace, when
    /// codemode runs as root: a sandbox whose host uid is 0 would still pass
    /// host permission checks as root, whatever the uid map says.
    pub drop_to: Option<(u32, u32)>,
    /// The uid and gid the script has inside the sandbox.
    pub sandbox_uid: u32,
    pub sandbox_gid: u32,
    pub hostname: String,
    /// The new root, in order.
    pub mounts: Vec<MountStep>,
    pub landlock: super::landlock::LandlockPlan,
    pub rlimits: Vec<Rlimit>,
    /// The script's working directory, inside the sandbox.
    pub cwd: PathBuf,
    /// `argv[0]` is the interpreter's path inside the sandbox.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// One line from the setup side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The host pid of the sandbox's init (pid 1 of its pid namespace).
    InitPid(i32),
    /// A layer could not be set up; nothing of the script ran.
    SetupFailed(String),
    /// The script exited with this status.
    Exited(i32),
    /// The script was ended by this signal.
    Signaled(i32),
    /// Something worth a debug log line (a convenience that was skipped).
    Note(String),
}

/// Longest line the protocol sends; below `PIPE_BUF` (4096) so every line is
/// one atomic write.
const MAX_LINE: usize = 1024;

impl Report {
    pub fn encode(&self) -> String {
        let mut line = match self {
            Report::InitPid(pid) => format!("pid {pid}"),
            Report::SetupFailed(why) => format!("error {}", one_line(why)),
            Report::Exited(code) => format!("exit {code}"),
            Report::Signaled(sig) => format!("signal {sig}"),
            Report::Note(text) => format!("note {}", one_line(text)),
        };
        if line.len() > MAX_LINE - 1 {
            let mut end = MAX_LINE - 4;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str("...");
        }
        line.push('\n');
        line
    }

    /// Parses one line (without its newline); `None` for anything unknown.
    pub fn parse(line: &str) -> Option<Report> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "pid" => rest.parse().ok().map(Report::InitPid),
            "error" => Some(Report::SetupFailed(rest.to_string())),
            "exit" => rest.parse().ok().map(Report::Exited),
            "signal" => rest.parse().ok().map(Report::Signaled),
            "note" => Some(Report::Note(rest.to_string())),
            _ => None,
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_survives_a_round_trip() {
        for report in [
            Report::InitPid(4242),
            Report::SetupFailed("landlock: not supported by this kernel".into()),
            Report::Exited(3),
            Report::Signaled(9),
            Report::Note("mounts: no /proc".into()),
        ] {
            let line = report.encode();
            assert!(line.ends_with('\n'));
            assert_eq!(Report::parse(line.trim_end_matches('\n')), Some(report));
        }
    }

    #[test]
    fn a_message_is_kept_on_one_line_and_short() {
        let line = Report::SetupFailed(format!("mounts: a\nb{}", "é".repeat(3000))).encode();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.len() < MAX_LINE);
        assert!(line.starts_with("error mounts: a b"));
    }

    #[test]
    fn unknown_or_garbled_lines_are_ignored() {
        assert_eq!(Report::parse("pid x"), None);
        assert_eq!(Report::parse("hello"), None);
        assert_eq!(Report::parse(""), None);
    }
}
