//! `codemode ask`: an LLM → code → sandbox loop (docs/ARCHITECTURE.md, "The `ask` loop").
//!
//! Each step the model answers the signature below with its reasoning and
//! either a script or the final answer. A script is checked (it parses, it
//! uses the tools, it prints), run exactly as `exec` runs one, and what
//! happened (output, traceback, time-out, tool errors) goes back as the next
//! observation, as `dspy.Refine` feeds back failures, until the model answers
//! or the step budget ends.

mod check;
mod provider;
mod signature;
mod trace;

use std::io::{IsTerminal, Write};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::cli::AskArgs;
use crate::context::Context;
use crate::error::Error;
use crate::progress::Progress;
use codemode_mcp::catalog::Catalog;
use codemode_mcp::index;
use codemode_mcp::tokens;
use codemode_run::{signals, Options, Outcome as RunOutcome, Report, Runner, Signal};
use codemode_sandbox::OutputSink;

pub use provider::LlmError;
use provider::{Client, Message};
use signature::{code_of, Field, Signature};
use trace::{ModelCall, Outcome, Run, Step, Trace};

/// Bytes of each output stream the model sees; longer output is cut in the
/// middle, with a note saying how much (the start and the end of a traceback
/// are what matter).
const FEEDBACK_BYTES: usize = 6000;

pub const SIGNATURE: Signature = Signature {
    instructions: "Solve the task by writing Python 3 scripts that run in a sandbox, one script per step.\n\
MCP tools are Python functions in the module `mcp_tools` (see `tools`): import them, call them with keyword\n\
arguments, and print what you need. Only what a script prints comes back to you, as the next `observation`.\n\
A failed tool call raises mcp_tools.ToolError. The sandbox has no network but the tools, and nothing\n\
persists between scripts: each script starts from scratch.\n\
Each step, give `reasoning`, then EITHER `code` (the complete next script) OR `answer` (the final answer,\n\
once the observations hold what the task asks for), never both; leave the other field empty.\n\
The answer goes to the user as it is: write it for them, from what your scripts printed, and invent nothing.",
    inputs: &[
        Field {
            name: "task",
            description: "The user's task, in their words.",
        },
        Field {
            name: "tools",
            description: "The Python API of the MCP tools the scripts can call, and the sandbox's limits.",
        },
        Field {
            name: "observation",
            description: "What your last script did (its output, errors and tool calls), or why it was not run. Absent on the first step.",
        },
    ],
    outputs: &[
        Field {
            name: "reasoning",
            description: "Briefly: what you know so far and what to do next.",
        },
        Field {
            name: "code",
            description: "A complete Python 3 script to run next, in a ```python block; empty when you give the answer.",
        },
        Field {
            name: "answer",
            description: "The final answer for the user; empty while you still need to run code.",
        },
    ],
};

pub async fn run(ctx: &Context, args: &AskArgs) -> Result<(), Error> {
    let config = ctx.config()?;
    let task = read_task(&args.task)?;
    let spec = args
        .model
        .clone()
        .unwrap_or_else(|| config.llm.model.clone());
    let temperature = args.temperature.unwrap_or(config.llm.temperature);
    let max_steps = args.max_steps.unwrap_or(config.llm.max_steps).max(1);
    // Checked before a server or sandbox starts: a missing key or an unknown
    // provider needs no work to find, and no request is sent.
    let client = Client::new(&spec, &config.llm, temperature, ctx.global.quiet)?;
    let ask_first = args.confirm && !args.yes && !args.dry_run;
    if ask_first && !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Error::Usage(
            "--confirm asks on a terminal and there is none; add --yes to run the scripts without asking"
                .into(),
        ));
    }

    let mut options = Options::from_config(&config.sandbox);
    options.override_with(args.sandbox, args.timeout, &args.allow);
    let specs = ctx.servers_or_none(&config, &args.servers)?;
    let python = config
        .sandbox
        .python
        .clone()
        .unwrap_or_else(|| "python3".into());

    let cancel = CancellationToken::new();
    let signalled = Arc::new(OnceLock::new());
    let stopped = signals::stop_signal();
    tokio::spawn({
        let (signalled, cancel) = (Arc::clone(&signalled), cancel.clone());
        async move {
            let _ = signalled.set(stopped.await);
            cancel.cancel();
        }
    });

    let runner = ctx.runner(&config, specs.clone(), &options).await?;
    let result = async {
        // Listing tools is routine: shown only with -v, as `exec` does.
        let progress = Progress::new(ctx.global.quiet || ctx.global.verbose == 0);
        let (catalog, module) = ctx.stubs(&runner, &options.allow, true, &progress).await?;
        let tools = tools_text(&catalog, &module, config.llm.index_threshold, &options);
        let agent = Agent {
            ctx,
            args,
            client: &client,
            runner: &runner,
            options: &options,
            module: &module.text,
            python: &python,
            has_tools: catalog.servers.iter().any(|s| !s.tools.is_empty()),
            ask_first,
            cancel: cancel.clone(),
            signalled: &signalled,
        };
        agent.run(&task, &tools, max_steps).await
    }
    .await;
    runner.shutdown().await;
    result
}

