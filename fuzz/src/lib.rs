//! What each fuzz target checks, as plain functions of the input bytes.
//!
//! The libFuzzer targets in `fuzz_targets/` are one line each around these, and
//! `tests/suite/fuzz_regressions.rs` in the main package replays the kept corpus and
//! every crash input through the same functions on stable Rust, so a bug found
//! once stays found. A check panics when the property it guards is broken.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use codemode_config::{Config, ToolFilter};
use codemode_mcp::bridge::{self, Bridge, ErrorKind, GrantSpec, RequestLimits};
use codemode_mcp::Registry;
use serde_json::Value;
use tower::ServiceExt;

/// The `/rpc` body parser never panics, and it accepts only what the wire
/// contract describes: a JSON object with string `server` and `tool`, and
/// `arguments` an object, null or absent.
pub fn rpc_request(data: &[u8]) {
    let as_json: Option<Value> = serde_json::from_slice(data).ok();
    match bridge::parse_request(data) {
        Ok((request, arguments)) => {
            let value = as_json.expect("a request was accepted that is not JSON");
            assert_eq!(value["server"].as_str(), Some(request.server.as_str()));
            assert_eq!(value["tool"].as_str(), Some(request.tool.as_str()));
            match value.get("arguments") {
                None | Some(Value::Null) => assert!(arguments.is_empty()),
                Some(Value::Object(map)) => assert_eq!(map, &arguments),
                Some(other) => panic!("accepted non-object arguments {other}"),
            }
        }
        Err(err) => {
            assert!(
                matches!(
                    err.kind,
                    ErrorKind::BadRequest | ErrorKind::InvalidArguments
                ),
                "a parse error of kind {:?}",
                err.kind
            );
            assert_one_line(&err.message);
            if err.kind == ErrorKind::InvalidArguments {
                let arguments = as_json.as_ref().and_then(|v| v.get("arguments"));
                assert!(
                    arguments.is_some_and(|a| !a.is_object() && !a.is_null()),
                    "invalid_arguments for a body whose arguments are fine"
                );
            }
        }
    }
}

/// The whole `/rpc` handler, against real (small, local) MCP servers: whatever
/// the body and the `Authorization` header, the answer follows the wire
/// contract: `200 {"success": true, "result": ...}`, or the status of its kind
/// with `{"success": false, "error": {"kind", "message"}}` and a one-line message.
///
/// The first byte picks the header (good token, wrong token, no header) and the
/// grant's allowlist; the rest is the body.
pub fn rpc_handler(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let harness = Harness::get();
    harness.runtime.block_on(async {
        let token = "fuzz-token-0123456789abcdef";
        let allow: &[String] = if selector & 0b100 != 0 {
            &harness.tickets_only
        } else {
            &[]
        };
        let _grant = harness.bridge.grant_token(
            token.into(),
            GrantSpec {
                calls_per_second: 0.0,
                ..GrantSpec::new(harness.filter.clone().narrowed(allow))
            },
        );
        let mut request = http::Request::post("/rpc").header("content-type", "application/json");
        request = match selector & 0b11 {
            0 | 1 => request.header("authorization", format!("Bearer {token}")),
            2 => request.header("authorization", "Bearer not-the-token"),
            _ => request,
        };
        let request = request
            .body(Body::from(body.to_vec()))
            .expect("a request from bytes");
        let response = harness
            .bridge
            .router()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the whole response body");
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("a response that is not JSON ({e}): {bytes:?}"));
        match value["success"] {
            Value::Bool(true) => {
                assert_eq!(status, 200);
                assert!(value.get("result").is_some(), "success without a result");
                assert!(selector & 0b11 < 2, "a call succeeded without the token");
            }
            Value::Bool(false) => {
                let kind = value["error"]["kind"].as_str().expect("an error kind");
                let kind = ErrorKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == kind)
                    .unwrap_or_else(|| panic!("an error kind outside the contract: {kind}"));
                assert_eq!(status, kind.status(), "the status of `{}`", kind.as_str());
                let message = value["error"]["message"].as_str().expect("a message");
                assert!(!message.is_empty());
                // A tool's own error text is passed on as written; every
                // message codemode writes is one line.
                if kind != ErrorKind::ToolError {
                    assert_one_line(message);
                }
                if selector & 0b11 >= 2 {
                    assert_eq!(kind, ErrorKind::Unauthorized);
                }
            }
            _ => panic!("a response without `success`: {value}"),
        }
    });
}

/// The config parser never panics, every error it gives starts with the
/// file's path, and a config it accepts resolves each server or fails with an
/// error that names the server.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/codemode.toml");
    let lookup = |name: &str| (name == "SET").then(|| "value".to_string());
    match Config::parse(text, path) {
        // Messages may quote the file over several lines; the one place that
        // reports errors folds them, so only where they point is checked here.
        Err(err) => {
            let message = err.to_string();
            assert!(message.starts_with("/fuzz/codemode.toml"), "{message}");
        }
        Ok(config) => {
            for (name, server) in &config.servers {
                if let Err(err) = server.resolve(name, &config.base_dir(), &lookup) {
                    assert!(err.to_string().contains(name.as_str()), "{err}");
                }
            }
        }
    }
    if let Err(var) = codemode_config::expand(text, &lookup) {
        assert!(
            text.contains(&var),
            "an unset variable not in the text: {var}"
        );
    }
}

