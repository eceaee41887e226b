//! `codemode`: code mode for MCP. Dispatch, logging, and the exit code.

use clap::{CommandFactory, Parser};

use codemode::cli::{Cli, Command};
use codemode::context::Context;
use codemode::error::{self, Error};
use codemode::{commands, serve};
use codemode_sandbox as sandbox;

fn main() {
    // The native sandbox re-executes codemode as its setup process; that path
    // must not start a runtime or parse the public command line.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sandbox::native::INIT_ARG)
    {
        sandbox::native::init_main();
    }
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let code = match run(cli) {
        Ok(()) => error::exit::SUCCESS,
        Err(err) => {
            err.print_message();
            err.code()
        }
    };
    codemode::approval::restore_terminal();
    // Runs dropped with the runtime (a stopped `serve`) leave their containers
    // to background removals, which exiting would cut off; bounded, since an
    // engine that stopped answering may never let them finish.
    let left = sandbox::finish_cleanup(std::time::Duration::from_secs(10));
    if !left.is_empty() {
        eprintln!(
            "codemode: warning: container(s) {} may be left behind (`docker ps -a --filter label={}`)",
            left.join(", "),
            sandbox::docker::RUN_LABEL
        );
    }
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<(), Error> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "codemode", &mut std::io::stdout());
            Ok(())
        }
        Command::GenBridge(args) => block_on(commands::gen_bridge::run(&ctx, &args)),
        Command::Tools(args) => block_on(commands::tools::run(&ctx, &args)),
        Command::Bridge(args) => block_on(commands::bridge::run(&ctx, &args)),
        Command::Exec(args) => block_on(commands::exec::run(&ctx, &args)),
        Command::Ask(args) => block_on(commands::ask::run(&ctx, &args)),
        Command::Serve(args) => block_on(serve::run(&ctx, &args)),
        Command::Init(args) => commands::init::run(&ctx, &args),
        Command::Doctor(args) => block_on(commands::doctor::run(&ctx, &args)),
        Command::Repl(args) => block_on(commands::repl::run(&ctx, &args)),
    }
}

fn block_on<F: std::future::Future<Output = Result<(), Error>>>(future: F) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the async runtime"))?;
    let result = runtime.block_on(future);
    // Servers' stderr readers may still be draining; they must not hold up exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// Logs go to stderr only: stdout belongs to the command's output (a module, a
/// JSON document, an MCP stream). `CODEMODE_LOG` takes `RUST_LOG` syntax.
///
/// rmcp warns about every error answer it sends, and clients probe methods a
/// server does not have (`prompts/list`) as a matter of course: those
/// warnings are the client's business, so rmcp is heard from only on its own
/// errors unless asked for with `-vv`. Colour only on a terminal: a desktop
/// client writes this stream to a log file.
fn init_logging(verbose: u8, quiet: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let (ours, rmcp) = match (quiet, verbose) {
        (true, _) => ("error", "error"),
        (false, 0) => ("warn", "error"),
        (false, 1) => ("info", "error"),
        (false, 2) => ("debug", "warn"),
        (false, _) => ("debug", "debug"),
    };
    let filter = std::env::var("CODEMODE_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{ours},rmcp={rmcp}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
        .init();
}
