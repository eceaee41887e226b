//! The loop of one task: ask the model, check its script, run it as `exec`
//! would, feed back what happened, until it answers or the steps run out.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use codemode_run::{
    CellOutcome, Options, Outcome as RunOutcome, Report, RunError, Runner, Session,
};
use codemode_sandbox::{OutputSink, SandboxError};

use crate::check;
use crate::prompt::{observation, token_note, tool_calls, SESSION_SIGNATURE, SIGNATURE};
use crate::provider::{Client, LlmError, Message};
use crate::signature::Signature;
use crate::signature::{self, code_of};
use crate::trace::{ModelCall, Outcome, Run, Step, Trace};

/// How the loop shows its progress to a person; the command decides where
/// (stderr, spinners, nothing with `--quiet`).
pub trait Ui: Sync {
    /// Step `number` of `max_steps` begins.
    fn step(&self, number: u32, max_steps: u32);
    /// Something that takes a while (`who` is doing `what`) has begun.
    fn begin(&self, who: &str, what: &str) -> Box<dyn Pending>;
    /// A labelled text: the model's reasoning, its code, a script's output.
    fn block(&self, label: &str, text: &str);
    /// A line of its own.
    fn note(&self, text: &str);
    /// Whether to run the script just shown; an error says why it cannot ask.
    fn confirm(&self) -> Result<bool, String>;
}

/// Work that [`Ui::begin`] showed as going on.
pub trait Pending: Send {
    fn succeeded(self: Box<Self>, note: &str);
    fn failed(self: Box<Self>, note: &str);
}

/// Why a task ended without an answer. The trace records it too.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Llm(#[from] LlmError),
    #[error("no answer after {steps} steps (the step budget)")]
    StepBudget { steps: u32 },
    #[error("you declined to run the script")]
    Declined,
    /// Cancelled (the command was sent a stop signal).
    #[error("stopped")]
    Stopped,
    #[error("{0}")]
    Run(#[from] RunError),
    /// The sandbox was lost under a script.
    #[error("{0}")]
    Lost(SandboxError),
    #[error("cannot ask: {0}")]
    Ui(String),
}

/// Where a task's scripts run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scripts {
    /// Each in a sandbox of its own, from scratch.
    Fresh,
    /// All in one session, which lives at most this long.
    Session { lifetime: Duration },
}

/// What one task runs with.
pub struct Agent<'a> {
    pub client: &'a Client,
    pub runner: &'a Runner,
    pub options: &'a Options,
    /// The stub module every script imports.
    pub module: &'a str,
    /// The host's Python, for checking that a script parses.
    pub python: &'a str,
    /// Whether any tool is configured (a script that uses none is nudged once).
    pub has_tools: bool,
    /// Ask before each script runs.
    pub ask_first: bool,
    /// Stop at the first script that passes the checks, without running it.
    pub dry_run: bool,
    pub scripts: Scripts,
    pub cancel: CancellationToken,
    pub ui: &'a dyn Ui,
}

