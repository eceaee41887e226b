//! Extractive summarization: split a text into sentences, score each sentence
//! by how frequent its content words are in the whole text, and keep the best
//! ones in their original order.
//!
//! Scoring uses normalized word frequency (Luhn's idea) rather than a
//! TextRank-style similarity graph. The inputs here are news bodies of a few
//! sentences; on so few nodes a similarity graph is sparse and its ranking
//! swings on a single shared word, while frequency scoring is stable,
//! deterministic, linear in the text length, and easy to explain to a caller
//! who wonders why a sentence was picked.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Function words that say nothing about a text's topic, plus reporting verbs
/// ("said", "says") that pad every news sentence. Sorted for binary search.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "almost",
    "along",
    "already",
    "also",
    "although",
    "always",
    "am",
    "among",
    "an",
    "and",
    "another",
    "any",
    "anyone",
    "anything",
    "are",
    "aren't",
    "around",
    "as",
    "at",
    "be",
    "became",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "can't",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "either",
    "else",
    "enough",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "got",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "its",
    "itself",
    "just",
    "least",
    "less",
    "let",
    "like",
    "made",
    "make",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "near",
    "neither",
    "never",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "onto",
    "or",
    "other",
    "others",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "perhaps",
    "quite",
    "rather",
    "really",
    "said",
    "same",
    "say",
    "says",
    "several",
    "shall",
    "she",
    "should",
    "shouldn't",
    "since",
    "so",
    "some",
    "still",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "together",
    "too",
    "toward",
    "towards",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "wasn't",
    "we",
    "were",
    "weren't",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "won't",
    "would",
    "wouldn't",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Abbreviations that lead into what follows them (a name, a number, a date),
/// so a period after one never ends a sentence.
const LEADING_ABBREVIATIONS: &[&str] = &[
    "adm", "apr", "approx", "aug", "capt", "col", "dec", "dept", "dr", "feb", "fig", "gen", "gov",
    "hon", "jan", "jul", "jun", "lt", "mar", "mr", "mrs", "ms", "mt", "no", "nos", "nov", "oct",
    "prof", "rep", "rev", "sen", "sep", "sept", "sgt", "vs",
];

/// Abbreviations that often close a sentence as well ("... shares of Acme Inc.
/// The company ..."), so the words after them decide.
const TRAILING_ABBREVIATIONS: &[&str] =
    &["bros", "co", "corp", "etc", "inc", "jr", "ltd", "sr", "st"];

/// How a period after a word should be read.
#[derive(Debug, PartialEq, Eq)]
enum Abbreviation {
    /// Never ends a sentence.
    Leading,
    /// Ends a sentence only when the next word plainly starts one.
    Ambiguous,
}

fn classify_abbreviation(word: &str) -> Option<Abbreviation> {
    let lower = word.to_lowercase();
    if LEADING_ABBREVIATIONS.contains(&lower.as_str()) {
        return Some(Abbreviation::Leading);
    }
    if TRAILING_ABBREVIATIONS.contains(&lower.as_str()) {
        return Some(Abbreviation::Ambiguous);
    }
    // A single capital is an initial ("J. Smith"); dotted letters are an
    // acronym ("U.S", "e.g", "Ph.D") once the final period is cut off.
    let is_initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    let is_dotted = word.contains('.')
        && word.chars().any(char::is_alphabetic)
        && word.chars().all(|c| c.is_alphabetic() || c == '.');
    (is_initial || is_dotted).then_some(Abbreviation::Ambiguous)
}

pub(crate) fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

fn is_closing_mark(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»')
}

fn is_opening_mark(c: char) -> bool {
    matches!(c, '"' | '\'' | '(' | '[' | '“' | '‘' | '«')
}

