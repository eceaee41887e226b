//! Tool and parameter descriptions as prose: cleaned for docstrings, and cut
//! down to one-line summaries.

use crate::literal;

/// Longest summary, in characters, before it is cut at a word boundary.
const SUMMARY_MAX: usize = 100;

/// Words that end in a period without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "vs", "cf", "approx", "incl", "no", "fig", "mr", "mrs", "ms", "dr", "st",
];

/// A description ready for a docstring: line breaks normalized, tabs expanded,
/// common indentation and trailing spaces removed, blank edges dropped.
pub(crate) fn clean(text: &str) -> String {
    let text = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\t', "    ");
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let dedented: Vec<&str> = lines
        .iter()
        // `indent` counts ASCII spaces only, so slicing there is on a char boundary.
        .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
        .collect();
    let start = dedented.iter().position(|l| !l.is_empty()).unwrap_or(0);
    let end = dedented
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |i| i + 1);
    dedented[start..end].join("\n")
}

/// The first sentence (or line) of a description, on one line and at most
/// about 100 characters; empty when there is no description.
///
/// Lines of the first paragraph are joined, because descriptions are often
/// hard-wrapped mid-sentence, but a list item or heading ends the summary.
pub fn summary_line(description: Option<&str>) -> String {
    let Some(description) = description else {
        return String::new();
    };
    let cleaned = clean(description);
    let mut joined = String::new();
    for line in cleaned.lines() {
        let line = line.trim();
        if line.is_empty() {
            if joined.is_empty() {
                continue;
            }
            break;
        }
        let starts_block = line.starts_with("- ")
            || line.starts_with("* ")
            || line.starts_with('#')
            || line.starts_with('|')
            || line.starts_with("```");
        if !joined.is_empty() && starts_block {
            break;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(line.trim_start_matches('#').trim_start());
    }
    let one_line = literal::comment(&joined);
    truncate(first_sentence(&one_line), SUMMARY_MAX)
}

fn first_sentence(text: &str) -> &str {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(pos, c)) in chars.iter().enumerate() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let ends_text = i + 1 == chars.len();
        let before_space = chars.get(i + 1).is_some_and(|&(_, n)| n.is_whitespace());
        if !(ends_text || before_space) {
            continue;
        }
        let word_start = text[..pos].rfind(char::is_whitespace).map_or(0, |p| p + 1);
        let word = text[word_start..pos].to_ascii_lowercase();
        if c == '.' && ABBREVIATIONS.contains(&word.trim_start_matches('(')) {
            continue;
        }
        return &text[..pos + c.len_utf8()];
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let limit = max - 3;
    let cut = text
        .char_indices()
        .nth(limit)
        .map_or(text.len(), |(pos, _)| pos);
    let head = &text[..cut];
    let head = match head.rfind(' ') {
        Some(space) if space > limit / 2 => &head[..space],
        _ => head,
    };
    format!("{}...", head.trim_end_matches([' ', ',', ';', ':']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_description_gives_an_empty_summary() {
        assert_eq!(summary_line(None), "");
        assert_eq!(summary_line(Some("  \n ")), "");
    }

    #[test]
    fn summary_is_the_first_sentence() {
        assert_eq!(
            summary_line(Some("Fetch the latest news. Results are cached.")),
            "Fetch the latest news."
        );
    }

    #[test]
    fn summary_joins_a_hard_wrapped_first_sentence() {
        assert_eq!(
            summary_line(Some("Fetch the latest\n  news articles. More.")),
            "Fetch the latest news articles."
        );
    }

    #[test]
    fn summary_stops_at_a_blank_line_or_a_list() {
        assert_eq!(summary_line(Some("Get a thing\n\nDetails")), "Get a thing");
        assert_eq!(summary_line(Some("Modes:\n- a\n- b")), "Modes:");
    }

    #[test]
    fn abbreviations_do_not_end_the_sentence() {
        assert_eq!(
            summary_line(Some("Convert units, e.g. km to mi. Fast.")),
            "Convert units, e.g. km to mi."
        );
    }

    #[test]
    fn decimals_do_not_end_the_sentence() {
        assert_eq!(
            summary_line(Some("Uses v1.2 of the API.")),
            "Uses v1.2 of the API."
        );
    }

    #[test]
    fn long_summaries_are_cut_at_a_word_boundary() {
        let long = "word ".repeat(60);
        let summary = summary_line(Some(&long));
        assert!(summary.chars().count() <= 100, "{summary}");
        assert!(summary.ends_with("word..."), "{summary}");
    }

    #[test]
    fn summaries_are_one_safe_line() {
        let summary = summary_line(Some("# Title\u{0}with\u{2028}junk"));
        assert_eq!(summary, "Title with junk");
    }

    #[test]
    fn clean_dedents_and_normalizes_line_breaks() {
        assert_eq!(clean("\n    a\r\n      b\r\n\n"), "a\n  b");
        assert_eq!(clean("x\ty  "), "x    y");
    }
}
