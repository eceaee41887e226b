//! The record of one `ask`: every step's reply, code, checks, run and
//! timings. `--json` prints it; `--save-trace` writes it. It holds what the
//! model and the sandbox said, never a key or a header.

use serde::Serialize;

use codemode_mcp::bridge::CallRecord;
use codemode_run::{OutFile, SkippedFile, Staging};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    DryRun,
    StepBudgetExhausted,
    ProviderFailed,
    Declined,
    Interrupted,
}

#[derive(Debug, Serialize)]
pub struct Trace {
    pub task: String,
    pub model: String,
    pub outcome: Outcome,
    pub answer: Option<String>,
    pub max_steps: u32,
    pub steps: Vec<Step>,
    pub usage: Usage,
    pub duration_ms: u64,
    /// Every file the scripts left in /workspace/out/, in the order they
    /// came (a later one of the same name is newer), with the host's copy.
    #[serde(skip)]
    pub produced: Vec<(OutFile, Arc<Staging>)>,
}

#[derive(Debug, Default, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Step {
    pub step: u32,
    /// The model's reply as it came.
    pub reply: String,
    pub reasoning: Option<String>,
    pub code: Option<String>,
    pub answer: Option<String>,
    /// Why the reply or the code was refused before any run.
    pub rejected: Option<String>,
    pub run: Option<Run>,
    /// What went back to the model for the next step.
    pub feedback: Option<String>,
    pub model: ModelCall,
}

#[derive(Debug, Default, Serialize)]
pub struct ModelCall {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub truncated: bool,
    pub error: Option<String>,
    pub tool_calls: Vec<CallRecord>,
    pub duration_ms: u64,
    /// What the script left in /workspace/out/ (new or changed, in a
    /// session), and what of it did not come back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<OutFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_skipped: Vec<SkippedFile>,
}

impl Trace {
    pub fn add_usage(&mut self, call: &ModelCall) {
        self.usage.input_tokens += call.input_tokens.unwrap_or(0);
        self.usage.output_tokens += call.output_tokens.unwrap_or(0);
    }

    /// The newest version of each file the scripts produced.
    pub fn newest_files(&self) -> Vec<&(OutFile, Arc<Staging>)> {
        let mut newest: Vec<&(OutFile, Arc<Staging>)> = Vec::new();
        for produced in self.produced.iter().rev() {
            if !newest.iter().any(|(f, _)| f.name == produced.0.name) {
                newest.push(produced);
            }
        }
        newest.reverse();
        newest
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
