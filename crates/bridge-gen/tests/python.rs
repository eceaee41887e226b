//! The generated modules under real Python: they compile, import, pass
//! `mypy --strict`, and talk the RPC wire to a (fake) bridge.
//!
//! Python is `$CODEMODE_TEST_PYTHON` or `python3`; mypy is
//! `$CODEMODE_TEST_MYPY`, `mypy` on PATH, or the workspace's `.venv`. When
//! one is missing the check is skipped with a note, except under `CI`,
//! where that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bridge_gen::{generate, ServerTools, ToolSpec};
use common::{
    crate_dir, fixture_stem, fixtures, golden_path, mypy, mypy_strict, python, random_input_schema,
    random_schema, random_text, run_ok, scratch_dir, Rng, HOSTILE_NAMES,
};
use serde_json::json;

/// Copies each golden module into `dir` under an importable name.
fn golden_modules(dir: &Path) -> Vec<(String, PathBuf)> {
    fixtures()
        .iter()
        .map(|fixture| {
            let module = format!("golden_{}", fixture_stem(fixture).replace(['-', '.'], "_"));
            let path = dir.join(format!("{module}.py"));
            let text = std::fs::read_to_string(golden_path(fixture))
                .unwrap_or_else(|_| panic!("no golden for {}", fixture.display()));
            std::fs::write(&path, text).expect("write module");
            (module, path)
        })
        .collect()
}

fn python_command(python: &str, dir: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONPATH", crate_dir().join("tests/python"))
        .env_remove("CODEMODE_BRIDGE_URL")
        .env_remove("CODEMODE_BRIDGE_TOKEN")
        .env_remove("CODEMODE_BRIDGE_TIMEOUT");
    command
}

/// py_compile, then import (which evaluates every hint and builds every
/// TypedDict, things compiling alone does not check).
fn compile_and_import(python: &str, dir: &Path, modules: &[(String, PathBuf)]) {
    for (_, path) in modules {
        run_ok(
            python_command(python, dir)
                .args(["-m", "py_compile"])
                .arg(path),
            &format!("py_compile {}", path.display()),
        );
    }
    let names: Vec<String> = modules.iter().map(|(m, _)| format!("{m:?}")).collect();
    let script = format!(
        "import importlib\nfor name in [{}]:\n    importlib.import_module(name)\n",
        names.join(", ")
    );
    run_ok(python_command(python, dir).args(["-c", &script]), "import");
}

#[test]
fn every_golden_module_compiles_and_imports() {
    let Some(python) = python() else { return };
    let dir = scratch_dir("golden-compile");
    compile_and_import(&python, &dir, &golden_modules(&dir));
}

#[test]
fn every_golden_module_passes_mypy_strict() {
    let Some(mypy) = mypy() else { return };
    let dir = scratch_dir("golden-mypy");
    let files: Vec<PathBuf> = golden_modules(&dir).into_iter().map(|(_, p)| p).collect();
    mypy_strict(&mypy, &dir, &files);
}

/// Three modules of a hundred tools each, from reproducible random schemas.
fn random_modules() -> Vec<String> {
    let mut rng = Rng::new(0xc0de_0de5);
    (0..3)
        .map(|_| {
            let servers: Vec<ServerTools> = (0..4)
                .map(|s| ServerTools {
                    name: format!("{}{s}", rng.pick(HOSTILE_NAMES)),
                    tools: (0..25)
                        .map(|t| {
                            let output = match rng.below(3) {
                                0 => None,
                                1 => Some(random_schema(&mut rng, 3)),
                                _ => Some(json!({
                                    "type": "object",
                                    "properties": {"result": random_schema(&mut rng, 3)},
                                    "x-fastmcp-wrap-result": true,
                                })),
                            };
                            ToolSpec {
                                name: format!("{}{}", rng.pick(HOSTILE_NAMES), t % 7),
                                description: Some(random_text(&mut rng)),
                                input_schema: random_input_schema(&mut rng),
                                output_schema: output,
                            }
                        })
                        .collect(),
                })
                .collect();
            generate(&servers)
        })
        .collect()
}

#[test]
fn random_schemas_give_modules_that_compile_import_and_type_check() {
    let Some(python) = python() else { return };
    let dir = scratch_dir("random");
    let modules: Vec<(String, PathBuf)> = random_modules()
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let name = format!("random_{i}");
            let path = dir.join(format!("{name}.py"));
            std::fs::write(&path, text).expect("write module");
            (name, path)
        })
        .collect();
    compile_and_import(&python, &dir, &modules);
    if let Some(mypy) = mypy() {
        let files: Vec<PathBuf> = modules.into_iter().map(|(_, p)| p).collect();
        mypy_strict(&mypy, &dir, &files);
    }
}

// ---------------------------------------------------------------- runtime

