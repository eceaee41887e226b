//! Small pieces of English for messages: counts and sizes as people write them.

/// `1 tool`, `3 tools`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A byte count in the largest binary unit that divides it: `512 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// `text` on one line: every run of whitespace, newlines included, becomes one
/// space. Messages that quote what a peer sent (a server's error, a field name
/// in a hostile request) must not break a log line or a one-line error.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_other_counts_plural() {
        assert_eq!(plural(1, "tool"), "1 tool");
        assert_eq!(plural(0, "tool"), "0 tools");
        assert_eq!(plural(3, "tool"), "3 tools");
    }

    #[test]
    fn sizes_are_shown_in_round_units() {
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn one_line_folds_newlines_and_runs_of_space() {
        assert_eq!(
            one_line("unknown field ` \r\n`,\n  expected"),
            "unknown field ` `, expected"
        );
    }
}
