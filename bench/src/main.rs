//! `codemode-bench bridge`: what a tool call costs through the codemode bridge,
//! measured in one run against its baselines (a direct MCP client, and a new
//! MCP session per call), so every figure printed is comparable with the others.

mod exec;
mod genbridge;
mod http;
mod memory;
mod process;
mod report;
mod scenario;
mod sessions;
mod soak;
mod stats;
mod tokens;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

use process::{Bridge, TempDir};
use stats::{micros, Summary};

const USAGE: &str =
    "usage: codemode-bench (bridge|exec|tokens|scenario|gen-bridge|memory|sessions|soak|all) [--quick] [--json FILE]

bridge: tool calls through `codemode bridge` against a direct MCP client and
        against a new MCP session per call.
exec:   a hello-world `codemode exec` in the native and Docker sandboxes
        against bare `python3 -c` and bare `docker run --rm`.
tokens: what a model reads in classic tool calling against code mode
        (o200k_base), for the examples and 10, 100, 1,000 generated tools.
scenario: examples/news_summary.py end to end with `codemode exec`, against
        the same script on a long-running bridge.
gen-bridge: `codemode gen-bridge` for 10 servers of 100 tools each.
memory: peak RSS of the bridge idle and under load, and of one exec.
sessions: execute_python in a new session against a cell of a live one, per
        backend, over stdio; the memory of an idle session.
soak:   16 MCP clients running checked scripts through one `codemode serve
        --http`; fails on an error, a wrong output or a process or fd leak.
all:    every benchmark above; --json writes one file with every figure.
Needs the release binaries:
  cargo build --release --workspace
  cargo run --release -p codemode-bench -- bridge";

const PYTHON: &str = "/usr/bin/python3";
const PYTHON_LOAD: &str = include_str!("python_load.py");
const ARTICLE: &str = "tech-001";

/// How much to measure. The defaults give medians that move by a few percent
/// between runs; `--quick` only proves that every path still works.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    /// Calls per path (direct, bridge from Rust) after the warm-up.
    pub calls: usize,
    /// The direct and bridge calls alternate in this many blocks, so a drift
    /// of the machine (frequency, other load) touches both alike.
    pub rounds: usize,
    pub warmup: usize,
    pub python_latency_calls: usize,
    pub calls_per_worker: usize,
    /// Runs of each throughput configuration; the median is reported.
    pub repeats: usize,
    pub naive_runs: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                calls: 300,
                rounds: 3,
                warmup: 30,
                python_latency_calls: 300,
                calls_per_worker: 40,
                repeats: 1,
                naive_runs: 5,
            }
        } else {
            Plan {
                quick,
                calls: 10_000,
                rounds: 20,
                warmup: 200,
                python_latency_calls: 5000,
                calls_per_worker: 500,
                repeats: 5,
                naive_runs: 20,
            }
        }
    }
}

pub const THREAD_COUNTS: [usize; 3] = [1, 8, 32];
pub const PROCESS_COUNTS: [usize; 2] = [8, 32];

/// Everything one run measured; `report` turns it into the table and the JSON.
pub struct Results {
    pub plan: Plan,
    pub date: String,
    pub cores: usize,
    pub cpu: String,
    pub direct: Summary,
    pub bridge: Summary,
    pub python_version: String,
    pub python: Summary,
    /// (workers, calls/s of each run)
    pub threads: Vec<(usize, Vec<f64>)>,
    pub processes: Vec<(usize, Vec<f64>)>,
    /// From Python inside `codemode exec --sandbox native`, through the
    /// run's own bridge.
    pub sandboxed: Summary,
    pub naive: Summary,
}

enum Failure {
    /// Bad arguments or a missing prerequisite: exit 2.
    Setup(String),
    Run(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Run(message)
    }
}

