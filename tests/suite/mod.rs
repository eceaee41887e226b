//! One module per concern, each a specification of what it covers.

mod approvals;
mod ask;
mod bridge;
mod cli;
mod config;
mod conformance;
mod docker_daemon;
mod exec;
mod faults;
mod files;
mod fuzz_regressions;
mod gen_bridge;
mod init;
mod repl;
mod security;
mod serve;
mod sessions;
mod third_party;
mod upstream;
mod users;
