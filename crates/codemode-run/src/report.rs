use serde::Serialize;

use codemode_mcp::bridge::CallRecord;
use codemode_sandbox::SandboxError;
use std::sync::Arc;

use crate::{Collection, OutDir, OutFile, SkippedFile, Staging};

/// What happened, as `exec --json` prints it (docs/ARCHITECTURE.md, "exec --json").
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub truncated: bool,
    /// Bytes of each stream that were dropped; absent when none were.
    #[serde(skip_serializing_if = "is_zero")]
    pub stdout_dropped_bytes: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub stderr_dropped_bytes: u64,
    pub duration_ms: u64,
    pub sandbox: String,
    pub tool_calls: Vec<CallRecord>,
    /// Calls made beyond the ones `tool_calls` keeps; absent when none were,
    /// so that the usual report keeps its usual keys.
    #[serde(skip_serializing_if = "is_zero")]
    pub tool_calls_dropped: u64,
    pub error: Option<String>,
    /// What the script left in `/workspace/out` that came back (in a
    /// session: what is new or changed since the last cell); absent when
    /// nothing did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<OutFile>,
    /// What was in `out/` but did not come back, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_skipped: Vec<SkippedFile>,
    /// Entries of `out/` neither returned nor listed (past the caps).
    #[serde(skip_serializing_if = "is_zero")]
    pub files_dropped: u64,
    /// Why `out/` was not collected, or why the collection broke off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_error: Option<String>,
    /// The host's copies of `files`.
    #[serde(skip)]
    pub staging: Option<Arc<Staging>>,
}

impl Report {
    /// Takes in what a collection brought back.
    pub(crate) fn with_files(mut self, collection: Collection) -> Report {
        self.files = collection.files;
        self.files_skipped = collection.skipped;
        self.files_dropped = collection.dropped;
        self.files_error = collection.error;
        self.staging = collection.staging.filter(|_| !self.files.is_empty());
        self
    }

    /// Saves every file into `dir`; what could not be saved comes back as
    /// notes.
    pub fn save_files(&self, dir: &OutDir) -> Vec<String> {
        let Some(staging) = &self.staging else {
            return Vec::new();
        };
        dir.save_all(self.files.iter().map(|file| (file, staging.as_ref())))
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How a script ended, for the exit status of the command that ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Its own status (0 is success); a script killed by signal N is 128+N,
    /// as shells report it.
    Status(i32),
    /// Past its time limit, as `timeout(1)` reports it.
    TimedOut,
    /// It did not end on its own (killed for its output, cancelled) and had
    /// no status.
    Failed,
}

impl Report {
    pub fn exit(&self) -> Exit {
        if self.timed_out {
            return Exit::TimedOut;
        }
        match self.exit_code {
            Some(code) => Exit::Status(code),
            None => Exit::Failed,
        }
    }
}

/// A run that was made: it ended (however the script did), or the sandbox
/// was lost under it, in which case what was seen until then is all there
/// will ever be of it, and how the script ended is unknown.
#[derive(Debug)]
pub enum Outcome {
    Done(Report),
    Lost { report: Report, cause: SandboxError },
}

impl Outcome {
    pub fn into_report(self) -> Report {
        match self {
            Outcome::Done(report) | Outcome::Lost { report, .. } => report,
        }
    }
}
