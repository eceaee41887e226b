//! The run's figures as a table for people and as JSON for tools.

use serde_json::{json, Value};

use crate::stats::{median, round, Summary};
use crate::Results;

/// The bridge's added latency per call that the design aims to stay under.
pub const TARGET_OVERHEAD_US: f64 = 300.0;
/// Calls per second Python callers should get through one bridge.
pub const TARGET_CALLS_PER_S: f64 = 2000.0;

struct Row {
    label: String,
    median: String,
    p90: String,
    note: String,
}

fn row(label: &str, median: String, p90: String, note: String) -> Row {
    Row {
        label: label.into(),
        median,
        p90,
        note,
    }
}

pub fn table(r: &Results) -> String {
    let overhead = r.bridge.median - r.direct.median;
    let mut rows = vec![
        latency_row("1 direct: rmcp client, stdio", &r.direct),
        latency_row("2 bridge from Rust: HTTP/1.1, Unix socket", &r.bridge),
        row(
            "  overhead over direct",
            format!("{:+.1} µs", overhead),
            String::new(),
            format!(
                "{:.2}x direct; target ≤ {} µs: {}",
                r.bridge.median / r.direct.median,
                TARGET_OVERHEAD_US,
                verdict(overhead <= TARGET_OVERHEAD_US)
            ),
        ),
        latency_row("3 bridge from Python, 1 caller", &r.python),
    ];
    for (kind, groups) in [("thread", &r.threads), ("process", &r.processes)] {
        for (workers, runs) in groups.iter() {
            let rate = median(runs);
            let noun = match (kind, *workers) {
                (_, 1) => kind.to_string(),
                ("process", _) => "processes".into(),
                _ => format!("{kind}s"),
            };
            rows.push(row(
                &format!("  throughput, {workers} {noun}"),
                format!("{} /s", thousands(rate)),
                String::new(),
                format!(
                    "target ≥ {} /s: {}{}",
                    thousands(TARGET_CALLS_PER_S),
                    verdict(rate >= TARGET_CALLS_PER_S),
                    spread(runs)
                ),
            ));
        }
    }
    rows.push(latency_row(
        "  from Python in the native sandbox",
        &r.sandboxed,
    ));
    rows.push(latency_row("4 naive: new stdio session per call", &r.naive));
    rows.push(row(
        "  naive / bridge from Rust",
        format!("{:.0}x", r.naive.median / r.bridge.median),
        String::new(),
        String::new(),
    ));
    rows.push(row(
        "  naive / bridge from Python",
        format!("{:.0}x", r.naive.median / r.python.median),
        String::new(),
        String::new(),
    ));

    let p = &r.plan;
    let mut out = format!(
        "codemode bridge benchmark, {}, {} cores ({}), Python {}\n\
         every call: news.get_article(id=\"tech-001\") on the example news-server ({} build)\n\
         {} iterations: {} calls per path in 1-2, {} Python calls, {} calls per worker x {} runs, {} naive sessions\n\n",
        r.date,
        r.cores,
        r.cpu,
        r.python_version,
        // The bench runs the binaries of its own build profile.
        if cfg!(debug_assertions) { "debug" } else { "release" },
        if p.quick { "--quick" } else { "default" },
        p.calls,
        p.python_latency_calls,
        p.calls_per_worker,
        p.repeats,
        p.naive_runs,
    );
    let header = format!("{:<44}{:>12}{:>12}  {}", "", "median", "p90", "notes");
    out.push_str(&header);
    out.push('\n');
    for row in rows {
        let line = format!(
            "{:<44}{:>12}{:>12}  {}",
            row.label, row.median, row.p90, row.note
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn latency_row(label: &str, s: &Summary) -> Row {
    row(label, time(s.median), time(s.p90), String::new())
}

fn time(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn spread(runs: &[f64]) -> String {
    if runs.len() < 2 {
        return String::new();
    }
    let low = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let high = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        " ({} runs: {}-{})",
        runs.len(),
        thousands(low),
        thousands(high)
    )
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn json(r: &Results) -> Value {
    let overhead = r.bridge.median - r.direct.median;
    let rates = |groups: &[(usize, Vec<f64>)]| -> Value {
        groups
            .iter()
            .map(|(n, runs)| {
                (
                    n.to_string(),
                    json!({
                        "calls_per_s": round(median(runs)),
                        "runs": runs.iter().copied().map(round).collect::<Vec<_>>(),
                        "meets_target": median(runs) >= TARGET_CALLS_PER_S,
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "benchmark": "bridge",
        "date_utc": r.date,
        "cores": r.cores,
        "cpu": r.cpu,
        "iterations": if r.plan.quick { "quick" } else { "default" },
        "parameters": {
            "calls_per_path": r.plan.calls,
            "rounds": r.plan.rounds,
            "warmup_calls": r.plan.warmup,
            "python_latency_calls": r.plan.python_latency_calls,
            "calls_per_worker": r.plan.calls_per_worker,
            "throughput_runs": r.plan.repeats,
            "naive_sessions": r.plan.naive_runs,
        },
        "call": {"server": "news", "tool": "get_article", "arguments": {"id": "tech-001"}},
        "direct": r.direct.json(),
        "bridge_rust": {
            "latency": r.bridge.json(),
            "overhead_us": round(overhead),
            "overhead_ratio": round(r.bridge.median / r.direct.median),
            "target_overhead_us": TARGET_OVERHEAD_US,
            "meets_target": overhead <= TARGET_OVERHEAD_US,
        },
        "python": {
            "version": r.python_version,
            "latency": r.python.json(),
            "target_calls_per_s": TARGET_CALLS_PER_S,
            "threads": rates(&r.threads),
            "processes": rates(&r.processes),
            "sandboxed_native_latency": r.sandboxed.json(),
        },
        "naive": {
            "latency": r.naive.json(),
            "ratio_to_bridge_rust": round(r.naive.median / r.bridge.median),
            "ratio_to_bridge_python": round(r.naive.median / r.python.median),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
