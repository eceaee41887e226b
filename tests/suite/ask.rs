//! `codemode ask` end to end: the real binary against scripted
//! OpenAI-compatible and Anthropic-compatible servers, the example MCP
//! servers and the native sandbox. Each test checks what codemode sends (the
//! prompt, the model, the key's header, the feedback) and what it does with
//! the replies.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{exec_config, stderr_of, stdout_of, Workdir};
use serde_json::{json, Value};

const KEY: &str = "sk-test-SECRET-5f2a9c";
const MODEL: &str = "test-model";

/// One request as the scripted server saw it.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    /// Lowercased names.
    headers: Vec<(String, String)>,
    body: Value,
    /// When the request line arrived.
    at: Instant,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every message's content, one string: what the model was shown.
    fn text(&self) -> String {
        self.body.to_string()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, Header)>,
    body: Value,
}

enum Header {
    Text(String),
    /// An HTTP date this long after the reply is sent: fixed when the test
    /// starts, it could already be past by the time codemode asks.
    DateIn(Duration),
}

impl Header {
    fn render(&self) -> String {
        match self {
            Header::Text(text) => text.clone(),
            Header::DateIn(after) => httpdate::fmt_http_date(SystemTime::now() + *after),
        }
    }
}

/// An HTTP server answering each request with the next scripted reply and
/// recording it. One request per connection (`Connection: close`).
struct Scripted {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Scripted {
    fn start(replies: Vec<Reply>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let replies = Arc::new(Mutex::new(std::collections::VecDeque::from(replies)));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                seen.lock().unwrap().push(request);
                // Past the script: a 400 (not retried), so a test fails fast.
                let reply = replies.lock().unwrap().pop_front().unwrap_or(Reply {
                    status: 400,
                    headers: vec![],
                    body: json!({"error": {"message": "the scripted replies ran out"}}),
                });
                let body = reply.body.to_string();
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.status,
                    body.len()
                );
                for (name, value) in reply.headers {
                    head.push_str(&format!("{name}: {}\r\n", value.render()));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        });
        Scripted { url, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let at = Instant::now();
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at,
    })
}

fn openai(text: &str) -> Reply {
    Reply {
        status: 200,
        headers: vec![],
        body: json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }),
    }
}

fn anthropic(text: &str) -> Reply {
    Reply {
        status: 200,
        headers: vec![],
        body: json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 200, "output_tokens": 30},
        }),
    }
}

fn code(code: &str) -> String {
    format!(
        "Let me write a script.\n[[ ## reasoning ## ]]\nI will run code.\n\n[[ ## code ## ]]\n```python\n{code}\n```\n\n[[ ## answer ## ]]\n\n\n[[ ## completed ## ]]\n"
    )
}

fn answer(text: &str) -> String {
    format!(
        "[[ ## reasoning ## ]]\nThe output has it.\n\n[[ ## code ## ]]\n\n[[ ## answer ## ]]\n{text}\n\n[[ ## completed ## ]]\n"
    )
}

const FETCH: &str = "from mcp_tools import news\narticles = news.fetch_latest(category='technology', limit=3)['articles']\nprint('TITLES', len(articles))\nfor a in articles:\n    print(a['title'])";

/// `codemode ask --sandbox native --model openai/test-model ... TASK` against `server`.
fn ask(work: &Workdir, server: &Scripted, extra: &[&str]) -> std::process::Output {
    ask_in("native", work, server, extra)
}

fn ask_in(
    backend: &str,
    work: &Workdir,
    server: &Scripted,
    extra: &[&str],
) -> std::process::Output {
    work.codemode()
        .env("OPENAI_BASE_URL", &server.url)
        .env("OPENAI_API_KEY", KEY)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .args(["ask", "--sandbox", backend, "--model"])
        .arg(format!("openai/{MODEL}"))
        .args(extra)
        .arg("Fetch the latest technology news and summarize it")
        .output()
        .unwrap()
}

fn show(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout_of(output),
        stderr_of(output)
    )
}

