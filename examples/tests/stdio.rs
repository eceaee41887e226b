//! Spawns the built server binaries and speaks MCP to them over stdio, the way
//! codemode's registry does, so the wire contract (tool names, schemas,
//! structured results, tool errors) is checked end to end.

use rmcp::{
    model::{CallToolRequestParams, CallToolResult, Tool},
    service::RunningService,
    transport::TokioChildProcess,
    RoleClient, ServiceExt,
};
use serde_json::{json, Value};

async fn connect(binary: &str) -> RunningService<RoleClient, ()> {
    let transport = TokioChildProcess::new(tokio::process::Command::new(binary))
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    ().serve(transport)
        .await
        .unwrap_or_else(|e| panic!("initialize {binary}: {e}"))
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &'static str,
    args: Value,
) -> CallToolResult {
    let Value::Object(arguments) = args else {
        panic!("tool arguments must be a JSON object");
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
        .unwrap_or_else(|e| panic!("call {tool}: {e}"))
}

fn structured(result: &CallToolResult) -> &Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "unexpected tool error: {result:?}"
    );
    result
        .structured_content
        .as_ref()
        .unwrap_or_else(|| panic!("no structuredContent in {result:?}"))
}

fn error_text(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a tool error: {result:?}"
    );
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

fn tool_names(tools: &[Tool]) -> Vec<String> {
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

fn input_property<'a>(tools: &'a [Tool], tool: &str, property: &str) -> &'a Value {
    let tool = tools.iter().find(|t| t.name == tool).expect("tool listed");
    &tool.input_schema["properties"][property]
}

#[tokio::test]
async fn news_server_initializes_and_lists_its_tools_with_output_schemas() {
    let client = connect(env!("CARGO_BIN_EXE_news-server")).await;
    let info = client.peer_info().expect("initialize result");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("news-server")
    );
    assert!(info.capabilities.tools.is_some());

    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(
        tool_names(&tools),
        ["fetch_latest", "get_article", "search"]
    );
    for tool in &tools {
        assert!(
            tool.output_schema.is_some(),
            "{} has no outputSchema",
            tool.name
        );
        assert!(
            tool.description.is_some(),
            "{} has no description",
            tool.name
        );
    }
    let category = input_property(&tools, "fetch_latest", "category");
    assert_eq!(
        category["enum"],
        json!([
            "all",
            "technology",
            "science",
            "business",
            "health",
            "sports",
            "world"
        ])
    );
    assert_eq!(
        input_property(&tools, "fetch_latest", "limit")["default"],
        json!(5)
    );
    assert_eq!(
        input_property(&tools, "search", "limit")["default"],
        json!(10)
    );
    client.cancel().await.expect("shut down");
}

