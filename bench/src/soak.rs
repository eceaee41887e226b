//! `codemode-bench soak`: one `codemode serve --http` under 16 MCP clients at
//! once, each running `execute_python` scripts that call the example news
//! server, every output checked exactly. It watches the serve process tree
//! for what a long-lived server must not do: leak processes or descriptors,
//! grow without bound, hang, or hand one client another's output.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

use crate::memory::{self, mb};
use crate::process::Listening;
use crate::scenario::Demo;
use crate::stats::{percentile, round, utc_now};
use crate::Failure;

const CLIENTS: usize = 16;
const ARTICLES: &str = include_str!("../../examples/data/articles.json");
const CATEGORIES: [&str; 6] = [
    "technology",
    "science",
    "business",
    "health",
    "sports",
    "world",
];
/// Far above any honest execution here; it turns a hang into a counted error
/// instead of a bench that never ends.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the process tree and descriptors get to return to baseline after
/// the clients leave; sessions and sandboxes are torn down asynchronously.
const SETTLE: Duration = Duration::from_secs(10);
const TOKEN_ENV: &str = "CODEMODE_SERVE_TOKEN";
/// How long serve keeps an unused session here.
const SESSION_IDLE: Duration = Duration::from_millis(500);
/// serve's default, named so the figure printed is the one used.
const MAX_CONCURRENT: usize = 4;

/// Process count of serve's tree (serve included) and serve's open fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Census {
    processes: usize,
    fds: usize,
}

/// VmRSS of serve alone and summed over its tree (MCP servers, sandboxes), kB.
#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    serve_kb: u64,
    tree_kb: u64,
}

pub struct Figures {
    date: String,
    cores: usize,
    per_client: usize,
    max_concurrent: usize,
    executions: usize,
    errors: usize,
    wrong: usize,
    /// The first few problems, verbatim, so a failure says what happened.
    problems: Vec<String>,
    latency_ms: Vec<f64>,
    wall_s: f64,
    rss_start: Rss,
    rss_middle: Rss,
    rss_end: Rss,
    baseline: Census,
    end: Census,
    settle_ms: u128,
    exit: String,
    clean_exit: bool,
    leftovers: usize,
}

impl Figures {
    /// Why this run counts as a failure, if it does; timing never does.
    pub fn failure(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.errors > 0 {
            why.push(format!("{} executions failed", self.errors));
        }
        if self.wrong > 0 {
            why.push(format!("{} executions printed wrong output", self.wrong));
        }
        if self.end != self.baseline {
            why.push(format!(
                "serve did not return to baseline within {SETTLE:?}: {} processes / {} fds, baseline {} / {}",
                self.end.processes, self.end.fds, self.baseline.processes, self.baseline.fds
            ));
        }
        if !self.clean_exit {
            why.push(format!(
                "serve did not exit cleanly on SIGTERM: {}",
                self.exit
            ));
        }
        if self.leftovers > 0 {
            why.push(format!(
                "{} processes of serve's tree outlived it (killed)",
                self.leftovers
            ));
        }
        if why.is_empty() {
            return None;
        }
        let mut message = format!("soak: {}", why.join("; "));
        for problem in &self.problems {
            message.push_str("\n  ");
            message.push_str(problem);
        }
        Some(message)
    }
}

/// One execution's script and the exact stdout it must print. Each differs
/// (articles, section, count), so an output delivered to the wrong client or
/// the wrong request cannot pass.
struct Job {
    code: String,
    expected: String,
}

struct Archive {
    /// Newest first, ties by id: the news server's own order.
    articles: Vec<Value>,
}

impl Archive {
    fn load() -> Result<Archive, Failure> {
        let mut articles: Vec<Value> = serde_json::from_str(ARTICLES)
            .map_err(|e| Failure::Setup(format!("examples/data/articles.json: {e}")))?;
        let key = |a: &Value, k: &str| a[k].as_str().unwrap_or("").to_string();
        articles.sort_by(|a, b| {
            key(b, "published")
                .cmp(&key(a, "published"))
                .then(key(a, "id").cmp(&key(b, "id")))
        });
        Ok(Archive { articles })
    }

