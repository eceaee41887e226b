//! The system calls both sandboxes refuse, in one table. The native filter
//! (a deny list: allow all but these) and the Docker profile (an allow list
//! that must not allow these) are both built from it, so one cannot refuse
//! less than the other. What is here is what Docker's default profile refuses
//! of the calls an unprivileged process could make, and more: the sandbox has
//! no need for them, and each is kernel attack surface or a way around another
//! layer.
//!
//! Names and numbers both come from `libc::SYS_*`: a number typed by hand
//! could silently name another call on some architecture.

/// A system call: its name for Docker's profile and, where this architecture
/// has it, its number for the native filter.
#[derive(Debug, Clone, Copy)]
pub struct Syscall {
    pub name: &'static str,
    pub nr: Option<i64>,
}

/// When a call is refused. Arguments are compared on their low 32 bits, as
/// the kernel reads every argument compared here (`int` or `unsigned int`,
/// and `clone`'s namespace flags all lie in the low half).
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// Whatever the arguments.
    Always,
    /// Unless argument `arg` is one of `allowed`. Whatever the table does
    /// not allow is refused: the Docker profile allows exactly `allowed`.
    Unless { arg: u8, allowed: &'static [u32] },
    /// When argument `arg` has any bit of `mask` set; allowed otherwise.
    AnyBit { arg: u8, mask: u32 },
    /// When argument `arg` is one of `values`; otherwise the call is left to
    /// the rest of each sandbox's rules.
    OneOf { arg: u8, values: &'static [u32] },
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub syscall: Syscall,
    pub refused: Refused,
    /// The error the call fails with.
    pub errno: i32,
}

impl Rule {
    /// Whether the call with these arguments is refused: what the tests
    /// hold each sandbox's filter to.
    #[cfg(test)]
    pub fn refuses(&self, args: &[u64; 6]) -> bool {
        let low = |arg: u8| args[usize::from(arg)] as u32;
        match self.refused {
            Refused::Always => true,
            Refused::Unless { arg, allowed } => !allowed.contains(&low(arg)),
            Refused::AnyBit { arg, mask } => low(arg) & mask != 0,
            Refused::OneOf { arg, values } => values.contains(&low(arg)),
        }
    }

    /// Arguments to try the rule with: each value it names, with a high bit
    /// set too, and others it does not name.
    #[cfg(test)]
    pub fn probes(&self) -> Vec<[u64; 6]> {
        let (arg, named): (u8, Vec<u32>) = match self.refused {
            Refused::Always => return vec![[0; 6]],
            Refused::Unless { arg, allowed } => (arg, allowed.to_vec()),
            Refused::OneOf { arg, values } => (arg, values.to_vec()),
            Refused::AnyBit { arg, mask } => (
                arg,
                (0..32)
                    .map(|bit| 1 << bit)
                    .filter(|b| mask & b != 0)
                    .collect(),
            ),
        };
        let mut values: Vec<u64> = vec![0, 1, 2, 0x11, 0x0040000, 0xffff_ffff];
        for value in named {
            let value = u64::from(value);
            values.extend([value, value ^ 1, value | 1 << 32]);
        }
        values
            .into_iter()
            .map(|value| {
                let mut args = [0; 6];
                args[usize::from(arg)] = value;
                args
            })
            .collect()
    }
}

macro_rules! sys {
    ($sys:ident) => {
        Syscall {
            name: &stringify!($sys)["SYS_".len()..],
            nr: Some(libc::$sys),
        }
    };
}

/// A call only x86_64 has: Docker's profile names it everywhere (the engine
/// ignores names an architecture lacks), the native filter only there.
macro_rules! x86_64_sys {
    ($sys:ident) => {{
        #[cfg(target_arch = "x86_64")]
        let nr = Some(libc::$sys);
        #[cfg(not(target_arch = "x86_64"))]
        let nr = None;
        Syscall {
            name: &stringify!($sys)["SYS_".len()..],
            nr,
        }
    }};
}

/// The personalities Docker's default profile allows: `PER_LINUX`,
/// `UNAME26`, `PER_LINUX32` and `UNAME26 | PER_LINUX32`, and `0xffffffff`,
/// which only queries. Others turn off ASLR (`ADDR_NO_RANDOMIZE`), map page
/// zero (`MMAP_PAGE_ZERO`) or make every mapping executable
/// (`READ_IMPLIES_EXEC`), each a help to an exploit.
const PERSONALITIES: &[u32] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The namespace flags of `clone`: a nested user namespace would hand the
/// script capabilities (inside it) and the kernel code they unlock.
const CLONE_NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// Only Unix sockets: the bridge is one, and no other family is needed. (The
/// network namespace already cuts the network, but netlink, packet, vsock and
/// friends are kernel attack surface, and the loopback would be reachable.)
const SOCKET_FAMILIES: &[u32] = &[libc::AF_UNIX as u32];

/// Faking terminal input (`TIOCSTI`, and `TIOCLINUX`'s paste): a script that
/// got hold of a terminal could type commands into the shell reading it.
const TERMINAL_INJECTION: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

/// The table. No call appears twice.
pub fn rules() -> Vec<Rule> {
    let always = |syscall| Rule {
        syscall,
        refused: Refused::Always,
        errno: libc::EPERM,
    };
    let mut rules: Vec<Rule> = [
        // Reading or writing other processes.
        sys!(SYS_ptrace),
        sys!(SYS_process_vm_readv),
        sys!(SYS_process_vm_writev),
        sys!(SYS_process_madvise),
        sys!(SYS_pidfd_getfd),
        sys!(SYS_kcmp),
        // io_uring bypasses seccomp for the operations it performs.
        sys!(SYS_io_uring_setup),
        sys!(SYS_io_uring_enter),
        sys!(SYS_io_uring_register),
        // Large, frequently exploited kernel interfaces.
        sys!(SYS_bpf),
        sys!(SYS_perf_event_open),
        sys!(SYS_userfaultfd),
        sys!(SYS_keyctl),
        sys!(SYS_add_key),
        sys!(SYS_request_key),
        sys!(SYS_fanotify_init),
        // The system directories are the host's own, bound read-only: a
        // watch on them would show which host commands run, and when.
        x86_64_sys!(SYS_inotify_init),
        sys!(SYS_inotify_init1),
        sys!(SYS_inotify_add_watch),
        // Memory the kernel itself cannot read, and NUMA placement, which
        // moves other processes' pages and has had its share of bugs.
        sys!(SYS_memfd_secret),
        sys!(SYS_move_pages),
        sys!(SYS_migrate_pages),
        sys!(SYS_mbind),
        sys!(SYS_set_mempolicy),
        sys!(SYS_set_mempolicy_home_node),
        sys!(SYS_get_mempolicy),
        // The host itself: modules, kexec, power, swap, clocks, logs.
        sys!(SYS_kexec_load),
        sys!(SYS_kexec_file_load),
        sys!(SYS_init_module),
        sys!(SYS_finit_module),
        sys!(SYS_delete_module),
        sys!(SYS_reboot),
        sys!(SYS_swapon),
        sys!(SYS_swapoff),
        sys!(SYS_acct),
        sys!(SYS_syslog),
        sys!(SYS_vhangup),
        sys!(SYS_quotactl),
        sys!(SYS_quotactl_fd),
        sys!(SYS_lookup_dcookie),
        sys!(SYS_clock_settime),
        sys!(SYS_clock_adjtime),
        sys!(SYS_settimeofday),
        // The sandbox's own shape: mounts and namespaces stay as set up.
        sys!(SYS_mount),
        sys!(SYS_umount2),
        sys!(SYS_pivot_root),
        sys!(SYS_chroot),
        sys!(SYS_unshare),
        sys!(SYS_setns),
        sys!(SYS_fsopen),
        sys!(SYS_fsconfig),
        sys!(SYS_fsmount),
        sys!(SYS_fspick),
        sys!(SYS_move_mount),
        sys!(SYS_open_tree),
        sys!(SYS_mount_setattr),
        // File handles bypass path-based checks (the "shocker" escape).
        sys!(SYS_open_by_handle_at),
        sys!(SYS_name_to_handle_at),
        // x86 only: port I/O, the LDT (16-bit segments, a long line of
        // kernel bugs), a.out libraries and obsolete interfaces.
        x86_64_sys!(SYS_iopl),
        x86_64_sys!(SYS_ioperm),
        x86_64_sys!(SYS_modify_ldt),
        x86_64_sys!(SYS_uselib),
        x86_64_sys!(SYS_nfsservctl),
        x86_64_sys!(SYS__sysctl),
        x86_64_sys!(SYS_sysfs),
        x86_64_sys!(SYS_ustat),
    ]
    .into_iter()
    .map(always)
    .collect();
    rules.extend([
        Rule {
            syscall: sys!(SYS_personality),
            refused: Refused::Unless {
                arg: 0,
                allowed: PERSONALITIES,
            },
            errno: libc::EPERM,
        },
        Rule {
            syscall: sys!(SYS_socket),
            refused: Refused::Unless {
                arg: 0,
                allowed: SOCKET_FAMILIES,
            },
            errno: libc::EPERM,
        },
        Rule {
            syscall: sys!(SYS_socketpair),
            refused: Refused::Unless {
                arg: 0,
                allowed: SOCKET_FAMILIES,
            },
            errno: libc::EPERM,
        },
        Rule {
            syscall: sys!(SYS_clone),
            refused: Refused::AnyBit {
                arg: 0,
                mask: CLONE_NAMESPACE_FLAGS,
            },
            errno: libc::EPERM,
        },
        // clone3 passes its flags in memory, out of a filter's reach: ENOSYS
        // makes glibc fall back to clone, whose flags are checked.
        Rule {
            syscall: sys!(SYS_clone3),
            refused: Refused::Always,
            errno: libc::ENOSYS,
        },
        Rule {
            syscall: sys!(SYS_ioctl),
            refused: Refused::OneOf {
                arg: 1,
                values: TERMINAL_INJECTION,
            },
            errno: libc::EPERM,
        },
    ]);
    rules
}

/// Calls to make from Python inside a sandbox, for the tests that run one:
/// each is one the table refuses (or, as a control, allows) and that would
/// succeed, or fail otherwise than the table says, without the filter.
#[cfg(test)]
pub mod probe {
    use super::rules;

    const ADDR_NO_RANDOMIZE: u64 = 0x0040000;

    /// `(label, number, arguments)`; the arguments need no memory.
    fn calls() -> Vec<(&'static str, i64, [u64; 6])> {
        let mut calls = Vec::new();
        #[cfg(target_arch = "x86_64")]
        // Reads 0 bytes of the LDT.
        calls.push(("modify_ldt", libc::SYS_modify_ldt, [0; 6]));
        calls.extend([
            (
                "personality(ADDR_NO_RANDOMIZE)",
                libc::SYS_personality,
                [ADDR_NO_RANDOMIZE, 0, 0, 0, 0, 0],
            ),
            (
                "personality(0xffffffff)",
                libc::SYS_personality,
                [0xffff_ffff, 0, 0, 0, 0, 0],
            ),
            ("memfd_secret", libc::SYS_memfd_secret, [0; 6]),
            // Moves no pages of itself.
            ("move_pages", libc::SYS_move_pages, [0; 6]),
            ("migrate_pages", libc::SYS_migrate_pages, [0; 6]),
        ]);
        calls
    }

    /// A script printing `<label> <errno>` (or `<label> ok`) for each call.
    pub fn script() -> String {
        let calls = calls()
            .iter()
            .map(|(label, nr, args)| format!("    ({label:?}, {nr}, {args:?}),\n"))
            .collect::<String>();
        format!(
            "import ctypes\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             libc.syscall.restype = ctypes.c_long\n\
             for label, nr, args in [\n{calls}]:\n\
             \x20   result = libc.syscall(ctypes.c_long(nr), *map(ctypes.c_ulong, args))\n\
             \x20   print(label, ctypes.get_errno() if result == -1 else 'ok')\n"
        )
    }

    /// What [`script`] prints if the sandbox applies the table.
    pub fn expected() -> String {
        let rules = rules();
        calls()
            .iter()
            .map(|(label, nr, args)| {
                let rule = rules
                    .iter()
                    .find(|r| r.syscall.nr == Some(*nr))
                    .expect("a probe of a call in the table");
                match rule.refuses(args) {
                    true => format!("{label} {}\n", rule.errno),
                    false => format!("{label} ok\n"),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn no_call_appears_twice() {
        let mut seen = BTreeSet::new();
        for rule in rules() {
            assert!(seen.insert(rule.syscall.name), "{}", rule.syscall.name);
        }
    }
}
