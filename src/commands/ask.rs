//! `codemode ask`: the task, the model and the runner set up from the flags
//! and the config, the loop of codemode_agent shown on stderr, and the answer
//! (or the trace as JSON) on stdout.

use std::io::{IsTerminal, Write};

use tokio_util::sync::CancellationToken;

use crate::cli::AskArgs;
use crate::commands::files;
use crate::context::Context;
use crate::error::Error;
use crate::progress::{Progress, Task};
use codemode_agent::trace::Outcome;
use codemode_agent::{tools_text, Agent, AgentError, Client, Pending, Scripts, Ui};
use codemode_run::{signals, Options, Signal};

/// A task's session outlives its steps' time limits by this much: the time
/// the model takes to answer between them.
const SESSION_MARGIN: std::time::Duration = std::time::Duration::from_secs(300);

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
    args.approvals.apply_asking_here(&mut options);
    files::apply(ctx, &mut options, &args.files)?;
    let out_dir = files::out_dir(&args.files)?;
    let specs = ctx.servers_or_none(&config, &args.servers)?;
    let python = config
        .sandbox
        .python
        .clone()
        .unwrap_or_else(|| "python3".into());

    let cancel = CancellationToken::new();
    let signalled = signals::cancel_on_stop(&cancel);

    let runner = ctx.runner(&config, specs, &options).await?;
    let result = async {
        // Listing tools is routine: shown only with -v, as `exec` does.
        let progress = Progress::new(ctx.global.quiet || ctx.global.verbose == 0);
        let (catalog, module) = ctx.stubs(&runner, &options.allow, true, &progress).await?;
        let tools = tools_text(&catalog, &module, config.llm.index_threshold, &options);
        let ui = Terminal {
            ctx,
            progress: Progress::new(ctx.global.quiet),
        };
        let agent = Agent {
            client: &client,
            runner: &runner,
            options: &options,
            module: &module.text,
            python: &python,
            has_tools: catalog.servers.iter().any(|s| !s.tools.is_empty()),
            ask_first,
            dry_run: args.dry_run,
            scripts: if args.fresh {
                Scripts::Fresh
            } else {
                // Every step may use its whole time limit, and the model
                // thinks between them.
                Scripts::Session {
                    lifetime: options.limits.timeout * max_steps + SESSION_MARGIN,
                }
            },
            cancel: cancel.clone(),
            ui: &ui,
        };
        let (trace, ended) = agent.run(&task, &tools, max_steps).await;
        if trace.outcome == Outcome::DryRun {
            if let Some(code) = trace.steps.last().and_then(|s| s.code.as_deref()) {
                print!("{code}");
                let _ = std::io::stdout().flush();
            }
        }
        if let Some(dir) = &out_dir {
            files::save_newest(ctx, dir, &trace.newest_files());
        }
        if let Some(path) = &args.save_trace {
            // Private when new: a trace holds the scripts and what the tools returned.
            crate::atomic::write(path, (trace.to_json() + "\n").as_bytes(), 0o600).map_err(
                Error::io(format!("writing the trace to {}", path.display())),
            )?;
        }
        if args.json {
            println!("{}", trace.to_json());
        } else if let Some(answer) = &trace.answer {
            ctx.say("");
            println!("{answer}");
        }
        ended.map_err(|err| match err {
            AgentError::Llm(err) => Error::Llm(err),
            AgentError::StepBudget { steps } => Error::StepBudget { steps },
            AgentError::Declined => Error::Declined(err.to_string()),
            // Ctrl-C at a prompt counts as SIGINT.
            AgentError::Stopped => {
                Error::Stopped(signalled.get().copied().unwrap_or(Signal::Interrupt))
            }
            AgentError::Run(err) => Error::Run(err),
            AgentError::Lost(cause) => Error::Sandbox(cause),
            AgentError::Ui(_) => Error::Usage(err.to_string()),
        })
    }
    .await;
    runner.shutdown().await;
    result
}

/// The loop shown on stderr: steps, spinners (lines off a terminal), blocks,
/// and a yes/no prompt on the terminal.
struct Terminal<'a> {
    ctx: &'a Context,
    progress: Progress,
}

impl Ui for Terminal<'_> {
    fn step(&self, number: u32, max_steps: u32) {
        self.ctx
            .say(&format!("\n── step {number} of {max_steps} ──"));
    }

    fn begin(&self, who: &str, what: &str) -> Box<dyn Pending> {
        Box::new(self.progress.start(who, what))
    }

    /// A labelled, indented block, unless `--quiet`.
    fn block(&self, label: &str, text: &str) {
        if self.ctx.global.quiet {
            return;
        }
        let mut out = format!("{label}:\n");
        for line in text.trim_end().lines() {
            out.push_str(&format!("  │ {line}\n"));
        }
        eprint!("{out}");
    }

    fn note(&self, text: &str) {
        self.ctx.say(text);
    }

    fn confirm(&self) -> Result<bool, String> {
        let term = dialoguer::console::Term::stderr();
        dialoguer::Confirm::new()
            .with_prompt("Run this script?")
            .default(true)
            .interact_on(&term)
            .map_err(|err| err.to_string())
    }
}

impl Pending for Task {
    fn succeeded(self: Box<Self>, note: &str) {
        self.succeed(note);
    }

    fn failed(self: Box<Self>, note: &str) {
        self.fail(note);
    }
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