    fn job(&self, n: usize) -> Job {
        let count = self.articles.len();
        let picked: Vec<&Value> = (0..3)
            .map(|k| &self.articles[(n * 7 + k * 13) % count])
            .collect();
        let ids: Vec<&str> = picked.iter().filter_map(|a| a["id"].as_str()).collect();
        let category = CATEGORIES[n % CATEGORIES.len()];
        let limit = 1 + n % 3;
        let code = format!(
            r#"from mcp_tools import news

total = 0
for article_id in {ids}:
    article = news.get_article(id=article_id)
    total += len(article["body"])
    print(article["id"], len(article["body"]), article["published"][:10])
latest = news.fetch_latest(category="{category}", limit={limit})["articles"]
print("latest", "{category}", ",".join(a["id"] for a in latest))
print("execution", {n}, "chars", total)
"#,
            ids = serde_json::to_string(&ids).unwrap_or_default(),
        );
        let mut expected = String::new();
        let mut total = 0;
        for article in &picked {
            let body = article["body"].as_str().unwrap_or("").chars().count();
            total += body;
            let published = article["published"].as_str().unwrap_or("");
            expected += &format!(
                "{} {body} {}\n",
                article["id"].as_str().unwrap_or(""),
                published.get(..10).unwrap_or(published)
            );
        }
        let latest: Vec<&str> = self
            .articles
            .iter()
            .filter(|a| a["category"] == category)
            .take(limit)
            .filter_map(|a| a["id"].as_str())
            .collect();
        expected += &format!("latest {category} {}\n", latest.join(","));
        expected += &format!("execution {n} chars {total}\n");
        Job { code, expected }
    }
}

/// `/proc/PID/stat`: state, parent and start time (which tells a pid apart
/// from a later process that reuses it).
fn stat(pid: u32) -> Option<(char, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let parent = fields.get(1)?.parse().ok()?;
    let started = fields.get(19)?.parse().ok()?;
    Some((state, parent, started))
}

/// `root` and every descendant, with start times. Zombies are included: an
/// unreaped child is a leak too.
pub(crate) fn tree(root: u32) -> Vec<(u32, u64)> {
    let mut all = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some((_, parent, started)) = stat(pid) {
                all.push((pid, parent, started));
            }
        }
    }
    let mut found: Vec<(u32, u64)> = all
        .iter()
        .filter(|p| p.0 == root)
        .map(|p| (p.0, p.2))
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].0;
        found.extend(
            all.iter()
                .filter(|p| p.1 == parent && p.0 != root)
                .map(|p| (p.0, p.2)),
        );
        i += 1;
    }
    found
}

fn census(pid: u32) -> Census {
    Census {
        processes: tree(pid).len(),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
    }
}

pub(crate) fn vm_rss(pid: u32) -> u64 {
    memory::status_kb(pid, "VmRSS").unwrap_or(0)
}

fn rss(pid: u32) -> Rss {
    Rss {
        serve_kb: vm_rss(pid),
        tree_kb: tree(pid).iter().map(|&(p, _)| vm_rss(p)).sum(),
    }
}

/// Waits until the census holds still for a few readings in a row, up to
/// `limit`, and returns the last reading and whether it matched `target`.
fn settle(pid: u32, target: Option<Census>, limit: Duration) -> (Census, bool) {
    let deadline = Instant::now() + limit;
    let mut last = census(pid);
    let mut steady = 0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = census(pid);
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
        let done = match target {
            Some(t) => now == t,
            None => steady >= 5,
        };
        if done {
            return (now, true);
        }
        if Instant::now() >= deadline {
            return (now, false);
        }
    }
}

/// A running `codemode serve --http`. Dropping it stops serve and kills
/// whatever of its tree survived, so no path of the bench leaves a process.
struct Serve {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
    stopped: bool,
}