struct Args {
    bench: &'static str,
    quick: bool,
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|args| {
        let json = if args.bench == "all" {
            let mut all = serde_json::Map::new();
            for (i, bench) in BENCHES.into_iter().enumerate() {
                if i > 0 {
                    println!();
                }
                all.insert(bench.into(), run_one(bench, args.quick)?);
            }
            Value::Object(all)
        } else {
            run_one(args.bench, args.quick)?
        };
        if let Some(path) = &args.json {
            let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Setup(message)) => {
            eprintln!("codemode-bench: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(message)) => {
            eprintln!("codemode-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

const BENCHES: [&str; 8] = [
    "bridge",
    "exec",
    "tokens",
    "scenario",
    "gen-bridge",
    "memory",
    "sessions",
    // Last: a failure here ends `all`, and the others' figures are printed first.
    "soak",
];

/// Runs one benchmark, prints its table, and returns its figures as JSON.
fn run_one(bench: &str, quick: bool) -> Result<Value, Failure> {
    let codemode = locate_binaries()?.codemode;
    Ok(match bench {
        "exec" => {
            let figures = exec::run(&codemode, quick)?;
            print!("{}", exec::table(&figures));
            exec::json(&figures)
        }
        "tokens" => {
            let figures = tokens::run(&codemode)?;
            print!("{}", tokens::table(&figures));
            tokens::json(&figures)
        }
        "scenario" => {
            let figures = scenario::run(&codemode, quick)?;
            print!("{}", scenario::table(&figures));
            scenario::json(&figures)
        }
        "gen-bridge" => {
            let figures = genbridge::run(&codemode, quick)?;
            print!("{}", genbridge::table(&figures));
            genbridge::json(&figures)
        }
        "memory" => {
            let figures = memory::run(&codemode, quick)?;
            print!("{}", memory::table(&figures));
            memory::json(&figures)
        }
        "sessions" => {
            let figures = sessions::run(&codemode, quick)?;
            print!("{}", sessions::table(&figures));
            sessions::json(&figures)
        }
        "soak" => {
            let figures = soak::run(&codemode, quick)?;
            print!("{}", soak::table(&figures));
            if let Some(why) = figures.failure() {
                return Err(Failure::Run(why));
            }
            soak::json(&figures)
        }
        _ => {
            let results = run(Plan::new(quick))?;
            print!("{}", report::table(&results));
            report::json(&results)
        }
    })
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_args() -> Result<Args, Failure> {
    let mut args = std::env::args().skip(1);
    let bench = match args.next().as_deref() {
        Some("all") => "all",
        Some(name) if BENCHES.contains(&name) => {
            BENCHES.into_iter().find(|b| *b == name).unwrap_or("bridge")
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(other) => {
            return Err(Failure::Setup(format!(
                "unknown benchmark `{other}`\n{USAGE}"
            )))
        }
        None => return Err(Failure::Setup(USAGE.into())),
    };
    let mut parsed = Args {
        bench,
        quick: false,
        json: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--json" => match args.next() {
                Some(path) => parsed.json = Some(PathBuf::from(path)),
                None => return Err(Failure::Setup("--json needs a FILE".into())),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                return Err(Failure::Setup(format!(
                    "unknown argument `{other}`\n{USAGE}"
                )))
            }
        }
    }
    Ok(parsed)
}

struct Binaries {
    codemode: PathBuf,
    news: PathBuf,
}

/// The binaries built next to this one, so a release bench measures a release
/// bridge and never whatever `codemode` happens to be on PATH.
fn locate_binaries() -> Result<Binaries, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Setup(format!("cannot find this executable: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let found = |name: &str| {
        let path = dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Failure::Setup(format!(
                "{} is missing; run `cargo build --release --workspace` first",
                path.display()
            )))
        }
    };
    Ok(Binaries {
        codemode: found("codemode")?,
        news: found("news-server")?,
    })
}

fn run(plan: Plan) -> Result<Results, Failure> {
    let bins = locate_binaries()?;
    if !Path::new(PYTHON).is_file() {
        return Err(Failure::Setup(format!(
            "{PYTHON} is missing; the Python figures need it"
        )));
    }
    let date = stats::utc_now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work = TempDir::new().map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let config = work.path().join("codemode.toml");
    std::fs::write(
        &config,
        format!(
            "[servers.news]\ncommand = {:?}\n",
            bins.news.display().to_string()
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let token = format!(
        "bench-{}-{}",
        std::process::id(),
        date.replace([' ', ':'], "")
    );

    // One thread: the direct client then pays no cross-thread wake-ups, the
    // lowest baseline an in-process client gets, so the overhead is not flattered.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;

    step("starting codemode bridge");
    let mut bridge = Bridge::start(
        &bins.codemode,
        &config,
        &work.path().join("bridge.sock"),
        &token,
    )?;

    step(&format!(
        "direct and through the bridge from Rust: {} calls each",
        plan.calls
    ));
    let (direct, through_bridge) =
        runtime.block_on(direct_and_bridge(&bins.news, &bridge, &token, plan))?;

    step("from Python: latency, then threads and processes");
    let python = python_phase(&bins.codemode, &config, work.path(), &bridge, &token, plan)?;

    step("from Python inside the native sandbox");
    let sandboxed = sandboxed_phase(&bins.codemode, &config, work.path(), plan)?;

    step(&format!("naive: {} new MCP sessions", plan.naive_runs));
    let naive = runtime.block_on(naive_phase(&bins.news, plan))?;

    match bridge.stop(Duration::from_secs(20)) {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return Err(Failure::Run(format!(
                "codemode bridge exited with {status} on SIGTERM; stderr:\n{}",
                bridge.stderr()
            )))
        }
        Err(message) => return Err(Failure::Run(message)),
    }

    Ok(Results {
        plan,
        date,
        cores,
        cpu: cpu_model(),
        direct: Summary::of(&direct),
        bridge: Summary::of(&through_bridge),
        python_version: python.version,
        python: Summary::of(&python.latency),
        threads: python.threads,
        processes: python.processes,
        sandboxed: Summary::of(&sandboxed),
        naive: Summary::of(&naive),
    })
}

fn step(what: &str) {
    eprintln!("codemode-bench: {what}");
}

async fn connect(news: &Path) -> Result<RunningService<RoleClient, ()>, String> {
    let (transport, _) = TokioChildProcess::builder(tokio::process::Command::new(news))
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", news.display()))?;
    ().serve(transport)
        .await
        .map_err(|e| format!("MCP initialize with {} failed: {e}", news.display()))
}

async fn direct_call(client: &RunningService<RoleClient, ()>) -> Result<(), String> {
    let arguments = json!({"id": ARTICLE});
    let Value::Object(arguments) = arguments else {
        unreachable!("a JSON object literal");
    };
    let result = client
        .call_tool(CallToolRequestParams::new("get_article").with_arguments(arguments))
        .await
        .map_err(|e| format!("direct get_article failed: {e}"))?;
    let id = result
        .structured_content
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str);
    if result.is_error == Some(true) || id != Some(ARTICLE) {
        return Err(format!("direct get_article returned {result:?}"));
    }
    Ok(())
}

fn bridge_call(client: &mut http::RpcClient) -> Result<(), String> {
    let body = serde_json::to_vec(&json!({
        "server": "news",
        "tool": "get_article",
        "arguments": {"id": ARTICLE},
    }))
    .map_err(|e| e.to_string())?;
    let (status, response) = client
        .post(&body)
        .map_err(|e| format!("bridge call failed: {e}"))?;
    let answer: Value = serde_json::from_slice(&response).map_err(|e| {
        format!(
            "the bridge answered HTTP {status} with something not JSON ({e}): {}",
            String::from_utf8_lossy(&response)
        )
    })?;
    if status != 200 || answer["success"] != true || answer["result"]["id"] != ARTICLE {
        return Err(format!("the bridge answered HTTP {status}: {answer}"));
    }
    Ok(())
}

/// Direct rmcp calls and calls through the bridge, alternating in blocks. Both
/// are timed per call, from building the request to checking the answer.
async fn direct_and_bridge(
    news: &Path,
    bridge: &Bridge,
    token: &str,
    plan: Plan,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let client = connect(news).await?;
    let measured = async {
        let mut http = http::RpcClient::connect(&bridge.socket, token)
            .map_err(|e| format!("cannot connect to {}: {e}", bridge.socket.display()))?;
        // The first bridge call also starts the bridge's news-server session.
        for _ in 0..plan.warmup {
            direct_call(&client).await?;
            bridge_call(&mut http)?;
        }
        let per_round = plan.calls.div_ceil(plan.rounds);
        let mut direct = Vec::with_capacity(plan.calls);
        let mut through_bridge = Vec::with_capacity(plan.calls);
        for _ in 0..plan.rounds {
            for _ in 0..per_round {
                let started = Instant::now();
                direct_call(&client).await?;
                direct.push(micros(started.elapsed()));
            }
            // Blocking the runtime's only thread is harmless here: the direct
            // session has nothing in flight while the bridge calls run.
            for _ in 0..per_round {
                let started = Instant::now();
                bridge_call(&mut http)?;
                through_bridge.push(micros(started.elapsed()));
            }
        }
        Ok((direct, through_bridge))
    }
    .await;
    let _ = client.cancel().await;
    measured
}

/// A new stdio session for every call: spawn, initialize, call, shut down
/// (close stdin and wait for the server to exit).
async fn naive_phase(news: &Path, plan: Plan) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(plan.naive_runs);
    // One untimed run first, so the binary is in the page cache for all of them.
    for run in 0..=plan.naive_runs {
        let started = Instant::now();
        let client = connect(news).await?;
        let called = direct_call(&client).await;
        client
            .cancel()
            .await
            .map_err(|e| format!("shutting down {} failed: {e}", news.display()))?;
        called?;
        if run > 0 {
            samples.push(micros(started.elapsed()));
        }
    }
    Ok(samples)
}

struct PythonFigures {
    version: String,
    latency: Vec<f64>,
    threads: Vec<(usize, Vec<f64>)>,
    processes: Vec<(usize, Vec<f64>)>,
}

/// Times calls made by a script inside `codemode exec --sandbox native`: the
/// path sandboxed code really takes (its run's bridge, the socket bound into
/// the sandbox). The script times each call itself and prints the samples.
const SANDBOXED_LOAD: &str = r#"
import json, sys, time
from mcp_tools import news
calls = int(sys.argv[1])
for _ in range(20):
    news.get_article(id="tech-001")
samples = []
for _ in range(calls):
    # Paced under the run's grant rate (1,000 calls/s), outside the timing.
    time.sleep(0.0015)
    started = time.perf_counter()
    article = news.get_article(id="tech-001")
    samples.append((time.perf_counter() - started) * 1e6)
    assert article["id"] == "tech-001"
print(json.dumps(samples))
"#;

fn sandboxed_phase(
    codemode: &Path,
    config: &Path,
    work: &Path,
    plan: Plan,
) -> Result<Vec<f64>, String> {
    let script = work.join("sandboxed_load.py");
    std::fs::write(&script, SANDBOXED_LOAD)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let output = Command::new(codemode)
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(config)
        .args([
            "-q",
            "exec",
            "--sandbox",
            "native",
            "--timeout",
            "5m",
            "--json",
        ])
        .arg(&script)
        .arg("--")
        .arg(plan.python_latency_calls.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", codemode.display()))?;
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "codemode exec gave no JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if report["success"] != true {
        return Err(format!(
            "the sandboxed load failed: {} {}",
            report["error"], report["stderr"]
        ));
    }
    serde_json::from_str(report["stdout"].as_str().unwrap_or(""))
        .map_err(|e| format!("the sandboxed load printed no samples ({e}): {report}"))
}

fn python_phase(
    codemode: &Path,
    config: &Path,
    work: &Path,
    bridge: &Bridge,
    token: &str,
    plan: Plan,
) -> Result<PythonFigures, String> {
    let stubs = work.join("mcp_tools.py");
    let generated = Command::new(codemode)
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(config)
        .arg("gen-bridge")
        .arg("-o")
        .arg(&stubs)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", codemode.display()))?;
    if !generated.status.success() {
        return Err(format!(
            "codemode gen-bridge failed ({}): {}",
            generated.status,
            String::from_utf8_lossy(&generated.stderr)
        ));
    }
    let script = work.join("python_load.py");
    std::fs::write(&script, PYTHON_LOAD)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let join = |counts: &[usize]| {
        counts
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let output = Command::new(PYTHON)
        .arg(&script)
        .arg(plan.python_latency_calls.to_string())
        .arg(plan.calls_per_worker.to_string())
        .arg(plan.repeats.to_string())
        .arg(join(&THREAD_COUNTS))
        .arg(join(&PROCESS_COUNTS))
        .current_dir(work)
        .env("PYTHONPATH", work)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(
            "CODEMODE_BRIDGE_URL",
            format!("unix://{}", bridge.socket.display()),
        )
        .env("CODEMODE_BRIDGE_TOKEN", token)
        // A stuck call should fail the run rather than wait out the default.
        .env("CODEMODE_BRIDGE_TIMEOUT", "30")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the Python load script failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let figures: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "the Python load script printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let numbers = |value: &Value| -> Result<Vec<f64>, String> {
        value
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_f64).collect())
            .ok_or_else(|| format!("the Python load script printed {figures}"))
    };
    let rates = |group: &str, counts: &[usize]| -> Result<Vec<(usize, Vec<f64>)>, String> {
        counts
            .iter()
            .map(|n| Ok((*n, numbers(&figures[group][n.to_string()])?)))
            .collect()
    };
    Ok(PythonFigures {
        version: figures["python"].as_str().unwrap_or("?").to_string(),
        latency: numbers(&figures["latency_us"])?,
        threads: rates("threads", &THREAD_COUNTS)?,
        processes: rates("processes", &PROCESS_COUNTS)?,
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, name)| name.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