impl Agent<'_> {
    /// Works on `task` for at most `max_steps` model turns. The trace holds
    /// every step however it ended (with `--dry-run`, the last step's code is
    /// the script that would run).
    pub async fn run(
        &self,
        task: &str,
        tools: &str,
        max_steps: u32,
    ) -> (Trace, Result<(), AgentError>) {
        let started = Instant::now();
        let mut trace = Trace {
            task: task.to_string(),
            model: self.client.name().to_string(),
            outcome: Outcome::StepBudgetExhausted,
            answer: None,
            max_steps,
            steps: Vec::new(),
            usage: Default::default(),
            duration_ms: 0,
            produced: Vec::new(),
        };
        let session = Mutex::new(None);
        let result = self
            .steps(&mut trace, task, tools, max_steps, &session)
            .await;
        if let Some(mut session) = session.into_inner() {
            let _ = session.close().await;
        }
        trace.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        (trace, result)
    }

    async fn steps(
        &self,
        trace: &mut Trace,
        task: &str,
        tools: &str,
        max_steps: u32,
        session: &Mutex<Option<Session>>,
    ) -> Result<(), AgentError> {
        let signature: Signature = match self.scripts {
            Scripts::Fresh => SIGNATURE,
            Scripts::Session { .. } => SESSION_SIGNATURE,
        };
        let system = signature.system_prompt();
        let mut messages = vec![Message::user(
            signature.render_inputs(&[("task", task), ("tools", tools)]),
        )];
        // The mcp_tools check nudges once: a task may really need no tool.
        let mut tools_called = false;
        let mut nudged = false;
        // In a session, names imported by an earlier script are still there.
        let mut imported = false;

        for number in 1..=max_steps {
            self.ui.step(number, max_steps);
            let thinking = self.ui.begin(self.client.name(), "thinking…");
            let asked = Instant::now();
            // The first script's session starts while the model thinks.
            let warm = match self.scripts {
                Scripts::Session { lifetime } if number == 1 && !self.dry_run => Some(lifetime),
                _ => None,
            };
            let asking = async {
                let Some(lifetime) = warm else {
                    return self.client.complete(&system, &messages).await;
                };
                let options = self.session_options(lifetime);
                let (reply, prepared) = tokio::join!(
                    self.client.complete(&system, &messages),
                    self.runner.prepare_session(self.module, &options)
                );
                // A session that failed to start is tried again, and its
                // error reported, when the first script needs it.
                if let Ok(prepared) = prepared {
                    *session.lock().await = Some(prepared);
                }
                reply
            };
            let reply = tokio::select! {
                reply = asking => reply,
                _ = self.cancel.cancelled() => {
                    thinking.failed("interrupted");
                    trace.outcome = Outcome::Interrupted;
                    return Err(AgentError::Stopped);
                }
            };
            let completion = match reply {
                Ok(completion) => completion,
                Err(err) => {
                    thinking.failed("failed");
                    trace.outcome = Outcome::ProviderFailed;
                    return Err(err.into());
                }
            };
            let model = ModelCall {
                input_tokens: completion.input_tokens,
                output_tokens: completion.output_tokens,
                duration_ms: u64::try_from(asked.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            thinking.succeeded(&token_note(&model));
            trace.add_usage(&model);
            messages.push(Message::assistant(completion.text.clone()));
            let mut step = Step {
                step: number,
                reply: completion.text.clone(),
                model,
                ..Step::default()
            };

            let feedback = match signature.parse(&completion.text) {
                Err(problem) => {
                    self.ui.block("reply not understood", &problem);
                    step.rejected = Some(problem.clone());
                    format!("Your reply could not be read: {problem}")
                }
                Ok(parsed) => {
                    step.reasoning = parsed.get("reasoning").map(str::to_string);
                    step.answer = parsed.get("answer").map(str::to_string);
                    step.code = parsed.get("code").map(code_of);
                    if let Some(reasoning) = &step.reasoning {
                        self.ui.block("reasoning", reasoning);
                    }
                    match (step.code.clone(), step.answer.clone()) {
                        (None, Some(answer)) => {
                            trace.answer = Some(answer);
                            trace.outcome = Outcome::Answered;
                            trace.steps.push(step);
                            return Ok(());
                        }
                        (None, None) => {
                            let problem = "the reply has neither `code` nor `answer`.";
                            self.ui.block("reply not understood", problem);
                            step.rejected = Some(problem.into());
                            format!(
                                "Your reply could not be read: {problem} {}",
                                signature.reply_format()
                            )
                        }
                        (Some(code), answer) => {
                            self.ui.block("code", &code);
                            let checks = check::Checks {
                                python: self.python,
                                needs_tools: self.has_tools
                                    && !tools_called
                                    && !nudged
                                    && !imported,
                            };
                            match check::check(&code, &checks).await {
                                Err(problem) => {
                                    nudged |= problem.contains("mcp_tools");
                                    self.ui.block("not run", &problem);
                                    step.rejected = Some(problem.clone());
                                    format!(
                                        "Your script was not run: {problem}\nFix it and send the whole script again."
                                    )
                                }
                                Ok(()) if self.dry_run => {
                                    trace.outcome = Outcome::DryRun;
                                    trace.steps.push(step);
                                    return Ok(());
                                }
                                Ok(()) => {
                                    if self.ask_first
                                        && !self.ui.confirm().map_err(AgentError::Ui)?
                                    {
                                        trace.outcome = Outcome::Declined;
                                        trace.steps.push(step);
                                        return Err(AgentError::Declined);
                                    }
                                    let report = self.execute(&code, session).await?;
                                    imported |= matches!(self.scripts, Scripts::Session { .. })
                                        && code.contains("mcp_tools");
                                    tools_called |= report.tool_calls.iter().any(|c| c.ok);
                                    let mut text = observation(&report, self.options);
                                    if let Some(staging) = &report.staging {
                                        trace.produced.extend(
                                            report
                                                .files
                                                .iter()
                                                .map(|f| (f.clone(), Arc::clone(staging))),
                                        );
                                    }
                                    if answer.is_some() {
                                        text.push_str("\n(Your answer was set aside: it came with code, so it could not have seen this output. Answer now if the output settles it.)");
                                    }
                                    step.run = Some(Run {
                                        exit_code: report.exit_code,
                                        stdout: report.stdout,
                                        stderr: report.stderr,
                                        timed_out: report.timed_out,
                                        truncated: report.truncated,
                                        error: report.error,
                                        tool_calls: report.tool_calls,
                                        duration_ms: report.duration_ms,
                                        files: report.files,
                                        files_skipped: report.files_skipped,
                                    });
                                    if self.cancel.is_cancelled() {
                                        trace.outcome = Outcome::Interrupted;
                                        trace.steps.push(step);
                                        return Err(AgentError::Stopped);
                                    }
                                    text
                                }
                            }
                        }
                    }
                }
            };
            let mut next = format!("{}\n{feedback}\n\n", signature::marker("observation"));
            if number + 1 == max_steps {
                next.push_str("This is your last step: give the `answer` now, from what the observations show.\n\n");
            }
            next.push_str(&signature.reply_format());
            step.feedback = Some(feedback);
            trace.steps.push(step);
            messages.push(Message::user(next));
        }
        Err(AgentError::StepBudget { steps: max_steps })
    }

    /// Runs one script exactly as `exec` does; its output is shown once it
    /// ends (stdout is the answer's, so the script's never goes there).
    async fn execute(
        &self,
        code: &str,
        session: &Mutex<Option<Session>>,
    ) -> Result<Report, AgentError> {
        let running = self.ui.begin("sandbox", "running…");
        let report = match self.scripts {
            Scripts::Fresh => self.execute_fresh(code).await,
            Scripts::Session { lifetime } => self.execute_in_session(code, session, lifetime).await,
        };
        let report = match report {
            Ok(report) => report,
            Err(err) => {
                running.failed("could not run");
                return Err(err);
            }
        };
        let status = match (&report.error, report.exit_code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("exit {code}"),
            (None, None) => "no exit status".into(),
        };
        if report.success {
            running.succeeded(&status);
        } else {
            running.failed(&status);
        }
        if !report.tool_calls.is_empty() {
            self.ui
                .note(&format!("tool calls: {}", tool_calls(&report)));
        }
        if !report.stdout.is_empty() {
            self.ui.block("stdout", &report.stdout);
        }
        if !report.stderr.is_empty() {
            self.ui.block("stderr", &report.stderr);
        }
        Ok(report)
    }

    /// The next cell of the task's session, started now if there is none
    /// (the first script, or one after the last session was lost).
    async fn execute_in_session(
        &self,
        code: &str,
        session: &Mutex<Option<Session>>,
        lifetime: Duration,
    ) -> Result<Report, AgentError> {
        let mut slot = session.lock().await;
        if slot.is_none() {
            *slot = Some(self.open_session(lifetime).await?);
        }
        let Some(live) = slot.as_mut() else {
            return Err(AgentError::Stopped);
        };
        if !live.is_armed() && live.arm().await.is_err() {
            // The session made while the model thought did not survive to
            // its first script: a new one, as for any first script.
            *live = self.open_session(lifetime).await?;
        }
        let sink = Arc::new(OutputSink::new(self.options.limits.output_bytes, None));
        let cell = tokio::select! {
            cell = live.execute(code, self.options.limits.timeout, sink) => cell,
            () = self.cancel.cancelled() => return Err(AgentError::Stopped),
        };
        Ok(match cell {
            CellOutcome::Done(report) => report,
            CellOutcome::SessionLost(mut report) => {
                // Said, never hidden: the next script starts a new session.
                if let Some(mut lost) = slot.take() {
                    let _ = lost.close().await;
                }
                if let Some(error) = &mut report.error {
                    error.push_str("; the next script starts a new session, with nothing defined");
                }
                report
            }
        })
    }

    /// A session's limits: the task's, living at most `lifetime`.
    fn session_options(&self, lifetime: Duration) -> Options {
        let mut options = self.options.clone();
        options.limits.timeout = lifetime;
        options
    }

    async fn open_session(&self, lifetime: Duration) -> Result<Session, AgentError> {
        let options = self.session_options(lifetime);
        tokio::select! {
            opened = self.runner.open_session(self.module, &options) => Ok(opened?),
            () = self.cancel.cancelled() => Err(AgentError::Stopped),
        }
    }

    /// One run, exactly as `exec` makes it.
    async fn execute_fresh(&self, code: &str) -> Result<Report, AgentError> {
        let sink = OutputSink::new(self.options.limits.output_bytes, None);
        let outcome = self
            .runner
            .run(
                self.module,
                "main.py",
                code,
                self.options,
                &sink,
                self.cancel.clone(),
            )
            .await;
        match outcome {
            Ok(RunOutcome::Done(report)) => Ok(report),
            Ok(RunOutcome::Lost { cause, .. }) => Err(AgentError::Lost(cause)),
            Err(err) => Err(err.into()),
        }
    }
}
