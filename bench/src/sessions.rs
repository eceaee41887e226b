//! `codemode-bench sessions`: what a call to `execute_python` costs in a new
//! session (a cold sandbox) against a cell in a live one, over stdio with an
//! MCP client, per backend; and the memory an idle session holds.

use std::path::Path;
use std::time::Instant;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::scenario::Demo;
use crate::soak::{tree, vm_rss};
use crate::stats::{percentile, round, utc_now};
use crate::Failure;

/// The two kinds of code measured: the bare cost of a cell, and one tool call.
const PRINT: &str = "print(1)";
const CALL: &str =
    "from mcp_tools import news\nprint(len(news.get_article(id='tech-001')['body']) > 0)";
/// Sessions opened to weigh an idle one.
const IDLE_SESSIONS: usize = 4;
/// serve's default pool of sessions started ahead.
const WARM: usize = 2;

pub struct Figures {
    date: String,
    cores: usize,
    backends: Vec<Backend>,
}

struct Backend {
    name: String,
    /// (what, client round trip ms sorted, report duration_ms sorted)
    rows: Vec<(String, Vec<f64>, Vec<f64>)>,
    idle_session_mb: f64,
}

type Client = RunningService<RoleClient, ()>;

#[derive(Clone, Copy, PartialEq)]
enum Route {
    Live,
    Pool,
    Cold,
}

