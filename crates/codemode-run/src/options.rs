use std::collections::BTreeMap;
use std::time::Duration;

use codemode_config::{Backend, ByteSize, Cpus, SandboxConfig, SizeLimit};
use codemode_sandbox::Limits;

use crate::{AskWith, InputFiles, OutputCaps};

/// Everything one execution needs besides the script and its stubs.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    pub limits: Limits,
    /// Extra `server.tool` patterns the run is narrowed to
    /// ([`crate::Runner::filter`]).
    pub allow: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    /// Extra `server.tool` patterns whose calls need approval (`--approve`).
    pub approve: Vec<String>,
    /// Approve every call that needs approval without asking (`--auto-approve`).
    pub auto_approve: bool,
    /// How long a call waits for a person's answer.
    pub approval_timeout: Duration,
    pub ask_with: AskWith,
    /// Files the script may read at `/workspace/in` (`--input`).
    pub input_files: InputFiles,
    /// Whether what the script leaves in `/workspace/out` comes back, and
    /// how much of it; `None`: the run is exactly as without outputs.
    pub outputs: Option<OutputCaps>,
}

impl Options {
    /// `[sandbox]`'s backend and limits over the defaults, no narrowing. A
    /// limit the config sets is the user's choice, enforced or refused (see
    /// [`codemode_sandbox::Chosen`]).
    pub fn from_config(config: &SandboxConfig) -> Options {
        let mut options = Options {
            backend: config.backend,
            limits: Limits {
                timeout: config.timeout,
                pids: config.pids,
                ..Limits::default()
            },
            allow: Vec::new(),
            env: BTreeMap::new(),
            args: Vec::new(),
            approve: Vec::new(),
            auto_approve: false,
            approval_timeout: config.approval_timeout,
            ask_with: AskWith::default(),
            input_files: InputFiles::default(),
            outputs: None,
        };
        options.choose(config.memory, config.cpus, config.disk);
        options
    }

    /// The limits a user set, from the config or the flags over it: a
    /// memory limit or CPU share set is enforced or the run refused.
    pub fn choose(
        &mut self,
        memory: Option<SizeLimit>,
        cpus: Option<Cpus>,
        disk: Option<ByteSize>,
    ) {
        if let Some(memory) = memory {
            self.limits.memory_bytes = memory.bytes();
            self.limits.chosen.memory = true;
        }
        if let Some(cpus) = cpus {
            self.limits.cpus = cpus.0;
            self.limits.chosen.cpus = true;
        }
        if let Some(disk) = disk {
            self.limits.disk_bytes = disk.0;
        }
    }

    /// The flags every command that runs code shares: `--sandbox`,
    /// `--timeout` and `--allow`.
    pub fn override_with(
        &mut self,
        backend: Option<Backend>,
        timeout: Option<Duration>,
        allow: &[String],
    ) {
        if let Some(choice) = backend {
            self.backend = choice;
        }
        if let Some(timeout) = timeout {
            self.limits.timeout = timeout;
        }
        self.allow = allow.to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_the_config_sets_are_chosen_and_the_rest_are_defaults() {
        let config = SandboxConfig {
            memory: Some(SizeLimit::Unlimited),
            cpus: Some(Cpus(1.5)),
            disk: Some(ByteSize(1 << 20)),
            ..SandboxConfig::default()
        };
        let options = Options::from_config(&config);
        assert_eq!(options.limits.memory_bytes, None);
        assert!(options.limits.chosen.memory && options.limits.chosen.cpus);
        assert_eq!(options.limits.cpus, 1.5);
        assert_eq!(options.limits.disk_bytes, 1 << 20);
        let defaults = Options::from_config(&SandboxConfig::default());
        assert!(!defaults.limits.chosen.memory && !defaults.limits.chosen.cpus);
        assert_eq!(defaults.limits.memory_bytes, Limits::default().memory_bytes);
    }
}
