//! `codemode exec`: one script, one run (codemode_run), its output streamed
//! or its report printed as JSON, and an exit code that says how it ended.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

use crate::cli::ExecArgs;
use crate::commands::files;
use crate::context::Context;
use crate::error::Error;
use crate::progress::Progress;
use codemode_config::Config;
use codemode_run::{signals, Exit, Options, Outcome, Report, Signal};
use codemode_sandbox::OutputSink;
use codemode_text::human_bytes;

pub async fn run(ctx: &Context, args: &ExecArgs) -> Result<(), Error> {
    let config = ctx.config()?;
    let (script_name, source) = read_script(&args.file)?;
    let mut options = options(&config, args)?;
    files::apply(ctx, &mut options, &args.files)?;
    let out_dir = files::out_dir(&args.files)?;
    let specs = ctx.servers_or_none(&config, &args.servers)?;

    let sink = OutputSink::new(
        options.limits.output_bytes,
        (!args.json).then(crate::terminal::live),
    );
    let cancel = CancellationToken::new();
    let signalled = signals::cancel_on_stop(&cancel);
    let stopped_early = |signalled: &OnceLock<Signal>| {
        Error::StoppedEarly(signalled.get().copied().unwrap_or(Signal::Interrupt))
    };

    let runner = tokio::select! {
        runner = ctx.runner(&config, specs, &options) => runner?,
        // Picking the sandbox may wait on an engine or pull an image; a
        // signal must not wait for that.
        _ = cancel.cancelled() => return Err(stopped_early(&signalled)),
    };
    let outcome = async {
        let stubs = match &args.stubs {
            Some(path) => std::fs::read_to_string(path)
                .map_err(Error::io(format!("reading {}", path.display())))?,
            None => {
                // Stub generation is routine here: show it only when asked with -v.
                let progress = Progress::new(ctx.global.quiet || ctx.global.verbose == 0);
                // A signal while servers start must not wait for their timeouts.
                tokio::select! {
                    stubs = ctx.stubs(&runner, &options.allow, args.allow_partial, &progress) => stubs?.1.text,
                    _ = cancel.cancelled() => return Err(stopped_early(&signalled)),
                }
            }
        };
        Ok(runner
            .run(&stubs, &script_name, &source, &options, &sink, cancel.clone())
            .await?)
    }
    .await;
    runner.shutdown().await;
    let signal = signalled.get().copied();
    let mut report = match (outcome, signal) {
        (Ok(Outcome::Done(report)), _) => report,
        (Ok(Outcome::Lost { report, cause }), signal) => {
            if args.json {
                print_json(&report);
            }
            return Err(match signal {
                // The user stopped it (the engine then failed to answer the
                // kill): the exit code says so, as for any run a signal ended.
                Some(signal) => Error::StoppedLost { signal, cause },
                None => Error::Sandbox(cause),
            });
        }
        (Err(_), Some(signal)) => return Err(Error::StoppedEarly(signal)),
        (Err(err), None) => return Err(err),
    };
    if let Some(signal) = signal {
        report.success = false;
        report.error = Some(format!(
            "stopped by {}: the script and everything it started were killed",
            signal.name()
        ));
    }

    files::say_skipped(ctx, &report);
    if let Some(dir) = &out_dir {
        files::save(ctx, dir, &report);
    }
    if args.json {
        print_json(&report);
    } else {
        let _ = std::io::stdout().flush();
        if report.truncated {
            eprintln!(
                "codemode: output truncated: kept the first {} of each stream",
                human_bytes(options.limits.output_bytes as u64)
            );
        }
        if let Some(error) = &report.error {
            eprintln!("codemode: {error}");
        }
    }
    if let Some(signal) = signal {
        return Err(Error::Stopped(signal));
    }
    match report.exit() {
        Exit::Status(0) => Ok(()),
        exit => Err(Error::Script(exit)),
    }
}

fn print_json(report: &Report) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
}

fn read_script(file: &Path) -> Result<(String, String), Error> {
    if file == Path::new("-") {
        let mut source = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut source)
            .map_err(Error::io("reading the script from stdin"))?;
        return Ok(("main.py".into(), source));
    }
    let source =
        std::fs::read_to_string(file).map_err(Error::io(format!("reading {}", file.display())))?;
    Ok((script_file_name(file), source))
}

/// The script keeps its own name (tracebacks then name the file the user
/// knows), unless that name would clash with the stubs or is not a plain name.
fn script_file_name(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("main.py");
    let plain = name.ends_with(".py")
        && name != "mcp_tools.py"
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.');
    if plain {
        name.to_string()
    } else {
        "main.py".into()
    }
}

/// `[sandbox]` with exec's flags over it.
fn options(config: &Config, args: &ExecArgs) -> Result<Options, Error> {
    let mut options = Options::from_config(&config.sandbox);
    options.override_with(args.sandbox, args.timeout, &args.allow);
    args.approvals.apply_asking_here(&mut options);
    options.choose(args.memory, args.cpus, args.disk);
    if let Some(size) = args.max_output {
        options.limits.output_bytes = usize::try_from(size.0).unwrap_or(usize::MAX);
    }
    for pair in &args.env {
        let (key, value) = match pair.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => {
                let value = std::env::var(pair).map_err(|_| {
                    Error::Usage(format!("--env {pair}: no such variable in the environment"))
                })?;
                (pair.clone(), value)
            }
        };
        if key.is_empty() || key.contains(['\0', '=']) {
            return Err(Error::Usage(format!("--env `{pair}` is not KEY=VALUE")));
        }
        options.env.insert(key, value);
    }
    options.args = args.args.clone();
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_script_name_is_kept() {
        assert_eq!(
            script_file_name(Path::new("examples/news_summary.py")),
            "news_summary.py"
        );
    }

    #[test]
    fn names_that_would_clash_or_surprise_become_main_py() {
        for name in [
            "mcp_tools.py",
            "notes.txt",
            ".hidden.py",
            "weird name.py",
            "-",
        ] {
            assert_eq!(script_file_name(Path::new(name)), "main.py", "{name}");
        }
    }
}
