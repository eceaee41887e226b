//! The command line: every subcommand, flag and the help text that teaches them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  codemode init                            set up codemode.toml from your MCP clients' servers
  codemode gen-bridge -o mcp_tools.py      write the typed Python API of every configured server
  codemode tools --search weather          find a tool by what it does
  codemode exec script.py                  run a script in a sandbox, tools available

Config is read from --config, $CODEMODE_CONFIG, ./codemode.toml, then the user
config directory (~/.config/codemode/codemode.toml on Linux).";

#[derive(Debug, Parser)]
#[command(
    name = "codemode",
    version,
    about = "Code mode for MCP: call MCP tools from one Python script, run it in a sandbox",
    long_about = "Code mode for MCP.\n\nInstead of calling MCP tools one JSON round trip at a time, a model (or you) \
writes one Python script that calls the tools as ordinary functions. The script runs in a sandbox; \
its tool calls cross back to the host through a narrow bridge that holds every real MCP connection \
and every secret.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Also read servers from a desktop client's or editor's `mcpServers` JSON file
    #[arg(long, global = true, value_name = "FILE")]
    pub mcp_json: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug including servers' stderr)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate mcp_tools.py: a typed, documented Python API of the configured servers' tools
    #[command(after_help = "\
Examples:
  codemode gen-bridge                         write ./mcp_tools.py for every configured server
  codemode gen-bridge -o - --server time      print the API of one server
  codemode gen-bridge --check                 CI guard: exit 1 if mcp_tools.py is out of date
  codemode gen-bridge --stats                 token counts: Python API against raw MCP JSON

Review workflow: commit mcp_tools.py, run `codemode gen-bridge --check` in CI; when a server
changes its tools, CI fails with a list of what was added, removed or changed, and
`codemode gen-bridge` regenerates the file for review.")]
    GenBridge(GenBridgeArgs),

    /// Run the RPC bridge that sandboxed code calls to reach MCP tools
    #[command(after_help = "\
Examples:
  codemode bridge                                   listen on 127.0.0.1:8765, token in a 0600 file
  CODEMODE_BRIDGE_TOKEN=s3cret codemode bridge --socket /run/codemode/bridge.sock
  curl -s localhost:8765/health
  curl -s -H \"Authorization: Bearer $(cat TOKEN_FILE)\" localhost:8765/rpc \\
       -d '{\"server\": \"news\", \"tool\": \"search\", \"arguments\": {\"query\": \"ai\"}}'

