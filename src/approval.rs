//! Approvals as a person at a terminal answers them: a question on stderr
//! (dialoguer) while the script waits, its output held back meanwhile so the
//! two never mix; and the flags every command that runs code shares.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::cli::ApprovalArgs;
use codemode_config::{ApprovalRules, ResolvedServer};
use codemode_mcp::bridge::{Answer, Approvals, Approver, Question, Refuse};
use codemode_run::{AskWith, Options};

impl ApprovalArgs {
    /// The flags over what the config set.
    pub fn apply(&self, options: &mut Options) {
        options.approve = self.approve.clone();
        options.auto_approve = self.auto_approve;
        if let Some(timeout) = self.approval_timeout {
            options.approval_timeout = timeout;
        }
    }

    /// As [`ApprovalArgs::apply`], with questions asked on the terminal when
    /// there is one, and refused (saying what to do instead) when not.
    pub fn apply_asking_here(&self, options: &mut Options) {
        self.apply(options);
        options.ask_with = AskWith(Some(here()));
    }

    /// The approvals of the standalone bridge's grant: the config's lists and
    /// these flags, asked on its terminal. No run clock: it has no time limit.
    pub fn standalone(&self, specs: &[ResolvedServer], config_timeout: Duration) -> Approvals {
        Approvals {
            rules: ApprovalRules::new(specs).adding(&self.approve),
            auto: self.auto_approve,
            approver: here(),
            timeout: self.approval_timeout.unwrap_or(config_timeout),
        }
    }
}

/// Who is asked from this process: its terminal, or nobody.
fn here() -> Arc<dyn Approver> {
    match TerminalApprover::open() {
        Some(terminal) => Arc::new(terminal),
        None => Arc::new(Refuse(
            "there is no terminal to ask on: pass --auto-approve to approve such calls, \
             or leave the tool out of `approve`"
                .into(),
        )),
    }
}

/// The terminal's settings as they were before the first question, put back
/// if codemode ends while one is up (a key is read in raw mode).
static SAVED: Mutex<Option<nix::sys::termios::Termios>> = Mutex::new(None);
/// Whether a question is on the terminal now.
static ASKING: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back if a question was left open; called before exit.
pub fn restore_terminal() {
    if !ASKING.load(Ordering::SeqCst) {
        return;
    }
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let (Some(saved), Ok(tty)) = (saved, std::fs::File::open("/dev/tty")) {
        let _ = nix::sys::termios::tcsetattr(&tty, nix::sys::termios::SetArg::TCSANOW, &saved);
    }
    // dialoguer hides the cursor while a menu is up.
    eprint!("\x1b[?25h");
}

pub struct TerminalApprover {
    _private: (),
}

impl TerminalApprover {
    /// A terminal to ask on: stderr shows the question, and keys come from
    /// stdin or the controlling terminal.
    fn open() -> Option<TerminalApprover> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let tty = std::fs::File::open("/dev/tty").ok()?;
        if let Ok(termios) = nix::sys::termios::tcgetattr(&tty) {
            *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(termios);
        }
        Some(TerminalApprover { _private: () })
    }
}

impl Approver for TerminalApprover {
    fn ask<'a>(&'a self, question: &'a Question) -> BoxFuture<'a, Answer> {
        let question = question.clone();
        Box::pin(async move {
            // A question left open (its call gave up waiting) still owns the
            // keyboard: a second menu would fight it for every key.
            if ASKING.swap(true, Ordering::SeqCst) {
                return Answer::Unable(
                    "an earlier approval question is still open on the terminal".into(),
                );
            }
            let hold = crate::terminal::hold();
            let asked = tokio::task::spawn_blocking(move || {
                let answer = prompt(&question);
                ASKING.store(false, Ordering::SeqCst);
                answer
            });
            let gone = Gone;
            let answer = asked.await.unwrap_or(Answer::Cancelled);
            std::mem::forget(gone);
            drop(hold);
            answer
        })
    }
}

/// Said on the terminal when a question's call stops waiting for it.
struct Gone;

impl Drop for Gone {
    fn drop(&mut self) {
        eprintln!("\ncodemode: the call stopped waiting for an answer and was refused");
    }
}

fn prompt(question: &Question) -> Answer {
    let term = dialoguer::console::Term::stderr();
    let name = question.name();
    let _ = term.write_line(&format!(
        "\ncodemode: the script wants to call {name} with\n{}",
        question.arguments_text()
    ));
    let items = [
        "yes".to_string(),
        "no".to_string(),
        format!("yes to {name} for the rest of this run"),
    ];
    let picked = dialoguer::Select::new()
        .with_prompt(format!("Allow this call of {name}?"))
        .items(&items)
        .default(1)
        .interact_on_opt(&term);
    match picked {
        Ok(Some(0)) => Answer::Yes,
        Ok(Some(2)) => Answer::YesForRun,
        Ok(Some(_)) => Answer::No,
        // Esc or q, or Ctrl-C (which also stops the run, as it does anywhere).
        Ok(None) | Err(_) => Answer::Cancelled,
    }
}
