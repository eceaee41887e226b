//! What the model reads: the signature of each step, the tools, and what a
//! script's run did.

use codemode_mcp::catalog::Catalog;
use codemode_mcp::{index, tokens};
use codemode_run::{Options, Report};

use crate::signature::{Field, Signature};
use crate::trace::ModelCall;

/// Bytes of each output stream the model sees; longer output is cut in the
/// middle, with a note saying how much (the start and the end of a traceback
/// are what matter).
const FEEDBACK_BYTES: usize = 6000;

/// The signature when all scripts run in one session.
pub const SESSION_SIGNATURE: Signature = Signature {
    instructions: "Solve the task by writing Python 3 scripts that run in a sandbox, one script per step.\n\
MCP tools are Python functions in the module `mcp_tools` (see `tools`): import them, call them with keyword\n\
arguments, and print what you need. Only what a script prints comes back to you, as the next `observation`.\n\
A failed tool call raises mcp_tools.ToolError. The sandbox has no network but the tools. The scripts run one\n\
after another in one Python session: variables, imports, functions and files from earlier scripts are still\n\
there, so build on what you already have instead of fetching it again.\n\
Each step, give `reasoning`, then EITHER `code` (the complete next script) OR `answer` (the final answer,\n\
once the observations hold what the task asks for), never both; leave the other field empty.\n\
The answer goes to the user as it is: write it for them, from what your scripts printed, and invent nothing.",
    ..SIGNATURE
};

/// The signature when each script starts from scratch (`--fresh`).
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

/// What a run did, for the model: status, tool calls, both streams (cut in
/// the middle when long) and a hint at what to do about a failure.
pub(crate) fn observation(report: &Report, options: &Options) -> String {
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
    out.push_str(&files_note(report));
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

/// The files a run left in /workspace/out/, for the model: they go to the
/// user, so the model should know what they got.
fn files_note(report: &Report) -> String {
    let mut out = String::new();
    if !report.files.is_empty() {
        let files: Vec<String> = report
            .files
            .iter()
            .map(|f| {
                format!(
                    "{} ({}, {})",
                    f.name,
                    f.media_type,
                    codemode_text::human_bytes(f.size)
                )
            })
            .collect();
        out.push_str(&format!(
            "Files produced in /workspace/out/: {}\n",
            files.join(", ")
        ));
    }
    for skipped in &report.files_skipped {
        out.push_str(&format!(
            "Not returned: /workspace/out/{}: {}\n",
            skipped.name, skipped.reason
        ));
    }
    if let Some(error) = &report.files_error {
        out.push_str(&format!("{error}\n"));
    }
    out
}

/// What the task's files are, for the `tools` input.
fn files_text(options: &Options) -> String {
    let mut out = String::new();
    if !options.input_files.is_empty() {
        out.push_str(&format!(
            "\nFiles given for the task, read-only:\n{}\n",
            options.input_files.listing()
        ));
    }
    if options.outputs.is_some() {
        out.push_str(
            "\nFiles a script writes under /workspace/out/ go to the user; each observation lists them.\n",
        );
    }
    out
}

pub fn tool_calls(report: &Report) -> String {
    report
        .tool_calls
        .iter()
        .map(|c| {
            let how = if c.ok {
                "ok".to_string()
            } else {
                format!("failed: {}", c.error.unwrap_or("error"))
            };
            format!(
                "{}.{} ({how}{}, {:.0} ms)",
                c.server,
                c.tool,
                c.approval.note(),
                c.duration_ms
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn token_note(call: &ModelCall) -> String {
    match (call.input_tokens, call.output_tokens) {
        (Some(i), Some(o)) => format!("replied ({i} tokens in, {o} out)"),
        _ => "replied".into(),
    }
}

/// The `tools` input: the whole API while it fits `threshold` tokens, else
/// the index (as `serve` shows it) and how to search.
pub fn tools_text(
    catalog: &Catalog,
    module: &bridge_gen::Module,
    threshold: usize,
    options: &Options,
) -> String {
    let limits = format!(
        "Each script may run for {}; it has no network but the tools.{}",
        humantime::format_duration(options.limits.timeout),
        files_text(options).trim_end()
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
