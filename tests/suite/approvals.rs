//! Approvals: a call of a tool a server's `approve` list (or `--approve`)
//! names waits for a person's yes. Asked on a pseudo-terminal as a person
//! would answer, through the Python SDK client's elicitation callback for
//! `serve`, or not at all (`--auto-approve`, no terminal). The news server
//! runs behind `tee`, so its log of every message it received shows whether
//! a refused call ever reached it.

use crate::common;

use std::path::{Path, PathBuf};

use common::{codemode_bin, example_bin, mcp_python, python_client, Workdir};
use serde_json::Value;

/// Calls `news.search` (never needs approval here) and then
/// `news.fetch_latest` `CALLS` times, printing how each went.
const SCRIPT: &str = r#"
import sys
from mcp_tools import news, ToolError
CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
print("search", len(news.search(query="ai")["articles"]) >= 0)
for n in range(CALLS):
    try:
        news.fetch_latest(category="technology", limit=1)
        print("fetched", n)
    except ToolError as e:
        print("refused", n, e.kind)
"#;

/// A workdir whose news server needs approval for `fetch_*` and logs what
/// it receives to `received.log`.
struct Logged {
    work: Workdir,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Logged {
    fn new(backend: &str, approve: &str) -> Logged {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.log");
        let config = format!(
            "[servers.news]\ncommand = \"/bin/sh\"\nargs = [\"-c\", {tee:?}]\napprove = [{approve}]\n\n\
             [sandbox]\nbackend = {backend:?}\nimage = {image:?}\n\n{warm}",
            tee = format!(
                "tee -a '{}' | exec '{}'",
                log.display(),
                example_bin("news-server").display()
            ),
            image = common::docker_image(),
            warm = common::NO_WARM,
        );
        let work = Workdir::with_config(&config);
        std::fs::write(work.path().join("calls.py"), SCRIPT).unwrap();
        Logged {
            work,
            log,
            _dir: dir,
        }
    }

    /// Whether the news server was ever sent a call of `tool`.
    fn received_call_of(&self, tool: &str) -> bool {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().any(|line| {
            let message: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            message["method"] == "tools/call" && message["params"]["name"] == tool
        })
    }
}

/// Runs `codemode ARGS` on a pseudo-terminal (stdin and stderr; stdout to a
/// file, so `--json` stays apart from the question): each step waits for
/// its text, pauses, then types its keys. Prints the exit status, what the
/// terminal showed and what stdout got.
const DRIVER: &str = r#"
import json, os, pty, sys, time
argv, cwd = json.loads(sys.argv[1]), sys.argv[2]
steps = json.loads(sys.argv[3])
out_path = os.path.join(cwd, "stdout.txt")
pid, fd = pty.fork()
if pid == 0:
    os.chdir(cwd)
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.execv(argv[0], argv)
shown = ""
def read():
    global shown
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    shown += chunk.decode("utf-8", "replace")
    return bool(chunk)
for expect, keys, pause in steps:
    deadline = time.time() + 60
    while expect not in shown:
        if time.time() > deadline or not read():
            raise SystemExit("never saw %r in:\n%s" % (expect, shown))
    time.sleep(pause)
    os.write(fd, keys.encode())
    shown = shown.replace(expect, "<" + expect + ">", 1)
while read():
    pass
_, status = os.waitpid(pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "shown": shown,
                  "stdout": open(out_path).read()}))
"#;

struct OnTerminal {
    exit: i32,
    shown: String,
    stdout: String,
}

impl OnTerminal {
    /// The `exec --json` report.
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|_| panic!("no report:\n{}\n{}", self.stdout, self.shown))
    }
}

