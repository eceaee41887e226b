//! `codemode repl`: a Python prompt in a sandbox session (codemode_run's
//! `Session`), for exploring the tools by hand. Input is read on the
//! terminal (history, multi-line blocks); each input runs as the session's
//! next cell, its output shown as it comes; Ctrl-C interrupts it.

use std::sync::{Arc, Mutex};

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::cli::ReplArgs;
use crate::context::Context;
use crate::error::Error;
use crate::progress::Progress;
use codemode_run::{signals, CellOutcome, Options, Session, StopSignals};
use codemode_sandbox::OutputSink;

/// Imported before the first prompt: every server by its module name.
const PRELUDE: &str = "from mcp_tools import *\n";

pub async fn run(ctx: &Context, args: &ReplArgs) -> Result<(), Error> {
    let config = ctx.config()?;
    let mut options = Options::from_config(&config.sandbox);
    options.override_with(args.sandbox, args.timeout, &args.allow);
    args.approvals.apply_asking_here(&mut options);
    let timeout = options.limits.timeout;
    let mut session_options = options.clone();
    session_options.limits.timeout = args.lifetime.unwrap_or(config.serve.session_lifetime);
    let specs = ctx.servers_or_none(&config, &args.servers)?;

    let runner = ctx.runner(&config, specs, &options).await?;
    let result = async {
        let progress = Progress::new(ctx.global.quiet || ctx.global.verbose == 0);
        let (catalog, module) = ctx.stubs(&runner, &options.allow, true, &progress).await?;
        let names: Vec<&str> = module.servers.iter().map(|s| s.attr.as_str()).collect();
        let mut session = open(&runner, &module.text, &session_options).await?;
        ctx.say(&format!(
            "codemode repl: Python in a sandbox; {} ({}). Ctrl-C interrupts, Ctrl-D ends.",
            if names.is_empty() {
                "no tools".to_string()
            } else {
                format!("tools: {}", names.join(", "))
            },
            codemode_text::plural(catalog.tool_count(), "tool")
        ));
        let editor =
            Arc::new(Mutex::new(DefaultEditor::new().map_err(|e| {
                Error::Usage(format!("cannot read the terminal: {e}"))
            })?));
        // Caught from here on: at the prompt the editor sees Ctrl-C itself;
        // while a cell runs it interrupts the cell.
        let mut stops = StopSignals::new();
        loop {
            let Some(source) = read_input(&editor).await? else {
                break;
            };
            if source.trim().is_empty() {
                continue;
            }
            let sink = Arc::new(OutputSink::new(
                options.limits.output_bytes,
                Some(crate::terminal::live()),
            ));
            let interrupter = session.interrupter();
            let cell = {
                let running = session.execute(&source, timeout, Arc::clone(&sink));
                tokio::pin!(running);
                loop {
                    tokio::select! {
                        cell = &mut running => break Some(cell),
                        signal = stops.next() => match signal {
                            signals::Signal::Terminate => break None,
                            signals::Signal::Interrupt => interrupter.interrupt().await,
                        },
                    }
                }
            };
            let Some(cell) = cell else {
                // Asked to stop: the session goes with us.
                let _ = session.close().await;
                return Err(Error::Stopped(signals::Signal::Terminate));
            };
            match cell {
                CellOutcome::Done(report) => {
                    if let Some(error) = report.error {
                        eprintln!("codemode: {error}");
                    }
                }
                CellOutcome::SessionLost(report) => {
                    eprintln!(
                        "codemode: {}",
                        report
                            .error
                            .unwrap_or_else(|| "the session was lost".into())
                    );
                    let _ = session.close().await;
                    session = open(&runner, &module.text, &session_options).await?;
                    eprintln!("codemode: a new session was started: nothing you defined is there");
                }
            }
        }
        session.close().await?;
        Ok(())
    }
    .await;
    runner.shutdown().await;
    result
}

async fn open(
    runner: &codemode_run::Runner,
    stubs: &str,
    options: &Options,
) -> Result<Session, Error> {
    let mut session = runner.open_session(stubs, options).await?;
    let sink = Arc::new(OutputSink::new(
        options.limits.output_bytes,
        Some(crate::terminal::live()),
    ));
    if let CellOutcome::SessionLost(report) =
        session.execute(PRELUDE, options.limits.timeout, sink).await
    {
        return Err(Error::Usage(format!(
            "the session could not start: {}",
            report.error.unwrap_or_default()
        )));
    }
    Ok(session)
}

/// One input: a line, or a block (a line ending with `:`, or with brackets
/// or a triple-quoted string left open) up to an empty line. `None` at
/// Ctrl-D.
async fn read_input(editor: &Arc<Mutex<DefaultEditor>>) -> Result<Option<String>, Error> {
    let editor = Arc::clone(editor);
    tokio::task::spawn_blocking(move || {
        let mut editor = editor.lock().unwrap_or_else(|e| e.into_inner());
        let mut source = String::new();
        loop {
            let prompt = if source.is_empty() { ">>> " } else { "... " };
            match editor.readline(prompt) {
                Ok(line) => {
                    let block = !source.is_empty();
                    if block && line.trim().is_empty() {
                        break;
                    }
                    source.push_str(&line);
                    source.push('\n');
                    if !block && !opens_block(&source) {
                        break;
                    }
                    if block && !line.starts_with([' ', '\t']) && !opens_block(&source) {
                        break;
                    }
                }
                // Ctrl-C at the prompt drops what was typed.
                Err(ReadlineError::Interrupted) => {
                    source.clear();
                    continue;
                }
                Err(ReadlineError::Eof) => return Ok(None),
                Err(err) => return Err(Error::Usage(format!("cannot read the terminal: {err}"))),
            }
        }
        let _ = editor.add_history_entry(source.trim_end());
        Ok(Some(source))
    })
    .await
    .map_err(|err| Error::Usage(format!("cannot read the terminal: {err}")))?
}

/// Whether `source` needs more lines: a `:` or `\` at the end of its last
/// line, or brackets or a triple-quoted string still open.
fn opens_block(source: &str) -> bool {
    let last = source
        .trim_end_matches('\n')
        .lines()
        .last()
        .unwrap_or("")
        .trim_end();
    if last.ends_with(':') || last.ends_with('\\') {
        return true;
    }
    let triple = source.matches("\"\"\"").count() + source.matches("'''").count();
    let mut depth = 0i64;
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    depth > 0 || triple % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_read_until_it_is_closed() {
        assert!(opens_block("for i in range(3):\n"));
        assert!(opens_block("print(\n"));
        assert!(opens_block("s = \"\"\"\n"));
        assert!(!opens_block("x = 1\n"));
        assert!(!opens_block("print((1, 2))\n"));
    }
}
