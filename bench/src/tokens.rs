//! `codemode-bench tokens`: what a model reads in classic tool calling against
//! code mode, counted with tiktoken's o200k_base, for the example servers alone
//! and with 10, 100 and 1,000 generated tools beside them
//! (`tests/fixtures/many_tools_server.py`), on two workloads.
//!
//! Classic: every tool definition (the servers' `tools/list` JSON), then for
//! every call the model's tool-call JSON and the tool's result text.
//! Code mode: `codemode serve`'s own `tools/list` (execute_python with its
//! index, search_tools, get_api), one `search_tools` round with the full
//! signatures of the tools the script uses, the `execute_python` call carrying
//! the script, and what the script printed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bridge_gen::{tool_signature, Detail, ToolSpec};
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use tiktoken_rs::CoreBPE;

use crate::scenario::{output, Demo};
use crate::stats::{round, utc_now};
use crate::Failure;

pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/many_tools_server.py"
);
const SIZES: [usize; 3] = [10, 100, 1000];
const ARTICLES: usize = 200;
const PRINTED: usize = 5;

/// Workload B: 200 articles read, the 5 newest printed.
const SCRIPT_200: &str = r#"from mcp_tools import news

articles = [news.get_article(id=f"a{n:03d}") for n in range(1, 201)]
newest = sorted(articles, key=lambda a: a["published"], reverse=True)[:5]
for a in newest:
    print(f"{a['title']} ({a['source']}, {a['published'][:10]})")
"#;

struct Row {
    set: String,
    tools: usize,
    workload: &'static str,
    calls: usize,
    classic_defs: usize,
    classic_calls: usize,
    code_api: usize,
    code_run: usize,
}

impl Row {
    fn classic(&self) -> usize {
        self.classic_defs + self.classic_calls
    }
    fn code(&self) -> usize {
        self.code_api + self.code_run
    }
}

pub struct Figures {
    date: String,
    cores: usize,
    rows: Vec<Row>,
}

type Client = RunningService<RoleClient, ()>;

async fn connect(program: &Path, args: &[String]) -> Result<Client, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    ().serve(transport)
        .await
        .map_err(|e| format!("MCP initialize with {} failed: {e}", program.display()))
}

async fn list(program: &Path, args: &[String]) -> Result<Vec<Tool>, String> {
    let client = connect(program, args).await?;
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| format!("tools/list of {} failed: {e}", program.display()));
    let _ = client.cancel().await;
    tools
}