#[test]
fn one_step_success_sends_the_prompt_and_prints_the_answer() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        openai(&code(FETCH)),
        openai(&answer("Three technology stories today.")),
    ]);
    let output = ask(&work, &server, &["--temperature", "0.2"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout_of(&output), "Three technology stories today.\n");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("tool calls: news.fetch_latest (ok"),
        "{stderr}"
    );
    assert!(stderr.contains("TITLES 3"), "{stderr}");

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.path, "/chat/completions");
    assert_eq!(
        first.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(first.body["model"], MODEL);
    assert_eq!(first.body["temperature"], 0.2);
    let messages = first.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.contains("[[ ## code ## ]]"), "{system}");
    assert!(system.contains("[[ ## answer ## ]]"), "{system}");
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().unwrap();
    assert!(
        user.contains("[[ ## task ## ]]\nFetch the latest technology news"),
        "{user}"
    );
    // A small tool set: the full API, signatures and docstrings.
    assert!(user.contains("def fetch_latest("), "{user}");
    assert!(user.contains("news = "), "{user}");
    // The second request carries the run's output back.
    let second = &requests[1].body["messages"];
    let observation = second[3]["content"].as_str().unwrap();
    assert_eq!(second[2]["role"], "assistant");
    assert!(
        observation.contains("[[ ## observation ## ]]"),
        "{observation}"
    );
    assert!(observation.contains("TITLES 3"), "{observation}");
    assert!(
        observation.contains("news.fetch_latest (ok"),
        "{observation}"
    );
}

#[test]
fn a_traceback_is_fed_back_and_fixed() {
    let work = Workdir::with_config(&exec_config());
    let broken = "from mcp_tools import news\na = news.fetch_latest(category='technology', limit=1)['articles'][0]\nprint(a['no_such_field'])";
    let server = Scripted::start(vec![
        openai(&code(broken)),
        openai(&code(FETCH)),
        openai(&answer("Fixed it.")),
    ]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout_of(&output), "Fixed it.\n");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let second = requests[1].text();
    assert!(
        second.contains("Traceback (most recent call last)"),
        "{second}"
    );
    assert!(second.contains("KeyError: 'no_such_field'"), "{second}");
    assert!(second.contains("exited with status 1"), "{second}");
    assert!(requests[2].text().contains("TITLES 1") || requests[2].text().contains("TITLES 3"));
}

#[test]
fn a_script_that_prints_nothing_is_sent_back_unrun() {
    let work = Workdir::with_config(&exec_config());
    let silent =
        "from mcp_tools import news\narticles = news.fetch_latest(category='technology', limit=1)";
    let server = Scripted::start(vec![
        openai(&code(silent)),
        openai(&code(FETCH)),
        openai(&answer("Done.")),
    ]);
    let output = ask(&work, &server, &["--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let trace: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(trace["steps"][0]["run"].is_null(), "{trace}");
    assert!(trace["steps"][0]["rejected"]
        .as_str()
        .unwrap()
        .contains("prints nothing"));
    assert!(!trace["steps"][1]["run"].is_null(), "{trace}");
    let second = server.requests()[1].text();
    assert!(second.contains("Your script was not run"), "{second}");
    assert!(second.contains("prints nothing"), "{second}");
}

#[test]
fn a_syntax_error_is_caught_without_a_sandbox_run() {
    let work = Workdir::with_config(&exec_config());
    let broken = "from mcp_tools import news\nprint(news.fetch_latest(category='technology'";
    let server = Scripted::start(vec![openai(&code(broken)), openai(&answer("Gave up."))]);
    let output = ask(&work, &server, &["--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let trace: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(trace["steps"][0]["run"].is_null(), "{trace}");
    let second = server.requests()[1].text();
    assert!(second.contains("does not parse"), "{second}");
    assert!(second.contains("SyntaxError"), "{second}");
    assert!(second.contains("line 2"), "{second}");
    // No sandbox ran: nothing says it did.
    assert!(
        !stderr_of(&output).contains("sandbox: exit"),
        "{}",
        show(&output)
    );
}

#[test]
fn a_tool_error_is_fed_back() {
    let work = Workdir::with_config(&exec_config());
    let failing = "from mcp_tools import news\nprint(news.get_article(id='no-such-article'))";
    let server = Scripted::start(vec![
        openai(&code(failing)),
        openai(&answer("No such article.")),
    ]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let second = server.requests()[1].text();
    assert!(second.contains("ToolError"), "{second}");
    assert!(second.contains("no article with id"), "{second}");
    assert!(second.contains("news.get_article (failed"), "{second}");
    assert!(second.contains("A tool call failed"), "{second}");
}

#[test]
fn a_timeout_is_fed_back() {
    let work = Workdir::with_config(&exec_config());
    let slow = "import time\nimport mcp_tools\ntime.sleep(30)\nprint('late')";
    let server = Scripted::start(vec![openai(&code(slow)), openai(&answer("Too slow."))]);
    let started = std::time::Instant::now();
    let output = ask(&work, &server, &["--timeout", "1s"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(started.elapsed() < std::time::Duration::from_secs(25));
    let second = server.requests()[1].text();
    assert!(second.contains("timed out after 1s"), "{second}");
    assert!(second.contains("time limit"), "{second}");
}

#[test]
fn the_step_budget_runs_out_with_exit_5() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![openai(&code(FETCH)), openai(&code(FETCH))]);
    let output = ask(&work, &server, &["--max-steps", "2"]);
    assert_eq!(output.status.code(), Some(5), "{}", show(&output));
    assert_eq!(stdout_of(&output), "");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("codemode: error: no answer after 2 steps"),
        "{stderr}"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].text().contains("This is your last step"));
}

#[test]
fn a_malformed_reply_is_fed_back() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        openai("I think the news is good today."),
        openai(&answer("The news is good.")),
    ]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout_of(&output), "The news is good.\n");
    let second = server.requests()[1].text();
    assert!(second.contains("no field markers"), "{second}");
    assert!(second.contains("[[ ## reasoning ## ]]"), "{second}");
}

