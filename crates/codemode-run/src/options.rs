use std::collections::BTreeMap;
use std::time::Duration;

use codemode_config::{Backend, SandboxConfig};
use codemode_sandbox::Limits;

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
}

impl Options {
    /// `[sandbox]`'s backend and limits over the defaults, no narrowing. A
    /// limit the config sets is the user's choice, enforced or refused (see
    /// [`codemode_sandbox::Chosen`]).
    pub fn from_config(config: &SandboxConfig) -> Options {
        let mut limits = Limits {
            timeout: config.timeout,
            pids: config.pids,
            ..Limits::default()
        };
        if let Some(memory) = config.memory {
            limits.memory_bytes = memory.bytes();
            limits.chosen.memory = true;
        }
        if let Some(cpus) = config.cpus {
            limits.cpus = cpus.0;
            limits.chosen.cpus = true;
        }
        if let Some(disk) = config.disk {
            limits.disk_bytes = disk.0;
        }
        Options {
            backend: config.backend,
            limits,
            allow: Vec::new(),
            env: BTreeMap::new(),
            args: Vec::new(),
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
    use codemode_config::{ByteSize, Cpus, SizeLimit};

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
