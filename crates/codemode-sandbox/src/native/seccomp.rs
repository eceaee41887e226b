//! The seccomp layer: everything allowed except what the shared table
//! ([`crate::seccomp_rules`]) refuses: the kernel interfaces a Python
//! script has no business with and that widen the kernel's attack surface
//! (other socket families, ptrace, io_uring, BPF, mounts, new namespaces,
//! keyrings, modules). A deny list, not an allow list: Python and whatever it
//! runs use far too many syscalls to enumerate safely, and the namespaces,
//! Landlock and the unprivileged uid already bound what the rest can reach.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::init::SetupError;
use crate::seccomp_rules::{self, Refused};

fn target_arch() -> Result<TargetArch, SetupError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        SetupError::new(
            "seccomp",
            format!("unsupported architecture {}", std::env::consts::ARCH),
        )
    })
}

/// Compares the argument's low 32 bits only: the kernel reads no more of
/// the arguments the table compares, so high bits set by the caller must not
/// slip a value past a comparison.
fn condition(arg: u8, op: SeccompCmpOp, value: u32) -> Result<SeccompCondition, SetupError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, u64::from(value))
        .map_err(|e| SetupError::new("seccomp", e.to_string()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SetupError> {
    SeccompRule::new(conditions).map_err(|e| SetupError::new("seccomp", e.to_string()))
}

/// seccompiler's rules for one call, any of which refuses it (none: always).
fn refusing(refused: Refused) -> Result<Vec<SeccompRule>, SetupError> {
    Ok(match refused {
        Refused::Always => Vec::new(),
        Refused::Unless { allowed: &[], .. } => Vec::new(),
        Refused::Unless { arg, allowed } => vec![rule(
            allowed
                .iter()
                .map(|&value| condition(arg, SeccompCmpOp::Ne, value))
                .collect::<Result<_, _>>()?,
        )?],
        Refused::AnyBit { arg, mask } => (0..32)
            .map(|bit| 1u32 << bit)
            .filter(|flag| mask & flag != 0)
            .map(|flag| {
                rule(vec![condition(
                    arg,
                    SeccompCmpOp::MaskedEq(flag.into()),
                    flag,
                )?])
            })
            .collect::<Result<_, _>>()?,
        Refused::OneOf { arg, values } => values
            .iter()
            .map(|&value| rule(vec![condition(arg, SeccompCmpOp::Eq, value)?]))
            .collect::<Result<_, _>>()?,
    })
}

/// The table's rules by errno, each set keyed by syscall number; the calls
/// this architecture lacks are left out.
fn rules_by_errno() -> Result<BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>>, SetupError> {
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for entry in seccomp_rules::rules() {
        if let Some(nr) = entry.syscall.nr {
            by_errno
                .entry(entry.errno)
                .or_default()
                .insert(nr, refusing(entry.refused)?);
        }
    }
    Ok(by_errno)
}

/// The filters, in the order to install them: one per errno (a filter has
/// one action for all its matches), the `EPERM` one first.
pub fn programs() -> Result<Vec<BpfProgram>, SetupError> {
    let arch = target_arch()?;
    let mut by_errno = rules_by_errno()?;
    let mut ordered = Vec::new();
    ordered.extend(by_errno.remove_entry(&libc::EPERM));
    ordered.extend(by_errno);
    let mut programs = Vec::new();
    for (errno, rules) in ordered {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .map_err(|e| SetupError::new("seccomp", e.to_string()))?;
        let program: BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| SetupError::new("seccomp", e.to_string()))?;
        programs.push(program);
    }
    if arch == TargetArch::x86_64 {
        if let Some(first) = programs.first_mut() {
            first.splice(0..0, x32_guard());
        }
    }
    Ok(programs)
}

/// On x86_64 the x32 ABI reaches the same kernel functions under syscall
/// numbers with bit 30 set and the same audit arch, so a filter keyed on
/// numbers would miss them. This prefix refuses them all; it falls through to
/// the filter proper (which starts by checking the arch itself) otherwise.
fn x32_guard() -> Vec<sock_filter> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    let stmt = |code: u16, k: u32| sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| sock_filter { code, jt, jf, k };
    let ld_abs = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let jge = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    vec![
        // 0: A = arch
        stmt(ld_abs, 4),
        // 1: another arch: leave it to the filter (which kills it)
        jump(jeq, AUDIT_ARCH_X86_64, 0, 3),
        // 2: A = nr
        stmt(ld_abs, 0),
        // 3: x32 number → 4, else → 5
        jump(jge, X32_SYSCALL_BIT, 0, 1),
        // 4:
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        // 5: the filter proper
    ]
}

