//! Per-process resource limits: the layer that works everywhere, root or not,
//! cgroups or not. Where cgroups exist they are the real bound on the whole
//! run; these bound each process on their own.

use serde::{Deserialize, Serialize};

use crate::Limits;

use super::init::SetupError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    /// Private writable memory (heap, anonymous maps, thread stacks).
    Data,
    /// Address space: everything mapped, shared mappings included.
    As,
    Stack,
    /// Processes and threads of the sandbox's uid (counted per user namespace).
    Nproc,
    /// Largest file a process may write.
    Fsize,
    Nofile,
    Core,
    /// CPU seconds.
    Cpu,
    Memlock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

const MIB: u64 = 1024 * 1024;

/// Room above the memory limit for what `RLIMIT_DATA` counts but does not
/// fill: every thread reserves an 8 MiB stack, so without it a script with a
/// dozen threads would fail to start them long before it used its memory.
pub const DATA_HEADROOM: u64 = 128 * MIB;

/// Room above the memory limit for what `RLIMIT_AS` counts but does not
/// fill (the interpreter's own mappings, malloc arenas, thread stacks).
pub const AS_HEADROOM: u64 = 512 * MIB;

/// The limits for one run.
///
/// Memory is bounded with `RLIMIT_DATA`, not `RLIMIT_AS`: address space is
/// mostly reservations (glibc reserves 64 MiB per malloc arena and 8 MiB per
/// thread stack), so an `RLIMIT_AS` near the memory limit breaks ordinary
/// threaded scripts, while `RLIMIT_DATA` counts only private writable memory
/// and still turns `b'x' * (4 << 30)` into a `MemoryError`.
///
/// Shared mappings escape `RLIMIT_DATA`, though. Where a memory cgroup
/// bounds the run (`memory_in_cgroup`) they are counted there; elsewhere
/// `RLIMIT_AS` bounds each process, headroom included, so that
/// `mmap(-1, 2 << 30)` fails under a 512 MiB limit too.
pub fn plan(limits: &Limits, memory_in_cgroup: bool) -> Vec<Rlimit> {
    let cpu_seconds = limits.timeout.as_secs().saturating_add(1);
    let fixed = |resource, value| Rlimit {
        resource,
        soft: value,
        hard: value,
    };
    let memory = limits.memory_bytes.unwrap_or(u64::MAX);
    let mut plan = vec![
        fixed(Resource::Data, memory.saturating_add(DATA_HEADROOM)),
        fixed(Resource::Stack, 8 * MIB),
        fixed(Resource::Nproc, u64::from(limits.pids.max(1))),
        // No file larger than the largest tmpfs it could be written to.
        fixed(
            Resource::Fsize,
            limits.tmp_bytes.max(limits.disk_bytes).max(MIB),
        ),
        fixed(Resource::Nofile, 256),
        fixed(Resource::Core, 0),
        fixed(Resource::Memlock, 64 * 1024),
        // SIGXCPU at the soft limit, SIGKILL a second later: a backstop for
        // the wall-clock timeout the parent enforces.
        Rlimit {
            resource: Resource::Cpu,
            soft: cpu_seconds,
            hard: cpu_seconds.saturating_add(1),
        },
    ];
    if !memory_in_cgroup && limits.memory_bytes.is_some() {
        plan.push(fixed(Resource::As, memory.saturating_add(AS_HEADROOM)));
    }
    plan
}

fn nix_resource(resource: Resource) -> nix::sys::resource::Resource {
    use nix::sys::resource::Resource as R;
    match resource {
        Resource::Data => R::RLIMIT_DATA,
        Resource::As => R::RLIMIT_AS,
        Resource::Stack => R::RLIMIT_STACK,
        Resource::Nproc => R::RLIMIT_NPROC,
        Resource::Fsize => R::RLIMIT_FSIZE,
        Resource::Nofile => R::RLIMIT_NOFILE,
        Resource::Core => R::RLIMIT_CORE,
        Resource::Cpu => R::RLIMIT_CPU,
        Resource::Memlock => R::RLIMIT_MEMLOCK,
    }
}

/// Sets every limit, never above the current hard limit: raising one needs
/// `CAP_SYS_RESOURCE` in the host's namespace, which the sandbox lacks, and a
/// host that already allows less than we ask for is stricter, not weaker.
pub fn apply(plan: &[Rlimit]) -> Result<(), SetupError> {
    use nix::sys::resource::{getrlimit, setrlimit};
    for limit in plan {
        let resource = nix_resource(limit.resource);
        let (_, current_hard) = getrlimit(resource)
            .map_err(|e| SetupError::new("rlimits", format!("{:?}: {e}", limit.resource)))?;
        let (soft, hard) = clamp(limit, current_hard);
        setrlimit(resource, soft, hard)
            .map_err(|e| SetupError::new("rlimits", format!("{:?}: {e}", limit.resource)))?;
    }
    Ok(())
}

fn clamp(limit: &Rlimit, current_hard: u64) -> (u64, u64) {
    let hard = limit.hard.min(current_hard);
    (limit.soft.min(hard), hard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn find(plan: &[Rlimit], resource: Resource) -> Rlimit {
        *plan.iter().find(|l| l.resource == resource).unwrap()
    }

    #[test]
    fn the_defaults_become_sensible_limits() {
        let plan = plan(&Limits::default(), true);
        assert_eq!(find(&plan, Resource::Data).hard, 512 * MIB + DATA_HEADROOM);
        assert_eq!(find(&plan, Resource::Nproc).hard, 128);
        assert_eq!(find(&plan, Resource::Fsize).hard, 256 * MIB);
        assert_eq!(find(&plan, Resource::Nofile).hard, 256);
        assert_eq!(find(&plan, Resource::Core).hard, 0);
        let cpu = find(&plan, Resource::Cpu);
        assert_eq!((cpu.soft, cpu.hard), (31, 32));
    }

    #[test]
    fn huge_or_tiny_limits_neither_overflow_nor_reach_zero() {
        let plan = plan(
            &Limits {
                timeout: Duration::from_secs(u64::MAX),
                memory_bytes: Some(u64::MAX),
                pids: 0,
                tmp_bytes: 0,
                disk_bytes: 0,
                ..Limits::default()
            },
            true,
        );
        assert_eq!(find(&plan, Resource::Data).hard, u64::MAX);
        assert_eq!(find(&plan, Resource::Cpu).hard, u64::MAX);
        assert_eq!(find(&plan, Resource::Nproc).hard, 1);
        assert_eq!(find(&plan, Resource::Fsize).hard, MIB);
    }

    #[test]
    fn address_space_is_bounded_only_where_no_memory_cgroup_is() {
        let limits = Limits::default();
        assert!(plan(&limits, true)
            .iter()
            .all(|l| l.resource != Resource::As));
        let alone = plan(&limits, false);
        assert_eq!(find(&alone, Resource::As).hard, 512 * MIB + AS_HEADROOM);
        let unlimited = Limits {
            memory_bytes: None,
            ..Limits::default()
        };
        let none = plan(&unlimited, false);
        assert!(none.iter().all(|l| l.resource != Resource::As));
        assert_eq!(find(&none, Resource::Data).hard, u64::MAX);
    }

    #[test]
    fn a_stricter_host_limit_wins() {
        let limit = Rlimit {
            resource: Resource::Nofile,
            soft: 256,
            hard: 256,
        };
        assert_eq!(clamp(&limit, 100), (100, 100));
        assert_eq!(clamp(&limit, 1 << 20), (256, 256));
    }
}
