//! `codemode-bench scenario`: the seed's demo end to end. `codemode exec
//! --sandbox native examples/news_summary.py`, timed from the command's start
//! to its exit (so it includes starting both MCP servers and the bridge),
//! against the same script run by bare `python3` on the generated stubs
//! against a long-running `codemode bridge` whose servers are already up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

use crate::process::{Bridge, TempDir};
use crate::stats::{micros, round, utc_now, Summary};
use crate::{Failure, PYTHON};

pub const SCRIPT: &str = include_str!("../../examples/news_summary.py");

/// A temp dir holding a config naming the example servers built next to the
/// bench, like `config/codemode.toml` does, and the demo script.
pub struct Demo {
    pub dir: TempDir,
    pub config: PathBuf,
    pub script: PathBuf,
}

impl Demo {
    pub fn new(bins: &Path) -> Result<Demo, Failure> {
        let dir = TempDir::new().map_err(|e| Failure::Setup(format!("temp dir: {e}")))?;
        let config = dir.path().join("codemode.toml");
        let text = format!(
            "[servers.news]\ncommand = {:?}\n\n[servers.summarizer]\ncommand = {:?}\n\n[sandbox]\ntimeout = \"30s\"\n",
            bins.join("news-server").display().to_string(),
            bins.join("summarizer-server").display().to_string(),
        );
        std::fs::write(&config, text).map_err(|e| Failure::Setup(format!("config: {e}")))?;
        let script = dir.path().join("news_summary.py");
        std::fs::write(&script, SCRIPT).map_err(|e| Failure::Setup(format!("script: {e}")))?;
        Ok(Demo {
            dir,
            config,
            script,
        })
    }

    /// Writes `mcp_tools.py` into the temp dir with `codemode gen-bridge`.
    pub fn stubs(&self, codemode: &Path) -> Result<(), Failure> {
        let out = Command::new(codemode)
            .arg("--config")
            .arg(&self.config)
            .args(["-q", "gen-bridge", "-o"])
            .arg(self.dir.path().join("mcp_tools.py"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Failure::Run(format!("gen-bridge: {e}")))?;
        if !out.status.success() {
            return Err(Failure::Run(format!(
                "gen-bridge failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Bare `python3 SCRIPT` on the stubs, against `bridge`.
    pub fn python(&self, script: &Path, bridge: &Bridge, token: &str) -> Command {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script)
            .current_dir(self.dir.path())
            .env("PYTHONPATH", self.dir.path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env(
                "CODEMODE_BRIDGE_URL",
                format!("unix://{}", bridge.socket.display()),
            )
            .env("CODEMODE_BRIDGE_TOKEN", token);
        cmd
    }

    pub fn start_bridge(&self, codemode: &Path, token: &str) -> Result<Bridge, Failure> {
        Bridge::start(
            codemode,
            &self.config,
            &self.dir.path().join("bridge.sock"),
            token,
        )
        .map_err(Failure::Run)
    }
}

/// Runs `cmd`, which must succeed; returns its stdout.
pub fn output(label: &str, cmd: &mut Command) -> Result<String, Failure> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::Run(format!("{label}: {e}")))?;
    if !out.status.success() {
        return Err(Failure::Run(format!(
            "{label} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn token() -> String {
    format!("bench-scenario-{}", std::process::id())
}

pub struct Figures {
    date: String,
    cores: usize,
    cold: Summary,
    warm: Summary,
}

fn time_runs(
    label: &str,
    runs: usize,
    expected: &str,
    make: &dyn Fn() -> Command,
) -> Result<Summary, Failure> {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..=runs {
        let started = Instant::now();
        let printed = output(label, &mut make())?;
        let elapsed = micros(started.elapsed());
        if printed != expected {
            return Err(Failure::Run(format!(
                "{label} printed something else than the reference run:\n{printed}"
            )));
        }
        if i > 0 {
            samples.push(elapsed);
        }
    }
    Ok(Summary::of(&samples))
}

pub fn run(codemode: &Path, quick: bool) -> Result<Figures, Failure> {
    let runs = if quick { 3 } else { 20 };
    let bins = codemode.parent().unwrap_or(Path::new("."));
    let demo = Demo::new(bins)?;
    let token = token();
    demo.stubs(codemode)?;
    eprintln!("scenario: long-running bridge + bare python3, {runs} runs");
    let bridge = demo.start_bridge(codemode, &token)?;
    let expected = output(
        "python3 news_summary.py",
        &mut demo.python(&demo.script, &bridge, &token),
    )?;
    let warm = time_runs("python3 news_summary.py", runs, &expected, &|| {
        demo.python(&demo.script, &bridge, &token)
    })?;
    drop(bridge);
    eprintln!("scenario: codemode exec --sandbox native, {runs} runs");
    let cold = time_runs("codemode exec", runs, &expected, &|| {
        let mut cmd = Command::new(codemode);
        cmd.arg("--config")
            .arg(&demo.config)
            .args(["-q", "exec", "--sandbox", "native"])
            .arg(&demo.script);
        cmd
    })?;
    Ok(Figures {
        date: utc_now(),
        cores: crate::cores(),
        cold,
        warm,
    })
}

const COLD: &str = "codemode exec --sandbox native (cold)";
const WARM: &str = "python3 + running bridge (warm)";

pub fn table(f: &Figures) -> String {
    let mut out = format!(
        "codemode-bench scenario, {}, {} cores\n\
         examples/news_summary.py: 1 fetch_latest + 5 summarize calls, digest printed\n\n",
        f.date, f.cores
    );
    out += &format!("{:<40} {:>11} {:>11}\n", "", "median ms", "p90 ms");
    for (label, s) in [(COLD, &f.cold), (WARM, &f.warm)] {
        out += &format!(
            "{label:<40} {:>11.1} {:>11.1}\n",
            s.median / 1000.0,
            s.p90 / 1000.0
        );
    }
    out += &format!(
        "cold / warm: {:.1}x (cold includes starting the bridge, both servers and the sandbox;\n\
         warm is an unsandboxed python3 against servers already up)\n",
        f.cold.median / f.warm.median
    );
    out
}

pub fn json(f: &Figures) -> Value {
    let row = |s: &Summary| json!({"median_ms": round(s.median / 1000.0), "p90_ms": round(s.p90 / 1000.0), "samples": s.count});
    json!({
        "date": f.date,
        "cores": f.cores,
        "script": "examples/news_summary.py",
        "exec_native_cold": row(&f.cold),
        "python3_warm_bridge": row(&f.warm),
        "cold_over_warm": round(f.cold.median / f.warm.median),
    })
}