/// Installs the filters on the calling thread; `no_new_privs` must be set
/// (Landlock sets it first).
pub fn install(programs: &[BpfProgram]) -> Result<(), SetupError> {
    for program in programs {
        seccompiler::apply_filter(program)
            .map_err(|e| SetupError::new("seccomp", e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;

    fn native_arch() -> u32 {
        if cfg!(target_arch = "x86_64") {
            AUDIT_ARCH_X86_64
        } else {
            AUDIT_ARCH_AARCH64
        }
    }

    /// A classic-BPF interpreter for the subset seccomp filters use, over a
    /// `struct seccomp_data` (nr, arch, ip, args).
    fn run(program: &[sock_filter], nr: i64, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&(nr as i32).to_ne_bytes());
        data.extend_from_slice(&arch.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for arg in args {
            data.extend_from_slice(&arg.to_ne_bytes());
        }
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let ins = &program[pc];
            let class = ins.code & 0x07;
            match class {
                0x00 => {
                    // LD W ABS
                    let at = ins.k as usize;
                    a = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                    pc += 1;
                }
                0x04 => {
                    // ALU AND K
                    assert_eq!(ins.code & 0xf0, 0x50, "unexpected ALU op");
                    a &= ins.k;
                    pc += 1;
                }
                0x05 => {
                    let taken = match ins.code & 0xf0 {
                        0x00 => {
                            pc += 1 + ins.k as usize;
                            continue;
                        }
                        0x10 => a == ins.k,
                        0x20 => a > ins.k,
                        0x30 => a >= ins.k,
                        0x40 => a & ins.k != 0,
                        op => panic!("unexpected jump {op:#x}"),
                    };
                    pc += 1 + if taken { ins.jt } else { ins.jf } as usize;
                }
                0x06 => return ins.k,
                other => panic!("unexpected class {other:#x}"),
            }
        }
    }

    /// What the stack of filters answers: the most restrictive action wins.
    fn verdict(nr: i64, arch: u32, args: [u64; 6]) -> u32 {
        programs()
            .unwrap()
            .iter()
            .map(|p| run(p, nr, arch, args))
            .min_by_key(|&action| match action & libc::SECCOMP_RET_ACTION_FULL {
                libc::SECCOMP_RET_KILL_PROCESS => 0,
                libc::SECCOMP_RET_KILL_THREAD => 1,
                libc::SECCOMP_RET_TRAP => 2,
                libc::SECCOMP_RET_ERRNO => 3,
                _ => 9,
            })
            .unwrap()
    }

    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    fn args(first: u64) -> [u64; 6] {
        [first, 0, 0, 0, 0, 0]
    }

    #[test]
    fn every_rule_in_the_table_is_what_the_filter_answers() {
        let arch = native_arch();
        let mut checked = 0;
        for rule in seccomp_rules::rules() {
            let Some(nr) = rule.syscall.nr else {
                continue;
            };
            for args in rule.probes() {
                let expected = match rule.refuses(&args) {
                    true => libc::SECCOMP_RET_ERRNO | rule.errno as u32,
                    false => ALLOW,
                };
                assert_eq!(
                    verdict(nr, arch, args),
                    expected,
                    "{}{args:x?}",
                    rule.syscall.name
                );
                checked += 1;
            }
        }
        assert!(checked > 60, "{checked}");
    }

    #[test]
    fn personality_may_be_queried_but_not_changed() {
        let arch = native_arch();
        let query = 0xffff_ffff;
        assert_eq!(verdict(libc::SYS_personality, arch, args(query)), ALLOW);
        let addr_no_randomize = 0x0040000;
        assert_eq!(
            verdict(libc::SYS_personality, arch, args(addr_no_randomize)),
            EPERM
        );
    }

    #[test]
    fn only_unix_sockets_may_be_created() {
        let arch = native_arch();
        assert_eq!(
            verdict(libc::SYS_socket, arch, args(libc::AF_UNIX as u64)),
            ALLOW
        );
        for family in [
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_PACKET,
        ] {
            assert_eq!(verdict(libc::SYS_socket, arch, args(family as u64)), EPERM);
            assert_eq!(
                verdict(libc::SYS_socketpair, arch, args(family as u64)),
                EPERM
            );
        }
        assert_eq!(
            verdict(libc::SYS_socketpair, arch, args(libc::AF_UNIX as u64)),
            ALLOW
        );
    }

    #[test]
    fn dangerous_calls_fail_and_ordinary_ones_pass() {
        let arch = native_arch();
        for call in [
            libc::SYS_ptrace,
            libc::SYS_io_uring_setup,
            libc::SYS_bpf,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_keyctl,
            libc::SYS_open_by_handle_at,
            libc::SYS_memfd_secret,
            libc::SYS_move_pages,
        ] {
            assert_eq!(verdict(call, arch, args(0)), EPERM, "syscall {call}");
        }
        for call in [
            libc::SYS_read,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_mmap,
        ] {
            assert_eq!(verdict(call, arch, args(0)), ALLOW, "syscall {call}");
        }
    }

    #[test]
    fn clone_may_not_make_namespaces_and_clone3_is_sent_to_clone() {
        let arch = native_arch();
        let fork_like = (libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64;
        assert_eq!(verdict(libc::SYS_clone, arch, args(fork_like)), ALLOW);
        let threads = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(verdict(libc::SYS_clone, arch, args(threads)), ALLOW);
        let userns = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
        assert_eq!(verdict(libc::SYS_clone, arch, args(userns)), EPERM);
        assert_eq!(
            verdict(libc::SYS_clone3, arch, args(0)),
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
    }

    #[test]
    fn other_abis_are_refused() {
        // i386 through int 0x80: killed by the filter's arch check.
        assert_eq!(
            verdict(libc::SYS_read, AUDIT_ARCH_I386, args(0)),
            libc::SECCOMP_RET_KILL_PROCESS
        );
        if cfg!(target_arch = "x86_64") {
            // x32: socket(AF_INET) under its x32 number.
            let x32_socket = 0x4000_0000 | 41;
            assert_eq!(verdict(x32_socket, AUDIT_ARCH_X86_64, args(2)), EPERM);
        }
    }
}