#[tokio::test]
async fn fetch_latest_returns_newest_articles_of_the_category() {
    let client = connect(env!("CARGO_BIN_EXE_news-server")).await;
    let result = call(
        &client,
        "fetch_latest",
        json!({"category": "technology", "limit": 3}),
    )
    .await;
    let articles = structured(&result)["articles"]
        .as_array()
        .expect("articles list");
    assert_eq!(articles.len(), 3);
    for article in articles {
        assert_eq!(article["category"], "technology");
        for field in ["id", "title", "source", "published", "url", "body"] {
            assert!(article[field].is_string(), "{field} missing in {article}");
        }
    }
    let published: Vec<&str> = articles
        .iter()
        .map(|a| a["published"].as_str().unwrap())
        .collect();
    assert!(
        published.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {published:?}"
    );

    let default_limit = call(&client, "fetch_latest", json!({"category": "all"})).await;
    assert_eq!(
        structured(&default_limit)["articles"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    client.cancel().await.expect("shut down");
}

#[tokio::test]
async fn fetch_latest_with_an_out_of_range_limit_is_a_tool_error() {
    let client = connect(env!("CARGO_BIN_EXE_news-server")).await;
    let result = call(
        &client,
        "fetch_latest",
        json!({"category": "science", "limit": 0}),
    )
    .await;
    assert!(error_text(&result).contains("limit must be between 1 and 50"));
    let result = call(
        &client,
        "fetch_latest",
        json!({"category": "science", "limit": 51}),
    )
    .await;
    assert!(error_text(&result).contains("got 51"));
    client.cancel().await.expect("shut down");
}

#[tokio::test]
async fn search_returns_matching_articles_best_first() {
    let client = connect(env!("CARGO_BIN_EXE_news-server")).await;
    let result = call(&client, "search", json!({"query": "Glacier ice"})).await;
    let articles = structured(&result)["articles"]
        .as_array()
        .expect("articles list");
    assert_eq!(articles[0]["id"], "sci-006");

    let result = call(&client, "search", json!({"query": "chip", "limit": 2})).await;
    let articles = structured(&result)["articles"]
        .as_array()
        .expect("articles list");
    assert_eq!(articles.len(), 2);
    assert_eq!(
        articles[0]["id"], "tech-001",
        "the chip launch mentions chips most"
    );
    client.cancel().await.expect("shut down");
}

#[tokio::test]
async fn get_article_returns_one_article_or_a_tool_error() {
    let client = connect(env!("CARGO_BIN_EXE_news-server")).await;
    let result = call(&client, "get_article", json!({"id": "health-002"})).await;
    let article = structured(&result);
    assert_eq!(article["id"], "health-002");
    assert_eq!(article["category"], "health");

    let missing = call(&client, "get_article", json!({"id": "no-such-id"})).await;
    assert!(error_text(&missing).contains("no article with id"));
    client.cancel().await.expect("shut down");
}

#[tokio::test]
async fn summarizer_server_initializes_and_lists_its_tools_with_output_schemas() {
    let client = connect(env!("CARGO_BIN_EXE_summarizer-server")).await;
    let info = client.peer_info().expect("initialize result");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("summarizer-server")
    );

    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tool_names(&tools), ["keywords", "summarize"]);
    for tool in &tools {
        assert!(
            tool.output_schema.is_some(),
            "{} has no outputSchema",
            tool.name
        );
    }
    assert_eq!(
        input_property(&tools, "summarize", "max_sentences")["default"],
        json!(3)
    );
    assert_eq!(
        input_property(&tools, "keywords", "limit")["default"],
        json!(5)
    );
    client.cancel().await.expect("shut down");
}

const ARTICLE: &str = "Dr. Elena Marsh studies glaciers in the Andes. \
    The glaciers there lost a fifth of their ice in a decade. \
    Lunch at the field station was served at 12.30 each day. \
    Glacier meltwater feeds the rivers that farms need, so shrinking glaciers threaten harvests.";

#[tokio::test]
async fn summarize_returns_top_sentences_in_original_order() {
    let client = connect(env!("CARGO_BIN_EXE_summarizer-server")).await;
    let result = call(
        &client,
        "summarize",
        json!({"text": ARTICLE, "max_sentences": 2}),
    )
    .await;
    let summary = structured(&result);
    assert_eq!(summary["original_sentences"], 4);
    let sentences: Vec<&str> = summary["sentences"]
        .as_array()
        .expect("sentences list")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(sentences.len(), 2);
    assert!(
        sentences.iter().all(|s| s.contains("lacier")),
        "{sentences:?}"
    );
    let positions: Vec<usize> = sentences.iter().map(|s| ARTICLE.find(s).unwrap()).collect();
    assert!(positions[0] < positions[1], "not in original order");
    assert_eq!(summary["summary"], sentences.join(" "));
    client.cancel().await.expect("shut down");
}

#[tokio::test]
async fn summarize_of_empty_text_is_a_tool_error() {
    let client = connect(env!("CARGO_BIN_EXE_summarizer-server")).await;
    let result = call(&client, "summarize", json!({"text": "  "})).await;
    assert!(error_text(&result).contains("text is empty"));
    client.cancel().await.expect("shut down");
}

#[tokio::test]
async fn keywords_returns_the_most_frequent_topic_words() {
    let client = connect(env!("CARGO_BIN_EXE_summarizer-server")).await;
    let result = call(&client, "keywords", json!({"text": ARTICLE, "limit": 2})).await;
    let keywords = &structured(&result)["keywords"];
    assert_eq!(keywords.as_array().map(Vec::len), Some(2));
    assert_eq!(keywords[0], "glaciers");
    client.cancel().await.expect("shut down");
}
