//! The bundled news archive and the queries the news server answers.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::summarize::{stem, words};

/// The archive ships inside the binary so the server works offline and every
/// run (and every test) sees the same articles.
const BUNDLED_ARTICLES: &str = include_str!("../data/articles.json");

/// The section an article belongs to.
// Inlined so schemas carry a plain `enum` where the field is, rather than a
// `$ref` that a stub generator would have to resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Category {
    Technology,
    Science,
    Business,
    Health,
    Sports,
    World,
}

/// A section to read, or every section at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum CategoryFilter {
    All,
    Technology,
    Science,
    Business,
    Health,
    Sports,
    World,
}

impl CategoryFilter {
    fn admits(self, category: Category) -> bool {
        match self {
            CategoryFilter::All => true,
            CategoryFilter::Technology => category == Category::Technology,
            CategoryFilter::Science => category == Category::Science,
            CategoryFilter::Business => category == Category::Business,
            CategoryFilter::Health => category == Category::Health,
            CategoryFilter::Sports => category == Category::Sports,
            CategoryFilter::World => category == Category::World,
        }
    }
}

/// One news article.
// Inlined for the same reason as `Category`: output schemas without `$ref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline)]
pub struct Article {
    /// Stable identifier such as "tech-001"; pass it to get_article.
    pub id: String,
    /// Headline.
    pub title: String,
    /// Section the article belongs to.
    pub category: Category,
    /// Publication that ran the article.
    pub source: String,
    /// Publication time, ISO 8601 in UTC, e.g. "2026-11-19T08:30:00Z".
    pub published: String,
    /// Link to the article.
    pub url: String,
    /// Full text of the article, a few paragraphs of plain prose.
    pub body: String,
}

/// A list of articles, as returned by fetch_latest and search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArticleList {
    /// The matching articles, best first.
    pub articles: Vec<Article>,
}

/// A fixed set of articles, kept newest first.
#[derive(Debug, Clone)]
pub struct Archive {
    articles: Vec<Article>,
}

impl Archive {
    /// The archive compiled into the binary.
    pub fn bundled() -> Self {
        let articles: Vec<Article> = serde_json::from_str(BUNDLED_ARTICLES)
            .expect("data/articles.json is valid (checked by a unit test)");
        Self::new(articles)
    }

    pub fn new(mut articles: Vec<Article>) -> Self {
        // Every timestamp has the same fixed UTC format, so text order is time
        // order; the id breaks ties so results never depend on file order.
        articles.sort_by(|a, b| b.published.cmp(&a.published).then(a.id.cmp(&b.id)));
        Self { articles }
    }

    /// Up to `limit` articles admitted by `filter`, newest first.
    pub fn latest(&self, filter: CategoryFilter, limit: usize) -> Vec<Article> {
        self.articles
            .iter()
            .filter(|a| filter.admits(a.category))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Articles whose title or body contains every word of `query`, ranked by
    /// how often the query words occur in them, newest first among equals.
    ///
    /// Matching is by whole word, ignoring case and plural endings. Function
    /// words ("the", "of") are left out of a query that has other words,
    /// since they would match everything and swamp the ranking.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Article>, String> {
        let terms = query_terms(query);
        if terms.is_empty() {
            return Err("query has no words to search for".to_string());
        }
        let mut hits: Vec<(usize, &Article)> = self
            .articles
            .iter()
            .filter_map(|article| {
                let mut counts: HashMap<String, usize> = HashMap::new();
                let text = format!("{} {}", article.title, article.body);
                for word in words(&text) {
                    *counts.entry(stem(&word)).or_default() += 1;
                }
                let per_term: Vec<usize> = terms
                    .iter()
                    .map(|t| counts.get(t).copied().unwrap_or(0))
                    .collect();
                per_term
                    .iter()
                    .all(|&n| n > 0)
                    .then(|| (per_term.iter().sum(), article))
            })
            .collect();
        // A stable sort keeps the archive's newest-first order among equal scores.
        hits.sort_by_key(|&(score, _)| std::cmp::Reverse(score));
        Ok(hits
            .into_iter()
            .take(limit)
            .map(|(_, a)| a.clone())
            .collect())
    }

    /// The article with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Article> {
        self.articles.iter().find(|a| a.id == id)
    }
}