/// Splits `text` into sentences, each with its whitespace collapsed.
///
/// A `.`, `!` or `?` (with any closing quotes or brackets after it) ends a
/// sentence when whitespace and a non-lowercase character follow, so decimals
/// ("3.5"), domains and lowercase continuations stay whole. After a period
/// the word before it is checked: titles such as "Dr." never end a sentence,
/// while acronyms and initials ("U.S.", "J.") end one only when the next word
/// is a capitalized function word ("The", "It"), which a name rarely is.
/// A blank line always ends a sentence, so headings and list items without
/// punctuation do not run into the next paragraph.
pub fn split_sentences(text: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut sentences = Vec::new();
    let mut push = |from: usize, to: usize| {
        let sentence = text[byte_at(from)..byte_at(to)]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // Stray punctuation between sentences is not a sentence.
        if sentence.chars().any(char::is_alphanumeric) {
            sentences.push(sentence);
        }
    };

    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c == '\n' && starts_blank_line(&chars, i) {
            push(start, i);
            start = i + 1;
            i += 1;
        } else if matches!(c, '.' | '!' | '?') {
            let mut end = i + 1;
            while end < chars.len()
                && (matches!(chars[end].1, '.' | '!' | '?') || is_closing_mark(chars[end].1))
            {
                end += 1;
            }
            if ends_sentence(&chars, start, i, end) {
                push(start, end);
                start = end;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    push(start, chars.len());
    sentences
}

/// Whether the line after the newline at `i` holds nothing but whitespace.
fn starts_blank_line(chars: &[(usize, char)], i: usize) -> bool {
    chars[i + 1..]
        .iter()
        .map(|&(_, c)| c)
        .take_while(|c| c.is_whitespace())
        .any(|c| c == '\n')
}

/// Decides whether the terminator run `chars[mark..end]` closes the sentence
/// that began at `start`.
fn ends_sentence(chars: &[(usize, char)], start: usize, mark: usize, end: usize) -> bool {
    let Some(&(_, after)) = chars.get(end) else {
        return true;
    };
    if !after.is_whitespace() {
        return false;
    }
    let Some(next) = (end..chars.len()).find(|&j| !chars[j].1.is_whitespace()) else {
        return true;
    };
    if chars[next].1.is_lowercase() {
        return false;
    }
    let run = &chars[mark..end];
    if run.iter().any(|&(_, c)| matches!(c, '!' | '?')) {
        return true;
    }
    let word_start = (start..mark)
        .rev()
        .find(|&j| chars[j].1.is_whitespace())
        .map_or(start, |j| j + 1);
    let word: String = chars[word_start..mark]
        .iter()
        .map(|&(_, c)| c)
        .skip_while(|&c| is_opening_mark(c))
        .collect();
    match classify_abbreviation(&word) {
        None => true,
        Some(Abbreviation::Leading) => false,
        Some(Abbreviation::Ambiguous) => {
            let next_word: String = chars[next..]
                .iter()
                .map(|&(_, c)| c)
                .skip_while(|&c| is_opening_mark(c))
                .take_while(|c| c.is_alphanumeric() || *c == '\'')
                .collect();
            is_stop_word(&next_word.to_lowercase())
        }
    }
}

/// Lowercased word tokens of `text`: runs of letters and digits, keeping
/// inner apostrophes ("don't") but dropping a possessive "'s".
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|raw| {
            let word = raw.replace('’', "'").to_lowercase();
            let word = word.trim_matches('\'');
            word.strip_suffix("'s").unwrap_or(word).to_string()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Folds simple plurals together ("chips" and "chip", "companies" and
/// "company") so they count as one topic. Deliberately light: a full stemmer
/// would also merge words that merely look alike.
pub fn stem(word: &str) -> String {
    if matches!(word, "news" | "series" | "species") {
        return word.to_string();
    }
    if word.len() > 4 {
        if let Some(base) = word.strip_suffix("ies") {
            return format!("{base}y");
        }
    }
    let keeps_final_s = ["ss", "us", "is"].iter().any(|end| word.ends_with(end));
    match word.strip_suffix('s') {
        Some(base) if word.len() > 3 && !keeps_final_s => base.to_string(),
        _ => word.to_string(),
    }
}

/// The topic-bearing words of `text` as (stem, surface form) pairs: no stop
/// words, no bare numbers, no single letters.
fn content_terms(text: &str) -> Vec<(String, String)> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop_word(w) && w.chars().count() > 1 && w.chars().any(char::is_alphabetic))
        .map(|w| (stem(&w), w))
        .collect()
}

/// Scores each sentence by the frequency of its content words in the whole
/// text, each frequency divided by the top frequency.
///
/// The sum is divided by the square root of the sentence's content-word count:
/// a plain sum would always favour the longest sentence, a plain mean a short
/// fragment that happens to repeat one frequent word.
pub fn sentence_scores(sentences: &[String]) -> Vec<f64> {
    let terms: Vec<Vec<String>> = sentences
        .iter()
        .map(|s| content_terms(s).into_iter().map(|(stem, _)| stem).collect())
        .collect();
    let mut frequency: HashMap<&str, usize> = HashMap::new();
    for term in terms.iter().flatten() {
        *frequency.entry(term).or_default() += 1;
    }
    let top = frequency.values().copied().max().unwrap_or(1) as f64;
    terms
        .iter()
        .map(|sentence_terms| {
            if sentence_terms.is_empty() {
                return 0.0;
            }
            let total: f64 = sentence_terms
                .iter()
                .map(|t| frequency[t.as_str()] as f64 / top)
                .sum();
            total / (sentence_terms.len() as f64).sqrt()
        })
        .collect()
}

/// Indices of the `count` best-scoring sentences, in original order. Equal
/// scores go to the earlier sentence, since news puts the point first.
pub fn select_sentences(scores: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(count);
    order.sort_unstable();
    order
}

/// The result of `summarize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// The selected sentences joined with single spaces, in their original order.
    pub summary: String,
    /// The selected sentences, in their original order.
    pub sentences: Vec<String>,
    /// How many sentences the input text had.
    pub original_sentences: usize,
}

fn require_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err("text is empty: pass the text to work on".to_string())
    } else {
        Ok(())
    }
}

