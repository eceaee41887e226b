//! The `summarizer` MCP server: extractive summaries and keywords of a text.

use rmcp::{
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router, Json, ServerHandler,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check_count;
use crate::summarize::{keywords, summarize, Summary};

fn default_max_sentences() -> i64 {
    3
}

fn default_keyword_limit() -> i64 {
    5
}

/// Arguments of `summarize`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SummarizeParams {
    /// The text to summarize: plain prose such as an article body.
    pub text: String,
    /// Most sentences to keep, from 1 to 100.
    #[serde(default = "default_max_sentences")]
    #[schemars(range(min = 1, max = 100))]
    pub max_sentences: i64,
}

/// Arguments of `keywords`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct KeywordsParams {
    /// The text to extract keywords from.
    pub text: String,
    /// Most keywords to return, from 1 to 50.
    #[serde(default = "default_keyword_limit")]
    #[schemars(range(min = 1, max = 50))]
    pub limit: i64,
}

/// The result of `keywords`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Keywords {
    /// Keywords, most frequent first, lowercase.
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SummarizerServer {
    tool_router: ToolRouter<Self>,
}

impl Default for SummarizerServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router(router = tool_router)]
impl SummarizerServer {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        name = "summarize",
        description = "Summarize a text by picking its most representative sentences \
                       (extractive: sentences are quoted, never rewritten), kept in their \
                       original order. Returns {\"summary\": str, \"sentences\": [str], \
                       \"original_sentences\": int}. Fails on empty text.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn summarize(
        &self,
        Parameters(params): Parameters<SummarizeParams>,
    ) -> Result<Json<Summary>, String> {
        let max = check_count("max_sentences", params.max_sentences, 1..=100)?;
        summarize(&params.text, max).map(Json)
    }

    #[tool(
        name = "keywords",
        description = "Extract the most frequent topic words of a text, ignoring common \
                       function words and counting plurals with their singular. Returns \
                       {\"keywords\": [str]}, most frequent first. Fails on empty text.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn keywords(
        &self,
        Parameters(params): Parameters<KeywordsParams>,
    ) -> Result<Json<Keywords>, String> {
        let limit = check_count("limit", params.limit, 1..=50)?;
        keywords(&params.text, limit).map(|keywords| Json(Keywords { keywords }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SummarizerServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "summarizer-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Offline text tools. Use summarize for an extractive summary of a text and \
                 keywords for its main topic words.",
            )
    }
}
