//! `codemode gen-bridge`: list every configured server's tools and write the typed
//! Python module the sandboxed script imports, or check that the reviewed copy on
//! disk is current.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::cli::GenBridgeArgs;
use crate::context::Context;
use crate::error::Error;
use codemode_mcp::catalog::Catalog;
use codemode_mcp::tokens;

pub async fn run(ctx: &Context, args: &GenBridgeArgs) -> Result<(), Error> {
    let catalog = ctx.catalog(&args.servers, args.allow_partial).await?;
    let module = bridge_gen::generate(&catalog.servers);
    let to_stdout = args.output == Path::new("-");

    if args.stats {
        let stats = Stats::of(&catalog, &module);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&stats.to_json()).unwrap_or_default()
            );
        } else if to_stdout && !args.check {
            eprint!("{}", stats.table());
        } else {
            print!("{}", stats.table());
        }
    }

    if args.check {
        return check(&args.output, &module, args.json);
    }
    if to_stdout {
        std::io::stdout()
            .write_all(module.as_bytes())
            .map_err(Error::io("writing to stdout"))?;
        return Ok(());
    }
    write_atomically(&args.output, &module)?;
    ctx.say(&format!(
        "wrote {}: {} servers, {} tools",
        args.output.display(),
        catalog.servers.len(),
        catalog.tool_count()
    ));
    Ok(())
}

/// Compares the file on disk with what would be generated now, and says what
/// changed in terms of tools, which is what a reviewer wants to know.
fn check(path: &Path, module: &str, json: bool) -> Result<(), Error> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(Error::io(format!("reading {}", path.display()))(err)),
    };
    let current = existing.as_deref() == Some(module);
    let diff = bridge_gen::diff(
        &bridge_gen::manifest(existing.as_deref().unwrap_or("")),
        &bridge_gen::manifest(module),
    );
    if json {
        let report = json!({
            "path": path,
            "up_to_date": current,
            "exists": existing.is_some(),
            "added": diff.added,
            "removed": diff.removed,
            "changed": diff.changed,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if current {
        println!("{} is up to date", path.display());
    } else if existing.is_none() {
        println!(
            "{} does not exist; run `codemode gen-bridge -o {}`",
            path.display(),
            path.display()
        );
    } else {
        println!("{} is out of date:", path.display());
        for (label, tools) in [
            ("added", &diff.added),
            ("removed", &diff.removed),
            ("changed", &diff.changed),
        ] {
            if !tools.is_empty() {
                println!("  {label:<8} {}", tools.join(", "));
            }
        }
        if diff.added.is_empty() && diff.removed.is_empty() && diff.changed.is_empty() {
            println!("  the tools are the same, but the generated code differs (a newer codemode, or a hand edit)");
        }
        println!(
            "regenerate it with `codemode gen-bridge -o {}`",
            path.display()
        );
    }
    if current {
        Ok(())
    } else {
        Err(Error::OutOfDate)
    }
}

/// Never a half-written module, and never a device or pipe replaced.
fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    // A new module is world-readable, as any source file is.
    crate::atomic::write(path, text.as_bytes(), 0o644)
        .map_err(Error::io(format!("writing {}", path.display())))
}

/// Token counts per server: what a model reads of the raw MCP `tools/list`
/// answer, against what it reads of the generated Python API.
struct Stats {
    rows: Vec<Row>,
    /// The transport, `ToolError` and `call`: paid once per module, not per tool.
    runtime_tokens: usize,
    module_tokens: usize,
}

struct Row {
    server: String,
    tools: usize,
    mcp_json: usize,
    python: usize,
}

impl Stats {
    fn of(catalog: &Catalog, module: &str) -> Stats {
        let runtime_tokens = tokens::count(&bridge_gen::generate(&[]));
        let rows = catalog
            .servers
            .iter()
            .map(|server| {
                let raw = catalog.raw.get(&server.name).cloned().unwrap_or_default();
                let listing = serde_json::to_string(&json!({ "tools": raw })).unwrap_or_default();
                // What a model reads to use the tools: each one's signature,
                // docstring and the TypedDicts it names, as `serve` shows them.
                let api: String = server
                    .tools
                    .iter()
                    .map(|tool| {
                        bridge_gen::tool_signature(&server.name, tool, bridge_gen::Detail::Full)
                            + "\n"
                    })
                    .collect();
                Row {
                    server: server.name.clone(),
                    tools: server.tools.len(),
                    mcp_json: tokens::count(&listing),
                    python: tokens::count(&api),
                }
            })
            .collect();
        Stats {
            rows,
            runtime_tokens,
            module_tokens: tokens::count(module),
        }
    }

    fn totals(&self) -> (usize, usize, usize) {
        self.rows.iter().fold((0, 0, 0), |(t, j, p), r| {
            (t + r.tools, j + r.mcp_json, p + r.python)
        })
    }

    fn table(&self) -> String {
        let mut out = format!(
            "{:<24} {:>6} {:>12} {:>12} {:>8}\n",
            "server", "tools", "MCP JSON", "Python API", "ratio"
        );
        let line = |name: &str, tools: usize, json: usize, python: usize| {
            format!(
                "{:<24} {:>6} {:>12} {:>12} {:>8}\n",
                name,
                tools,
                json,
                python,
                ratio(python, json)
            )
        };
        for row in &self.rows {
            out += &line(&row.server, row.tools, row.mcp_json, row.python);
        }
        let (tools, json, python) = self.totals();
        out += &line("total", tools, json, python);
        out += &format!(
            "tokens: o200k_base. Python API: each tool's signature, docstring and types; the whole module, with its runtime ({} tokens) and review manifest, is {} tokens.\n",
            self.runtime_tokens, self.module_tokens
        );
        out
    }

    fn to_json(&self) -> serde_json::Value {
        let (tools, json, python) = self.totals();
        json!({
            "encoding": "o200k_base",
            "servers": self.rows.iter().map(|r| json!({
                "server": r.server,
                "tools": r.tools,
                "mcp_json_tokens": r.mcp_json,
                "python_api_tokens": r.python,
            })).collect::<Vec<_>>(),
            "total": {"tools": tools, "mcp_json_tokens": json, "python_api_tokens": python},
            "runtime_tokens": self.runtime_tokens,
            "module_tokens": self.module_tokens,
        })
    }
}

fn ratio(python: usize, json: usize) -> String {
    if json == 0 {
        "-".into()
    } else {
        format!("{:.2}", python as f64 / json as f64)
    }
}
