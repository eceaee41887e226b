//! `news-server`: the offline news MCP server on stdio.

use std::process::ExitCode;

use codemode_examples::{news_server::NewsServer, serve_stdio};

#[tokio::main]
async fn main() -> ExitCode {
    serve_stdio("news-server", NewsServer::default()).await
}