pub fn run(codemode: &Path, quick: bool) -> Result<Figures, Failure> {
    let bins = codemode.parent().unwrap_or(Path::new("."));
    let demo = Demo::new(bins)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Run(format!("cannot start the async runtime: {e}")))?;
    let calls = if quick { 5 } else { 50 };
    let mut backends = Vec::new();
    let image = std::env::var("CODEMODE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "codemode-python:bookworm".into());
    let docker = std::process::Command::new("docker")
        .args(["image", "inspect", &image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    for backend in ["native", "docker"] {
        if backend == "docker" && !docker {
            eprintln!("sessions: no Docker engine with {image}: docker skipped");
            continue;
        }
        let config = demo.dir.path().join(format!("sessions-{backend}.toml"));
        let text = std::fs::read_to_string(&demo.config)
            .map_err(|e| Failure::Setup(format!("config: {e}")))?;
        std::fs::write(
            &config,
            format!(
                // The demo's config ends in its `[sandbox]` table.
                "{text}backend = {backend:?}\nimage = {image:?}\n\n[serve]\nsessions = {}\nwarm = 0\n",
                // None ended to make room while measured.
                IDLE_SESSIONS + 4 * calls + 2
            ),
        )
        .map_err(|e| Failure::Setup(format!("config: {e}")))?;
        let pooled = demo
            .dir
            .path()
            .join(format!("sessions-{backend}-pooled.toml"));
        let text =
            std::fs::read_to_string(&config).map_err(|e| Failure::Setup(format!("config: {e}")))?;
        std::fs::write(&pooled, text.replace("warm = 0", &format!("warm = {WARM}")))
            .map_err(|e| Failure::Setup(format!("config: {e}")))?;
        eprintln!("sessions: codemode serve --sandbox {backend} over stdio, {calls} calls a path");
        let mut measured = runtime.block_on(measure(codemode, &config, backend, calls, false))?;
        let from_pool = runtime.block_on(measure(codemode, &pooled, backend, calls, true))?;
        measured.rows.splice(2..2, from_pool.rows);
        backends.push(measured);
    }
    Ok(Figures {
        date: utc_now(),
        cores: crate::cores(),
        backends,
    })
}

/// The rows of one serve: with a pool of warm sessions (`pooled`), new
/// sessions from it; without, cells of a live session and cold sessions.
async fn measure(
    codemode: &Path,
    config: &Path,
    name: &str,
    calls: usize,
    pooled: bool,
) -> Result<Backend, Failure> {
    let mut command = Command::new(codemode);
    command
        .arg("--config")
        .arg(config)
        .args(["--quiet", "serve"])
        .env_remove("CODEMODE_LOG");
    let transport = TokioChildProcess::new(command)
        .map_err(|e| Failure::Run(format!("cannot start serve: {e}")))?;
    let serve_pid = transport.id();
    let client: Client = ()
        .serve(transport)
        .await
        .map_err(|e| Failure::Run(format!("MCP initialize failed: {e}")))?;
    // Warm: the servers started, the tokenizer loaded, the image cached.
    let warm = call(&client, CALL, None).await?;
    let session = warm
        .2
        .clone()
        .ok_or_else(|| Failure::Run("the warm-up result has no session".into()))?;

    let mut rows = Vec::new();
    for (what, code, route) in [
        ("live session, print(1)", PRINT, Route::Live),
        ("live session, 1 tool call", CALL, Route::Live),
        ("new session from the pool, print(1)", PRINT, Route::Pool),
        ("new session from the pool, 1 tool call", CALL, Route::Pool),
        ("new session, cold, print(1)", PRINT, Route::Cold),
        ("new session, cold, 1 tool call", CALL, Route::Cold),
    ] {
        // The pooled serve measures the pool; the other one the rest.
        if (route == Route::Pool) != pooled {
            continue;
        }
        let (mut trips, mut durations) = (Vec::new(), Vec::new());
        // Each call from the pool waits for its refill: fewer of them.
        let count = if route == Route::Pool {
            calls.min(20)
        } else {
            calls
        };
        for _ in 0..count {
            let id = (route == Route::Live).then_some(session.as_str());
            if route == Route::Pool {
                // The pool refills in the background: given the time to.
                tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
            }
            let (trip, duration, _) = call(&client, code, id).await?;
            trips.push(trip);
            durations.push(duration);
        }
        trips.sort_by(f64::total_cmp);
        durations.sort_by(f64::total_cmp);
        rows.push((what.to_string(), trips, durations));
    }

    if pooled {
        let _ = client.cancel().await;
        return Ok(Backend {
            name: name.to_string(),
            rows,
            idle_session_mb: 0.0,
        });
    }
    // A container's processes are the engine's children, not serve's:
    // weighed for the native sandbox only.
    let before = tree_kb(serve_pid);
    for _ in 0..IDLE_SESSIONS {
        call(&client, "x = 1\nprint(x)", None).await?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = tree_kb(serve_pid);
    let idle_session_mb = if name == "native" {
        after.saturating_sub(before) as f64 / 1024.0 / IDLE_SESSIONS as f64
    } else {
        0.0
    };
    let _ = client.cancel().await;
    Ok(Backend {
        name: name.to_string(),
        rows,
        idle_session_mb,
    })
}

fn tree_kb(pid: Option<u32>) -> u64 {
    pid.map_or(0, |pid| tree(pid).iter().map(|&(p, _)| vm_rss(p)).sum())
}

/// One execute_python: the client's round trip (ms), the report's
/// `duration_ms`, and the session it ran in.
async fn call(
    client: &Client,
    code: &str,
    session: Option<&str>,
) -> Result<(f64, f64, Option<String>), Failure> {
    let mut arguments = serde_json::Map::new();
    arguments.insert("code".into(), Value::String(code.into()));
    if let Some(id) = session {
        arguments.insert("session".into(), Value::String(id.into()));
    }
    let request = CallToolRequestParams::new("execute_python").with_arguments(arguments);
    let started = Instant::now();
    let result = client
        .call_tool(request)
        .await
        .map_err(|e| Failure::Run(format!("execute_python failed: {e}")))?;
    let trip = started.elapsed().as_secs_f64() * 1000.0;
    let text = format!("{:?}", result.content);
    let report = result.structured_content.unwrap_or(Value::Null);
    if report["success"] != true {
        return Err(Failure::Run(format!(
            "execute_python did not succeed: {report} {text}"
        )));
    }
    Ok((
        trip,
        report["duration_ms"].as_f64().unwrap_or(0.0),
        report["session"].as_str().map(String::from),
    ))
}

pub fn table(f: &Figures) -> String {
    let mut out = format!(
        "\nsessions: execute_python over stdio (rmcp client), {} cores, {}\n",
        f.cores, f.date
    );
    for backend in &f.backends {
        out += &format!(
            "\n{:<40} {:>10} {:>10} {:>12} {:>12}\n",
            backend.name, "trip p50", "trip p99", "duration p50", "duration p99"
        );
        for (what, trips, durations) in &backend.rows {
            out += &format!(
                "{what:<40} {:>8.1}ms {:>8.1}ms {:>10.1}ms {:>10.1}ms\n",
                percentile(trips, 0.5),
                percentile(trips, 0.99),
                percentile(durations, 0.5),
                percentile(durations, 0.99)
            );
        }
        let per = backend.idle_session_mb;
        if per > 0.0 {
            out += &format!(
                "an idle session: {per:.1} MB resident ({:.0} in 1 GiB)\n",
                1024.0 / per
            );
        }
    }
    out
}

pub fn json(f: &Figures) -> Value {
    json!({
        "date": f.date,
        "cores": f.cores,
        "backends": f.backends.iter().map(|b| json!({
            "backend": b.name,
            "idle_session_mb": round(b.idle_session_mb),
            "paths": b.rows.iter().map(|(what, trips, durations)| json!({
                "what": what,
                "trip_ms": {"p50": round(percentile(trips, 0.5)), "p99": round(percentile(trips, 0.99))},
                "duration_ms": {"p50": round(percentile(durations, 0.5)), "p99": round(percentile(durations, 0.99))},
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
