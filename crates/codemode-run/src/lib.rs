//! One execution (docs/ARCHITECTURE.md, "The flow of one execution"): a
//! fresh run directory with the script and its stubs, an ephemeral bridge on
//! a Unix socket with a grant for this run only, and a sandbox to run the
//! script in. `exec`, `serve` and `ask` all run code through a [`Runner`]
//! and read the [`Outcome`].

mod approvals;
mod error;
mod input_files;
mod options;
mod outbox;
mod place;
mod report;
mod runner;
mod session;
pub mod signals;

pub use approvals::AskWith;
pub use error::RunError;
pub use input_files::{InputFile, InputFiles};
pub use options::Options;
pub use outbox::{
    media_type, safe_name, Collection, OutDir, OutFile, OutputCaps, SkippedFile, Staging,
};
pub use report::{Exit, Outcome, Report};
pub use runner::Runner;
pub use session::{random_hex, CellOutcome, Interrupter, Session};
pub use signals::{Signal, StopSignals};
