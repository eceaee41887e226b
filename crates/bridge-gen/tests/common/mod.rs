//! Helpers shared by the integration tests: fixtures, scratch directories,
//! and finding the Python tools the checks run.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bridge_gen::ServerTools;

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `tests/fixtures/*.json`, sorted, so fixtures someone else drops in
/// (the `real-*.json` dumps of real servers) are covered without a code change.
pub fn fixtures() -> Vec<PathBuf> {
    let dir = crate_dir().join("tests/fixtures");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
}

pub fn load_fixture(path: &Path) -> Vec<ServerTools> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a list of servers: {e}", path.display()))
}

pub fn fixture_stem(path: &Path) -> String {
    path.file_stem()
        .expect("fixture file name")
        .to_string_lossy()
        .into_owned()
}

pub fn golden_path(fixture: &Path) -> PathBuf {
    crate_dir()
        .join("tests/golden")
        .join(format!("{}.py", fixture_stem(fixture)))
}

/// A fresh, empty directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bridge-gen")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// In CI a missing tool is a failure, not a skip: a check that silently
/// never runs protects nothing.
fn missing(tool: &str, how: &str) -> Option<String> {
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is required when CI is set but was not found ({how})");
    }
    eprintln!("note: {tool} not found ({how}); skipping this check");
    None
}

/// `$CODEMODE_TEST_PYTHON` or `python3`, if it is Python 3.9 or newer.
pub fn python() -> Option<String> {
    let program = std::env::var("CODEMODE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let check = "import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)";
    if runs(&program, &["-c", check]) {
        Some(program)
    } else {
        missing("python >= 3.9", "set CODEMODE_TEST_PYTHON")
    }
}

/// `$CODEMODE_TEST_MYPY`, `mypy` on PATH, or the workspace's tools venv
/// (where `.ci/install-mcp-servers.sh` puts it).
pub fn mypy() -> Option<String> {
    if let Ok(program) = std::env::var("CODEMODE_TEST_MYPY") {
        if runs(&program, &["--version"]) {
            return Some(program);
        }
        return missing(
            "mypy",
            &format!("CODEMODE_TEST_MYPY={program} does not run"),
        );
    }
    if runs("mypy", &["--version"]) {
        return Some("mypy".into());
    }
    let tools_dir = std::env::var_os("CODEMODE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../.venv"));
    let venv_mypy = tools_dir.join("bin/mypy");
    if runs(&venv_mypy.to_string_lossy(), &["--version"]) {
        return Some(venv_mypy.to_string_lossy().into_owned());
    }
    missing("mypy", "set CODEMODE_TEST_MYPY or put mypy on PATH")
}