/// A server with awkward names, so the wire must carry the originals.
fn runtime_servers() -> Vec<ServerTools> {
    let no_params = |name: &str| json!({"name": name, "inputSchema": {"type": "object"}});
    serde_json::from_value(json!([{
        "name": "news-api",
        "tools": [
            {
                "name": "fetch-latest",
                "description": "Fetch the latest news.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string"},
                        "limit": {"type": "integer", "default": 5},
                        "from": {"type": "string"},
                    },
                    "required": ["category"],
                },
            },
            {
                "name": "open",
                "inputSchema": {"type": "object", "additionalProperties": true},
            },
            no_params("fail"),
            no_params("garbage"),
            no_params("slow"),
            no_params("then_close"),
        ],
    }]))
    .expect("servers")
}

/// Runs `script` with the runtime fixture's module importable as
/// `mcp_tools` and the fake bridge as `fake_bridge`; the script ends by
/// printing OK.
fn run_script(test: &str, script: &str) {
    let Some(python) = python() else { return };
    let dir = scratch_dir(test);
    std::fs::write(dir.join("mcp_tools.py"), generate(&runtime_servers())).expect("write");
    let output = run_ok(python_command(&python, &dir).args(["-c", script]), test);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.trim_end().ends_with("OK"),
        "{test} printed: {stdout}"
    );
}

#[test]
fn a_call_sends_original_names_and_leaves_out_none_optionals() {
    run_script(
        "wire",
        r#"
import fake_bridge
fake_bridge.start()
from mcp_tools import news_api

result = news_api.fetch_latest("tech", from_="2024-01-01")
assert result == {"echo": {"category": "tech", "from": "2024-01-01"}}, result
request = fake_bridge.REQUESTS[-1]
assert request["path"] == "/rpc", request
assert request["body"] == {
    "server": "news-api",
    "tool": "fetch-latest",
    "arguments": {"category": "tech", "from": "2024-01-01"},
}, request
assert request["headers"]["Authorization"] == "Bearer secret-token", request
assert request["headers"]["Content-Type"] == "application/json", request
print("OK")
"#,
    );
}

#[test]
fn both_import_styles_reach_the_same_server_object() {
    run_script(
        "imports",
        r#"
import mcp_tools
from mcp_tools import news_api, call, ToolError, BridgeError
assert mcp_tools.news_api is news_api
assert issubclass(BridgeError, ToolError)
assert set(mcp_tools.__all__) >= {"news_api", "call", "ToolError"}, mcp_tools.__all__
assert "Fetch the latest news." in (news_api.fetch_latest.__doc__ or "")
star = {}
exec("from mcp_tools import *", star)
assert star["news_api"] is news_api and star["call"] is call, sorted(star)
print("OK")
"#,
    );
}

#[test]
fn an_error_answer_raises_tool_error_with_kind_and_message() {
    run_script(
        "error",
        r#"
import fake_bridge
fake_bridge.start()
from mcp_tools import news_api, ToolError, BridgeError
try:
    news_api.fail()
except BridgeError:
    raise AssertionError("a tool's own failure is not a transport problem")
except ToolError as e:
    assert e.kind == "tool_error", e.kind
    assert e.message == "upstream exploded", e.message
    assert (e.server, e.tool) == ("news-api", "fail"), (e.server, e.tool)
    assert "upstream exploded" in str(e)
else:
    raise AssertionError("no ToolError")
print("OK")
"#,
    );
}

#[test]
fn tool_errors_survive_pickling() {
    run_script(
        "pickle",
        r#"
import pickle
from mcp_tools import ToolError
e = pickle.loads(pickle.dumps(ToolError("timeout", "too slow", "s", "t")))
assert (e.kind, e.message, e.server, e.tool) == ("timeout", "too slow", "s", "t")
print("OK")
"#,
    );
}

#[test]
fn a_body_that_is_not_json_raises_bad_response() {
    run_script(
        "garbage",
        r#"
import fake_bridge
fake_bridge.start()
from mcp_tools import news_api, BridgeError
try:
    news_api.garbage()
except BridgeError as e:
    assert e.kind == "bad_response", e.kind
    assert "oops" in e.message, e.message
else:
    raise AssertionError("no BridgeError")
print("OK")
"#,
    );
}

#[test]
fn an_unreachable_bridge_names_codemode_bridge_url() {
    run_script(
        "unreachable",
        r#"
import os
from mcp_tools import news_api, ToolError
for url in [None, "unix:///nonexistent/dir/bridge.sock", "http://127.0.0.1:9", "ftp://x"]:
    if url is None:
        os.environ.pop("CODEMODE_BRIDGE_URL", None)
    else:
        os.environ["CODEMODE_BRIDGE_URL"] = url
    try:
        news_api.fetch_latest("tech")
    except ToolError as e:
        assert e.kind == "bridge_unavailable", (url, e.kind)
        assert "CODEMODE_BRIDGE_URL" in str(e), (url, str(e))
    else:
        raise AssertionError(f"no error for {url}")
print("OK")
"#,
    );
}

