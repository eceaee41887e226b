//! Golden tests: each `tests/fixtures/NAME.json` generates exactly
//! `tests/golden/NAME.py`. Run with `UPDATE_GOLDEN=1` to rewrite the golden
//! files after an intended change, then review the diff.

mod common;

use std::collections::BTreeSet;

use bridge_gen::{generate, manifest, ServerTools};
use common::{fixture_stem, fixtures, golden_path, load_fixture};

fn first_difference(expected: &str, actual: &str) -> String {
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("line {}:\n  golden:    {e:?}\n  generated: {a:?}", i + 1);
        }
    }
    format!(
        "golden has {} lines, generated {}",
        expected.lines().count(),
        actual.lines().count()
    )
}

#[test]
fn every_fixture_generates_its_golden_module() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for fixture in fixtures() {
        let generated = generate(&load_fixture(&fixture));
        let golden = golden_path(&fixture);
        if update {
            std::fs::create_dir_all(golden.parent().expect("golden dir")).expect("mkdir golden");
            std::fs::write(&golden, &generated).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == generated => {}
            Ok(expected) => failures.push(format!(
                "{} differs from its golden: {}",
                fixture_stem(&fixture),
                first_difference(&expected, &generated)
            )),
            Err(_) => failures.push(format!(
                "{} has no golden file {}",
                fixture_stem(&fixture),
                golden.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(if the change is intended: UPDATE_GOLDEN=1 cargo test -p bridge-gen --test golden, then review the diff)",
        failures.join("\n")
    );
}

#[test]
fn the_hand_written_fixtures_are_there() {
    let stems: Vec<String> = fixtures().iter().map(|f| fixture_stem(f)).collect();
    for expected in ["news", "hostile"] {
        assert!(
            stems.iter().any(|s| s == expected),
            "missing fixture {expected}"
        );
    }
}

#[test]
fn generation_is_deterministic() {
    for fixture in fixtures() {
        let servers = load_fixture(&fixture);
        assert_eq!(
            generate(&servers),
            generate(&servers),
            "{}",
            fixture_stem(&fixture)
        );
    }
}

fn has_duplicate_names(servers: &[ServerTools]) -> bool {
    let mut server_names = BTreeSet::new();
    servers.iter().any(|s| {
        let mut tool_names = BTreeSet::new();
        !server_names.insert(&s.name) || s.tools.iter().any(|t| !tool_names.insert(&t.name))
    })
}

#[test]
fn input_order_does_not_change_the_output() {
    for fixture in fixtures() {
        let servers = load_fixture(&fixture);
        // With duplicate names the first occurrence wins, so order matters
        // there by design.
        if has_duplicate_names(&servers) {
            continue;
        }
        let mut reversed = servers.clone();
        reversed.reverse();
        for server in &mut reversed {
            server.tools.reverse();
        }
        assert_eq!(
            generate(&servers),
            generate(&reversed),
            "{}",
            fixture_stem(&fixture)
        );
    }
}

#[test]
fn the_manifest_lists_every_tool_once_under_its_original_names() {
    for fixture in fixtures() {
        let servers = load_fixture(&fixture);
        let expected: BTreeSet<String> = servers
            .iter()
            .flat_map(|s| {
                s.tools
                    .iter()
                    .map(move |t| format!("{}.{}", s.name, t.name))
            })
            .collect();
        let listed = manifest(&generate(&servers));
        let keys: BTreeSet<String> = listed.keys().cloned().collect();
        if has_duplicate_names(&servers) {
            assert!(keys.is_subset(&expected), "{}", fixture_stem(&fixture));
        } else {
            assert_eq!(keys, expected, "{}", fixture_stem(&fixture));
        }
        let lines = generate(&servers)
            .lines()
            .filter(|l| l.starts_with("# codemode-tool: "))
            .count();
        assert_eq!(lines, listed.len(), "{}", fixture_stem(&fixture));
    }
}