#[test]
fn a_429_is_retried_after_retry_after() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        Reply {
            status: 429,
            headers: vec![("Retry-After", Header::Text("0".into()))],
            body: json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        },
        openai(&answer("After the wait.")),
    ]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout_of(&output), "After the wait.\n");
    assert_eq!(server.requests().len(), 2);
    assert!(stderr_of(&output).contains("answered HTTP 429; retrying"));
}

#[test]
fn a_retry_after_http_date_is_waited_for() {
    let work = Workdir::with_config(&exec_config());
    // Whole seconds on the wire: 3 s ahead is 2–3 s of wait, clear of the
    // 1 s backoff a first retry falls back to when the date is ignored.
    let server = Scripted::start(vec![
        Reply {
            status: 429,
            headers: vec![("Retry-After", Header::DateIn(Duration::from_secs(3)))],
            body: json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        },
        openai(&answer("After the date.")),
    ]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout_of(&output), "After the date.\n");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(1500),
        "retried after {waited:?}, before the Retry-After date"
    );
    // Far under MAX_WAIT and the later backoffs: the date, not a guess.
    assert!(waited < Duration::from_secs(15), "retried after {waited:?}");
    assert!(stderr_of(&output).contains("answered HTTP 429; retrying"));
}

#[test]
fn a_loopback_server_needs_no_api_key_and_gets_no_authorization_header() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![openai(&answer("No key needed."))]);
    let output = work
        .codemode()
        .env("OPENAI_BASE_URL", &server.url)
        .env_remove("OPENAI_API_KEY")
        .args(["ask", "--sandbox", "native", "--model", "openai/x", "task"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout_of(&output), "No key needed.\n");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert_eq!(requests[0].header("authorization"), None);
}