fn on_terminal(work: &Path, args: &[&str], steps: Value) -> OnTerminal {
    let mut argv = vec![
        codemode_bin().display().to_string(),
        "--config".into(),
        work.join("codemode.toml").display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let output = std::process::Command::new("/usr/bin/python3")
        .args(["-c", DRIVER])
        .arg(serde_json::to_string(&argv).unwrap())
        .arg(work)
        .arg(steps.to_string())
        .env_remove("CODEMODE_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the driver failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    OnTerminal {
        exit: result["exit"].as_i64().unwrap() as i32,
        shown: result["shown"].as_str().unwrap().to_string(),
        stdout: result["stdout"].as_str().unwrap().to_string(),
    }
}

const QUESTION: &str = "Allow this call of news.fetch_latest?";
/// The menu's keys: it opens on "no"; `k` moves up to "yes", `j` down to
/// "yes to this tool for the rest of the run".
const YES: &str = "k\r";
const NO: &str = "\r";
const YES_FOR_RUN: &str = "j\r";

fn approvals_of(report: &Value) -> Vec<String> {
    report["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["tool"].as_str().unwrap(),
                c["approval"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_call_answered_yes_at_the_terminal_is_made() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let run = on_terminal(
        logged.work.path(),
        &["exec", "--json", "calls.py"],
        serde_json::json!([[QUESTION, YES, 0.2]]),
    );
    let report = run.report();
    assert_eq!(run.exit, 0, "{}", run.shown);
    assert_eq!(report["stdout"], "search True\nfetched 0\n");
    assert_eq!(
        approvals_of(&report),
        ["search:not_required", "fetch_latest:approved"]
    );
    assert!(
        run.shown.contains("\"category\": \"technology\""),
        "the question shows the arguments: {}",
        run.shown
    );
    assert!(logged.received_call_of("fetch_latest"));
}

#[test]
fn a_call_answered_no_is_denied_in_the_script_and_never_reaches_the_server() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let run = on_terminal(
        logged.work.path(),
        &["exec", "--json", "calls.py"],
        serde_json::json!([[QUESTION, NO, 0.2]]),
    );
    let report = run.report();
    assert_eq!(run.exit, 0, "{}", run.shown);
    assert_eq!(report["stdout"], "search True\nrefused 0 denied\n");
    assert_eq!(
        approvals_of(&report),
        ["search:not_required", "fetch_latest:denied"]
    );
    assert!(
        logged.received_call_of("search"),
        "the log does record calls"
    );
    assert!(!logged.received_call_of("fetch_latest"));
}

#[test]
fn yes_for_the_run_is_asked_once_for_every_later_call_of_the_tool() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let run = on_terminal(
        logged.work.path(),
        &["exec", "--json", "calls.py", "--", "3"],
        serde_json::json!([[QUESTION, YES_FOR_RUN, 0.2]]),
    );
    let report = run.report();
    assert_eq!(run.exit, 0, "{}", run.shown);
    assert_eq!(
        report["stdout"],
        "search True\nfetched 0\nfetched 1\nfetched 2\n"
    );
    assert_eq!(
        run.shown.matches("the script wants to call").count(),
        1,
        "{}",
        run.shown
    );
    assert_eq!(
        approvals_of(&report),
        [
            "search:not_required",
            "fetch_latest:approved",
            "fetch_latest:approved",
            "fetch_latest:approved"
        ]
    );
}

#[test]
fn ctrl_c_at_the_question_stops_the_run_before_the_call() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let run = on_terminal(
        logged.work.path(),
        &["exec", "calls.py"],
        serde_json::json!([[QUESTION, "\u{3}", 0.2]]),
    );
    assert_eq!(run.exit, 130, "{}", run.shown);
    assert!(!run.stdout.contains("fetched"), "{}", run.stdout);
    assert!(!logged.received_call_of("fetch_latest"));
}

fn waiting_for_a_person_does_not_count_towards_the_time_limit_in(backend: &str) {
    if backend == "docker" && !common::docker_ready() {
        return;
    }
    let logged = Logged::new(backend, "\"fetch_*\"");
    // Answered after 4 s, twice the run's time limit.
    let run = on_terminal(
        logged.work.path(),
        &["exec", "--json", "--timeout", "2s", "calls.py"],
        serde_json::json!([[QUESTION, YES, 4.0]]),
    );
    let report = run.report();
    assert_eq!(run.exit, 0, "{}\n{report}", run.shown);
    assert_eq!(report["timed_out"], false);
    assert_eq!(report["stdout"], "search True\nfetched 0\n");
}

#[test]
fn waiting_for_a_person_does_not_count_towards_the_time_limit_native() {
    waiting_for_a_person_does_not_count_towards_the_time_limit_in("native");
}

#[test]
fn waiting_for_a_person_does_not_count_towards_the_time_limit_docker() {
    waiting_for_a_person_does_not_count_towards_the_time_limit_in("docker");
}

