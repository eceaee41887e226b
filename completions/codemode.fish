# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_codemode_global_optspecs
    string join \n config= mcp-json= v/verbose q/quiet h/help V/version
end

function __fish_codemode_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_codemode_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_codemode_using_subcommand
    set -l cmd (__fish_codemode_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c codemode -n "__fish_codemode_needs_command" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_needs_command" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_needs_command" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_needs_command" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c codemode -n "__fish_codemode_needs_command" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "gen-bridge" -d 'Generate mcp_tools.py: a typed, documented Python API of the configured servers\' tools'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "bridge" -d 'Run the RPC bridge that sandboxed code calls to reach MCP tools'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "exec" -d 'Run a Python file in a sandbox, with the configured tools available'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "ask" -d 'Give a task to an LLM that writes and runs code until it has an answer'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "repl" -d 'An interactive Python prompt in a sandbox, with the configured tools imported'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "serve" -d 'Serve `execute_python` and tool discovery as one MCP server over all the others'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "init" -d 'Set up codemode.toml from the MCP servers your desktop clients and editors already use'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "doctor" -d 'Say what this machine lets each sandbox enforce: layers, limits, the script\'s user'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "tools" -d 'List the configured servers\' tools, with one-line descriptions'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c codemode -n "__fish_codemode_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -s o -l output -d 'Where to write the module; `-` writes to stdout' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -l server -d 'Only these servers (repeatable); default: every enabled server' -r
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -l check -d 'Write nothing; exit 1 if the file differs from what would be generated'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -l stats -d 'Print token counts of the Python API against the raw MCP tools/list JSON'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -l allow-partial -d 'Write the module even when some servers fail (they are left out and named)'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -l json -d 'Print the summary (--check, --stats) as JSON on stdout'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -s h -l help -d 'Print help'
complete -c codemode -n "__fish_codemode_using_subcommand gen-bridge" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l listen -d 'TCP address to listen on (default: [bridge] listen, else 127.0.0.1:8765 unless --socket)' -r
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l socket -d 'Unix socket to listen on (created fresh; a stale socket is replaced)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l token-file -d 'Write the bearer token here (mode 0600); default: $CODEMODE_BRIDGE_TOKEN, else a random token in the runtime dir' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l server -d 'Only these servers (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l allow -d 'Only these tools, as SERVER.TOOL patterns with `*` (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l rate -d 'Calls per second the token may make (default: unbounded)' -r
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l max-concurrent -d 'Calls in flight at once' -r
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l approve -d 'Calls of these tools wait for your yes, as SERVER.TOOL patterns with `*` (repeatable), besides those each server\'s `approve` list names. You are asked each time on the terminal (serve asks its MCP client); where nobody can be asked, such calls are refused' -r
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l approval-timeout -d 'How long a call waits for an answer before it is refused, like 5m (default: [sandbox] approval_timeout, else 5m); the wait does not count towards the time limit' -r
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l warm -d 'Start every server now instead of on its first call'
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l json -d 'Once listening, print one JSON line on stdout: its addresses, servers and token file'
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -l auto-approve -d 'Approve every call that needs approval without asking, and record it as auto_approved (for CI and scripts)'
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -s h -l help -d 'Print help'
complete -c codemode -n "__fish_codemode_using_subcommand bridge" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l sandbox -d 'Where to run it (default: [sandbox] backend, else auto: docker if an engine answers, else native)' -r -f -a "auto\t'Docker when an engine answers, the native sandbox otherwise'
docker\t'One container per run on the Docker engine'
native\t'Namespaces, Landlock and seccomp on this host, no engine needed'"
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l timeout -d 'Time limit, like 30s or 2m (default: [sandbox] timeout)' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l memory -d 'Memory of the whole run, like 512m or 1g, or none (default: [sandbox] memory, else 512m). A limit you set is enforced or the run is refused (exit 125); `codemode doctor` says what this machine enforces' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l cpus -d 'CPU share of the whole run, like 0.5 for half a core, 0 for none (default: [sandbox] cpus, else 0.5); enforced or refused, as --memory' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l disk -d 'Size of the workspace, a tmpfs the script\'s files live in, like 256m (default: [sandbox] disk, else 256m)' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l max-output -d 'Output kept per stream, like 1m (the rest is dropped and reported)' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l allow -d 'Only these tools, as SERVER.TOOL patterns with `*` (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l server -d 'Only these servers (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l stubs -d 'Use this reviewed mcp_tools.py instead of generating one' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l env -d 'Set a variable in the sandbox: KEY=VALUE, or KEY to pass the host\'s value (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l input -d 'A file, or a directory taken whole, the script can read under /workspace/in/ (read-only copies; symlinks inside a directory are skipped) (repeatable)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l out -d 'Save the files the script writes under /workspace/out/ into DIR (created if missing): regular files only, names made safe, a file already there replaced; symlinks and special files are skipped with a note' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l max-out-bytes -d 'The most the files in /workspace/out/ may bring back in all, like 64m; a larger file is skipped unread, with a note (default: 64m)' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l approve -d 'Calls of these tools wait for your yes, as SERVER.TOOL patterns with `*` (repeatable), besides those each server\'s `approve` list names. You are asked each time on the terminal (serve asks its MCP client); where nobody can be asked, such calls are refused' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l approval-timeout -d 'How long a call waits for an answer before it is refused, like 5m (default: [sandbox] approval_timeout, else 5m); the wait does not count towards the time limit' -r
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l json -d 'Print one JSON object with the result instead of streaming the output'
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l allow-partial -d 'Run even if some servers fail to start (their tools are left out)'
complete -c codemode -n "__fish_codemode_using_subcommand exec" -l auto-approve -d 'Approve every call that needs approval without asking, and record it as auto_approved (for CI and scripts)'
complete -c codemode -n "__fish_codemode_using_subcommand exec" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand exec" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand exec" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c codemode -n "__fish_codemode_using_subcommand exec" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -s m -l model -d 'The model as PROVIDER/MODEL: openai/... (any OpenAI-compatible API) or anthropic/... (default: [llm] model)' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l max-steps -d 'Model turns before giving up (default: [llm] max_steps, else 5)' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l temperature -d 'Sampling temperature (default: [llm] temperature)' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l save-trace -d 'Also write the trace as JSON to this file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l sandbox -d 'Where scripts run (default: [sandbox] backend)' -r -f -a "auto\t'Docker when an engine answers, the native sandbox otherwise'
docker\t'One container per run on the Docker engine'
native\t'Namespaces, Landlock and seccomp on this host, no engine needed'"
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l timeout -d 'Time limit of each script, like 30s (default: [sandbox] timeout)' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l server -d 'Only these servers (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l allow -d 'Only these tools, as SERVER.TOOL patterns with `*` (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l input -d 'A file, or a directory taken whole, the script can read under /workspace/in/ (read-only copies; symlinks inside a directory are skipped) (repeatable)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l out -d 'Save the files the script writes under /workspace/out/ into DIR (created if missing): regular files only, names made safe, a file already there replaced; symlinks and special files are skipped with a note' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l max-out-bytes -d 'The most the files in /workspace/out/ may bring back in all, like 64m; a larger file is skipped unread, with a note (default: 64m)' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l approve -d 'Calls of these tools wait for your yes, as SERVER.TOOL patterns with `*` (repeatable), besides those each server\'s `approve` list names. You are asked each time on the terminal (serve asks its MCP client); where nobody can be asked, such calls are refused' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l approval-timeout -d 'How long a call waits for an answer before it is refused, like 5m (default: [sandbox] approval_timeout, else 5m); the wait does not count towards the time limit' -r
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l confirm -d 'Show each script and ask before running it (needs a terminal, or --yes)'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -s y -l yes -d 'With --confirm: run every script without asking (for scripts and CI)'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l dry-run -d 'Print the first script the model writes and stop without running it'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l fresh -d 'Run each script in a fresh sandbox; by default all of a task\'s scripts run in one Python session, so a script can use what the last one computed'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l json -d 'Print the answer and the whole trace as one JSON object on stdout'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -l auto-approve -d 'Approve every call that needs approval without asking, and record it as auto_approved (for CI and scripts)'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c codemode -n "__fish_codemode_using_subcommand ask" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l sandbox -d 'Where the session runs (default: [sandbox] backend)' -r -f -a "auto\t'Docker when an engine answers, the native sandbox otherwise'
docker\t'One container per run on the Docker engine'
native\t'Namespaces, Landlock and seccomp on this host, no engine needed'"
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l timeout -d 'Time limit of each input, like 30s (default: [sandbox] timeout)' -r
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l lifetime -d 'How long the session may live (default: [serve] session_lifetime, else 1h)' -r
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l server -d 'Only these servers (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l allow -d 'Only these tools, as SERVER.TOOL patterns with `*` (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l approve -d 'Calls of these tools wait for your yes, as SERVER.TOOL patterns with `*` (repeatable), besides those each server\'s `approve` list names. You are asked each time on the terminal (serve asks its MCP client); where nobody can be asked, such calls are refused' -r
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l approval-timeout -d 'How long a call waits for an answer before it is refused, like 5m (default: [sandbox] approval_timeout, else 5m); the wait does not count towards the time limit' -r
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand repl" -l auto-approve -d 'Approve every call that needs approval without asking, and record it as auto_approved (for CI and scripts)'
complete -c codemode -n "__fish_codemode_using_subcommand repl" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand repl" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand repl" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c codemode -n "__fish_codemode_using_subcommand repl" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l http -d 'Serve streamable HTTP at http://ADDR/mcp instead of stdio (like 127.0.0.1:8080)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l allow-host -d 'With --http: a Host the server answers to besides loopback and the bind address (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l allow-origin -d 'With --http: a browser Origin allowed to call (repeatable; others are refused)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l server -d 'Only these servers (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l allow -d 'Only these tools, as SERVER.TOOL patterns with `*` (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l sandbox -d 'Where code runs (default: [sandbox] backend)' -r -f -a "auto\t'Docker when an engine answers, the native sandbox otherwise'
docker\t'One container per run on the Docker engine'
native\t'Namespaces, Landlock and seccomp on this host, no engine needed'"
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l timeout -d 'Time limit of a run when the caller gives none (default: [sandbox] timeout)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l max-timeout -d 'The longest time limit a caller may ask for with timeout_s' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l max-concurrent -d 'Runs at once; more wait for a free slot' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l max-output -d 'Output of each stream a result holds, like 32k; longer output keeps its start and end, the middle cut out and noted (default: [serve] max_output, else 32k)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l index-budget -d 'Tokens execute_python\'s description, with its index of callable tools, may take' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l max-out-bytes -d 'The most the files code leaves in /workspace/out/ may bring back in one result, like 4m: images come as image content, text as embedded resources, other files listed (default: [serve] max_out_bytes, else 512k)' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l approve -d 'Calls of these tools wait for your yes, as SERVER.TOOL patterns with `*` (repeatable), besides those each server\'s `approve` list names. You are asked each time on the terminal (serve asks its MCP client); where nobody can be asked, such calls are refused' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l approval-timeout -d 'How long a call waits for an answer before it is refused, like 5m (default: [sandbox] approval_timeout, else 5m); the wait does not count towards the time limit' -r
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l json -d 'With --http: once listening, print one JSON line on stdout with the URL'
complete -c codemode -n "__fish_codemode_using_subcommand serve" -l auto-approve -d 'Approve every call that needs approval without asking, and record it as auto_approved (for CI and scripts)'
complete -c codemode -n "__fish_codemode_using_subcommand serve" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand serve" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c codemode -n "__fish_codemode_using_subcommand serve" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand init" -l from -d 'Read servers from this mcpServers JSON file instead of looking for client configs (repeatable)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand init" -s o -l output -d 'Where to write the config; `-` prints it (default: the user config dir\'s codemode.toml)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand init" -l servers -d 'Only these servers, comma-separated or repeated' -r
complete -c codemode -n "__fish_codemode_using_subcommand init" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand init" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand init" -s y -l yes -d 'Ask nothing: take every server found (or --servers)'
complete -c codemode -n "__fish_codemode_using_subcommand init" -l force -d 'Replace an existing config file'
complete -c codemode -n "__fish_codemode_using_subcommand init" -l inline-secrets -d 'Copy secret-looking values into the file instead of writing ${VAR} references'
complete -c codemode -n "__fish_codemode_using_subcommand init" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand init" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand init" -s h -l help -d 'Print help'
complete -c codemode -n "__fish_codemode_using_subcommand init" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand doctor" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand doctor" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand doctor" -l json -d 'Print one JSON object instead of text'
complete -c codemode -n "__fish_codemode_using_subcommand doctor" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand doctor" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c codemode -n "__fish_codemode_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand tools" -l server -d 'Only these servers (repeatable)' -r
complete -c codemode -n "__fish_codemode_using_subcommand tools" -s s -l search -d 'Words to look for in tool names and descriptions; best matches first' -r
complete -c codemode -n "__fish_codemode_using_subcommand tools" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand tools" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand tools" -l json -d 'Print JSON on stdout'
complete -c codemode -n "__fish_codemode_using_subcommand tools" -l allow-partial -d 'List what the servers that answer offer, and name the ones that do not'
complete -c codemode -n "__fish_codemode_using_subcommand tools" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand tools" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand tools" -s h -l help -d 'Print help'
complete -c codemode -n "__fish_codemode_using_subcommand tools" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand completions" -l config -d 'The config file (default: $CODEMODE_CONFIG, ./codemode.toml, then the user config dir)' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand completions" -l mcp-json -d 'Also read servers from a desktop client\'s or editor\'s `mcpServers` JSON file' -r -F
complete -c codemode -n "__fish_codemode_using_subcommand completions" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug including servers\' stderr)'
complete -c codemode -n "__fish_codemode_using_subcommand completions" -s q -l quiet -d 'Only errors on stderr'
complete -c codemode -n "__fish_codemode_using_subcommand completions" -s h -l help -d 'Print help'
complete -c codemode -n "__fish_codemode_using_subcommand completions" -s V -l version -d 'Print version'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "gen-bridge" -d 'Generate mcp_tools.py: a typed, documented Python API of the configured servers\' tools'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "bridge" -d 'Run the RPC bridge that sandboxed code calls to reach MCP tools'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "exec" -d 'Run a Python file in a sandbox, with the configured tools available'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "ask" -d 'Give a task to an LLM that writes and runs code until it has an answer'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "repl" -d 'An interactive Python prompt in a sandbox, with the configured tools imported'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "serve" -d 'Serve `execute_python` and tool discovery as one MCP server over all the others'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "init" -d 'Set up codemode.toml from the MCP servers your desktop clients and editors already use'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "doctor" -d 'Say what this machine lets each sandbox enforce: layers, limits, the script\'s user'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "tools" -d 'List the configured servers\' tools, with one-line descriptions'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c codemode -n "__fish_codemode_using_subcommand help; and not __fish_seen_subcommand_from gen-bridge bridge exec ask repl serve init doctor tools completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