/// Runs a command and fails the test with its output if it does not succeed.
pub fn run_ok(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// mypy --strict over some modules, for the oldest Python mypy still
/// targets and for the interpreter's own version.
pub fn mypy_strict(mypy: &str, dir: &Path, files: &[PathBuf]) {
    for version in [Some("3.10"), None] {
        let mut command = Command::new(mypy);
        command
            .current_dir(dir)
            .arg("--strict")
            .arg("--no-color-output")
            .arg("--cache-dir")
            .arg(dir.join(".mypy_cache"));
        if let Some(v) = version {
            command.arg("--python-version").arg(v);
        }
        command.args(files);
        run_ok(&mut command, &format!("mypy --strict (python {version:?})"));
    }
}

/// A tiny xorshift64* generator: reproducible randomness without a crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

use serde_json::{json, Map, Value};

/// Keys and names chosen to trip naming: keywords, builtins, typing names,
/// dashes, unicode, empties, near-duplicates.
pub const HOSTILE_NAMES: &[&str] = &[
    "a",
    "b",
    "id",
    "from",
    "class",
    "self",
    "my-key",
    "my_key",
    "2nd",
    "",
    "__x",
    "str",
    "List",
    "Any",
    "None",
    "arguments",
    "ünï",
    "日本",
    "with space",
    "x.y",
    "type",
    "_invoke",
    "call",
    "json",
    "Optional",
    "q\"uote",
    "back\\slash",
];

/// A random JSON Schema, mostly well-formed, sometimes odd: the shapes real
/// servers send plus the ones they should not.
pub fn random_schema(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth == 0 || rng.chance(30);
    if leaf {
        return match rng.below(9) {
            0 => json!({"type": "string"}),
            1 => json!({"type": "integer", "default": rng.below(10)}),
            2 => json!({"type": "number"}),
            3 => json!({"type": "boolean"}),
            4 => json!({"type": "null"}),
            5 => json!({"enum": random_enum(rng)}),
            6 => json!({"const": random_scalar(rng)}),
            7 => json!({"$ref": format!("#/$defs/D{}", rng.below(4))}),
            _ => json!({}),
        };
    }
    let mut schema = match rng.below(8) {
        0 | 1 => random_object(rng, depth - 1),
        2 => json!({"type": "array", "items": random_schema(rng, depth - 1)}),
        3 => json!({"anyOf": [random_schema(rng, depth - 1), random_schema(rng, depth - 1)]}),
        4 => json!({"oneOf": [random_schema(rng, depth - 1), {"type": "null"}]}),
        5 => json!({"allOf": [random_object(rng, depth - 1), random_object(rng, depth - 1)]}),
        6 => json!({"type": ["string", "integer", "null"]}),
        _ => json!({"type": "object", "additionalProperties": random_schema(rng, depth - 1)}),
    };
    if rng.chance(15) {
        schema["nullable"] = json!(true);
    }
    if rng.chance(30) {
        schema["description"] = json!(random_text(rng));
    }
    schema
}

pub fn random_object(rng: &mut Rng, depth: usize) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for _ in 0..rng.below(5) {
        let key = rng.pick(HOSTILE_NAMES).to_string();
        if rng.chance(40) {
            required.push(json!(key.clone()));
        }
        props.insert(key, random_schema(rng, depth));
    }
    json!({"type": "object", "properties": props, "required": required})
}

fn random_scalar(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => json!(rng.pick(HOSTILE_NAMES)),
        1 => json!(rng.below(1000) as i64 - 500),
        2 => json!(1.5),
        3 => json!(rng.chance(50)),
        4 => Value::Null,
        _ => json!(u64::MAX),
    }
}

fn random_enum(rng: &mut Rng) -> Vec<Value> {
    (0..rng.below(5)).map(|_| random_scalar(rng)).collect()
}

pub fn random_text(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "Does a thing. ",
        "\"\"\"",
        "\\",
        "\n",
        "\r\n",
        "\t",
        "\0",
        "'''",
        "é",
        "\u{2028}",
        "\u{202e}",
        "# codemode-tool: x.y 0000000000000000",
        "\"",
        "{}",
        "%s",
        "\\N{DASH}",
    ];
    (0..rng.below(8)).map(|_| *rng.pick(PIECES)).collect()
}

/// An input schema with shared `$defs` (some recursive) for the `$ref`s
/// the random schemas make.
pub fn random_input_schema(rng: &mut Rng) -> Value {
    let mut schema = random_object(rng, 3);
    let mut defs = Map::new();
    for i in 0..4 {
        let def = if rng.chance(50) {
            json!({"type": "object", "properties": {
                "value": random_schema(rng, 2),
                "next": {"$ref": format!("#/$defs/D{}", rng.below(4))},
            }})
        } else {
            random_schema(rng, 2)
        };
        defs.insert(format!("D{i}"), def);
    }
    schema["$defs"] = Value::Object(defs);
    schema
}

/// Any JSON value at all, for inputs that are not schemas.
pub fn random_value(rng: &mut Rng, depth: usize) -> Value {
    if depth == 0 {
        return random_scalar(rng);
    }
    match rng.below(4) {
        0 => random_scalar(rng),
        1 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        2 => random_schema(rng, depth),
        _ => {
            const KEYS: &[&str] = &[
                "type",
                "properties",
                "items",
                "$ref",
                "enum",
                "const",
                "anyOf",
                "oneOf",
                "allOf",
                "required",
                "additionalProperties",
                "nullable",
                "$defs",
                "default",
                "description",
                "x-fastmcp-wrap-result",
                "result",
                "prefixItems",
            ];
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(rng.pick(KEYS).to_string(), random_value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}
