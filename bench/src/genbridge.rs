//! `codemode-bench gen-bridge`: the wall time of `codemode gen-bridge -o FILE`
//! for 10 servers of 100 tools each (10 copies of
//! `tests/fixtures/many_tools_server.py 100`), from the command's start to its
//! exit: starting the 10 servers, listing their tools, writing the module.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::process::TempDir;
use crate::scenario::output;
use crate::stats::{micros, round, utc_now, Summary};
use crate::{Failure, PYTHON};

const SERVERS: usize = 10;
const TOOLS: usize = 100;

pub struct Figures {
    date: String,
    cores: usize,
    time: Summary,
    bytes: usize,
}

pub fn run(codemode: &Path, quick: bool) -> Result<Figures, Failure> {
    let runs = if quick { 2 } else { 10 };
    let dir = TempDir::new().map_err(|e| Failure::Setup(format!("temp dir: {e}")))?;
    let config = dir.path().join("codemode.toml");
    let mut text = String::new();
    for i in 1..=SERVERS {
        text += &format!(
            "[servers.api{i:02}]\ncommand = {PYTHON:?}\nargs = [{:?}, \"{TOOLS}\"]\n\n",
            crate::tokens::FIXTURE
        );
    }
    std::fs::write(&config, text).map_err(|e| Failure::Setup(format!("config: {e}")))?;
    let module = dir.path().join("mcp_tools.py");
    eprintln!("gen-bridge: {SERVERS} servers x {TOOLS} tools, {runs} runs");
    let mut samples = Vec::with_capacity(runs);
    for i in 0..=runs {
        let _ = std::fs::remove_file(&module);
        let started = Instant::now();
        output(
            "codemode gen-bridge",
            Command::new(codemode)
                .arg("--config")
                .arg(&config)
                .args(["-q", "gen-bridge", "-o"])
                .arg(&module),
        )?;
        let elapsed = micros(started.elapsed());
        if i > 0 {
            samples.push(elapsed);
        }
    }
    let written = std::fs::read_to_string(&module)
        .map_err(|e| Failure::Run(format!("gen-bridge wrote no module: {e}")))?;
    let tools = bridge_gen::manifest(&written).len();
    if tools != SERVERS * TOOLS {
        return Err(Failure::Run(format!(
            "gen-bridge wrote {tools} tools, expected {}",
            SERVERS * TOOLS
        )));
    }
    Ok(Figures {
        date: utc_now(),
        cores: crate::cores(),
        time: Summary::of(&samples),
        bytes: written.len(),
    })
}

pub fn table(f: &Figures) -> String {
    format!(
        "codemode-bench gen-bridge, {}, {} cores\n\n\
         {:<44} {:>11} {:>11}\n\
         {:<44} {:>11.1} {:>11.1}\n\
         module written: {} tools, {} KB\n",
        f.date,
        f.cores,
        "",
        "median ms",
        "p90 ms",
        format!("gen-bridge, {SERVERS} servers x {TOOLS} tools"),
        f.time.median / 1000.0,
        f.time.p90 / 1000.0,
        SERVERS * TOOLS,
        f.bytes / 1024
    )
}

pub fn json(f: &Figures) -> Value {
    json!({
        "date": f.date,
        "cores": f.cores,
        "servers": SERVERS,
        "tools_per_server": TOOLS,
        "median_ms": round(f.time.median / 1000.0),
        "p90_ms": round(f.time.p90 / 1000.0),
        "samples": f.time.count,
        "module_bytes": f.bytes,
    })
}
