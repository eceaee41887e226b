//! The command line as a user first meets it: help, subcommands, completions.

use crate::common;

use common::{codemode, repo, stdout_of};
use predicates::prelude::*;

#[test]
fn help_lists_every_subcommand() {
    let output = codemode()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .clone();
    let help = stdout_of(&output);
    for sub in [
        "gen-bridge",
        "bridge",
        "exec",
        "ask",
        "serve",
        "tools",
        "completions",
    ] {
        assert!(help.contains(sub), "`{sub}` missing from --help:\n{help}");
    }
}

#[test]
fn every_subcommand_help_teaches_with_an_example() {
    for sub in [
        "gen-bridge",
        "bridge",
        "exec",
        "ask",
        "serve",
        "tools",
        "completions",
    ] {
        codemode()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    codemode()
        .args(["gen-bridge", "--no-such-flag"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--no-such-flag"));
}

#[test]
fn completions_in_the_repository_are_current() {
    for (shell, file) in [
        ("bash", "codemode.bash"),
        ("zsh", "_codemode"),
        ("fish", "codemode.fish"),
    ] {
        let output = codemode()
            .args(["completions", shell])
            .assert()
            .success()
            .get_output()
            .clone();
        let path = repo().join("completions").join(file);
        if std::env::var_os("UPDATE_COMPLETIONS").is_some() {
            std::fs::write(&path, &output.stdout).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == output.stdout,
            "{} is out of date: run `UPDATE_COMPLETIONS=1 cargo test --test all cli::`",
            path.display()
        );
    }
}
