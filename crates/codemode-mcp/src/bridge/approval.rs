//! Approvals: a call of a tool the rules name waits for a person's yes
//! before the server sees it. The bridge asks through an [`Approver`] (a
//! terminal prompt, an MCP client's elicitation), so what it holds, how long
//! it waits and what it records are the same whoever answers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::wire::{ErrorKind, RpcError};
use codemode_config::ApprovalRules;

/// What a person is asked about one call.
#[derive(Debug, Clone)]
pub struct Question {
    pub server: String,
    pub tool: String,
    pub arguments: Map<String, Value>,
}

/// The longest argument value a question shows whole; longer ones are cut.
const SHOWN_VALUE: usize = 200;
/// The most lines of arguments a question shows.
const SHOWN_LINES: usize = 40;

impl Question {
    /// `server.tool`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.server, self.tool)
    }

    /// The arguments as indented JSON, every long string cut and the whole
    /// bounded in lines, with no control characters: what a person reads
    /// must fit a screen and cannot move its cursor.
    pub fn arguments_text(&self) -> String {
        let shown = cut_values(&Value::Object(self.arguments.clone()));
        let pretty = serde_json::to_string_pretty(&shown).unwrap_or_default();
        let lines: Vec<&str> = pretty.lines().collect();
        if lines.len() <= SHOWN_LINES {
            return pretty;
        }
        let mut text = lines[..SHOWN_LINES].join("\n");
        text.push_str(&format!("\n… ({} more lines)", lines.len() - SHOWN_LINES));
        text
    }
}

fn cut_values(value: &Value) -> Value {
    match value {
        Value::String(text) => {
            let text: String = text
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\n' {
                        '\u{fffd}'
                    } else {
                        c
                    }
                })
                .collect();
            let count = text.chars().count();
            if count <= SHOWN_VALUE {
                Value::String(text)
            } else {
                let head: String = text.chars().take(SHOWN_VALUE).collect();
                Value::String(format!("{head}… ({} more characters)", count - SHOWN_VALUE))
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(cut_values).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (codemode_text::one_line(k), cut_values(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A person's answer, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Yes,
    /// Yes, and to every later call of the same tool in this run.
    YesForRun,
    No,
    /// The question was dismissed without an answer (Ctrl-C, a client's
    /// cancel).
    Cancelled,
    /// Nobody can be asked; the reason says what to do instead.
    Unable(String),
}

/// Asks a person about one call at a time.
pub trait Approver: Send + Sync {
    fn ask<'a>(&'a self, question: &'a Question) -> BoxFuture<'a, Answer>;
}

/// An approver that refuses every question with the same reason: where no
/// person can be asked.
pub struct Refuse(pub String);

impl Approver for Refuse {
    fn ask<'a>(&'a self, _: &'a Question) -> BoxFuture<'a, Answer> {
        Box::pin(std::future::ready(Answer::Unable(self.0.clone())))
    }
}

/// An approver that can be replaced while its grant lives: a session's
/// calls are asked of whoever made the current call.
pub struct ApproverSlot {
    current: Mutex<Arc<dyn Approver>>,
}

impl ApproverSlot {
    pub fn new(approver: Arc<dyn Approver>) -> Arc<ApproverSlot> {
        Arc::new(ApproverSlot {
            current: Mutex::new(approver),
        })
    }

    pub fn set(&self, approver: Arc<dyn Approver>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = approver;
    }
}

impl Approver for ApproverSlot {
    fn ask<'a>(&'a self, question: &'a Question) -> BoxFuture<'a, Answer> {
        let current = Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()));
        Box::pin(async move { current.ask(question).await })
    }
}

/// How each call went past approval, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    NotRequired,
    Approved,
    AutoApproved,
    Denied,
    TimedOut,
}

impl Approval {
    /// How a call's line in a report says it was approved; nothing for a
    /// call that needed no approval.
    pub fn note(self) -> &'static str {
        match self {
            Approval::NotRequired => "",
            Approval::Approved => ", approved",
            Approval::AutoApproved => ", auto-approved",
            // The error kind, `denied`, says it.
            Approval::Denied => "",
            Approval::TimedOut => ", no answer in time",
        }
    }
}

/// What a grant's calls need before they reach a server.
#[derive(Clone)]
pub struct Approvals {
    pub rules: ApprovalRules,
    /// Every call the rules name is approved without asking, and recorded so.
    pub auto: bool,
    pub approver: Arc<dyn Approver>,
    /// How long a call waits for an answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("rules", &self.rules)
            .field("auto", &self.auto)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Approvals {
    /// No call needs approval.
    pub fn none() -> Approvals {
        Approvals {
            rules: ApprovalRules::default(),
            auto: false,
            approver: Arc::new(Refuse(String::new())),
            timeout: Duration::from_secs(300),
        }
    }
}

/// One grant's approvals while it lives: the tools approved for the rest of
/// the run, and one question at a time.
pub(super) struct Gate {
    approvals: Approvals,
    for_run: Mutex<HashSet<(String, String)>>,
    asking: tokio::sync::Mutex<()>,
}

impl Gate {
    pub(super) fn new(approvals: Approvals) -> Gate {
        Gate {
            approvals,
            for_run: Mutex::new(HashSet::new()),
            asking: tokio::sync::Mutex::new(()),
        }
    }

    fn approved_for_run(&self, server: &str, tool: &str) -> bool {
        self.for_run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(server.to_string(), tool.to_string()))
    }

