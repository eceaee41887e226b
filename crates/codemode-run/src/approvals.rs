//! Whom a run's calls are asked of, and on what clock: a call held for a
//! person's answer stands the run's clock ([`codemode_sandbox::RunClock`]),
//! so waiting for a person never times a script out.

use std::sync::Arc;

use futures::future::BoxFuture;

use codemode_mcp::bridge::{Answer, Approver, Question, Refuse};
use codemode_sandbox::RunClock;

/// The approver a command brings (a terminal prompt, a client's
/// elicitation); none refuses every call that needs approval.
#[derive(Clone, Default)]
pub struct AskWith(pub Option<Arc<dyn Approver>>);

impl std::fmt::Debug for AskWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AskWith(approver)"
        } else {
            "AskWith(none)"
        })
    }
}

impl AskWith {
    pub(crate) fn approver(&self) -> Arc<dyn Approver> {
        self.0.clone().unwrap_or_else(|| {
            Arc::new(Refuse(
                "nobody can be asked here: pass --auto-approve, or leave the tool out of `approve`"
                    .into(),
            ))
        })
    }
}

/// Asks `inner` with the run's clock standing.
pub(crate) struct Clocked {
    pub inner: Arc<dyn Approver>,
    pub clock: RunClock,
}

impl Approver for Clocked {
    fn ask<'a>(&'a self, question: &'a Question) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            let _pause = self.clock.pause();
            self.inner.ask(question).await
        })
    }
}