fn query_terms(query: &str) -> Vec<String> {
    let all = words(query);
    let content: Vec<&String> = all
        .iter()
        .filter(|w| !crate::summarize::is_stop_word(w))
        .collect();
    let chosen: Vec<&String> = if content.is_empty() {
        all.iter().collect()
    } else {
        content
    };
    let mut terms: Vec<String> = Vec::new();
    for word in chosen {
        let term = stem(word);
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(id: &str, category: Category, published: &str, title: &str, body: &str) -> Article {
        Article {
            id: id.to_string(),
            title: title.to_string(),
            category,
            source: "Test Wire".to_string(),
            published: published.to_string(),
            url: format!("https://news.example.com/{id}"),
            body: body.to_string(),
        }
    }

    fn small_archive() -> Archive {
        Archive::new(vec![
            article(
                "a",
                Category::Technology,
                "2026-11-01T10:00:00Z",
                "Chip news",
                "A chip launched.",
            ),
            article(
                "b",
                Category::Science,
                "2026-11-03T10:00:00Z",
                "Telescope",
                "A telescope found a planet.",
            ),
            article(
                "c",
                Category::Technology,
                "2026-11-02T10:00:00Z",
                "Chips and more chips",
                "Chip makers ship chips to chip buyers.",
            ),
        ])
    }

    fn ids(articles: &[Article]) -> Vec<&str> {
        articles.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn bundled_archive_parses_with_unique_ids_and_enough_articles_per_category() {
        let archive = Archive::bundled();
        assert!(archive.articles.len() >= 36);
        let mut seen = std::collections::HashSet::new();
        assert!(archive.articles.iter().all(|a| seen.insert(a.id.clone())));
        for filter in [
            CategoryFilter::Technology,
            CategoryFilter::Science,
            CategoryFilter::Business,
            CategoryFilter::Health,
            CategoryFilter::Sports,
            CategoryFilter::World,
        ] {
            assert!(archive.latest(filter, 50).len() >= 5, "{filter:?}");
        }
    }

    #[test]
    fn bundled_timestamps_share_one_format_so_text_order_is_time_order() {
        for a in &Archive::bundled().articles {
            let p = a.published.as_bytes();
            let shape_ok = p.len() == 20
                && p[4] == b'-'
                && p[7] == b'-'
                && p[10] == b'T'
                && p[13] == b':'
                && p[16] == b':'
                && p[19] == b'Z';
            assert!(shape_ok, "{}: {}", a.id, a.published);
        }
    }

    #[test]
    fn bundled_bodies_have_four_to_eight_sentences() {
        for a in &Archive::bundled().articles {
            let n = crate::summarize::split_sentences(&a.body).len();
            assert!((4..=8).contains(&n), "{} has {n} sentences", a.id);
        }
    }

    #[test]
    fn latest_is_newest_first_within_the_category() {
        let archive = small_archive();
        assert_eq!(
            ids(&archive.latest(CategoryFilter::Technology, 5)),
            ["c", "a"]
        );
    }

    #[test]
    fn latest_for_all_spans_categories_and_respects_the_limit() {
        let archive = small_archive();
        assert_eq!(ids(&archive.latest(CategoryFilter::All, 2)), ["b", "c"]);
    }

    #[test]
    fn search_ranks_by_number_of_hits() {
        let archive = small_archive();
        assert_eq!(ids(&archive.search("chip", 10).unwrap()), ["c", "a"]);
    }

    #[test]
    fn search_requires_every_query_word() {
        let archive = small_archive();
        assert_eq!(ids(&archive.search("chip makers", 10).unwrap()), ["c"]);
        assert!(archive.search("chip telescope", 10).unwrap().is_empty());
    }

    #[test]
    fn search_ignores_case_and_function_words() {
        let archive = small_archive();
        assert_eq!(ids(&archive.search("the TELESCOPE", 10).unwrap()), ["b"]);
    }

    #[test]
    fn search_without_words_is_an_error() {
        assert!(small_archive().search(" ?! ", 10).is_err());
    }

    #[test]
    fn get_finds_an_article_by_id() {
        let archive = small_archive();
        assert_eq!(
            archive.get("b").map(|a| a.title.as_str()),
            Some("Telescope")
        );
        assert!(archive.get("zzz").is_none());
    }
}
