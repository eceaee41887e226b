//! Counters for `GET /metrics`, in Prometheus' text format: calls by server and
//! outcome, and a latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (server, outcome) → count; outcome is `ok` or an error kind.
    calls: BTreeMap<(String, &'static str), u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    pub fn record(&self, server: &str, outcome: &'static str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *inner
            .calls
            .entry((server.to_string(), outcome))
            .or_default() += 1;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                inner.buckets[i] += 1;
            }
        }
        inner.count += 1;
        inner.sum += seconds;
    }

    pub fn render(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str("# HELP codemode_bridge_calls_total Tool calls through the bridge, by server and outcome.\n");
        out.push_str("# TYPE codemode_bridge_calls_total counter\n");
        for ((server, outcome), count) in &inner.calls {
            let _ = writeln!(
                out,
                "codemode_bridge_calls_total{{server=\"{}\",outcome=\"{outcome}\"}} {count}",
                escape(server)
            );
        }
        out.push_str("# HELP codemode_bridge_errors_total Failed calls, by error kind.\n");
        out.push_str("# TYPE codemode_bridge_errors_total counter\n");
        let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
        for ((_, outcome), count) in &inner.calls {
            if *outcome != "ok" {
                *by_kind.entry(outcome).or_default() += count;
            }
        }
        for (kind, count) in by_kind {
            let _ = writeln!(
                out,
                "codemode_bridge_errors_total{{kind=\"{kind}\"}} {count}"
            );
        }
        out.push_str("# HELP codemode_bridge_call_duration_seconds Time from request to answer.\n");
        out.push_str("# TYPE codemode_bridge_call_duration_seconds histogram\n");
        for (bound, count) in BUCKETS.iter().zip(inner.buckets.iter()) {
            let _ = writeln!(
                out,
                "codemode_bridge_call_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "codemode_bridge_call_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            inner.count
        );
        let _ = writeln!(
            out,
            "codemode_bridge_call_duration_seconds_sum {}",
            inner.sum
        );
        let _ = writeln!(
            out,
            "codemode_bridge_call_duration_seconds_count {}",
            inner.count
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_errors_are_counted_by_label() {
        let metrics = Metrics::default();
        metrics.record("news", "ok", Duration::from_millis(2));
        metrics.record("news", "ok", Duration::from_millis(3));
        metrics.record("news", "timeout", Duration::from_secs(2));
        let text = metrics.render();
        assert!(
            text.contains("codemode_bridge_calls_total{server=\"news\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("codemode_bridge_errors_total{kind=\"timeout\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("codemode_bridge_call_duration_seconds_bucket{le=\"0.0025\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("codemode_bridge_call_duration_seconds_bucket{le=\"5\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("codemode_bridge_call_duration_seconds_count 3"),
            "{text}"
        );
    }
}