Sandboxed code reaches it with CODEMODE_BRIDGE_URL (http://HOST:PORT or unix:///PATH) and
CODEMODE_BRIDGE_TOKEN, which the generated mcp_tools.py reads.")]
    Bridge(BridgeArgs),

    /// Run a Python file in a sandbox, with the configured tools available
    #[command(after_help = "\
Examples:
  codemode exec examples/news_summary.py           run it; the tools come from mcp_tools
  echo 'print(1 + 1)' | codemode exec -              a script on stdin
  codemode exec job.py --sandbox docker --timeout 2m --memory 1g
  codemode exec job.py --allow 'news.*' --json     only the news tools; a JSON report
  codemode exec job.py --stubs mcp_tools.py -- --verbose   reviewed stubs; args for the script

The script's exit status is exec's (124 on timeout). Only --env variables enter the
sandbox; the host environment and every secret in it stay out.")]
    Exec(ExecArgs),

    /// Give a task to an LLM that writes and runs code until it has an answer
    #[command(after_help = "\
Examples:
  codemode ask \"Fetch the latest news and summarize it\"
  codemode ask --model anthropic/claude-sonnet-4-5 --confirm \"Which sections have news today?\"
  OPENAI_BASE_URL=http://localhost:11434/v1 codemode ask --model openai/llama3.1 \"...\"
  codemode ask --dry-run \"...\"              print the first script, run nothing
  codemode ask --json --save-trace run.json \"...\"

The answer goes to stdout; each step (reasoning, code, output, tool calls) to stderr.
Keys come from OPENAI_API_KEY or ANTHROPIC_API_KEY and never enter the sandbox;
a base URL on localhost or a loopback address needs none.
Exit status: 0 answered, 2 usage or configuration (a missing key, an unknown model),
4 the provider failed, 5 no answer within --max-steps, 125 the sandbox could not
be set up or was lost mid-run.")]
    Ask(AskArgs),

    /// An interactive Python prompt in a sandbox, with the configured tools imported
    #[command(after_help = "\
Examples:
  codemode repl                      the tools of every configured server, in the default sandbox
  codemode repl --server news        only the news server's tools

Everything runs in one session: what you define stays until you leave. Ctrl-C
interrupts the running code (or clears the line), Ctrl-D ends the session.
Each input has --timeout to finish; the session lives at most --lifetime.")]
    Repl(ReplArgs),

    /// Serve `execute_python` and tool discovery as one MCP server over all the others
    #[command(after_help = "\
Examples:
  codemode serve                                   MCP over stdio, for a desktop client or editor
  codemode serve --http 127.0.0.1:8080             streamable HTTP at http://127.0.0.1:8080/mcp
  CODEMODE_SERVE_TOKEN=s3cret codemode serve --http 0.0.0.0:8080 --allow-host mcp.example.com

An MCP client's config (`codemode init` writes codemode.toml and prints this for you):
  {\"mcpServers\": {\"codemode\": {\"command\": \"codemode\", \"args\": [\"serve\"]}}}

The client sees three tools: execute_python (its description indexes what is callable),
search_tools and get_api; and the resource codemode://mcp_tools.py, the whole Python API.")]
    Serve(ServeArgs),

    /// Set up codemode.toml from the MCP servers your desktop clients and editors already use
    #[command(after_help = "\
Examples:
  codemode init              find your MCP clients' configs, pick servers, write codemode.toml
  codemode init --yes        take every server found, ask nothing
  codemode init --from ~/.cursor/mcp.json --servers github,time --output ./codemode.toml

Looks in the config files of Claude Desktop, Claude Code, Cursor, VS Code, Windsurf and
Gemini CLI. Secrets (env values and headers that look like tokens or keys) are written as
${VAR} references, never copied into codemode.toml. Without a terminal it never prompts.")]
    Init(InitArgs),

    /// Say what this machine lets each sandbox enforce: layers, limits, the script's user
    #[command(after_help = "\
Examples:
  codemode doctor           a trial run in each sandbox, and what each limit reaches here
  codemode doctor --json    the same, for scripts

A limit you set (--memory, --cpus, [sandbox] memory and cpus) is enforced for the whole
run or the run is refused with exit 125; doctor says which applies on this machine.
Exit status: 0 when a sandbox works, 125 when none does.")]
    Doctor(DoctorArgs),

    /// List the configured servers' tools, with one-line descriptions
    #[command(after_help = "\
Examples:
  codemode tools                         every tool of every server
  codemode tools --search \"current time\" best matches first
  codemode tools --server git --json     machine-readable")]
    Tools(ToolsArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "\
Examples:
  codemode completions bash > /etc/bash_completion.d/codemode
  codemode completions zsh > \"${fpath[1]}/_codemode\"
  codemode completions fish > ~/.config/fish/completions/codemode.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct GenBridgeArgs {
    /// Where to write the module; `-` writes to stdout
    #[arg(short, long, value_name = "PATH", default_value = "mcp_tools.py")]
    pub output: PathBuf,

    /// Only these servers (repeatable); default: every enabled server
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,

    /// Write nothing; exit 1 if the file differs from what would be generated
    #[arg(long)]
    pub check: bool,

    /// Print token counts of the Python API against the raw MCP tools/list JSON
    #[arg(long)]
    pub stats: bool,

    /// Write the module even when some servers fail (they are left out and named)
    #[arg(long)]
    pub allow_partial: bool,

    /// Print the summary (--check, --stats) as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The Python file to run; `-` reads it from stdin
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Where to run it (default: [sandbox] backend, else auto: docker if an engine answers, else native)
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub sandbox: Option<codemode_config::Backend>,

    /// Time limit, like 30s or 2m (default: [sandbox] timeout)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Memory of the whole run, like 512m or 1g, or none (default: [sandbox]
    /// memory, else 512m). A limit you set is enforced or the run is refused
    /// (exit 125); `codemode doctor` says what this machine enforces
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<codemode_config::SizeLimit>,

    /// CPU share of the whole run, like 0.5 for half a core, 0 for none
    /// (default: [sandbox] cpus, else 0.5); enforced or refused, as --memory
    #[arg(long, value_name = "N")]
    pub cpus: Option<codemode_config::Cpus>,

    /// Size of the workspace, a tmpfs the script's files live in, like 256m
    /// (default: [sandbox] disk, else 256m)
    #[arg(long, value_name = "SIZE")]
    pub disk: Option<codemode_config::ByteSize>,

    /// Output kept per stream, like 1m (the rest is dropped and reported)
    #[arg(long, value_name = "SIZE")]
    pub max_output: Option<codemode_config::ByteSize>,

    /// Only these tools, as SERVER.TOOL patterns with `*` (repeatable)
    #[arg(long, value_name = "SERVER.TOOL")]
    pub allow: Vec<String>,

    /// Only these servers (repeatable)
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,

    /// Use this reviewed mcp_tools.py instead of generating one
    #[arg(long, value_name = "PATH")]
    pub stubs: Option<PathBuf>,

    /// Set a variable in the sandbox: KEY=VALUE, or KEY to pass the host's value (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Print one JSON object with the result instead of streaming the output
    #[arg(long)]
    pub json: bool,

    /// Run even if some servers fail to start (their tools are left out)
    #[arg(long)]
    pub allow_partial: bool,

    #[command(flatten)]
    pub files: FileArgs,

    #[command(flatten)]
    pub approvals: ApprovalArgs,

    /// Arguments for the script, after `--`
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// TCP address to listen on (default: [bridge] listen, else 127.0.0.1:8765 unless --socket)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    /// Unix socket to listen on (created fresh; a stale socket is replaced)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Write the bearer token here (mode 0600); default: $CODEMODE_BRIDGE_TOKEN, else a random token in the runtime dir
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Only these servers (repeatable)
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,

    /// Only these tools, as SERVER.TOOL patterns with `*` (repeatable)
    #[arg(long, value_name = "SERVER.TOOL")]
    pub allow: Vec<String>,

    /// Calls per second the token may make (default: unbounded)
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,

    /// Calls in flight at once
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_concurrent: usize,

    /// Start every server now instead of on its first call
    #[arg(long)]
    pub warm: bool,

    /// Once listening, print one JSON line on stdout: its addresses, servers and token file
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub approvals: ApprovalArgs,
}

#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// Only these servers (repeatable)
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,

    /// Words to look for in tool names and descriptions; best matches first
    #[arg(long, short, value_name = "QUERY")]
    pub search: Option<String>,

    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// List what the servers that answer offer, and name the ones that do not
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (like 127.0.0.1:8080)
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,

    /// With --http: a Host the server answers to besides loopback and the bind address (repeatable)
    #[arg(long = "allow-host", value_name = "HOST", requires = "http")]
    pub allow_hosts: Vec<String>,

    /// With --http: a browser Origin allowed to call (repeatable; others are refused)
    #[arg(long = "allow-origin", value_name = "ORIGIN", requires = "http")]
    pub allow_origins: Vec<String>,

    /// With --http: once listening, print one JSON line on stdout with the URL
    #[arg(long)]
    pub json: bool,

    /// Only these servers (repeatable)
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,

    /// Only these tools, as SERVER.TOOL patterns with `*` (repeatable)
    #[arg(long, value_name = "SERVER.TOOL")]
    pub allow: Vec<String>,

    /// Where code runs (default: [sandbox] backend)
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub sandbox: Option<codemode_config::Backend>,

    /// Time limit of a run when the caller gives none (default: [sandbox] timeout)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// The longest time limit a caller may ask for with timeout_s
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10m")]
    pub max_timeout: std::time::Duration,

    /// Runs at once; more wait for a free slot
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_concurrent: usize,

    /// Output of each stream a result holds, like 32k; longer output keeps
    /// its start and end, the middle cut out and noted (default: [serve]
    /// max_output, else 32k)
    #[arg(long, value_name = "SIZE")]
    pub max_output: Option<codemode_config::ByteSize>,

    /// Tokens execute_python's description, with its index of callable tools, may take
    #[arg(
        long,
        value_name = "TOKENS",
        default_value_t = 1000,
        env = "CODEMODE_INDEX_BUDGET"
    )]
    pub index_budget: usize,

    /// The most the files code leaves in /workspace/out/ may bring back in
    /// one result, like 4m: images come as image content, text as embedded
    /// resources, other files listed (default: [serve] max_out_bytes, else 512k)
    #[arg(long, value_name = "SIZE")]
    pub max_out_bytes: Option<codemode_config::ByteSize>,

    #[command(flatten)]
    pub approvals: ApprovalArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Read servers from this mcpServers JSON file instead of looking for client configs (repeatable)
    #[arg(long = "from", value_name = "FILE")]
    pub from: Vec<PathBuf>,

    /// Where to write the config; `-` prints it (default: the user config dir's codemode.toml)
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Only these servers, comma-separated or repeated
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub servers: Vec<String>,

    /// Ask nothing: take every server found (or --servers)
    #[arg(short, long)]
    pub yes: bool,

    /// Replace an existing config file
    #[arg(long)]
    pub force: bool,

    /// Copy secret-looking values into the file instead of writing ${VAR} references
    #[arg(long)]
    pub inline_secrets: bool,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// What to do, in words; `-` reads it from stdin
    #[arg(value_name = "TASK")]
    pub task: String,

    /// The model as PROVIDER/MODEL: openai/... (any OpenAI-compatible API) or anthropic/... (default: [llm] model)
    #[arg(long, short, value_name = "PROVIDER/MODEL")]
    pub model: Option<String>,

    /// Model turns before giving up (default: [llm] max_steps, else 5)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_steps: Option<u32>,

    /// Sampling temperature (default: [llm] temperature)
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,

    /// Show each script and ask before running it (needs a terminal, or --yes)
    #[arg(long)]
    pub confirm: bool,

    /// With --confirm: run every script without asking (for scripts and CI)
    #[arg(long, short)]
    pub yes: bool,

    /// Print the first script the model writes and stop without running it
    #[arg(long)]
    pub dry_run: bool,

    /// Run each script in a fresh sandbox; by default all of a task's scripts
    /// run in one Python session, so a script can use what the last one computed
    #[arg(long)]
    pub fresh: bool,

    /// Print the answer and the whole trace as one JSON object on stdout
    #[arg(long)]
    pub json: bool,

    /// Also write the trace as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub save_trace: Option<PathBuf>,

    /// Where scripts run (default: [sandbox] backend)
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub sandbox: Option<codemode_config::Backend>,

    /// Time limit of each script, like 30s (default: [sandbox] timeout)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Only these servers (repeatable)
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,

    /// Only these tools, as SERVER.TOOL patterns with `*` (repeatable)
    #[arg(long, value_name = "SERVER.TOOL")]
    pub allow: Vec<String>,

    #[command(flatten)]
    pub files: FileArgs,

    #[command(flatten)]
    pub approvals: ApprovalArgs,
}

