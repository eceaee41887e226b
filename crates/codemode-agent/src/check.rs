//! Checks a script passes before it may spend a sandbox run: it parses, it
//! uses `mcp_tools` when the task needs tools, and it prints (only printed
//! output comes back to the model). A failure is feedback for the model.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// A syntax check is a compile, not a run: it never needs long.
const SYNTAX_TIMEOUT: Duration = Duration::from_secs(10);

/// Compiles stdin without running it; prints the error as Python would name it.
const SYNTAX_CHECK: &str = r#"
import sys
source = sys.stdin.read()
try:
    compile(source, "main.py", "exec", dont_inherit=True)
except SyntaxError as e:
    print(f"{type(e).__name__}: {e.msg} (main.py, line {e.lineno})")
    if e.text:
        print("    " + e.text.rstrip())
    sys.exit(1)
except ValueError as e:
    print(f"ValueError: {e}")
    sys.exit(1)
"#;

/// What the checks need to know besides the code.
pub struct Checks<'a> {
    /// The host interpreter used for the syntax check.
    pub python: &'a str,
    /// Require `mcp_tools` this time (tools exist, none has been called yet).
    pub needs_tools: bool,
}

/// `Err(feedback)` when the script should not run yet.
pub async fn check(code: &str, checks: &Checks<'_>) -> Result<(), String> {
    if code.trim().is_empty() {
        return Err("the code field is empty.".into());
    }
    if let Some(error) = syntax_error(code, checks.python).await {
        return Err(format!("it does not parse:\n{error}"));
    }
    if checks.needs_tools && !code.contains("mcp_tools") {
        return Err(
            "it does not use mcp_tools, so it cannot reach the tools this task has. Import \
             what you need (`from mcp_tools import SERVER`). If the task truly needs no tool, \
             send the same code again."
                .into(),
        );
    }
    if !prints(code) {
        return Err(
            "it prints nothing, and only what it prints comes back to you. print() the \
             results you need."
                .into(),
        );
    }
    Ok(())
}

fn prints(code: &str) -> bool {
    ["print(", "print (", "stdout.write", "pprint", "sys.exit("]
        .iter()
        .any(|needle| code.contains(needle))
}

/// The syntax error in `code`, if any. When the host has no usable Python
/// the check is skipped: the sandbox run will report the error instead.
async fn syntax_error(code: &str, python: &str) -> Option<String> {
    let child = tokio::process::Command::new(python)
        // -I: no user site, no script directory on sys.path; nothing of the
        // host's but the compiler is involved.
        .args(["-I", "-c", SYNTAX_CHECK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            tracing::debug!("syntax check skipped: cannot run {python}: {err}");
            return None;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let code = code.to_string();
        // Written from a task: a large script must not deadlock against the
        // child's stdout.
        tokio::spawn(async move {
            let _ = stdin.write_all(code.as_bytes()).await;
        });
    }
    let output = match tokio::time::timeout(SYNTAX_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        _ => {
            tracing::debug!("syntax check skipped: {python} did not answer");
            return None;
        }
    };
    match output.status.code() {
        Some(0) => None,
        Some(1) => Some(
            String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_string(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> String {
        std::env::var("CODEMODE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
    }

    #[tokio::test]
    async fn a_syntax_error_is_caught_with_its_line() {
        let python = python();
        let checks = Checks {
            python: &python,
            needs_tools: false,
        };
        let err = check("x = 1\nprint(x\n", &checks).await.unwrap_err();
        assert!(err.contains("line"), "{err}");
        assert!(err.contains("SyntaxError"), "{err}");
        assert!(check("print(1)\n", &checks).await.is_ok());
    }

    #[tokio::test]
    async fn scripts_must_print_and_use_tools_when_asked() {
        let checks = Checks {
            python: "/nonexistent/python",
            needs_tools: true,
        };
        assert!(check("print(1)", &checks)
            .await
            .unwrap_err()
            .contains("mcp_tools"));
        let checks = Checks {
            python: "/nonexistent/python",
            needs_tools: false,
        };
        assert!(check("x = 1", &checks)
            .await
            .unwrap_err()
            .contains("prints nothing"));
    }
}