#[test]
fn the_time_limit_still_holds_once_the_question_is_answered() {
    let logged = Logged::new("native", "\"fetch_*\"");
    std::fs::write(
        logged.work.path().join("slow.py"),
        "import time\nfrom mcp_tools import news\nnews.fetch_latest(category='technology', limit=1)\nprint('fetched')\ntime.sleep(30)\n",
    )
    .unwrap();
    let run = on_terminal(
        logged.work.path(),
        &["exec", "--json", "--timeout", "2s", "slow.py"],
        serde_json::json!([[QUESTION, YES, 3.0]]),
    );
    let report = run.report();
    assert_eq!(run.exit, 124, "{}", run.shown);
    assert_eq!(report["timed_out"], true);
    assert_eq!(report["stdout"], "fetched\n");
}

#[test]
fn a_question_left_unanswered_past_approval_timeout_is_denied() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let run = on_terminal(
        logged.work.path(),
        &["exec", "--json", "--approval-timeout", "1s", "calls.py"],
        serde_json::json!([["stopped waiting for an answer", "", 0.0]]),
    );
    let report = run.report();
    assert_eq!(run.exit, 0, "{}", run.shown);
    assert_eq!(report["stdout"], "search True\nrefused 0 denied\n");
    assert_eq!(
        approvals_of(&report),
        ["search:not_required", "fetch_latest:timed_out"]
    );
    assert!(!logged.received_call_of("fetch_latest"));
}

#[test]
fn without_a_terminal_a_call_that_needs_approval_is_refused_at_once() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let output = logged
        .work
        .codemode()
        .args(["exec", "--json", "calls.py"])
        .write_stdin("")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["stdout"], "search True\nrefused 0 denied\n");
    assert_eq!(
        approvals_of(&report),
        ["search:not_required", "fetch_latest:denied"]
    );
    assert!(!logged.received_call_of("fetch_latest"));
    // What to do about it is said to the script, which passes it on.
    let script = "from mcp_tools import news, ToolError\ntry:\n    news.fetch_latest(category='technology', limit=1)\nexcept ToolError as e:\n    print(e)\n";
    std::fs::write(logged.work.path().join("why.py"), script).unwrap();
    let output = logged
        .work
        .codemode()
        .args(["exec", "why.py"])
        .write_stdin("")
        .output()
        .unwrap();
    let said = common::stdout_of(&output);
    assert!(
        said.contains("no terminal") && said.contains("--auto-approve"),
        "{said}"
    );
}

#[test]
fn auto_approve_makes_the_call_and_records_that_nobody_was_asked() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let output = logged
        .work
        .codemode()
        .args(["exec", "--json", "--auto-approve", "calls.py"])
        .write_stdin("")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["stdout"], "search True\nfetched 0\n");
    assert_eq!(
        approvals_of(&report),
        ["search:not_required", "fetch_latest:auto_approved"]
    );
    assert!(logged.received_call_of("fetch_latest"));
}

#[test]
fn the_approve_flag_adds_server_dot_tool_patterns_to_the_config() {
    let logged = Logged::new("native", "");
    let output = logged
        .work
        .codemode()
        .args(["exec", "--json", "--approve", "news.search", "calls.py"])
        .write_stdin("")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["exit_code"], 1,
        "an unhandled denial fails the script: {report}"
    );
    assert!(
        report["stderr"].as_str().unwrap().contains("denied"),
        "{report}"
    );
    assert_eq!(approvals_of(&report), ["search:denied"]);
    assert!(!logged.received_call_of("search"));
}

/// `serve` of `logged`'s config (with `serve_args`) driven by the Python
/// SDK client, whose elicitation callback gives `answers` in turn (none:
/// the client declares no elicitation capability). The structured result
/// of `calls.py` run with `calls` calls, and what was asked.
fn served(
    logged: &Logged,
    serve_args: &[&str],
    answers: Option<Value>,
    calls: u32,
) -> Option<Value> {
    let python = mcp_python()?;
    let mut target = vec![
        "--config".to_string(),
        logged.work.config().display().to_string(),
        "serve".to_string(),
    ];
    target.extend(serve_args.iter().map(|a| a.to_string()));
    let body = format!(
        r#"
from mcp import types
ANSWERS = json.loads({answers:?})
ASKED = []
async def on_elicit(ctx, params):
    ASKED.append({{"message": params.message, "schema": params.requested_schema}})
    action, content = ANSWERS.pop(0)
    return types.ElicitResult(action=action, content=content)
async def main():
    options = {{}} if ANSWERS is None else {{"elicitation_callback": on_elicit}}
    async with client(**options) as c:
        code = open({script:?}).read().replace("CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 1", "CALLS = {calls}")
        r = await c.call_tool("execute_python", {{"code": code}})
        done({{"result": r.structured_content, "text": text(r), "asked": ASKED}})
"#,
        answers = answers.unwrap_or(Value::Null).to_string(),
        script = logged.work.path().join("calls.py").display().to_string(),
    );
    Some(python_client(
        &python,
        &serde_json::to_string(&target).unwrap(),
        &body,
        &[],
    ))
}