#[test]
fn a_missing_api_key_for_a_remote_server_is_a_usage_error_and_sends_nothing() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![openai(&answer("unreachable"))]);
    // A remote host, with the scripted server as the HTTP proxy: a request
    // that should not be sent would still land there and be seen.
    let output = work
        .codemode()
        .env("OPENAI_BASE_URL", "http://llm.example.com/v1")
        .env("HTTP_PROXY", &server.url)
        .env("http_proxy", &server.url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("OPENAI_API_KEY")
        .args(["ask", "--sandbox", "native", "--model", "openai/x", "task"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("OPENAI_API_KEY is not set"), "{stderr}");
    assert!(stderr.contains("http://llm.example.com/v1"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(server.requests().is_empty());
}

#[test]
fn an_unknown_provider_is_a_usage_error() {
    let work = Workdir::with_config(&exec_config());
    let output = work
        .codemode()
        .env("OPENAI_API_KEY", KEY)
        .args(["ask", "--model", "mistral/large", "task"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(stderr_of(&output).contains("unknown LLM provider `mistral`"));
}

#[test]
fn a_model_the_provider_does_not_have_is_a_usage_error() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![Reply {
        status: 404,
        headers: vec![],
        body: json!({"error": {"message": "The model `test-model` does not exist", "code": "model_not_found"}}),
    }]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(stderr_of(&output).contains("model `test-model` not found"));
}

#[test]
fn a_provider_failure_exits_4() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![Reply {
        status: 400,
        headers: vec![],
        body: json!({"error": {"message": "This model's maximum context length is 8192 tokens", "code": "context_length_exceeded"}}),
    }]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(4), "{}", show(&output));
    assert!(stderr_of(&output).contains("context window"));
}

#[test]
fn the_anthropic_provider_sends_its_shape_and_succeeds() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        anthropic(&code(FETCH)),
        anthropic(&answer("Anthropic says: three stories.")),
    ]);
    let output = work
        .codemode()
        .env("ANTHROPIC_BASE_URL", &server.url)
        .env("ANTHROPIC_API_KEY", KEY)
        .env_remove("OPENAI_API_KEY")
        .args([
            "ask",
            "--sandbox",
            "native",
            "--model",
            "anthropic/claude-test",
            "--json",
            "Summarize the news",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let trace: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(trace["answer"], "Anthropic says: three stories.");
    assert_eq!(trace["usage"]["input_tokens"], 400);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.header("x-api-key"), Some(KEY));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.header("authorization"), None);
    assert_eq!(first.body["model"], "claude-test");
    assert!(first.body["max_tokens"].as_u64().unwrap() > 0);
    assert!(first.body["system"]
        .as_str()
        .unwrap()
        .contains("[[ ## code ## ]]"));
    let messages = first.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    assert!(messages[0]["content"]
        .as_str()
        .unwrap()
        .contains("Summarize the news"));
    let second = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(second.len(), 3);
    assert_eq!(second[1]["role"], "assistant");
    assert!(second[2]["content"].as_str().unwrap().contains("TITLES 3"));
}

