//! The `codemode` library: everything the binary dispatches to, public so that
//! fuzz targets and benchmarks can drive the parsers and the bridge directly.
//! The binary (`main.rs`) only parses the command line and sets the exit code.

mod atomic;
pub mod cli;
pub mod commands;
pub mod context;
pub mod doctor;
pub mod error;
pub mod gen_bridge;
pub mod init;
mod progress;
pub mod serve;
mod terminal;
pub mod tools;
