//! `codemode repl` driven through a pseudo-terminal, as a person types.

use crate::common;

use common::{codemode_bin, examples_config, Workdir};

/// Types into `codemode repl` on a pty: each step waits for the text it
/// names, then sends its keys. Prints the exit status and everything shown.
const DRIVER: &str = r#"
import json, os, pty, sys, time
binary, config = sys.argv[1], sys.argv[2]
steps = json.loads(sys.argv[3])
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "--config", config, "repl", "--sandbox", "native"])
shown = ""
def wait_for(text, limit=60):
    global shown
    deadline = time.time() + limit
    while text not in shown:
        if time.time() > deadline:
            raise SystemExit("never saw %r in:\n%s" % (text, shown))
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            raise SystemExit("the repl ended before %r:\n%s" % (text, shown))
        shown += chunk.decode("utf-8", "replace")
    # What was waited for is used up: the next wait is for something new.
    at = shown.index(text) + len(text)
    seen, shown = shown[:at], shown[at:]
    return seen
log = ""
for expect, keys, pause in steps:
    log += wait_for(expect)
    time.sleep(pause)
    os.write(fd, keys.encode())
_, status = os.waitpid(pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "log": log}))
"#;

#[test]
fn the_repl_keeps_state_interrupts_on_ctrl_c_and_ends_on_ctrl_d() {
    let work = Workdir::with_config(&examples_config());
    let steps = serde_json::json!([
        [">>> ", "x = 41\r", 0.0],
        [">>> ", "print(x + 1)\r", 0.0],
        ["42", "", 0.0],
        [">>> ", "for i in range(2):\r", 0.0],
        ["... ", "    print('loop', i)\r", 0.0],
        ["... ", "\r", 0.0],
        ["loop 1", "", 0.0],
        [">>> ", "import time; time.sleep(60)\r", 0.0],
        // Ctrl-C while the sleep runs.
        ["time.sleep(60)", "\u{3}", 1.5],
        ["KeyboardInterrupt", "", 0.0],
        [
            ">>> ",
            "print('alive', x, len(news.search(query='ai')['articles']) >= 0)\r",
            0.0
        ],
        ["alive 41 True", "", 0.0],
        [">>> ", "\u{4}", 0.0],
    ]);
    let output = std::process::Command::new("/usr/bin/python3")
        .args(["-c", DRIVER])
        .arg(codemode_bin())
        .arg(work.config())
        .arg(steps.to_string())
        .current_dir(work.path())
        .env_remove("CODEMODE_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("the driver failed:\n{stdout}\n{stderr}"));
    let log = result["log"].as_str().unwrap();
    assert_eq!(result["exit"], 0, "{log}");
    assert!(log.contains("tools: news, summarizer"), "{log}");
}