impl Serve {
    fn start(codemode: &Path, config: &Path, token: &str) -> Result<Serve, Failure> {
        let mut command = Command::new(codemode);
        command
            .env(TOKEN_ENV, token)
            .env_remove("CODEMODE_LOG")
            .arg("--config")
            .arg(config)
            .args([
                "serve",
                "--json",
                "--http",
                "127.0.0.1:0",
                "--sandbox",
                "native",
            ])
            .arg("--max-concurrent")
            .arg(MAX_CONCURRENT.to_string());
        let started = Listening::start(command, Duration::from_secs(60))
            .map_err(|e| Failure::Run(format!("codemode serve: {e}")))?;
        let url = started.line["url"].as_str().unwrap_or_default().to_string();
        Ok(Serve {
            child: started.child,
            url,
            stderr: started.stderr,
            stopped: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns how serve ended and how
    /// many processes of its tree were still alive a moment after it (they
    /// are killed).
    fn stop(&mut self, grace: Duration) -> (Result<ExitStatus, String>, usize) {
        self.stopped = true;
        let pid = self.pid();
        let members: Vec<(u32, u64)> = tree(pid).into_iter().filter(|m| m.0 != pid).collect();
        // SAFETY: kill(2) on our own unreaped child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break Err(format!("ignored SIGTERM for {grace:?} and was killed"));
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        // An MCP server may take a moment to see its stdin close.
        let alive = |&(p, started): &(u32, u64)| {
            stat(p).is_some_and(|(state, _, s)| s == started && state != 'Z')
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        while members.iter().any(alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<u32> = members.iter().filter(|m| alive(m)).map(|m| m.0).collect();
        for &p in &left {
            // SAFETY: kill(2); the start time was checked just above.
            unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
        }
        (status, left.len())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.stop(Duration::from_secs(5));
        }
    }
}

enum Outcome {
    Right(f64),
    Wrong(f64, String),
    Error(String),
}

/// Shared by the clients: how many executions finished, and the reading
/// taken by whichever finished the middle one.
struct Progress {
    done: AtomicUsize,
    middle_at: usize,
    middle: Mutex<Rss>,
    serve: u32,
}

async fn client(
    url: String,
    token: String,
    jobs: Vec<(usize, Job)>,
    progress: Arc<Progress>,
) -> Vec<Outcome> {
    let count = jobs.len();
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    let session = match tokio::time::timeout(CALL_TIMEOUT, ().serve(transport)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            let why = format!("MCP initialize failed: {e}");
            return (0..count).map(|_| Outcome::Error(why.clone())).collect();
        }
        Err(_) => {
            let why = format!("MCP initialize took over {CALL_TIMEOUT:?}");
            return (0..count).map(|_| Outcome::Error(why.clone())).collect();
        }
    };
    let mut outcomes = Vec::with_capacity(count);
    // Each client's executions are the cells of one session.
    let mut cells_of: Option<String> = None;
    for (n, job) in jobs {
        let mut arguments = serde_json::Map::new();
        arguments.insert("code".into(), Value::String(job.code));
        if let Some(id) = &cells_of {
            arguments.insert("session".into(), Value::String(id.clone()));
        }
        let request = CallToolRequestParams::new("execute_python").with_arguments(arguments);
        let started = Instant::now();
        let answer = tokio::time::timeout(CALL_TIMEOUT, session.call_tool(request)).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        outcomes.push(match answer {
            Err(_) => Outcome::Error(format!("execution {n}: no answer in {CALL_TIMEOUT:?}")),
            Ok(Err(e)) => Outcome::Error(format!("execution {n}: {e}")),
            Ok(Ok(result)) => {
                let report = result.structured_content.unwrap_or(Value::Null);
                cells_of = report["session"].as_str().map(String::from);
                let stdout = report["stdout"].as_str().unwrap_or("");
                if result.is_error == Some(true) || report["success"] != true {
                    Outcome::Error(format!("execution {n} failed: {report}"))
                } else if stdout != job.expected {
                    Outcome::Wrong(ms, format!("execution {n} printed {stdout:?}"))
                } else {
                    Outcome::Right(ms)
                }
            }
        });
        if progress.done.fetch_add(1, Ordering::SeqCst) + 1 == progress.middle_at {
            *progress.middle.lock().unwrap_or_else(|e| e.into_inner()) = rss(progress.serve);
        }
    }
    let _ = session.cancel().await;
    outcomes
}

pub fn run(codemode: &Path, quick: bool) -> Result<Figures, Failure> {
    let per_client = if quick { 3 } else { 25 };
    let total = CLIENTS * per_client;
    let bins = codemode.parent().unwrap_or(Path::new("."));
    let demo = Demo::new(bins)?;
    let archive = Archive::load()?;
    let token = format!("bench-soak-{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Run(format!("cannot start the async runtime: {e}")))?;

    eprintln!("soak: codemode serve --http --sandbox native, {CLIENTS} clients x {per_client}");
    // Every execute_python without a session opens one, which lives until
    // idle: here briefly, so that the tree can be seen back at its baseline.
    let config = demo.dir.path().join("soak.toml");
    let text = std::fs::read_to_string(&demo.config)
        .map_err(|e| Failure::Setup(format!("config: {e}")))?;
    std::fs::write(
        &config,
        format!(
            "{text}\n[serve]\nsession_idle = \"{}ms\"\nsessions = {CLIENTS}\n",
            SESSION_IDLE.as_millis()
        ),
    )
    .map_err(|e| Failure::Setup(format!("config: {e}")))?;
    let mut serve = Serve::start(codemode, &config, &token)?;
    let pid = serve.pid();
    let url = serve.url.clone();

    // The warm-up's own session comes and goes before the baseline, so the
    // baseline is serve idle with every lazy start already paid.
    let warm = runtime.block_on(client(
        url.clone(),
        token.clone(),
        vec![(total, archive.job(total))],
        Arc::new(Progress {
            done: AtomicUsize::new(0),
            middle_at: usize::MAX,
            middle: Mutex::new(Rss::default()),
            serve: pid,
        }),
    ));
    match warm.first() {
        Some(Outcome::Right(_)) => {}
        Some(Outcome::Wrong(_, why) | Outcome::Error(why)) => {
            return Err(Failure::Run(format!(
                "soak: the warm-up execution went wrong: {why}\nserve's stderr:\n{}",
                serve.stderr()
            )))
        }
        None => return Err(Failure::Run("soak: the warm-up ran nothing".into())),
    }
    // The warm-up's session ends once idle, before the baseline is taken.
    std::thread::sleep(SESSION_IDLE * 3);
    let (baseline, _) = settle(pid, None, Duration::from_secs(5));
    let rss_start = rss(pid);

    let progress = Arc::new(Progress {
        done: AtomicUsize::new(0),
        middle_at: total / 2,
        middle: Mutex::new(Rss::default()),
        serve: pid,
    });
    let started = Instant::now();
    let outcomes: Vec<Outcome> = runtime.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let jobs = (0..per_client)
                    .map(|i| c * per_client + i)
                    .map(|n| (n, archive.job(n)))
                    .collect();
                tokio::spawn(client(
                    url.clone(),
                    token.clone(),
                    jobs,
                    Arc::clone(&progress),
                ))
            })
            .collect();
        let mut all = Vec::with_capacity(total);
        for task in tasks {
            match task.await {
                Ok(outcomes) => all.extend(outcomes),
                Err(e) => all.extend((0..per_client).map(|_| Outcome::Error(e.to_string()))),
            }
        }
        all
    });
    let wall_s = started.elapsed().as_secs_f64();
    // The runtime's connections must be gone before the count is compared.
    drop(runtime);