/// Summarizes `text` to at most `max_sentences` of its own sentences.
pub fn summarize(text: &str, max_sentences: usize) -> Result<Summary, String> {
    require_text(text)?;
    let all = split_sentences(text);
    if all.is_empty() {
        return Err("text has no words to summarize".to_string());
    }
    let chosen = select_sentences(&sentence_scores(&all), max_sentences);
    let sentences: Vec<String> = chosen.into_iter().map(|i| all[i].clone()).collect();
    Ok(Summary {
        summary: sentences.join(" "),
        sentences,
        original_sentences: all.len(),
    })
}

/// The `limit` most frequent content words of `text`, most frequent first.
///
/// Plural and singular count together; each keyword is shown in the form the
/// text uses most. Ties go to the word that appears first.
pub fn keywords(text: &str, limit: usize) -> Result<Vec<String>, String> {
    require_text(text)?;
    struct Tally {
        count: usize,
        first_seen: usize,
        forms: Vec<(String, usize)>,
    }
    let mut tallies: HashMap<String, Tally> = HashMap::new();
    for (position, (stem, form)) in content_terms(text).into_iter().enumerate() {
        let tally = tallies.entry(stem).or_insert(Tally {
            count: 0,
            first_seen: position,
            forms: Vec::new(),
        });
        tally.count += 1;
        match tally.forms.iter_mut().find(|(f, _)| *f == form) {
            Some((_, n)) => *n += 1,
            None => tally.forms.push((form, 1)),
        }
    }
    let mut ranked: Vec<Tally> = tallies.into_values().collect();
    ranked.sort_by(|a, b| b.count.cmp(&a.count).then(a.first_seen.cmp(&b.first_seen)));
    Ok(ranked
        .into_iter()
        .take(limit)
        .map(|tally| {
            // max_by_key keeps the last maximum; reversing keeps the first seen.
            tally
                .forms
                .into_iter()
                .rev()
                .max_by_key(|(_, n)| *n)
                .map(|(form, _)| form)
                .unwrap_or_default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn splitting_ends_sentences_at_terminal_punctuation() {
        assert_eq!(
            split_sentences("Rates rose. Did stocks fall? Yes! Bonds rallied."),
            owned(&["Rates rose.", "Did stocks fall?", "Yes!", "Bonds rallied."])
        );
    }

    #[test]
    fn splitting_keeps_titles_with_the_following_name() {
        assert_eq!(
            split_sentences("Dr. Elena Marsh led the study. Prof. Tanaka agreed."),
            owned(&["Dr. Elena Marsh led the study.", "Prof. Tanaka agreed."])
        );
    }

    #[test]
    fn splitting_keeps_acronyms_inside_a_sentence() {
        assert_eq!(
            split_sentences("Clinics in the U.S. and the U.K. took part. Results came later."),
            owned(&[
                "Clinics in the U.S. and the U.K. took part.",
                "Results came later."
            ])
        );
        assert_eq!(
            split_sentences("The U.S. Senate voted. It passed."),
            owned(&["The U.S. Senate voted.", "It passed."])
        );
    }

    #[test]
    fn splitting_ends_a_sentence_at_an_acronym_when_a_new_one_clearly_starts() {
        assert_eq!(
            split_sentences("Imports fell in the U.S. The decline surprised analysts."),
            owned(&[
                "Imports fell in the U.S.",
                "The decline surprised analysts."
            ])
        );
    }

    #[test]
    fn splitting_keeps_decimals_and_numbered_titles_whole() {
        assert_eq!(
            split_sentences("Battery life rose by 3.5 hours. World No. 3 Ana Ruiz withdrew."),
            owned(&[
                "Battery life rose by 3.5 hours.",
                "World No. 3 Ana Ruiz withdrew."
            ])
        );
    }

    #[test]
    fn splitting_keeps_quotes_with_their_sentence_and_collapses_whitespace() {
        assert_eq!(
            split_sentences("He said \"it works.\"  The   team\ncheered."),
            owned(&["He said \"it works.\"", "The team cheered."])
        );
    }

    #[test]
    fn splitting_breaks_at_blank_lines() {
        assert_eq!(
            split_sentences("Quarterly results\n\nRevenue grew 8%"),
            owned(&["Quarterly results", "Revenue grew 8%"])
        );
    }

    #[test]
    fn splitting_does_not_break_before_a_lowercase_word() {
        assert_eq!(
            split_sentences("Visit example.com for details, e.g. prices. Done."),
            owned(&["Visit example.com for details, e.g. prices.", "Done."])
        );
    }

    #[test]
    fn words_are_lowercased_without_possessives() {
        assert_eq!(
            words("The planet’s atmosphere isn't THICK, 2.3 times"),
            owned(&[
                "the",
                "planet",
                "atmosphere",
                "isn't",
                "thick",
                "2",
                "3",
                "times"
            ])
        );
    }

    #[test]
    fn stemming_folds_simple_plurals_only() {
        assert_eq!(stem("chips"), "chip");
        assert_eq!(stem("companies"), "company");
        assert_eq!(stem("glass"), "glass");
        assert_eq!(stem("virus"), "virus");
        assert_eq!(stem("news"), "news");
        assert_eq!(stem("gas"), "gas");
    }

    #[test]
    fn ranking_picks_the_sentence_with_the_most_frequent_content_words() {
        let sentences = owned(&[
            "The weather was pleasant yesterday.",
            "Solar panels now power homes and solar farms across the region.",
            "Cheap solar panels sell well.",
        ]);
        assert_eq!(select_sentences(&sentence_scores(&sentences), 1), vec![1]);
    }

    #[test]
    fn ranking_ignores_stop_words() {
        // Without stop-word removal the first sentence would win on "the".
        let sentences = owned(&[
            "The the the the and the of the.",
            "Glaciers melt. Glacier melt feeds rivers.",
        ]);
        let scores = sentence_scores(&sentences);
        assert_eq!(scores[0], 0.0);
        assert!(scores[1] > 0.0);
    }

    #[test]
    fn summary_keeps_the_original_order_of_chosen_sentences() {
        let text = "Fusion reactors need magnets. Lunch was served at noon. \
                    Fusion magnets made from new superconductors let reactors shrink.";
        let summary = summarize(text, 2).unwrap();
        assert_eq!(
            summary.sentences,
            owned(&[
                "Fusion reactors need magnets.",
                "Fusion magnets made from new superconductors let reactors shrink."
            ])
        );
        assert_eq!(summary.summary, summary.sentences.join(" "));
        assert_eq!(summary.original_sentences, 3);
    }

    #[test]
    fn summary_of_a_short_text_returns_every_sentence() {
        let summary = summarize("One point. Another point.", 5).unwrap();
        assert_eq!(summary.sentences.len(), 2);
        assert_eq!(summary.original_sentences, 2);
    }

    #[test]
    fn summarizing_blank_text_is_an_error() {
        assert!(summarize("   \n ", 2).is_err());
        assert!(summarize("", 2).is_err());
        assert!(summarize("...", 2).is_err());
    }

    #[test]
    fn keywords_rank_by_frequency_and_merge_plurals() {
        let text = "Chips matter. The chip shortage hit chip makers. Makers wait.";
        assert_eq!(keywords(text, 2).unwrap(), owned(&["chip", "makers"]));
    }

    #[test]
    fn keywords_break_ties_by_first_appearance() {
        assert_eq!(
            keywords("Zebras graze. Antelopes run.", 3).unwrap(),
            owned(&["zebras", "graze", "antelopes"])
        );
    }

    #[test]
    fn keywords_of_blank_text_is_an_error() {
        assert!(keywords(" ", 5).is_err());
    }
}
