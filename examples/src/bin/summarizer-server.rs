//! `summarizer-server`: the offline summarizer MCP server on stdio.

use std::process::ExitCode;

use codemode_examples::{serve_stdio, summarizer_server::SummarizerServer};

#[tokio::main]
async fn main() -> ExitCode {
    serve_stdio("summarizer-server", SummarizerServer::new()).await
}
