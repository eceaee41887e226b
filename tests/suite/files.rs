//! Files in and out of the sandbox: `--input` copies seen read-only under
//! /workspace/in, and what a script leaves in /workspace/out brought back by
//! `exec --out`, `serve` and sessions, whatever the script put there
//! (symlinks to the host's secrets, FIFOs, hostile names, huge sparse files,
//! thousands of files), in both sandboxes.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{exec_config, exec_json, mcp_python, python_client, ExecRun, Workdir};
use serde_json::Value;

/// `exec --json --out DIR` of `script` in `backend`; DIR is `work/out`.
fn exec_out(work: &Workdir, backend: &str, script: &str, extra: &[&str]) -> (ExecRun, PathBuf) {
    let dir = work.path().join(format!("out-{}", common::unique()));
    let dir_arg = dir.display().to_string();
    let mut args = vec!["--out", dir_arg.as_str()];
    args.extend_from_slice(extra);
    (exec_json(work, backend, script, &args), dir)
}

fn backends() -> Vec<&'static str> {
    let mut backends = vec!["native"];
    if common::docker_ready() {
        backends.push("docker");
    }
    backends
}

fn files(report: &Value) -> Vec<Value> {
    report["files"].as_array().cloned().unwrap_or_default()
}

fn names(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every path below `dir`, relative, sorted; symlinks are listed, not followed.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

#[test]
fn inputs_are_seen_under_workspace_in_read_only() {
    let work = Workdir::with_config(&exec_config());
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("nested")).unwrap();
    std::fs::write(data.join("nested/rows.csv"), "a,b\n1,2\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", data.join("secret")).unwrap();
    std::fs::write(work.path().join("note.txt"), "hello").unwrap();
    let script = r#"
import os
print(sorted(os.listdir('/workspace/in')), sorted(os.listdir('/workspace/in/data')))
print(open('/workspace/in/data/nested/rows.csv').read().splitlines()[1])
print(open('/workspace/in/note.txt').read())
for attempt in (lambda: open('/workspace/in/note.txt', 'w'), lambda: os.remove('/workspace/in/note.txt'),
                lambda: open('/workspace/in/new', 'w')):
    try:
        attempt()
        print('WROTE')
    except OSError as err:
        print('refused', err.errno)
"#;
    for backend in backends() {
        let run = exec_json(
            &work,
            backend,
            script,
            &["--input", "data", "--input", "note.txt"],
        );
        assert_eq!(run.code, 0, "{backend}: {}\n{}", run.report, run.stderr);
        let stdout = run.report["stdout"].as_str().unwrap();
        assert!(
            stdout.starts_with("['data', 'note.txt'] ['nested']\n1,2\nhello\n"),
            "{backend}: {stdout}"
        );
        assert!(!stdout.contains("WROTE"), "{backend}: {stdout}");
        assert_eq!(
            stdout.matches("refused 30").count(),
            3,
            "{backend}: {stdout}"
        );
        assert!(
            run.stderr.contains("data/secret: a symlink, skipped"),
            "{backend}: {}",
            run.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(work.path().join("note.txt")).unwrap(),
        "hello"
    );
}

#[test]
fn without_inputs_or_out_there_is_no_in_dir_and_no_files_key() {
    let work = Workdir::with_config(&exec_config());
    let run = exec_json(
        &work,
        "native",
        "import os\nprint(os.path.exists('/workspace/in'), os.path.exists('/workspace/out'))\n",
        &[],
    );
    assert_eq!(run.report["stdout"], "False False\n", "{}", run.report);
    assert!(run.report.get("files").is_none(), "{}", run.report);
}

#[test]
fn outputs_come_back_with_their_sha256_and_media_type() {
    let work = Workdir::with_config(&exec_config());
    let script = r#"
import hashlib, os, struct, zlib
os.makedirs('out/charts', exist_ok=True)
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 0, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(b'\x00\xff')) + chunk(b'IEND', b'')
blobs = {'charts/dot.png': png, 'report.json': b'{"ok": true}', 'raw.bin': bytes(range(256)),
         'fake.png': b'not a png'}
for name, data in blobs.items():
    with open('out/' + name, 'wb') as f:
        f.write(data)
    print(name, hashlib.sha256(data).hexdigest())
"#;
    for backend in backends() {
        let (run, dir) = exec_out(&work, backend, script, &[]);
        assert_eq!(run.code, 0, "{backend}: {}\n{}", run.report, run.stderr);
        let printed: Vec<(String, String)> = run.report["stdout"]
            .as_str()
            .unwrap()
            .lines()
            .map(|l| {
                let (name, hash) = l.split_once(' ').unwrap();
                (name.to_string(), hash.to_string())
            })
            .collect();
        let files = files(&run.report);
        assert_eq!(files.len(), 4, "{backend}: {}", run.report);
        for (name, hash) in &printed {
            let file = files.iter().find(|f| f["name"] == name.as_str()).unwrap();
            assert_eq!(file["sha256"], hash.as_str(), "{backend}: {file}");
            let saved = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(file["size"], saved.len(), "{backend}: {file}");
        }
        let media = |name: &str| {
            files.iter().find(|f| f["name"] == name).unwrap()["media_type"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(media("charts/dot.png"), "image/png");
        assert_eq!(media("report.json"), "application/json");
        assert_eq!(media("raw.bin"), "application/octet-stream");
        // The name says PNG; only the bytes could.
        assert_eq!(media("fake.png"), "text/plain");
        assert!(
            run.stderr.contains("saved 4 files"),
            "{backend}: {}",
            run.stderr
        );
    }
}

#[test]
fn symlinks_to_etc_shadow_and_root_are_skipped_with_a_note_and_nothing_written() {
    let work = Workdir::with_config(&exec_config());
    let script = r#"
import os
os.makedirs('out/d', exist_ok=True)
os.symlink('/etc/shadow', 'out/shadow')
os.symlink('/root', 'out/root')
os.symlink('/etc', 'out/d/etc')
open('out/ok.txt', 'w').write('fine')
"#;
    for backend in backends() {
        let (run, dir) = exec_out(&work, backend, script, &[]);
        assert_eq!(run.code, 0, "{backend}: {}\n{}", run.report, run.stderr);
        assert_eq!(names(&run.report, "files"), ["ok.txt"], "{backend}");
        let skipped = names(&run.report, "files_skipped");
        assert_eq!(
            skipped,
            ["d/etc", "root", "shadow"],
            "{backend}: {}",
            run.report
        );
        for skip in run.report["files_skipped"].as_array().unwrap() {
            assert!(
                skip["reason"].as_str().unwrap().contains("symlink"),
                "{skip}"
            );
        }
        assert!(
            run.stderr
                .contains("out/shadow skipped: a symlink: not followed"),
            "{backend}: {}",
            run.stderr
        );
        assert_eq!(tree(&dir), ["ok.txt"], "{backend}");
    }
}

#[test]
fn a_fifo_is_skipped_and_does_not_hang_the_collection() {
    let work = Workdir::with_config(&exec_config());
    let script = "import os\nos.makedirs('out', exist_ok=True)\nos.mkfifo('out/pipe')\nopen('out/after.txt', 'w').write('x')\n";
    for backend in backends() {
        let started = Instant::now();
        let (run, dir) = exec_out(&work, backend, script, &[]);
        assert_eq!(run.code, 0, "{backend}: {}\n{}", run.report, run.stderr);
        assert!(started.elapsed() < Duration::from_secs(30), "{backend}");
        assert_eq!(names(&run.report, "files_skipped"), ["pipe"], "{backend}");
        assert!(run.report["files_skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("FIFO"));
        assert_eq!(tree(&dir), ["after.txt"], "{backend}");
    }
}

#[test]
fn device_like_dotdot_and_control_character_names_are_made_safe_inside_dir() {
    let work = Workdir::with_config(&exec_config());
    // The collector names files by what the walk finds, so names with `..`
    // come only from a stream the script writes itself, which it may: the
    // host trusts no stream.
    let script = r#"
import json, os, socket
os.makedirs('out', exist_ok=True)
for name in ['CON', 'nul.txt', 'com1.log', 'bell\x07and\nnewline', 'back\\slash']:
    open('out/' + name, 'w').write(name)
s = socket.socket(socket.AF_UNIX)
s.connect('/run/codemode/out.sock')
for name in ['../../escaped.txt', '/abs/olute.txt', 'a/../../b.txt']:
    s.sendall(json.dumps({'file': name, 'size': 2}).encode() + b'\n' + b'hi')
s.sendall(b'{"end": true, "dropped": 0}\n')
s.close()
"#;
    let (run, dir) = exec_out(&work, "native", script, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    // The script's own stream came first and was taken; the collector's,
    // after it, never was.
    let mut got = names(&run.report, "files");
    got.sort();
    assert_eq!(
        got,
        ["__/__/escaped.txt", "a/__/__/b.txt", "abs/olute.txt"],
        "{}",
        run.report
    );
    assert_eq!(
        tree(&dir),
        [
            "__",
            "__/__",
            "__/__/escaped.txt",
            "a",
            "a/__",
            "a/__/__",
            "a/__/__/b.txt",
            "abs",
            "abs/olute.txt"
        ]
    );
    let parent: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !parent.iter().any(|n| n.contains("escaped") || n == "b.txt"),
        "{parent:?}"
    );

    // Names the walk finds on disk.
    let script = "import os\nos.makedirs('out', exist_ok=True)\nfor name in ['CON', 'nul.txt', 'com1.log', 'bell\\x07and\\nnewline', 'back\\\\slash', 'dots...']:\n    open('out/' + name, 'w').write(name)\n";
    for backend in backends() {
        let (run, dir) = exec_out(&work, backend, script, &[]);
        assert_eq!(run.code, 0, "{backend}: {}\n{}", run.report, run.stderr);
        assert_eq!(
            tree(&dir),
            [
                "_CON",
                "_com1.log",
                "_nul.txt",
                "back_slash",
                "bell_and_newline",
                "dots.._"
            ],
            "{backend}"
        );
    }
}

#[test]
fn a_1gb_sparse_file_past_the_cap_is_skipped_quickly_without_being_read() {
    let work = Workdir::with_config(&exec_config());
    let script = "import os\nos.makedirs('out', exist_ok=True)\nwith open('out/huge.bin', 'wb') as f:\n    f.truncate(1 << 30)\nopen('out/small.txt', 'w').write('ok')\n";
    for backend in backends() {
        let started = Instant::now();
        // The sparse file needs a workspace that may hold 1 GiB (it takes no pages).
        let (run, dir) = exec_out(
            &work,
            backend,
            script,
            &["--disk", "2g", "--max-out-bytes", "1m"],
        );
        assert_eq!(run.code, 0, "{backend}: {}\n{}", run.report, run.stderr);
        assert!(started.elapsed() < Duration::from_secs(30), "{backend}");
        assert_eq!(names(&run.report, "files"), ["small.txt"], "{backend}");
        let skip = &run.report["files_skipped"][0];
        assert_eq!(skip["name"], "huge.bin");
        assert!(
            skip["reason"].as_str().unwrap().contains("not read"),
            "{skip}"
        );
        assert_eq!(tree(&dir), ["small.txt"]);
    }
}

#[test]
fn thousands_of_small_files_stop_at_the_count_cap_and_the_rest_are_counted() {
    let work = Workdir::with_config(&exec_config());
    let script = "import os\nos.makedirs('out', exist_ok=True)\nfor i in range(3000):\n    open('out/f%04d.txt' % i, 'w').write(str(i))\n";
    for backend in backends() {
        let (run, dir) = exec_out(&work, backend, script, &[]);
        assert_eq!(
            run.code, 0,
            "{backend}: {}\n{}",
            run.report["error"], run.stderr
        );
        assert_eq!(files(&run.report).len(), 1000, "{backend}");
        assert_eq!(run.report["files_dropped"], 2000, "{backend}");
        assert_eq!(tree(&dir).len(), 1000);
        assert!(
            run.stderr.contains("2000 entries of out/"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_symlink_already_at_the_name_in_dir_is_replaced_not_followed() {
    let work = Workdir::with_config(&exec_config());
    let dir = work.path().join("saved");
    std::fs::create_dir(&dir).unwrap();
    let victim = work.path().join("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("result.txt")).unwrap();
    std::os::unix::fs::symlink(work.path(), dir.join("sub")).unwrap();
    let script = "import os\nos.makedirs('out/sub', exist_ok=True)\nopen('out/result.txt', 'w').write('new')\nopen('out/sub/x.txt', 'w').write('x')\n";
    let dir_arg = dir.display().to_string();
    let run = exec_json(&work, "native", script, &["--out", &dir_arg]);
    assert_eq!(run.code, 0, "{}\n{}", run.report, run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(!std::fs::symlink_metadata(dir.join("result.txt"))
        .unwrap()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(dir.join("result.txt")).unwrap(),
        "new"
    );
    // A directory part that is a symlink is refused, not followed.
    assert!(!work.path().join("x.txt").exists());
    assert!(run.stderr.contains("sub/x.txt not saved"), "{}", run.stderr);
}

#[test]
fn out_is_not_collected_when_codemode_stops_the_script() {
    let work = Workdir::with_config(&exec_config());
    let script = "import os, time\nos.makedirs('out', exist_ok=True)\nopen('out/partial.txt', 'w').write('x')\nwhile True:\n    time.sleep(0.1)\n";
    let (run, dir) = exec_out(&work, "native", script, &["--timeout", "2s"]);
    assert_eq!(run.code, 124, "{}", run.report);
    assert!(files(&run.report).is_empty(), "{}", run.report);
    assert!(run.report["files_error"]
        .as_str()
        .unwrap()
        .contains("not collected: timed out"));
    assert!(tree(&dir).is_empty());
}

#[test]
fn the_script_ends_as_it_would_have_with_outputs_collected() {
    let work = Workdir::with_config(&exec_config());
    let script = "import os, signal, sys\nos.makedirs('out', exist_ok=True)\nopen('out/a.txt', 'w').write(repr(sys.argv) + __file__)\nos.kill(os.getpid(), signal.SIGTERM)\n";
    for backend in backends() {
        let (run, dir) = exec_out(&work, backend, script, &[]);
        assert_eq!(run.report["exit_code"], 143, "{backend}: {}", run.report);
        assert_eq!(run.code, 143, "{backend}");
        let saved = std::fs::read_to_string(dir.join("a.txt")).unwrap();
        assert!(saved.starts_with("['/workspace/case_"), "{saved}");
        assert!(
            saved.ends_with(&format!("/workspace/{}", run.script)),
            "{saved}"
        );
    }
}

/// Python helpers for the client scripts: `run(c, code, **args)` calls
/// execute_python and gives back its structured result, text and content.
const RUN: &str = r#"
import base64, hashlib
async def run(c, code, **args):
    r = await c.call_tool("execute_python", {"code": code, **args})
    report = dict(r.structured_content or {})
    report["text"] = text(r)
    report["images"] = [
        {"mime": b.mime_type, "sha256": hashlib.sha256(base64.b64decode(b.data)).hexdigest()}
        for b in r.content if getattr(b, "type", "") == "image"]
    report["resources"] = [
        {"uri": str(b.resource.uri), "text": b.resource.text}
        for b in r.content if getattr(b, "type", "") == "resource"]
    return report
"#;

fn serve_client(backend: &str, body: &str) -> Option<Value> {
    let python = mcp_python()?;
    let config = format!(
        "{}\n[sandbox]\nbackend = {backend:?}\nimage = {:?}\n\n{}",
        common::examples_config(),
        common::docker_image(),
        common::NO_WARM
    );
    let work = Workdir::with_config(&config);
    let target = serde_json::to_string(&[
        "--config".to_string(),
        work.config().display().to_string(),
        "serve".to_string(),
    ])
    .unwrap();
    Some(python_client(
        &python,
        &target,
        &format!("{RUN}\n{body}"),
        &[],
    ))
}

const PNG_CELL: &str = r#"import hashlib, os, struct, zlib
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
rows = b''.join(b'\x00' + bytes([x * 16, 255 - x * 16, 128]) * 16 for x in range(16))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 16, 16, 8, 2, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')
os.makedirs('/workspace/out', exist_ok=True)
open('/workspace/out/chart.png', 'wb').write(png)
open('/workspace/out/notes.md', 'w').write('# notes\n')
print(hashlib.sha256(png).hexdigest())"#;

fn serve_returns_a_png_the_client_decodes_to_the_same_bytes_in(backend: &str) {
    let body = format!(
        "CELL = {PNG_CELL:?}\nasync def main():\n    async with client() as c:\n        done(await run(c, CELL))\n"
    );
    let Some(out) = serve_client(backend, &body) else {
        return;
    };
    assert_eq!(out["success"], true, "{out}");
    let printed = out["stdout"].as_str().unwrap().trim();
    assert_eq!(out["images"][0]["mime"], "image/png", "{out}");
    assert_eq!(out["images"][0]["sha256"], printed, "{out}");
    assert_eq!(out["resources"][0]["text"], "# notes\n", "{out}");
    assert!(out["resources"][0]["uri"]
        .as_str()
        .unwrap()
        .ends_with("/workspace/out/notes.md"));
    let listed: Vec<_> = out["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(listed, ["chart.png", "notes.md"], "{out}");
    assert_eq!(out["files"][0]["sha256"], printed);
    assert!(
        out["text"]
            .as_str()
            .unwrap()
            .contains("chart.png: image/png"),
        "{out}"
    );
}

#[test]
fn serve_returns_a_png_the_python_client_decodes_to_the_same_bytes() {
    serve_returns_a_png_the_client_decodes_to_the_same_bytes_in("native");
}

#[test]
fn serve_returns_a_png_from_docker_the_python_client_decodes_to_the_same_bytes() {
    if !common::docker_ready() {
        return;
    }
    serve_returns_a_png_the_client_decodes_to_the_same_bytes_in("docker");
}

fn a_session_lists_only_new_or_changed_files_in(backend: &str) {
    let Some(out) = serve_client(
        backend,
        r#"
async def main():
    async with client() as c:
        one = await run(c, "import os\nos.makedirs('out', exist_ok=True)\nopen('out/a.txt', 'w').write('1')")
        s = one["session"]
        two = await run(c, "open('out/b.txt', 'w').write('2')", session=s)
        three = await run(c, "print('nothing new')", session=s)
        four = await run(c, "open('out/a.txt', 'w').write('changed')", session=s)
        done({"one": one, "two": two, "three": three, "four": four})
"#,
    ) else {
        return;
    };
    let listed = |key: &str| -> Vec<String> {
        out[key]["files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(listed("one"), ["a.txt"], "{out}");
    assert_eq!(listed("two"), ["b.txt"], "{out}");
    assert!(listed("three").is_empty(), "{out}");
    assert_eq!(listed("four"), ["a.txt"], "{out}");
    assert_eq!(out["four"]["resources"][0]["text"], "changed", "{out}");
}

#[test]
fn a_session_accumulates_out_and_each_result_lists_only_what_is_new_or_changed() {
    a_session_lists_only_new_or_changed_files_in("native");
}

#[test]
fn a_docker_session_accumulates_out_and_lists_only_what_is_new_or_changed() {
    if !common::docker_ready() {
        return;
    }
    a_session_lists_only_new_or_changed_files_in("docker");
}

#[test]
fn a_cell_past_its_time_limit_still_hands_back_its_files() {
    let Some(out) = serve_client(
        "native",
        r#"
async def main():
    async with client() as c:
        r = await run(c, "import os, time\nos.makedirs('out', exist_ok=True)\nopen('out/early.txt', 'w').write('x')\ntime.sleep(30)", timeout_s=1)
        done(r)
"#,
    ) else {
        return;
    };
    assert_eq!(out["timed_out"], true, "{out}");
    assert_eq!(out["files"][0]["name"], "early.txt", "{out}");
}