    let settling = Instant::now();
    let (end, _) = settle(pid, Some(baseline), SETTLE);
    let settle_ms = settling.elapsed().as_millis();
    let rss_end = rss(pid);
    let (status, leftovers) = serve.stop(Duration::from_secs(20));
    let (exit, clean_exit) = match status {
        Ok(s) => (s.to_string(), s.success()),
        Err(e) => (e, false),
    };

    let mut latency_ms = Vec::with_capacity(total);
    let (mut errors, mut wrong, mut problems) = (0, 0, Vec::new());
    for outcome in outcomes {
        match outcome {
            Outcome::Right(ms) => latency_ms.push(ms),
            Outcome::Wrong(ms, why) => {
                latency_ms.push(ms);
                wrong += 1;
                problems.push(why);
            }
            Outcome::Error(why) => {
                errors += 1;
                problems.push(why);
            }
        }
    }
    problems.truncate(5);
    if !problems.is_empty() || !clean_exit {
        let stderr = serve.stderr();
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        problems.push(format!(
            "serve's stderr (last lines):\n    {}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n    ")
        ));
    }
    latency_ms.sort_by(f64::total_cmp);
    let rss_middle = *progress.middle.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Figures {
        date: utc_now(),
        cores: crate::cores(),
        per_client,
        max_concurrent: MAX_CONCURRENT,
        executions: total,
        errors,
        wrong,
        problems,
        latency_ms,
        wall_s,
        rss_start,
        rss_middle,
        rss_end,
        baseline,
        end,
        settle_ms,
        exit,
        clean_exit,
        leftovers,
    })
}