/// A tool result as the model sees it: its text content.
async fn call(client: &Client, tool: &str, arguments: Value) -> Result<String, String> {
    let Value::Object(arguments) = arguments else {
        return Err("arguments must be an object".into());
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await
        .map_err(|e| format!("{tool} failed: {e}"))?;
    if result.is_error == Some(true) {
        return Err(format!("{tool} returned an error: {result:?}"));
    }
    Ok(result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn tool_call(name: &str, arguments: &Value) -> String {
    json!({"name": name, "arguments": arguments}).to_string()
}

fn spec(tool: &Tool) -> Result<ToolSpec, String> {
    serde_json::to_value(tool)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("tool {}: {e}", tool.name))
}

/// What one workload costs in calls: classic (tool-call JSON + result text, in
/// tokens), and the server.tool names the code-mode script uses.
struct Workload {
    name: &'static str,
    calls: usize,
    classic_calls: usize,
    uses: Vec<(&'static str, &'static str)>,
    script: String,
    printed: String,
}

/// Token counts do not vary between runs, so `--quick` measures the same.
pub fn run(codemode: &Path) -> Result<Figures, Failure> {
    let bpe = tiktoken_rs::o200k_base().map_err(|e| Failure::Run(format!("o200k_base: {e}")))?;
    let count = |text: &str| bpe.encode_with_special_tokens(text).len();
    let bins = codemode.parent().unwrap_or(Path::new(".")).to_path_buf();
    let demo = Demo::new(&bins)?;
    demo.stubs(codemode)?;
    let token = crate::scenario::token();
    eprintln!("tokens: running examples/news_summary.py for its printed output");
    let printed_demo = {
        let bridge = demo.start_bridge(codemode, &token)?;
        output(
            "python3 news_summary.py",
            &mut demo.python(&demo.script, &bridge, &token),
        )?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Run(format!("async runtime: {e}")))?;
    let rows = runtime
        .block_on(measure(
            codemode,
            &bins,
            &demo,
            printed_demo,
            &SIZES,
            &count,
        ))
        .map_err(Failure::Run)?;
    // Keep `bpe` alive until here; the closure borrows it.
    let _: &CoreBPE = &bpe;
    Ok(Figures {
        date: utc_now(),
        cores: crate::cores(),
        rows,
    })
}

async fn measure(
    codemode: &Path,
    bins: &Path,
    demo: &Demo,
    printed_demo: String,
    sizes: &[usize],
    count: &dyn Fn(&str) -> usize,
) -> Result<Vec<Row>, String> {
    let news_bin = bins.join("news-server");
    let summarizer_bin = bins.join("summarizer-server");
    eprintln!("tokens: classic calls against news-server and summarizer-server");
    let news = connect(&news_bin, &[]).await?;
    let summarizer = connect(&summarizer_bin, &[]).await?;
    let workloads = async {
        // Workload A: the demo script's calls, made directly.
        let args = json!({"category": "technology", "limit": 5});
        let latest = call(&news, "fetch_latest", args.clone()).await?;
        let mut classic = count(&tool_call("fetch_latest", &args)) + count(&latest);
        let parsed: Value = serde_json::from_str(&latest).map_err(|e| e.to_string())?;
        let bodies: Vec<String> = parsed["articles"]
            .as_array()
            .ok_or("fetch_latest gave no articles")?
            .iter()
            .filter_map(|a| a["body"].as_str().map(str::to_string))
            .collect();
        for body in &bodies {
            let args = json!({"text": body, "max_sentences": 2});
            let summary = call(&summarizer, "summarize", args.clone()).await?;
            classic += count(&tool_call("summarize", &args)) + count(&summary);
        }
        let demo_workload = Workload {
            name: "news_summary.py: 5 fetched, 5 summarized",
            calls: 1 + bodies.len(),
            classic_calls: classic,
            uses: vec![("news", "fetch_latest"), ("summarizer", "summarize")],
            script: crate::scenario::SCRIPT.to_string(),
            printed: printed_demo,
        };

        // Workload B: 200 article results of the archive's real sizes (its
        // articles fetched with get_article, reused in turn under new ids).
        let all = call(
            &news,
            "fetch_latest",
            json!({"category": "all", "limit": 50}),
        )
        .await?;
        let all: Value = serde_json::from_str(&all).map_err(|e| e.to_string())?;
        let mut real = Vec::new();
        for a in all["articles"].as_array().ok_or("no articles")? {
            let id = a["id"].as_str().ok_or("article without id")?;
            let text = call(&news, "get_article", json!({"id": id})).await?;
            real.push(serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())?);
        }
        let mut classic = 0;
        let mut articles = Vec::new();
        for n in 1..=ARTICLES {
            let mut article = real[(n - 1) % real.len()].clone();
            let id = format!("a{n:03}");
            article["id"] = json!(id);
            classic +=
                count(&tool_call("get_article", &json!({"id": id}))) + count(&article.to_string());
            articles.push(article);
        }
        articles.sort_by(|a, b| {
            b["published"]
                .as_str()
                .unwrap_or("")
                .cmp(a["published"].as_str().unwrap_or(""))
        });
        let mut printed = String::new();
        for a in articles.iter().take(PRINTED) {
            let published = a["published"].as_str().unwrap_or("");
            printed += &format!(
                "{} ({}, {})\n",
                a["title"].as_str().unwrap_or(""),
                a["source"].as_str().unwrap_or(""),
                &published[..published.len().min(10)]
            );
        }
        let bulk = Workload {
            name: "200 articles read, 5 printed",
            calls: ARTICLES,
            classic_calls: classic,
            uses: vec![("news", "get_article")],
            script: SCRIPT_200.to_string(),
            printed,
        };
        Ok::<_, String>(vec![demo_workload, bulk])
    }
    .await;
    let _ = news.cancel().await;
    let _ = summarizer.cancel().await;
    let workloads = workloads?;

    let example_tools = [
        ("news", list(&news_bin, &[]).await?),
        ("summarizer", list(&summarizer_bin, &[]).await?),
    ];
    let python = PathBuf::from(crate::PYTHON);
    let mut rows = Vec::new();
    for &size in std::iter::once(&0).chain(sizes) {
        let mut servers: Vec<(&str, Vec<Tool>)> = example_tools.to_vec();
        let mut config = std::fs::read_to_string(&demo.config).map_err(|e| e.to_string())?;
        if size > 0 {
            eprintln!("tokens: {size} generated tools");
            let args = vec![FIXTURE.to_string(), size.to_string()];
            servers.push(("tools", list(&python, &args).await?));
            config += &format!(
                "\n[servers.tools]\ncommand = {:?}\nargs = [{:?}, \"{size}\"]\n",
                crate::PYTHON,
                FIXTURE
            );
        }
        let config_path = demo.dir.path().join(format!("tokens-{size}.toml"));
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let served = list(
            codemode,
            &[
                "--config".into(),
                config_path.display().to_string(),
                "-q".into(),
                "serve".into(),
            ],
        )
        .await?;
        let tools: usize = servers.iter().map(|(_, t)| t.len()).sum();
        let all_defs: Vec<&Tool> = servers.iter().flat_map(|(_, t)| t.iter()).collect();
        let classic_defs = count(&serde_json::to_string(&all_defs).map_err(|e| e.to_string())?);
        let served_defs = count(&serde_json::to_string(&served).map_err(|e| e.to_string())?);
        for w in &workloads {
            // One search_tools round: the call and the full signatures it returns.
            let mut signatures = String::new();
            for (server, name) in &w.uses {
                let tool = servers
                    .iter()
                    .find(|(s, _)| s == server)
                    .and_then(|(_, ts)| ts.iter().find(|t| t.name == *name))
                    .ok_or_else(|| format!("{server}.{name} is not listed"))?;
                signatures += &tool_signature(server, &spec(tool)?, Detail::Full);
                signatures.push('\n');
            }
            let search = tool_call(
                "search_tools",
                &json!({"query": w.uses.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" "), "detail": "full"}),
            );
            let code_run =
                count(&tool_call("execute_python", &json!({"code": w.script}))) + count(&w.printed);
            rows.push(Row {
                set: if size == 0 {
                    "examples".into()
                } else {
                    format!("examples + {size}")
                },
                tools,
                workload: w.name,
                calls: w.calls,
                classic_defs,
                classic_calls: w.classic_calls,
                code_api: served_defs + count(&search) + count(&signatures),
                code_run,
            });
        }
    }
    Ok(rows)
}

