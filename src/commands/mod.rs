//! One module per subcommand (`serve`, the largest, is `crate::serve`).

pub mod ask;
pub mod bridge;
pub mod doctor;
pub mod exec;
pub mod files;
pub mod gen_bridge;
pub mod init;
pub mod repl;
pub mod tools;