fn ms_at(f: &Figures, q: f64) -> f64 {
    percentile(&f.latency_ms, q)
}

fn max_ms(f: &Figures) -> f64 {
    f.latency_ms.last().copied().unwrap_or(f64::NAN)
}

pub fn table(f: &Figures) -> String {
    let mut out = format!(
        "codemode-bench soak, {}, {} cores\n\
         codemode serve --http --sandbox native (serve's default {} runs at once), {CLIENTS} MCP clients\n\
         x {} execute_python each, in one session a client; every script: 3 news.get_article + 1 news.fetch_latest, output checked\n\n",
        f.date, f.cores, f.max_concurrent, f.per_client
    );
    out += &format!(
        "executions {}, errors {}, wrong outputs {}\n",
        f.executions, f.errors, f.wrong
    );
    out += &format!(
        "latency per execution: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (includes waiting for a slot)\n",
        ms_at(f, 0.5),
        ms_at(f, 0.99),
        max_ms(f)
    );
    out += &format!(
        "throughput {:.1} executions/s ({:.1} s wall)\n\n",
        f.executions as f64 / f.wall_s,
        f.wall_s
    );
    out += &format!(
        "{:<40} {:>10} {:>10} {:>10}\n",
        "RSS, MB", "start", "middle", "end"
    );
    for (label, pick) in [
        ("serve alone", (|r: &Rss| r.serve_kb) as fn(&Rss) -> u64),
        ("serve + MCP servers + sandboxes", |r: &Rss| r.tree_kb),
    ] {
        out += &format!(
            "{label:<40} {:>10.1} {:>10.1} {:>10.1}\n",
            mb(pick(&f.rss_start)),
            mb(pick(&f.rss_middle)),
            mb(pick(&f.rss_end))
        );
    }
    out += &format!(
        "\n{:<40} {:>10} {:>10}\n",
        "after clients left", "baseline", "end"
    );
    out += &format!(
        "{:<40} {:>10} {:>10}\n",
        "processes in serve's tree (serve incl.)", f.baseline.processes, f.end.processes
    );
    out += &format!(
        "{:<40} {:>10} {:>10}\n",
        "open fds of serve", f.baseline.fds, f.end.fds
    );
    out += &format!(
        "returned to baseline: {} (after {} ms)\n",
        if f.end == f.baseline { "yes" } else { "NO" },
        f.settle_ms
    );
    out += &format!(
        "SIGTERM: serve {}; processes left behind: {}\n",
        if f.clean_exit {
            "exited cleanly".to_string()
        } else {
            format!("did not exit cleanly ({})", f.exit)
        },
        f.leftovers
    );
    out
}

pub fn json(f: &Figures) -> Value {
    let rss = |r: &Rss| json!({"serve_kb": r.serve_kb, "tree_kb": r.tree_kb});
    let census = |c: &Census| json!({"processes": c.processes, "fds": c.fds});
    json!({
        "date": f.date,
        "cores": f.cores,
        "clients": CLIENTS,
        "executions_per_client": f.per_client,
        "max_concurrent": f.max_concurrent,
        "executions": f.executions,
        "errors": f.errors,
        "wrong_outputs": f.wrong,
        "latency_ms": {
            "p50": round(ms_at(f, 0.5)),
            "p99": round(ms_at(f, 0.99)),
            "max": round(max_ms(f)),
            "samples": f.latency_ms.len(),
        },
        "wall_s": round(f.wall_s),
        "executions_per_s": round(f.executions as f64 / f.wall_s),
        "rss": {"start": rss(&f.rss_start), "middle": rss(&f.rss_middle), "end": rss(&f.rss_end)},
        "baseline": census(&f.baseline),
        "end": census(&f.end),
        "returned_to_baseline": f.end == f.baseline,
        "settle_ms": f.settle_ms as u64,
        "clean_exit": f.clean_exit,
        "left_behind": f.leftovers,
    })
}
