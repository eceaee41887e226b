//! Small pieces of English for messages: counts and sizes as people write them,
//! and long output cut down to what a reader can take.

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

/// `text` with its middle cut out when longer than `max` bytes, and a note
/// saying how many bytes went: whoever reads it must know it is not seeing
/// everything, and the start and the end (what came first, a traceback) are
/// what matter. Cuts fall on character boundaries, so a little less than
/// `max` may be kept.
pub fn middle(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let head = floor_boundary(text, max / 2);
    let tail = ceil_boundary(text, text.len() - (max - max / 2));
    join_ends(&text[..head], (tail - head) as u64, &text[tail..])
}

/// The start and the end of a text whose middle (`dropped` bytes) is gone,
/// with the note [`middle`] writes between them.
pub fn join_ends(head: &str, dropped: u64, tail: &str) -> String {
    if dropped == 0 {
        return format!("{head}{tail}");
    }
    format!("{head}\n… [{dropped} bytes cut from the middle] …\n{tail}")
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
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

    #[test]
    fn long_text_keeps_its_start_and_end_and_says_how_much_was_cut() {
        let text = format!("{}{}", "a".repeat(100), "b".repeat(100));
        let cut = middle(&text, 50);
        assert!(cut.starts_with(&"a".repeat(25)), "{cut}");
        assert!(cut.ends_with(&"b".repeat(25)), "{cut}");
        assert!(cut.contains("[150 bytes cut from the middle]"), "{cut}");
    }

    #[test]
    fn text_within_the_limit_is_left_whole() {
        assert_eq!(middle("short", 50), "short");
        assert_eq!(middle("exactly", 7), "exactly");
    }

    #[test]
    fn the_middle_cut_never_splits_a_character() {
        let text = "é".repeat(100);
        let cut = middle(&text, 51);
        let (head, rest) = cut.split_once('\n').unwrap();
        let tail = rest.rsplit_once('\n').unwrap().1;
        assert!(head.len() <= 25 && tail.len() <= 26, "{cut}");
        assert!(head.chars().all(|c| c == 'é') && tail.chars().all(|c| c == 'é'));
        let dropped = text.len() - head.len() - tail.len();
        assert!(cut.contains(&format!("[{dropped} bytes cut")), "{cut}");
    }

    #[test]
    fn ends_without_a_gap_are_joined_as_they_are() {
        assert_eq!(join_ends("ab", 0, "cd"), "abcd");
        assert_eq!(
            join_ends("ab", 3, "cd"),
            "ab\n… [3 bytes cut from the middle] …\ncd"
        );
    }
}
