//! `codemode-bench exec`: what starting a sandboxed script costs, against the
//! same script run bare, measured in one run: `python3 -c` against
//! `codemode exec --sandbox native`, and `docker run --rm` against
//! `codemode exec --sandbox docker` where an engine with the image answers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

use crate::process::TempDir;
use crate::stats::{micros, round, utc_now, Summary};
use crate::{Failure, PYTHON};

const SCRIPT: &str = "print(1)\n";

pub struct Figures {
    rows: Vec<(String, Summary)>,
    notes: Vec<String>,
}

/// Times `runs` launches of a command that must print `1`.
fn time_command(label: &str, runs: usize, make: &dyn Fn() -> Command) -> Result<Summary, Failure> {
    let mut samples = Vec::with_capacity(runs);
    // One untimed launch warms the page cache and the engine.
    for i in 0..=runs {
        let started = Instant::now();
        let output = make()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Failure::Run(format!("{label}: {e}")))?;
        let elapsed = micros(started.elapsed());
        if !output.status.success() || String::from_utf8_lossy(&output.stdout).trim() != "1" {
            return Err(Failure::Run(format!(
                "{label} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        if i > 0 {
            samples.push(elapsed);
        }
    }
    Ok(Summary::of(&samples))
}

pub fn run(codemode: &Path, quick: bool) -> Result<Figures, Failure> {
    let runs = if quick { 3 } else { 30 };
    let dir = TempDir::new().map_err(|e| Failure::Setup(format!("temp dir: {e}")))?;
    let config = dir.path().join("codemode.toml");
    let image = std::env::var("CODEMODE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "codemode-python:bookworm".into());
    std::fs::write(&config, format!("[sandbox]\nimage = {image:?}\n"))
        .map_err(|e| Failure::Setup(format!("writing the config: {e}")))?;
    let script = dir.path().join("hello.py");
    std::fs::write(&script, SCRIPT)
        .map_err(|e| Failure::Setup(format!("writing the script: {e}")))?;
    let exec = |backend: &'static str| {
        let (config, script) = (config.clone(), script.clone());
        move || {
            let mut cmd = Command::new(codemode);
            cmd.arg("--config")
                .arg(&config)
                .args(["-q", "exec", "--sandbox", backend])
                .arg(&script);
            cmd
        }
    };

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    eprintln!("exec: bare python3 and native sandbox, {runs} runs each");
    rows.push((
        "bare python3 -c".to_string(),
        time_command("python3", runs, &|| {
            let mut cmd = Command::new(PYTHON);
            cmd.args(["-c", SCRIPT]);
            cmd
        })?,
    ));
    rows.push((
        "codemode exec --sandbox native".to_string(),
        time_command("native", runs, &exec("native"))?,
    ));

    let docker_ready = Command::new("docker")
        .args(["image", "inspect", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if docker_ready {
        eprintln!("exec: bare docker run and docker sandbox, {runs} runs each");
        rows.push((
            "bare docker run --rm".to_string(),
            time_command("docker run", runs, &|| {
                let mut cmd = Command::new("docker");
                cmd.args([
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    &image,
                    "python3",
                    "-c",
                    SCRIPT,
                ]);
                cmd
            })?,
        ));
        rows.push((
            "codemode exec --sandbox docker".to_string(),
            time_command("docker", runs, &exec("docker"))?,
        ));
    } else {
        notes.push(format!("docker: skipped, no engine with image {image}"));
    }
    Ok(Figures { rows, notes })
}

fn find<'a>(figures: &'a Figures, label: &str) -> Option<&'a Summary> {
    figures
        .rows
        .iter()
        .find(|(l, _)| l == label)
        .map(|(_, s)| s)
}

pub fn table(figures: &Figures) -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut out = format!("codemode-bench exec, {} , {cores} cores\n\n", utc_now());
    out += &format!(
        "{:<34} {:>12} {:>12}\n",
        "hello world (print(1))", "median ms", "p90 ms"
    );
    for (label, s) in &figures.rows {
        out += &format!(
            "{:<34} {:>12.1} {:>12.1}\n",
            label,
            s.median / 1000.0,
            s.p90 / 1000.0
        );
    }
    if let (Some(bare), Some(native)) = (
        find(figures, "bare python3 -c"),
        find(figures, "codemode exec --sandbox native"),
    ) {
        out += &format!(
            "\nnative over bare python3: +{:.1} ms (target: within 40 ms)\n",
            (native.median - bare.median) / 1000.0
        );
    }
    if let (Some(bare), Some(docker)) = (
        find(figures, "bare docker run --rm"),
        find(figures, "codemode exec --sandbox docker"),
    ) {
        out += &format!(
            "docker sandbox / bare docker run: {:.2}x (target: no slower, 1.00x or less)\n",
            docker.median / bare.median
        );
    }
    for note in &figures.notes {
        out += &format!("{note}\n");
    }
    out
}

pub fn json(figures: &Figures) -> Value {
    json!({
        "date": utc_now(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "rows": figures.rows.iter().map(|(label, s)| json!({
            "what": label,
            "median_ms": round(s.median / 1000.0),
            "p90_ms": round(s.p90 / 1000.0),
            "samples": s.count,
        })).collect::<Vec<_>>(),
        "notes": figures.notes,
    })
}
