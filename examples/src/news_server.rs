//! The `news` MCP server: read-only tools over the bundled archive.

use std::sync::Arc;

use rmcp::{
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router, Json, ServerHandler,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::check_count;
use crate::news::{Archive, Article, ArticleList, CategoryFilter};

const MAX_LIMIT: i64 = 50;

fn default_latest_limit() -> i64 {
    5
}

fn default_search_limit() -> i64 {
    10
}

/// Arguments of `fetch_latest`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FetchLatestParams {
    /// Section to read: "technology", "science", "business", "health", "sports", "world", or "all".
    pub category: CategoryFilter,
    /// How many articles to return, from 1 to 50.
    #[serde(default = "default_latest_limit")]
    #[schemars(range(min = 1, max = 50))]
    pub limit: i64,
}

/// Arguments of `search`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchParams {
    /// Words to look for, e.g. "battery storage"; every word must occur (case and plurals ignored).
    pub query: String,
    /// Most articles to return, from 1 to 50.
    #[serde(default = "default_search_limit")]
    #[schemars(range(min = 1, max = 50))]
    pub limit: i64,
}

/// Arguments of `get_article`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetArticleParams {
    /// Article id as returned by fetch_latest or search, e.g. "tech-001".
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct NewsServer {
    archive: Arc<Archive>,
    tool_router: ToolRouter<Self>,
}

impl Default for NewsServer {
    fn default() -> Self {
        Self::new(Archive::bundled())
    }
}

#[tool_router(router = tool_router)]
impl NewsServer {
    pub fn new(archive: Archive) -> Self {
        Self {
            archive: Arc::new(archive),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        name = "fetch_latest",
        description = "Fetch the most recent news articles of one section, newest first. \
                       Returns {\"articles\": [...]}, each article with id, title, category, \
                       source, published (ISO 8601 UTC), url and the full body text.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn fetch_latest(
        &self,
        Parameters(params): Parameters<FetchLatestParams>,
    ) -> Result<Json<ArticleList>, String> {
        let limit = check_count("limit", params.limit, 1..=MAX_LIMIT)?;
        Ok(Json(ArticleList {
            articles: self.archive.latest(params.category, limit),
        }))
    }

    #[tool(
        name = "search",
        description = "Search all sections for articles containing every word of the query \
                       in the title or body, ranked by how often the words occur (newest first \
                       among equals). Returns {\"articles\": [...]} with full articles; \
                       an empty list when nothing matches.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search(
        &self,
        Parameters(params): Parameters<SearchParams>,
    ) -> Result<Json<ArticleList>, String> {
        let limit = check_count("limit", params.limit, 1..=MAX_LIMIT)?;
        let articles = self.archive.search(&params.query, limit)?;
        Ok(Json(ArticleList { articles }))
    }

    #[tool(
        name = "get_article",
        description = "Get one article by its id. Returns the article object (id, title, \
                       category, source, published, url, body); fails if no article has that id.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_article(
        &self,
        Parameters(params): Parameters<GetArticleParams>,
    ) -> Result<Json<Article>, String> {
        self.archive
            .get(&params.id)
            .cloned()
            .map(Json)
            .ok_or_else(|| format!("no article with id {:?}", params.id))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NewsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "news-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "An offline news archive. Use fetch_latest to read a section, search to find \
                 articles by words, and get_article to fetch one article by id.",
            )
    }
}
