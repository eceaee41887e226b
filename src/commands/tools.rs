//! `codemode tools`: what the configured servers offer, one line a tool, or the
//! best matches for a search.

use serde_json::json;

use crate::cli::ToolsArgs;
use crate::context::Context;
use crate::error::Error;
use codemode_mcp::catalog::Match;
use codemode_mcp::discovery;

pub async fn run(ctx: &Context, args: &ToolsArgs) -> Result<(), Error> {
    let catalog = ctx.catalog(&args.servers, args.allow_partial).await?;
    let matches: Vec<Match<'_>> = match &args.search {
        // The ranking a model gets from `search_tools` and `mcp_tools.search`.
        Some(query) => {
            let (matches, every_word) = discovery::find(&catalog, query);
            if !every_word && !matches.is_empty() {
                ctx.say(&format!(
                    "no tool matches every word of `{query}`; these match some"
                ));
            }
            matches
        }
        None => catalog
            .servers
            .iter()
            .flat_map(|s| {
                s.tools.iter().map(move |tool| Match {
                    server: &s.name,
                    tool,
                    score: 0,
                })
            })
            .collect(),
    };

    if args.json {
        let rows: Vec<_> = matches
            .iter()
            .map(|m| {
                json!({
                    "server": m.server,
                    "tool": m.tool.name,
                    "summary": bridge_gen::summary_line(m.tool.description.as_deref()),
                    "description": m.tool.description,
                    "input_schema": m.tool.input_schema,
                    "output_schema": m.tool.output_schema,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(());
    }

    if matches.is_empty() {
        match &args.search {
            Some(query) => ctx.say(&format!("no tool matches `{query}`")),
            None => ctx.say("the servers offer no tools"),
        }
        return Ok(());
    }
    let width = matches
        .iter()
        .map(|m| m.server.len() + m.tool.name.len() + 1)
        .max()
        .unwrap_or(0);
    for m in &matches {
        let name = format!("{}.{}", m.server, m.tool.name);
        let summary = bridge_gen::summary_line(m.tool.description.as_deref());
        println!("{name:<width$}  {summary}");
    }
    Ok(())
}
