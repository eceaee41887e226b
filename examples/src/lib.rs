//! Offline demo MCP servers for codemode: a news archive and an extractive
//! summarizer. The logic lives here so it can be unit-tested without a
//! transport; the binaries in `src/bin/` only wire a server to stdio.

pub mod news;
pub mod news_server;
pub mod summarize;
pub mod summarizer_server;

use std::process::ExitCode;

use rmcp::{transport::stdio, ServerHandler, ServiceExt};

/// Checks a caller-supplied count against its allowed range.
///
/// Counts arrive as signed integers on purpose: a `u32` parameter would turn a
/// `-1` from a script into a JSON-RPC "invalid params" error, which the bridge
/// reports as a protocol failure, while a range error here becomes an ordinary
/// tool error the script can read and fix.
pub fn check_count(
    name: &str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<usize, String> {
    if range.contains(&value) {
        // The range check makes the value non-negative and small.
        Ok(value as usize)
    } else {
        Err(format!(
            "{name} must be between {} and {}, got {value}",
            range.start(),
            range.end()
        ))
    }
}

/// Serves `server` over stdin/stdout until the client closes the connection.
///
/// stdout carries the protocol, so failures are reported on stderr only.
pub async fn serve_stdio<S: ServerHandler>(name: &str, server: S) -> ExitCode {
    let running = match server.serve(stdio()).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{name}: could not start the MCP session: {e}");
            return ExitCode::FAILURE;
        }
    };
    match running.waiting().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: the MCP session ended abnormally: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_count;

    #[test]
    fn count_inside_range_is_accepted() {
        assert_eq!(check_count("limit", 5, 1..=50), Ok(5));
        assert_eq!(check_count("limit", 50, 1..=50), Ok(50));
    }

    #[test]
    fn count_outside_range_names_the_parameter_and_bounds() {
        assert_eq!(
            check_count("limit", 0, 1..=50),
            Err("limit must be between 1 and 50, got 0".to_string())
        );
        assert!(check_count("limit", -3, 1..=50).is_err());
        assert!(check_count("limit", 51, 1..=50).is_err());
    }
}
