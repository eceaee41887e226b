//! Approval questions asked of the MCP client whose call is running, as an
//! elicitation (`elicitation/create`): the question, and a form with a
//! yes/no field and a "for the rest of the session" one.

use futures::future::BoxFuture;
use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
use rmcp::service::ElicitationMode;
use rmcp::{Peer, RoleServer};
use serde_json::Value;

use codemode_mcp::bridge::{Answer, Approver, Question};

pub struct ClientApprover {
    peer: Peer<RoleServer>,
    /// The call came on a 2026-07-28 session, which has no server-to-client
    /// requests mid-call (its elicitation goes by input-required results).
    modern: bool,
}

impl ClientApprover {
    pub fn new(peer: Peer<RoleServer>, modern: bool) -> ClientApprover {
        ClientApprover { peer, modern }
    }
}

/// The text a client shows above the form.
fn message(question: &Question) -> String {
    format!(
        "The code running in codemode's sandbox wants to call {} with these arguments:\n{}\nAllow this call?",
        question.name(),
        question.arguments_text()
    )
}

fn form(question: &Question) -> Result<ElicitationSchema, &'static str> {
    let name = question.name();
    ElicitationSchema::builder()
        .required_bool_with("approve", |b| {
            b.title("Allow this call")
                .description(format!("Yes lets codemode make this call of {name}"))
        })
        .optional_bool_with("remember", |b| {
            b.title("Allow for the rest of the session")
                .description(format!(
                    "Later calls of {name} in this session are not asked about"
                ))
                .with_default(false)
        })
        .build()
}

impl Approver for ClientApprover {
    fn ask<'a>(&'a self, question: &'a Question) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            if self.modern {
                return Answer::Unable(
                    "this MCP client speaks protocol 2026-07-28, where codemode cannot ask it in \
                     the middle of a call: connect with an earlier protocol version, start \
                     codemode serve with --auto-approve, or leave the tool out of `approve`"
                        .into(),
                );
            }
            if !self
                .peer
                .supported_elicitation_modes()
                .contains(&ElicitationMode::Form)
            {
                return Answer::Unable(
                    "this MCP client did not declare the elicitation capability, so nobody can be \
                     asked: start codemode serve with --auto-approve, or leave the tool out of \
                     `approve`"
                        .into(),
                );
            }
            let requested_schema = match form(question) {
                Ok(schema) => schema,
                Err(why) => {
                    return Answer::Unable(format!("the question could not be made ({why})"))
                }
            };
            let asked = self
                .peer
                .create_elicitation(ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message: message(question),
                    requested_schema,
                })
                .await;
            let result = match asked {
                Ok(result) => result,
                Err(err) => return Answer::Unable(format!("the client's answer failed ({err})")),
            };
            let field = |name: &str| {
                result
                    .content
                    .as_ref()
                    .and_then(|c| c.get(name))
                    .and_then(Value::as_bool)
            };
            match result.action {
                ElicitationAction::Accept => match (field("approve"), field("remember")) {
                    (Some(true), Some(true)) => Answer::YesForRun,
                    (Some(true), _) => Answer::Yes,
                    _ => Answer::No,
                },
                ElicitationAction::Decline => Answer::No,
                _ => Answer::Cancelled,
            }
        })
    }
}
