//! One module per subcommand that is more than a call into a library crate.

pub mod ask;
pub mod bridge;
pub mod exec;