/// Files in and out of the sandbox, for `exec` and `ask`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// A file, or a directory taken whole, the script can read under
    /// /workspace/in/ (read-only copies; symlinks inside a directory are
    /// skipped) (repeatable)
    #[arg(long = "input", value_name = "PATH")]
    pub inputs: Vec<PathBuf>,

    /// Save the files the script writes under /workspace/out/ into DIR
    /// (created if missing): regular files only, names made safe, a file
    /// already there replaced; symlinks and special files are skipped with
    /// a note
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// The most the files in /workspace/out/ may bring back in all, like
    /// 64m; a larger file is skipped unread, with a note (default: 64m)
    #[arg(long, value_name = "SIZE")]
    pub max_out_bytes: Option<codemode_config::ByteSize>,
}

/// Which calls wait for a person's yes, and how long.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Approvals")]
pub struct ApprovalArgs {
    /// Calls of these tools wait for your yes, as SERVER.TOOL patterns with
    /// `*` (repeatable), besides those each server's `approve` list names.
    /// You are asked each time on the terminal (serve asks its MCP client);
    /// where nobody can be asked, such calls are refused
    #[arg(long, value_name = "SERVER.TOOL")]
    pub approve: Vec<String>,

    /// Approve every call that needs approval without asking, and record
    /// it as auto_approved (for CI and scripts)
    #[arg(long)]
    pub auto_approve: bool,

    /// How long a call waits for an answer before it is refused, like 5m
    /// (default: [sandbox] approval_timeout, else 5m); the wait does not
    /// count towards the time limit
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub approval_timeout: Option<std::time::Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

#[derive(Debug, Args)]
pub struct ReplArgs {
    /// Where the session runs (default: [sandbox] backend)
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub sandbox: Option<codemode_config::Backend>,

    /// Time limit of each input, like 30s (default: [sandbox] timeout)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// How long the session may live (default: [serve] session_lifetime, else 1h)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lifetime: Option<std::time::Duration>,

    /// Only these servers (repeatable)
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,

    /// Only these tools, as SERVER.TOOL patterns with `*` (repeatable)
    #[arg(long, value_name = "SERVER.TOOL")]
    pub allow: Vec<String>,

    #[command(flatten)]
    pub approvals: ApprovalArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}