struct Agent<'a> {
    ctx: &'a Context,
    args: &'a AskArgs,
    client: &'a Client,
    runner: &'a Runner,
    options: &'a Options,
    module: &'a str,
    python: &'a str,
    has_tools: bool,
    ask_first: bool,
    cancel: CancellationToken,
    signalled: &'a OnceLock<Signal>,
}

impl Agent<'_> {
    async fn run(&self, task: &str, tools: &str, max_steps: u32) -> Result<(), Error> {
        let started = Instant::now();
        let system = SIGNATURE.system_prompt();
        let mut messages = vec![Message::user(
            SIGNATURE.render_inputs(&[("task", task), ("tools", tools)]),
        )];
        let mut trace = Trace {
            task: task.to_string(),
            model: self.client.name().to_string(),
            outcome: Outcome::StepBudgetExhausted,
            answer: None,
            max_steps,
            steps: Vec::new(),
            usage: Default::default(),
            duration_ms: 0,
        };
        // The mcp_tools check nudges once: a task may really need no tool.
        let mut tools_called = false;
        let mut nudged = false;
        let progress = Progress::new(self.ctx.global.quiet);

        let failure = 'steps: {
            for number in 1..=max_steps {
                self.ctx
                    .say(&format!("\n── step {number} of {max_steps} ──"));
                let thinking = progress.start(self.client.name(), "thinking…");
                let asked = Instant::now();
                let reply = tokio::select! {
                    reply = self.client.complete(&system, &messages) => reply,
                    _ = self.cancel.cancelled() => {
                        thinking.fail("interrupted");
                        trace.outcome = Outcome::Interrupted;
                        break 'steps Some(self.stopped());
                    }
                };
                let completion = match reply {
                    Ok(completion) => completion,
                    Err(err) => {
                        thinking.fail("failed");
                        trace.outcome = Outcome::ProviderFailed;
                        break 'steps Some(err.into());
                    }
                };
                let model = ModelCall {
                    input_tokens: completion.input_tokens,
                    output_tokens: completion.output_tokens,
                    duration_ms: asked.elapsed().as_millis() as u64,
                };
                thinking.succeed(&token_note(&model));
                trace.add_usage(&model);
                messages.push(Message::assistant(completion.text.clone()));
                let mut step = Step {
                    step: number,
                    reply: completion.text.clone(),
                    model,
                    ..Step::default()
                };

                let feedback = match SIGNATURE.parse(&completion.text) {
                    Err(problem) => {
                        self.say_block("reply not understood", &problem);
                        step.rejected = Some(problem.clone());
                        format!("Your reply could not be read: {problem}")
                    }
                    Ok(parsed) => {
                        step.reasoning = parsed.get("reasoning").map(str::to_string);
                        step.answer = parsed.get("answer").map(str::to_string);
                        step.code = parsed.get("code").map(code_of);
                        if let Some(reasoning) = &step.reasoning {
                            self.say_block("reasoning", reasoning);
                        }
                        match (step.code.clone(), step.answer.clone()) {
                            (None, Some(answer)) => {
                                trace.answer = Some(answer);
                                trace.outcome = Outcome::Answered;
                                trace.steps.push(step);
                                break 'steps None;
                            }
                            (None, None) => {
                                let problem = "the reply has neither `code` nor `answer`.";
                                self.say_block("reply not understood", problem);
                                step.rejected = Some(problem.into());
                                format!(
                                    "Your reply could not be read: {problem} {}",
                                    SIGNATURE.reply_format()
                                )
                            }
                            (Some(code), answer) => {
                                self.say_block("code", &code);
                                let checks = check::Checks {
                                    python: self.python,
                                    needs_tools: self.has_tools && !tools_called && !nudged,
                                };
                                match check::check(&code, &checks).await {
                                    Err(problem) => {
                                        nudged |= problem.contains("mcp_tools");
                                        self.say_block("not run", &problem);
                                        step.rejected = Some(problem.clone());
                                        format!(
                                            "Your script was not run: {problem}\nFix it and send the whole script again."
                                        )
                                    }
                                    Ok(()) if self.args.dry_run => {
                                        print!("{code}");
                                        let _ = std::io::stdout().flush();
                                        trace.outcome = Outcome::DryRun;
                                        trace.steps.push(step);
                                        break 'steps None;
                                    }
                                    Ok(()) => {
                                        if self.ask_first && !self.confirm()? {
                                            trace.outcome = Outcome::Declined;
                                            trace.steps.push(step);
                                            break 'steps Some(Error::Declined(
                                                "you declined to run the script".into(),
                                            ));
                                        }
                                        let report = self.execute(&code).await?;
                                        tools_called |= report.tool_calls.iter().any(|c| c.ok);
                                        let mut text = observation(&report, self.options);
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
                                        });
                                        if self.cancel.is_cancelled() {
                                            trace.outcome = Outcome::Interrupted;
                                            trace.steps.push(step);
                                            break 'steps Some(self.stopped());
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
                next.push_str(&SIGNATURE.reply_format());
                step.feedback = Some(feedback);
                trace.steps.push(step);
                messages.push(Message::user(next));
            }
            Some(Error::StepBudget { steps: max_steps })
        };

        trace.duration_ms = started.elapsed().as_millis() as u64;
        if let Some(path) = &self.args.save_trace {
            trace.save(path)?;
        }
        if self.args.json {
            println!("{}", trace.to_json());
        } else if let Some(answer) = &trace.answer {
            self.ctx.say("");
            println!("{answer}");
        }
        match failure {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }

    /// Runs one script exactly as `exec` does; its output is shown once it
    /// ends (stdout is the answer's, so the script's never goes there).
    async fn execute(&self, code: &str) -> Result<Report, Error> {
        let sink = OutputSink::new(self.options.limits.output_bytes, None);
        let progress = Progress::new(self.ctx.global.quiet);
        let running = progress.start("sandbox", "running…");
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
            .await?;
        let report = match outcome {
            RunOutcome::Done(report) => report,
            RunOutcome::Lost { cause, .. } => {
                running.fail("sandbox lost");
                return Err(Error::Sandbox(cause));
            }
        };
        let status = match (&report.error, report.exit_code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("exit {code}"),
            (None, None) => "no exit status".into(),
        };
        if report.success {
            running.succeed(&status);
        } else {
            running.fail(&status);
        }
        if !report.tool_calls.is_empty() {
            self.ctx
                .say(&format!("tool calls: {}", tool_calls(&report)));
        }
        if !report.stdout.is_empty() {
            self.say_block("stdout", &report.stdout);
        }
        if !report.stderr.is_empty() {
            self.say_block("stderr", &report.stderr);
        }
        Ok(report)
    }

    /// Stopped by a signal (Ctrl-C at a prompt counts as SIGINT).
    fn stopped(&self) -> Error {
        Error::Stopped(self.signalled.get().copied().unwrap_or(Signal::Interrupt))
    }

    fn confirm(&self) -> Result<bool, Error> {
        let term = dialoguer::console::Term::stderr();
        dialoguer::Confirm::new()
            .with_prompt("Run this script?")
            .default(true)
            .interact_on(&term)
            .map_err(|err| Error::Usage(format!("cannot ask: {err}")))
    }

    /// A labelled, indented block on stderr, unless `--quiet`.
    fn say_block(&self, label: &str, text: &str) {
        if self.ctx.global.quiet {
            return;
        }
        let mut out = format!("{label}:\n");
        for line in text.trim_end().lines() {
            out.push_str(&format!("  │ {line}\n"));
        }
        eprint!("{out}");
    }
}

/// What a run did, for the model: status, tool calls, both streams (cut in
/// the middle when long) and a hint at what to do about a failure.
fn observation(report: &Report, options: &Options) -> String {
    let mut out = match (&report.error, report.exit_code) {
        (Some(error), _) => format!("The script was stopped: {error}.\n"),
        (None, Some(code)) => format!(
            "The script ran for {:.1} s and exited with status {code}.\n",
            report.duration_ms as f64 / 1000.0
        ),
        (None, None) => "The script ended without an exit status.\n".into(),
    };
    if !report.tool_calls.is_empty() {
        out.push_str(&format!("Tool calls: {}\n", tool_calls(report)));
    }
    for (name, text) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        if text.is_empty() {
            out.push_str(&format!("{name}: (empty)\n"));
        } else {
            out.push_str(&format!(
                "{name}:\n{}\n",
                codemode_text::middle(text, FEEDBACK_BYTES).trim_end()
            ));
        }
    }
    if report.truncated {
        out.push_str(&format!(
            "(The sandbox kept only the first {} bytes of each stream.)\n",
            options.limits.output_bytes
        ));
    }
    let hint = if report.timed_out {
        format!(
            "It ran past the time limit of {} and was stopped: do less in one script, and never wait or sleep.",
            humantime::format_duration(options.limits.timeout)
        )
    } else if report.stderr.contains("ToolError") {
        "A tool call failed (ToolError above): check its arguments against the API, or catch mcp_tools.ToolError and go on without it.".into()
    } else if !report.success {
        "It failed: fix the error and send the whole script again.".into()
    } else if report.stdout.trim().is_empty() {
        "It printed nothing: print what you need to see.".into()
    } else {
        "If this settles the task, give the answer; otherwise send the next script.".into()
    };
    out.push_str(&hint);
    out
}

fn tool_calls(report: &Report) -> String {
    report
        .tool_calls
        .iter()
        .map(|c| {
            let how = if c.ok {
                "ok".to_string()
            } else {
                format!("failed: {}", c.error.unwrap_or("error"))
            };
            format!("{}.{} ({how}, {:.0} ms)", c.server, c.tool, c.duration_ms)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn token_note(call: &ModelCall) -> String {
    match (call.input_tokens, call.output_tokens) {
        (Some(i), Some(o)) => format!("replied ({i} tokens in, {o} out)"),
        _ => "replied".into(),
    }
}

/// The `tools` input: the whole API while it fits `threshold` tokens, else
/// the index (as `serve` shows it) and how to search.
fn tools_text(
    catalog: &Catalog,
    module: &bridge_gen::Module,
    threshold: usize,
    options: &Options,
) -> String {
    let limits = format!(
        "Each script may run for {}; it has no network but the tools.",
        humantime::format_duration(options.limits.timeout)
    );
    if catalog.servers.iter().all(|s| s.tools.is_empty()) {
        return format!("No MCP tools are configured: write plain Python.\n{limits}");
    }
    let full: Vec<&str> = catalog
        .servers
        .iter()
        .filter(|s| !s.tools.is_empty())
        .filter_map(|s| module.server(&s.name))
        .map(|api| api.api.as_str())
        .collect();
    let full = full.join("\n\n");
    if !full.is_empty() && tokens::count(&full) <= threshold {
        return format!(
            "The module `mcp_tools` (results are dicts, lists or strings; a failed call raises mcp_tools.ToolError):\n```python\n{}\n```\n{limits}",
            full.trim_end()
        );
    }
    format!(
        "{}\nThe full API is too large to show. Find the exact signatures first with a script like:\n    import mcp_tools\n    print(mcp_tools.search(\"words about what you need\", detail=\"full\"))\nthen call them as `from mcp_tools import SERVER` and `SERVER.TOOL(...)`.\n{limits}",
        index::index(&catalog.servers, &module.attrs(), threshold).trim_end()
    )
}

fn read_task(task: &str) -> Result<String, Error> {
    let task = if task == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(Error::io("reading the task from stdin"))?;
        text
    } else {
        task.to_string()
    };
    if task.trim().is_empty() {
        return Err(Error::Usage("the task is empty".into()));
    }
    Ok(task.trim().to_string())
}
