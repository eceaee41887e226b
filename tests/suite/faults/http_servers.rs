//! Streamable HTTP MCP servers that fail: a tiny server on std's
//! `TcpListener` that answers 500 or drops the connection, always or only
//! for calls.

use std::time::Duration;

use crate::common::examples_config;
use serde_json::{json, Value};

use super::{assert_kind, Fixture};

#[derive(Clone, Copy, PartialEq)]
enum HttpFault {
    /// Every request gets a 500.
    Always500,
    /// Every connection is closed without an answer.
    DropAlways,
    /// `initialize` and `tools/list` work; `tools/call` gets a 500.
    Call500,
    /// `initialize` and `tools/list` work; `tools/call` drops the connection.
    CallDrop,
}

/// Serves `fault` on a loopback port until the test ends; the URL of its `/mcp`.
fn http_mcp_server(fault: HttpFault) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = serve_http_connection(stream, fault);
            });
        }
    });
    url
}

fn serve_http_connection(mut stream: std::net::TcpStream, fault: HttpFault) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let method = message["method"].as_str().unwrap_or("");
        let is_call = method == "tools/call";
        match fault {
            HttpFault::DropAlways => return Ok(()),
            HttpFault::CallDrop if is_call => return Ok(()),
            HttpFault::Always500 => {
                return write_http(
                    &mut stream,
                    "500 Internal Server Error",
                    "text/plain",
                    "boom",
                )
            }
            HttpFault::Call500 if is_call => {
                write_http(
                    &mut stream,
                    "500 Internal Server Error",
                    "text/plain",
                    "boom",
                )?;
                continue;
            }
            _ => {}
        }
        if !request_line.starts_with("POST") {
            write_http(&mut stream, "405 Method Not Allowed", "text/plain", "")?;
            continue;
        }
        let Some(id) = message.get("id").cloned() else {
            write_http(&mut stream, "202 Accepted", "text/plain", "")?;
            continue;
        };
        let result = match method {
            "initialize" => json!({
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "faulty-http", "version": "0"},
            }),
            "tools/list" => json!({"tools": [{
                "name": "echo",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
            }]}),
            _ => json!({"content": [{"type": "text", "text": "unexpected"}]}),
        };
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        write_http(&mut stream, "200 OK", "application/json", &answer)?;
        stream.flush()?;
    }
}

fn write_http(
    stream: &mut std::net::TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    use std::io::Write;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn http_config(url: &str) -> String {
    format!(
        "{}\n[servers.bad]\nurl = {url:?}\ncall_timeout = \"3s\"\nconnect_timeout = \"3s\"\n",
        examples_config()
    )
}

fn check_http_fault(fault: HttpFault) {
    let fixture = Fixture::start(&http_config(&http_mcp_server(fault)));
    let reply = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&reply, 503, "upstream_unavailable", Duration::from_secs(4));
    fixture.assert_news_works();
    // And again: the bridge keeps answering the same way.
    let reply = fixture.call("bad", "echo", json!({"text": "x"}));
    assert_kind(&reply, 503, "upstream_unavailable", Duration::from_secs(4));
    fixture.stop_and_check_clean();
}

#[test]
fn an_http_server_answering_500_is_upstream_unavailable() {
    check_http_fault(HttpFault::Always500);
}

#[test]
fn an_http_server_dropping_the_connection_is_upstream_unavailable() {
    check_http_fault(HttpFault::DropAlways);
}

#[test]
fn an_http_server_answering_500_to_a_call_is_upstream_unavailable() {
    check_http_fault(HttpFault::Call500);
}

#[test]
fn an_http_server_dropping_a_call_is_upstream_unavailable() {
    check_http_fault(HttpFault::CallDrop);
}
