//! A minimal HTTP/1.1 client over a Unix socket, kept alive across calls. Hand
//! written so the figure measures the bridge, not a client library's pooling and
//! buffering choices: one write per request, one buffered read per response.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub struct RpcClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    head: Vec<u8>,
    request: Vec<u8>,
    line: String,
}

impl RpcClient {
    pub fn connect(socket: &Path, token: &str) -> std::io::Result<RpcClient> {
        let writer = UnixStream::connect(socket)?;
        // A stuck bridge must fail the run, not hang it.
        writer.set_read_timeout(Some(Duration::from_secs(30)))?;
        let reader = BufReader::with_capacity(64 * 1024, writer.try_clone()?);
        let head = format!(
            "POST /rpc HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: "
        )
        .into_bytes();
        Ok(RpcClient {
            reader,
            writer,
            head,
            request: Vec::with_capacity(1024),
            line: String::new(),
        })
    }

    /// Sends one `POST /rpc` and returns the status and the body.
    pub fn post(&mut self, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.request.clear();
        self.request.extend_from_slice(&self.head);
        self.request
            .extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        self.request.extend_from_slice(body);
        self.writer.write_all(&self.request)?;

        self.line.clear();
        self.reader.read_line(&mut self.line)?;
        let status = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| invalid(format!("not an HTTP status line: {:?}", self.line)))?;
        let mut length = None;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                return Err(invalid(
                    "the bridge closed the connection mid-response".into(),
                ));
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(invalid(format!(
                        "the bridge sent `{header}`; this client reads Content-Length bodies only"
                    )));
                }
            }
        }
        let length =
            length.ok_or_else(|| invalid("the bridge answered without Content-Length".into()))?;
        let mut response = vec![0; length];
        self.reader.read_exact(&mut response)?;
        Ok((status, response))
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
