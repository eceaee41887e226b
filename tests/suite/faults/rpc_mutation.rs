//! Hostile input: randomly mutated `/rpc` bodies (cargo-fuzz needs a nightly
//! toolchain; this is the stable, property-style stand-in).

use crate::common;

use std::time::{Duration, Instant};

use common::{examples_config, http};
use serde_json::{json, Value};

use super::Fixture;

const KINDS: [&str; 11] = [
    "unauthorized",
    "forbidden",
    "unknown_server",
    "unknown_tool",
    "invalid_arguments",
    "tool_error",
    "upstream_unavailable",
    "timeout",
    "rate_limited",
    "payload_too_large",
    "bad_request",
];

/// A small xorshift generator: reproducible, no crate needed.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Xorshift, seed: &[u8]) -> Vec<u8> {
    const TOKENS: [&str; 16] = [
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        ",",
        ":",
        "null",
        "true",
        "1e999",
        "-0",
        "\\u0000",
        "\\ud800",
        "\u{1f600}",
        "\"arguments\":",
    ];
    let mut body = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(body.len() + 1);
        match rng.below(7) {
            0 if at < body.len() => body[at] = rng.next() as u8,
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                body.splice(at..at, token.bytes());
            }
            2 => {
                let end = (at + rng.below(16)).min(body.len());
                body.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(32)).min(body.len());
                let copy = body[at..end].to_vec();
                body.splice(at..at, copy);
            }
            4 => {
                let depth = rng.below(200);
                let nest: Vec<u8> = std::iter::repeat_n(b'[', depth)
                    .chain(std::iter::repeat_n(b']', depth))
                    .collect();
                body.splice(at..at, nest);
            }
            5 => body.truncate(at),
            _ => {
                let len = rng.below(64);
                let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                body.splice(at..at, noise);
            }
        }
    }
    body
}

#[test]
fn thousands_of_mutated_rpc_bodies_each_get_a_well_formed_answer() {
    let fixture = Fixture::start(&examples_config());
    let pid = fixture.bridge.child.id();
    fixture.assert_news_works();
    // Both servers running before the baseline: a server started mid-run adds
    // its own pipes, which are not a leak.
    let warm = json!({"server": "summarizer", "tool": "keywords", "arguments": {"text": "a b c", "limit": 1}});
    let (status, _) = http(
        &fixture.bridge.url_tcp(),
        "POST",
        "/rpc",
        Some(&fixture.bridge.token),
        warm.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let fds_before = common::open_fds(pid);
    let rss_before = common::rss_kib(pid);
    let seeds: Vec<Vec<u8>> = [
        json!({"server": "news", "tool": "get_article", "arguments": {"id": "tech-001"}}),
        json!({"server": "news", "tool": "search", "arguments": {"query": "ai", "limit": 2}}),
        json!({"server": "summarizer", "tool": "keywords", "arguments": {"text": "a b c", "limit": 1}}),
        json!({"server": "news", "tool": "fetch_latest", "arguments": {"category": "technology"}}),
        json!({"server": "nope", "tool": "x"}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect();
    let workers: Vec<_> = (0..4u64)
        .map(|worker| {
            let (url, token, seeds) = (
                fixture.bridge.url_tcp(),
                fixture.bridge.token.clone(),
                seeds.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Xorshift(0x2545_f491_4f6c_dd1d ^ ((worker + 1) * 0x9e37_79b9));
                let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
                for round in 0..600 {
                    let body = mutate(&mut rng, &seeds[round % seeds.len()]);
                    let (status, text) = http(&url, "POST", "/rpc", Some(&token), &body);
                    let reply: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
                        panic!(
                            "status {status}, not JSON: {text:.200}\nfor {}",
                            String::from_utf8_lossy(&body)
                        )
                    });
                    let key = match reply["success"].as_bool() {
                        Some(true) => {
                            assert_eq!(status, 200, "{reply}");
                            assert!(reply.get("result").is_some(), "{reply}");
                            "ok".to_string()
                        }
                        Some(false) => {
                            let kind = reply["error"]["kind"].as_str().unwrap_or("");
                            assert!(KINDS.contains(&kind), "{reply}");
                            assert!(reply["error"]["message"].is_string(), "{reply}");
                            assert!((400..600).contains(&status), "{status} {reply}");
                            kind.to_string()
                        }
                        None => panic!("no `success`: {reply}"),
                    };
                    *outcomes.entry(key).or_default() += 1;
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for worker in workers {
        for (kind, n) in worker.join().unwrap() {
            *outcomes.entry(kind).or_default() += n;
        }
    }
    eprintln!(
        "2400 mutated bodies: {outcomes:?}; bridge RSS {rss_before} -> {} KiB, fds {fds_before} -> {}",
        common::rss_kib(pid),
        common::open_fds(pid)
    );
    assert!(outcomes.contains_key("bad_request"), "{outcomes:?}");
    fixture.assert_news_works();
    let (status, _) = http(&fixture.bridge.url_tcp(), "GET", "/health", None, b"");
    assert_eq!(status, 200);
    // Closed connections leave the bridge a moment after the clients see them end.
    let settled = Instant::now();
    while common::open_fds(pid) > fds_before + 4 && settled.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        common::open_fds(pid) <= fds_before + 4,
        "descriptors leaked: {fds_before} -> {}",
        common::open_fds(pid)
    );
    fixture.stop_and_check_clean();
}