pub fn table(f: &Figures) -> String {
    let mut out = format!(
        "codemode-bench tokens (o200k_base), {}, {} cores\n\
         classic = tool definitions + every tool call and result; code = serve's tools/list + one search_tools\n\
         round + the execute_python call with the script + what it printed\n\n",
        f.date, f.cores
    );
    out += &format!(
        "{:<16} {:>5}  {:<42} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7}\n",
        "tools",
        "count",
        "workload",
        "cl. defs",
        "cl. calls",
        "classic",
        "code api",
        "code run",
        "code",
        "ratio"
    );
    for r in &f.rows {
        out += &format!(
            "{:<16} {:>5}  {:<42} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7} {:>6.1}x\n",
            r.set,
            r.tools,
            r.workload,
            r.classic_defs,
            r.classic_calls,
            r.classic(),
            r.code_api,
            r.code_run,
            r.code(),
            r.classic() as f64 / r.code() as f64
        );
    }
    out
}

pub fn json(f: &Figures) -> Value {
    json!({
        "date": f.date,
        "cores": f.cores,
        "encoding": "o200k_base",
        "rows": f.rows.iter().map(|r| json!({
            "tool_set": r.set,
            "tools": r.tools,
            "workload": r.workload,
            "tool_calls": r.calls,
            "classic": {"definitions": r.classic_defs, "calls_and_results": r.classic_calls, "total": r.classic()},
            "code_mode": {"api_and_search": r.code_api, "script_and_printed": r.code_run, "total": r.code()},
            "ratio": round(r.classic() as f64 / r.code() as f64),
        })).collect::<Vec<_>>(),
    })
}
