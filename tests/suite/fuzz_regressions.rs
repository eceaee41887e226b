//! Every input the fuzzers keep, replayed through the fuzz targets' own checks
//! on stable Rust: the corpus in `fuzz/corpus/TARGET/` and each input that
//! once broke a check, in `fuzz/regressions/TARGET/`. A bug found by fuzzing
//! stays found without a fuzzing toolchain.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = checks::inputs(&fuzz.join("corpus").join(target));
    inputs.extend(checks::inputs(&fuzz.join("regressions").join(target)));
    assert!(!inputs.is_empty(), "no inputs kept for {target}");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| check(bytes))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs fail the {target} check (messages above): {failed:#?}",
        failed.len(),
        inputs.len()
    );
}

#[test]
fn rpc_request_inputs_are_parsed_as_the_wire_contract_says() {
    replay("rpc_request", checks::rpc_request);
}

#[test]
fn rpc_handler_inputs_get_answers_that_follow_the_wire_contract() {
    replay("rpc_handler", checks::rpc_handler);
}

#[test]
fn config_inputs_parse_or_fail_with_errors_that_point_at_the_file() {
    replay("config", checks::config);
}

#[test]
fn schema_inputs_generate_python_that_compiles() {
    replay("schema_to_python", checks::schema_to_python);
}