fn served_approvals(out: &Value) -> Vec<String> {
    approvals_of(&out["result"])
}

#[test]
fn serve_asks_the_client_and_makes_the_call_it_accepts() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let Some(out) = served(
        &logged,
        &[],
        Some(serde_json::json!([["accept", {"approve": true}]])),
        1,
    ) else {
        return;
    };
    assert_eq!(out["result"]["stdout"], "search True\nfetched 0\n", "{out}");
    assert_eq!(
        served_approvals(&out),
        ["search:not_required", "fetch_latest:approved"]
    );
    let asked = &out["asked"][0];
    assert!(
        asked["message"]
            .as_str()
            .unwrap()
            .contains("news.fetch_latest"),
        "{asked}"
    );
    assert_eq!(
        asked["schema"]["properties"]["approve"]["type"], "boolean",
        "{asked}"
    );
    assert!(logged.received_call_of("fetch_latest"));
}

#[test]
fn serve_asks_once_when_the_client_accepts_for_the_rest_of_the_session() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let answers = serde_json::json!([["accept", {"approve": true, "remember": true}]]);
    let Some(out) = served(&logged, &[], Some(answers), 2) else {
        return;
    };
    assert_eq!(
        out["result"]["stdout"], "search True\nfetched 0\nfetched 1\n",
        "{out}"
    );
    assert_eq!(out["asked"].as_array().unwrap().len(), 1);
    assert_eq!(
        served_approvals(&out),
        [
            "search:not_required",
            "fetch_latest:approved",
            "fetch_latest:approved"
        ]
    );
}

#[test]
fn serve_denies_a_call_the_client_refuses_declines_or_cancels() {
    for answer in [
        serde_json::json!(["accept", {"approve": false}]),
        serde_json::json!(["decline", null]),
        serde_json::json!(["cancel", null]),
    ] {
        let logged = Logged::new("native", "\"fetch_*\"");
        let Some(out) = served(&logged, &[], Some(serde_json::json!([answer])), 1) else {
            return;
        };
        assert_eq!(
            out["result"]["stdout"], "search True\nrefused 0 denied\n",
            "{answer}: {out}"
        );
        assert_eq!(
            served_approvals(&out),
            ["search:not_required", "fetch_latest:denied"]
        );
        assert!(!logged.received_call_of("fetch_latest"), "{answer}");
    }
}

#[test]
fn serve_refuses_the_call_of_a_client_without_elicitation_and_says_how_to_allow_it() {
    let logged = Logged::new("native", "\"fetch_*\"");
    std::fs::write(
        logged.work.path().join("calls.py"),
        "from mcp_tools import news, ToolError\ntry:\n    news.fetch_latest(category='technology', limit=1)\nexcept ToolError as e:\n    print(e.kind, e)\n",
    )
    .unwrap();
    let Some(out) = served(&logged, &[], None, 1) else {
        return;
    };
    let said = out["result"]["stdout"].as_str().unwrap();
    assert!(said.starts_with("denied"), "{out}");
    assert!(
        said.contains("elicitation capability") && said.contains("--auto-approve"),
        "{said}"
    );
    assert!(!logged.received_call_of("fetch_latest"));
}

#[test]
fn serve_with_auto_approve_asks_nobody() {
    let logged = Logged::new("native", "\"fetch_*\"");
    let Some(out) = served(&logged, &["--auto-approve"], Some(serde_json::json!([])), 1) else {
        return;
    };
    assert_eq!(out["result"]["stdout"], "search True\nfetched 0\n", "{out}");
    assert_eq!(out["asked"].as_array().unwrap().len(), 0);
    assert_eq!(
        served_approvals(&out),
        ["search:not_required", "fetch_latest:auto_approved"]
    );
    assert!(
        out["text"].as_str().unwrap().contains("auto-approved"),
        "{out}"
    );
}