#[test]
fn calls_reuse_one_connection_and_reconnect_after_the_bridge_closes_it() {
    run_script(
        "keepalive",
        r#"
import time
import fake_bridge
fake_bridge.start()
from mcp_tools import news_api
news_api.fetch_latest("a")
news_api.fetch_latest("b")
assert len(fake_bridge.CONNECTIONS) == 1, fake_bridge.CONNECTIONS
news_api.then_close()
time.sleep(0.2)
assert news_api.fetch_latest("c") == {"echo": {"category": "c"}}
assert len(fake_bridge.CONNECTIONS) == 2, fake_bridge.CONNECTIONS
print("OK")
"#,
    );
}

#[test]
fn http_urls_work_and_a_connection_the_bridge_closed_is_replaced() {
    run_script(
        "tcp",
        r#"
import time
import fake_bridge
fake_bridge.start(tcp=True)
import mcp_tools
from mcp_tools import news_api
assert news_api.fetch_latest("a") == {"echo": {"category": "a"}}
news_api.then_close()
time.sleep(0.2)
# A write to a closed TCP peer may well succeed and the request be lost on
# the way, so the stale connection must be noticed before anything is sent.
assert mcp_tools._state.conn is not None
assert not mcp_tools._is_idle(mcp_tools._state.conn)
assert news_api.fetch_latest("b") == {"echo": {"category": "b"}}
assert len(fake_bridge.CONNECTIONS) == 2, fake_bridge.CONNECTIONS
assert fake_bridge.REQUESTS[-1]["path"] == "/rpc"
print("OK")
"#,
    );
}

#[test]
fn a_slow_bridge_times_out_after_codemode_bridge_timeout() {
    run_script(
        "timeout",
        r#"
import os
import fake_bridge
fake_bridge.start()
os.environ["CODEMODE_BRIDGE_TIMEOUT"] = "0.3"
from mcp_tools import news_api, ToolError
try:
    news_api.slow()
except ToolError as e:
    assert e.kind == "timeout", e.kind
    assert "CODEMODE_BRIDGE_TIMEOUT" in e.message, e.message
else:
    raise AssertionError("no timeout")
print("OK")
"#,
    );
}

#[test]
fn generic_call_and_free_form_arguments_pass_values_as_given() {
    run_script(
        "generic",
        r#"
import fake_bridge
fake_bridge.start()
import mcp_tools
r = mcp_tools.call("news-api", "fetch-latest", category="x", limit=None)
assert r == {"echo": {"category": "x", "limit": None}}, r
r = mcp_tools.call("news-api", "open", server="s", tool="t")
assert r == {"echo": {"server": "s", "tool": "t"}}, r
r = mcp_tools.news_api.open(anything=[1, 2], **{"my-key": True})
assert r == {"echo": {"anything": [1, 2], "my-key": True}}, r
print("OK")
"#,
    );
}

#[test]
fn arguments_that_are_not_json_raise_invalid_arguments_before_sending() {
    run_script(
        "invalid",
        r#"
import fake_bridge
fake_bridge.start()
from mcp_tools import news_api, ToolError
try:
    news_api.fetch_latest(object())  # type: ignore
except ToolError as e:
    assert e.kind == "invalid_arguments", e.kind
else:
    raise AssertionError("no ToolError")
assert fake_bridge.REQUESTS == [], fake_bridge.REQUESTS
print("OK")
"#,
    );
}

#[test]
fn hostile_descriptions_reach_the_docstring_intact() {
    let Some(python) = python() else { return };
    let fixture = crate_dir().join("tests/fixtures/hostile.json");
    let dir = scratch_dir("docstrings");
    std::fs::write(
        dir.join("mcp_tools.py"),
        generate(&common::load_fixture(&fixture)),
    )
    .expect("write");
    let script = r#"
import mcp_tools
doc = mcp_tools.hostile.huge_doc.__doc__
for piece in [
    'Do """this""" and \'\'\'that\'\'\'.',
    "Backslashes: \\ \\n \\x00 \\N{BULLET} \\u1234 end\\\n",
    "Real NUL: \x00, bell: \x07",
    "Line separator:\u2028paragraph",
    "Bidi override: \u202eevil\u202c",
    "Emoji \U0001f389 CJK",
    'Ends with quotes and a backslash: """\\',
    'Param doc with """triple""" quotes',
]:
    assert piece in doc, piece
print("OK")
"#;
    let output = run_ok(
        python_command(&python, &dir).args(["-c", script]),
        "docstrings",
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK"));
}