#[test]
fn dry_run_prints_the_first_script_and_runs_nothing() {
    let work = Workdir::with_config(&exec_config());
    let script = "import mcp_tools\nprint('SHOULD-NOT-RUN')";
    let server = Scripted::start(vec![openai(&code(script))]);
    let output = ask(&work, &server, &["--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout_of(&output), format!("{script}\n"));
    assert!(
        !stderr_of(&output).contains("│ SHOULD-NOT-RUN"),
        "{}",
        show(&output)
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn confirm_without_a_terminal_refuses_naming_yes_and_asks_the_model_nothing() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![openai(&code(FETCH)), openai(&answer("Yes."))]);
    let output = ask(&work, &server, &["--confirm"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(stderr_of(&output).contains("--yes"));
    assert!(server.requests().is_empty());
}

#[test]
fn confirm_with_yes_runs_without_a_terminal() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![openai(&code(FETCH)), openai(&answer("Yes."))]);
    let output = ask(&work, &server, &["--confirm", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
}

#[test]
fn the_json_trace_has_every_step_and_is_saved_whole() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        openai(&code(FETCH)),
        openai(&answer("Three stories.")),
    ]);
    let saved = work.path().join("traces").join("run.json");
    std::fs::create_dir(saved.parent().unwrap()).unwrap();
    let output = ask(
        &work,
        &server,
        &["--json", "--save-trace", saved.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let trace: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(trace["answer"], "Three stories.");
    assert_eq!(trace["outcome"], "answered");
    assert_eq!(trace["model"], format!("openai/{MODEL}"));
    let step = &trace["steps"][0];
    assert!(step["code"].as_str().unwrap().contains("fetch_latest"));
    assert!(step["reasoning"].as_str().unwrap().contains("run code"));
    assert!(step["run"]["stdout"].as_str().unwrap().contains("TITLES 3"));
    assert_eq!(step["run"]["stderr"], "");
    assert_eq!(step["run"]["exit_code"], 0);
    assert_eq!(step["run"]["tool_calls"][0]["tool"], "fetch_latest");
    assert!(step["run"]["duration_ms"].is_u64());
    assert_eq!(step["model"]["input_tokens"], 100);
    assert_eq!(step["model"]["output_tokens"], 20);
    assert!(step["model"]["duration_ms"].is_u64());
    assert!(step["feedback"].as_str().unwrap().contains("TITLES 3"));
    assert_eq!(trace["steps"][1]["answer"], "Three stories.");
    assert_eq!(trace["usage"]["input_tokens"], 200);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(file["answer"], "Three stories.");
    assert_eq!(
        std::fs::read_dir(saved.parent().unwrap()).unwrap().count(),
        1,
        "no temporary file is left"
    );
}

#[test]
fn the_api_key_reaches_no_output_no_trace_no_script_and_no_feedback() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        openai(&code(FETCH)),
        openai(&answer("Three stories.")),
    ]);
    let saved = work.path().join("traces").join("run.json");
    std::fs::create_dir(saved.parent().unwrap()).unwrap();
    // The key also in a variable the script could look for: it must not be there.
    let leak = "import os\nimport mcp_tools\nprint('ENV', sorted(os.environ.items()))";
    let server_leak = Scripted::start(vec![openai(&code(leak)), openai(&answer("ok"))]);
    let output = ask(
        &work,
        &server,
        &["--json", "--save-trace", saved.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let first_trace = std::fs::read_to_string(&saved).unwrap();
    let leaked = ask(
        &work,
        &server_leak,
        &["--json", "--save-trace", saved.to_str().unwrap()],
    );
    assert_eq!(leaked.status.code(), Some(0), "{}", show(&leaked));
    for text in [
        stdout_of(&output),
        stderr_of(&output),
        first_trace,
        stdout_of(&leaked),
        stderr_of(&leaked),
        std::fs::read_to_string(&saved).unwrap(),
    ] {
        assert!(!text.contains("SECRET"), "the key leaked: {text}");
    }
    let env_dump = stdout_of(&leaked);
    assert!(env_dump.contains("ENV"), "{env_dump}");
    assert!(!server_leak.requests()[1].text().contains("SECRET"));
}

#[test]
fn past_the_threshold_the_model_gets_the_index_and_search() {
    let config = format!(
        "{}\n[llm]\nindex_threshold = 50\nmax_steps = 3\n",
        exec_config()
    );
    let work = Workdir::with_config(&config);
    let search = "import mcp_tools\nprint(mcp_tools.search('latest news', detail='full'))";
    let server = Scripted::start(vec![openai(&code(search)), openai(&answer("Found it."))]);
    let output = ask(&work, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let requests = server.requests();
    let first = requests[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!first.contains("def fetch_latest("), "{first}");
    assert!(first.contains("mcp_tools.search("), "{first}");
    assert!(first.contains("news"), "{first}");
    // The search ran in the sandbox and its signatures came back.
    let second = requests[1].text();
    assert!(second.contains("def fetch_latest("), "{second}");
}

/// The observation the model got after its step `step` (1-based).
fn observation_after(server: &Scripted, step: usize) -> String {
    server.requests()[step].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

const KEEP: &str = "from mcp_tools import news\narticles = news.fetch_latest(category='technology', limit=3)['articles']\nprint('GOT', len(articles))";
const REUSE: &str = "print('AGAIN', len(articles))";

#[test]
fn a_later_step_uses_what_an_earlier_step_computed() {
    a_later_step_uses_what_an_earlier_step_computed_in("native");
}

#[test]
fn a_later_step_uses_what_an_earlier_step_computed_in_docker() {
    if !common::docker_ready() {
        return;
    }
    a_later_step_uses_what_an_earlier_step_computed_in("docker");
}

fn a_later_step_uses_what_an_earlier_step_computed_in(backend: &str) {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        openai(&code(KEEP)),
        openai(&code(REUSE)),
        openai(&answer("Three stories.")),
    ]);
    let output = ask_in(backend, &work, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let system = server.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("one Python session"), "{system}");
    let second = observation_after(&server, 2);
    assert!(second.contains("AGAIN 3"), "{second}");
    assert!(!second.contains("Tool calls"), "no second fetch: {second}");
}

#[test]
fn with_fresh_each_script_starts_from_scratch() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        openai(&code(KEEP)),
        openai(&code(REUSE)),
        openai(&answer("It forgot.")),
    ]);
    let output = ask(&work, &server, &["--fresh"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let system = server.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("each script starts from scratch"),
        "{system}"
    );
    let second = observation_after(&server, 2);
    assert!(
        second.contains("NameError: name 'articles' is not defined"),
        "{second}"
    );
}