    /// Waits for the call's approval when it needs one. `Err` is the refusal
    /// the script gets, with how it is recorded.
    pub(super) async fn pass(&self, question: &Question) -> Result<Approval, (Approval, RpcError)> {
        let (server, tool) = (question.server.as_str(), question.tool.as_str());
        if !self.approvals.rules.needs(server, tool) {
            return Ok(Approval::NotRequired);
        }
        if self.approvals.auto {
            return Ok(Approval::AutoApproved);
        }
        if self.approved_for_run(server, tool) {
            return Ok(Approval::Approved);
        }
        let timeout = self.approvals.timeout;
        let waited = tokio::time::timeout(timeout, async {
            let _turn = self.asking.lock().await;
            // Answered for the whole run while this call waited its turn.
            if self.approved_for_run(server, tool) {
                return Answer::Yes;
            }
            self.approvals.approver.ask(question).await
        })
        .await;
        let denied = |why: String| {
            (
                Approval::Denied,
                RpcError::new(
                    ErrorKind::Denied,
                    format!("{why}; the server never saw the call"),
                ),
            )
        };
        match waited {
            Ok(Answer::Yes) => Ok(Approval::Approved),
            Ok(Answer::YesForRun) => {
                self.for_run
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((server.to_string(), tool.to_string()));
                Ok(Approval::Approved)
            }
            Ok(Answer::No) => Err(denied("the call was refused by the person asked".into())),
            Ok(Answer::Cancelled) => Err(denied("the approval question was cancelled".into())),
            Ok(Answer::Unable(why)) => Err(denied(format!("needs approval, and {why}"))),
            Err(_) => Err((
                Approval::TimedOut,
                RpcError::new(
                    ErrorKind::Denied,
                    format!(
                        "no answer to the approval question within {} (approval_timeout); \
                         the server never saw the call",
                        humantime::format_duration(timeout)
                    ),
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Scripted {
        answers: Mutex<Vec<Answer>>,
        asked: AtomicUsize,
    }

    impl Scripted {
        fn new(answers: Vec<Answer>) -> Arc<Scripted> {
            Arc::new(Scripted {
                answers: Mutex::new(answers),
                asked: AtomicUsize::new(0),
            })
        }
    }

    impl Approver for Scripted {
        fn ask<'a>(&'a self, _: &'a Question) -> BoxFuture<'a, Answer> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers.lock().unwrap().remove(0);
            Box::pin(std::future::ready(answer))
        }
    }

    struct Never;

    impl Approver for Never {
        fn ask<'a>(&'a self, _: &'a Question) -> BoxFuture<'a, Answer> {
            Box::pin(std::future::pending())
        }
    }

    fn question(tool: &str) -> Question {
        Question {
            server: "mail".into(),
            tool: tool.into(),
            arguments: Map::new(),
        }
    }

    fn gate(approver: Arc<dyn Approver>, auto: bool) -> Gate {
        Gate::new(Approvals {
            rules: ApprovalRules::default().adding(&["mail.send_*".into()]),
            auto,
            approver,
            timeout: Duration::from_millis(200),
        })
    }

    #[tokio::test]
    async fn a_tool_the_rules_do_not_name_is_not_asked_about() {
        let asker = Scripted::new(vec![]);
        let gate = gate(asker.clone(), false);
        assert_eq!(
            gate.pass(&question("list")).await.unwrap(),
            Approval::NotRequired
        );
        assert_eq!(asker.asked.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn yes_passes_once_and_the_next_call_is_asked_again() {
        let asker = Scripted::new(vec![Answer::Yes, Answer::No]);
        let gate = gate(asker.clone(), false);
        assert_eq!(
            gate.pass(&question("send_one")).await.unwrap(),
            Approval::Approved
        );
        let (approval, err) = gate.pass(&question("send_one")).await.unwrap_err();
        assert_eq!(approval, Approval::Denied);
        assert_eq!(err.kind, ErrorKind::Denied);
        assert!(
            err.message.contains("never saw the call"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn yes_for_the_run_covers_later_calls_of_that_tool_only() {
        let asker = Scripted::new(vec![Answer::YesForRun, Answer::No]);
        let gate = gate(asker.clone(), false);
        for _ in 0..3 {
            assert_eq!(
                gate.pass(&question("send_one")).await.unwrap(),
                Approval::Approved
            );
        }
        assert_eq!(asker.asked.load(Ordering::SeqCst), 1);
        assert!(gate.pass(&question("send_other")).await.is_err());
    }

    #[tokio::test]
    async fn auto_approval_never_asks_and_says_so() {
        let asker = Scripted::new(vec![]);
        let gate = gate(asker.clone(), true);
        assert_eq!(
            gate.pass(&question("send_one")).await.unwrap(),
            Approval::AutoApproved
        );
        assert_eq!(asker.asked.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_unanswered_question_times_out() {
        let gate = gate(Arc::new(Never), false);
        let (approval, err) = gate.pass(&question("send_one")).await.unwrap_err();
        assert_eq!(approval, Approval::TimedOut);
        assert!(err.message.contains("approval_timeout"), "{}", err.message);
    }

    #[tokio::test]
    async fn nobody_to_ask_is_a_denial_that_says_what_to_do() {
        let gate = gate(
            Arc::new(Refuse(
                "there is no terminal to ask on (pass --auto-approve)".into(),
            )),
            false,
        );
        let (approval, err) = gate.pass(&question("send_one")).await.unwrap_err();
        assert_eq!(approval, Approval::Denied);
        assert!(err.message.contains("--auto-approve"), "{}", err.message);
    }

    #[test]
    fn long_values_and_control_characters_are_cut_from_the_question() {
        let mut arguments = Map::new();
        arguments.insert("body".into(), Value::String("x".repeat(1000)));
        arguments.insert("to".into(), Value::String("a\u{1b}[2Jb".into()));
        let q = Question {
            server: "mail".into(),
            tool: "send".into(),
            arguments,
        };
        let text = q.arguments_text();
        assert!(text.contains("(800 more characters)"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