/// JSON-Schema → Python: whatever the schemas, the module generated from them
/// compiles, and generating it twice gives the same text.
///
/// The input is JSON: an array of tool objects as `tools/list` gives them, or
/// any other value, used as both the input and the output schema of one tool.
pub fn schema_to_python(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let tools = match &value {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| serde_json::from_value(item.clone()).ok())
            .collect(),
        other => vec![bridge_gen::ToolSpec {
            name: "fuzzed".into(),
            description: other
                .get("description")
                .and_then(|d| d.as_str())
                .map(Into::into),
            input_schema: other.clone(),
            output_schema: Some(other.clone()),
        }],
    };
    let servers = [bridge_gen::ServerTools {
        name: "fuzz-server".into(),
        tools,
    }];
    let module = bridge_gen::generate(&servers);
    assert_eq!(module, bridge_gen::generate(&servers), "not deterministic");
    if let Err(error) = Compiler::get().compile(&module) {
        panic!("the generated module does not compile: {error}\n{module}");
    }
}

fn assert_one_line(message: &str) {
    assert!(
        !message.contains(['\n', '\r']),
        "a message over several lines: {message:?}"
    );
}

/// The interpreter the checks use: `$CODEMODE_TEST_PYTHON` (the project's venv
/// in CI) or `python3`.
fn python() -> String {
    std::env::var("CODEMODE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The repository, whether this file is built as the fuzz crate (`fuzz/`) or
/// included by the main package's regression test.
fn repo_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    match env!("CARGO_PKG_NAME") {
        "codemode-fuzz" => dir.parent().expect("fuzz/ sits in the repository"),
        _ => dir,
    }
    .to_path_buf()
}

/// One runtime and one bridge for the whole fuzzing process: servers start
/// once, as they would in a long-running bridge, and every input is one request.
struct Harness {
    runtime: tokio::runtime::Runtime,
    bridge: Bridge,
    filter: ToolFilter,
    tickets_only: Vec<String>,
}

impl Harness {
    fn get() -> &'static Harness {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(|| {
            let fixtures = repo_root().join("tests/fixtures");
            let toml = format!(
                "[servers.tickets]\ncommand = {python:?}\nargs = [{many:?}, \"4\"]\n\
                 [servers.faulty]\ncommand = {python:?}\nargs = [{faulty:?}, \"error-call\"]\n\
                 call_timeout = \"5s\"\n",
                python = python(),
                many = fixtures.join("many_tools_server.py"),
                faulty = fixtures.join("misbehaving_server.py"),
            );
            let config = Config::parse(&toml, Path::new("/fuzz/codemode.toml"))
                .expect("the harness config parses");
            let servers: Vec<_> = config
                .servers
                .iter()
                .map(|(name, server)| {
                    server
                        .resolve(name, &config.base_dir(), &|_| None)
                        .expect("the harness servers resolve")
                })
                .collect();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            let _entered = runtime.enter();
            let filter = ToolFilter::new(&servers);
            let bridge = Bridge::new(
                std::sync::Arc::new(Registry::new(servers)),
                RequestLimits::default(),
            );
            Harness {
                runtime,
                bridge,
                filter,
                tickets_only: vec!["tickets.*".to_string()],
            }
        })
    }
}

/// A long-lived Python process that compiles whatever source it is sent, so
/// that checking a module costs a pipe round trip, not an interpreter start.
/// `compile()` is the check `python3 -m py_compile` makes, without the `.pyc`.
struct Compiler {
    io: Mutex<(ChildStdin, BufReader<ChildStdout>, Child)>,
}

const COMPILE_LOOP: &str = r#"
import sys
source, answer = sys.stdin.buffer, sys.stdout
while True:
    header = source.readline()
    if not header:
        break
    text = source.read(int(header))
    try:
        compile(text, "mcp_tools.py", "exec")
        answer.write("ok\n")
    except Exception as error:
        answer.write(repr(error).replace("\n", " ") + "\n")
    answer.flush()
"#;

impl Compiler {
    fn get() -> &'static Compiler {
        static COMPILER: OnceLock<Compiler> = OnceLock::new();
        COMPILER.get_or_init(|| {
            let mut child = Command::new(python())
                .args(["-c", COMPILE_LOOP])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 for the compile check");
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
            Compiler {
                io: Mutex::new((stdin, stdout, child)),
            }
        })
    }

    fn compile(&self, source: &str) -> Result<(), String> {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let (stdin, stdout, _) = &mut *io;
        write!(stdin, "{}\n{source}", source.len())
            .and_then(|()| stdin.flush())
            .expect("the compile process takes input");
        let mut answer = String::new();
        stdout
            .read_line(&mut answer)
            .expect("the compile process answers");
        match answer.trim_end() {
            "ok" => Ok(()),
            "" => panic!("the compile process died"),
            error => Err(error.to_string()),
        }
    }
}

/// Reads every file under `dir` (none if it does not exist), sorted by name,
/// for replaying a corpus; dotfiles (a `.gitkeep`) are not inputs.
pub fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let mut bytes = Vec::new();
            std::fs::File::open(&p)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}