#[test]
fn a_timed_out_script_is_interrupted_and_the_session_goes_on() {
    let work = Workdir::with_config(&exec_config());
    let slow = "import time\nimport mcp_tools\nkept = 5\ntime.sleep(30)\nprint('late')";
    let server = Scripted::start(vec![
        openai(&code(slow)),
        openai(&code("print('KEPT', kept)")),
        openai(&answer("Done.")),
    ]);
    let started = Instant::now();
    let output = ask(&work, &server, &["--timeout", "1s"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(started.elapsed() < Duration::from_secs(25));
    let first = observation_after(&server, 1);
    assert!(first.contains("timed out after 1s"), "{first}");
    assert!(first.contains("KeyboardInterrupt"), "{first}");
    let second = observation_after(&server, 2);
    assert!(second.contains("KEPT 5"), "{second}");
}

#[test]
fn a_script_that_ignores_its_interrupt_loses_the_session_and_says_so() {
    let work = Workdir::with_config(&exec_config());
    let stubborn = "import signal, time\nimport mcp_tools\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nkept = 5\ntime.sleep(30)\nprint('late')";
    let server = Scripted::start(vec![
        openai(&code(stubborn)),
        openai(&code("print('KEPT', kept)")),
        openai(&answer("Lost it.")),
    ]);
    let started = Instant::now();
    let output = ask(&work, &server, &["--timeout", "1s"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(started.elapsed() < Duration::from_secs(25));
    let first = observation_after(&server, 1);
    assert!(
        first.contains("did not stop when interrupted") && first.contains("new session"),
        "{first}"
    );
    let second = observation_after(&server, 2);
    assert!(
        second.contains("NameError: name 'kept' is not defined"),
        "never a new session passed off as the old one: {second}"
    );
}

#[test]
fn ask_is_told_its_input_files_and_saves_what_its_scripts_leave_in_out() {
    let work = Workdir::with_config(&exec_config());
    std::fs::write(work.path().join("prices.csv"), "item,price\ntea,3\n").unwrap();
    let script = "import os, mcp_tools\nrows = open('/workspace/in/prices.csv').read().splitlines()\nos.makedirs('/workspace/out', exist_ok=True)\nopen('/workspace/out/summary.txt', 'w').write(rows[1])\nprint(rows[1])";
    let server = Scripted::start(vec![openai(&code(script)), openai(&answer("Tea costs 3."))]);
    let saved = work.path().join("saved");
    let output = ask(
        &work,
        &server,
        &[
            "--json",
            "--input",
            "prices.csv",
            "--out",
            saved.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let requests = server.requests();
    let first = requests[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first.contains("/workspace/in/prices.csv (17 bytes)"),
        "{first}"
    );
    assert!(first.contains("/workspace/out/ go to the user"), "{first}");
    let second = requests[1].body["messages"].as_array().unwrap();
    let observation = second.last().unwrap()["content"].as_str().unwrap();
    assert!(
        observation
            .contains("Files produced in /workspace/out/: summary.txt (text/plain, 5 bytes)"),
        "{observation}"
    );
    assert_eq!(
        std::fs::read_to_string(saved.join("summary.txt")).unwrap(),
        "tea,3"
    );
    let trace: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(
        trace["steps"][0]["run"]["files"][0]["name"], "summary.txt",
        "{trace}"
    );
}

#[test]
fn the_trace_records_each_calls_approval_and_a_denial_reaches_the_model() {
    let work = Workdir::with_config(&exec_config());
    let server = Scripted::start(vec![
        openai(&code(FETCH)),
        openai(&answer("Three stories.")),
    ]);
    let approved = ask(
        &work,
        &server,
        &["--json", "--approve", "news.fetch_latest", "--auto-approve"],
    );
    assert_eq!(approved.status.code(), Some(0), "{}", show(&approved));
    let trace: Value = serde_json::from_slice(&approved.stdout).unwrap();
    assert_eq!(
        trace["steps"][0]["run"]["tool_calls"][0]["approval"],
        "auto_approved"
    );

    // No terminal and no --auto-approve: refused, and the model is told.
    let server = Scripted::start(vec![
        openai(&code(FETCH)),
        openai(&answer("Could not fetch.")),
    ]);
    let denied = ask(
        &work,
        &server,
        &["--json", "--approve", "news.fetch_latest"],
    );
    assert_eq!(denied.status.code(), Some(0), "{}", show(&denied));
    let trace: Value = serde_json::from_slice(&denied.stdout).unwrap();
    let call = &trace["steps"][0]["run"]["tool_calls"][0];
    assert_eq!(call["approval"], "denied", "{call}");
    let feedback = server.requests()[1].text();
    assert!(feedback.contains("denied"), "{feedback}");
}
