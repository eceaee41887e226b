//! The seccomp profile every container runs under, in Docker's format. It
//! replaces the engine's default profile (a container gets exactly one), so it
//! is an allow list like that default, and it refuses everything the shared
//! table ([`crate::seccomp_rules`]) refuses, as the native filter
//! does: sockets only of family AF_UNIX (the bridge), no ptrace, no io_uring,
//! no new namespaces, no personality changes. The network namespace already
//! cuts the network; this also stops a script from using even the
//! container's own loopback.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::seccomp_rules::{self, Refused};

/// Every system call a Python script (and the programs it may start) needs,
/// for x86_64 and aarch64; the engine ignores the names an architecture lacks.
/// Left out on purpose, beyond what needs capabilities we drop anyway: what
/// the table refuses outright, and the 32-bit entry points (no
/// sub-architectures: `socketcall` could not be filtered). A name the table
/// also has a rule for is allowed only as the table says.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd",
    "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl",
    "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstatfs", "fsync", "ftruncate", "futex", "futex_waitv", "futimesat", "get_robust_list",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "getsockname",
    "getsockopt", "gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "ioctl", "ioprio_get", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lgetxattr",
    "link", "linkat", "listen", "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr",
    "lstat", "madvise", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mremap", "msync", "munlock",
    "munlockall", "munmap", "nanosleep", "newfstatat", "open", "openat", "openat2", "pause",
    "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "poll", "ppoll", "prctl", "pread64",
    "preadv", "preadv2", "prlimit64", "pselect6", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
    "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity", "sched_yield", "seccomp",
    "select", "semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg",
    "sendto", "set_robust_list", "set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups",
    "setitimer", "setpgid", "setpriority", "setregid", "setresgid", "setresuid", "setreuid",
    "setrlimit", "setsid", "setsockopt", "setuid", "setxattr", "shmat", "shmctl", "shmdt", "shmget",
    "shutdown", "sigaltstack", "signalfd", "signalfd4", "splice", "stat", "statfs", "statx",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
    "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask",
    "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4",
    "waitid", "write", "writev",
];

/// What a call the profile does not allow fails with.
const DEFAULT_ERRNO: i32 = libc::EPERM;

/// The comparison the table means: on the argument's low 32 bits.
fn low_eq(arg: u8, value: u32) -> Value {
    // No libc constant names this mask: it is the low half of a 64-bit
    // argument.
    json!({"index": arg, "value": u32::MAX, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"})
}

pub(super) fn profile() -> String {
    let rules = seccomp_rules::rules();
    // A call the table rules on whatever its arguments is allowed only where
    // the table allows it; one it rules on for some arguments only keeps
    // its place in the allow list, and those arguments are refused.
    let ruled: BTreeSet<&str> = rules
        .iter()
        .filter(|rule| !matches!(rule.refused, Refused::OneOf { .. }))
        .map(|rule| rule.syscall.name)
        .collect();
    let allowed: Vec<&str> = ALLOWED
        .iter()
        .copied()
        .filter(|name| !ruled.contains(name))
        .collect();
    let mut syscalls = vec![json!({"names": allowed, "action": "SCMP_ACT_ALLOW"})];
    let mut always: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for rule in &rules {
        let name = rule.syscall.name;
        let allow =
            |args: Vec<Value>| json!({"names": [name], "action": "SCMP_ACT_ALLOW", "args": args});
        let refuse = |args: Vec<Value>| {
            let mut entry = allow(args);
            entry["action"] = "SCMP_ACT_ERRNO".into();
            entry["errnoRet"] = rule.errno.into();
            entry
        };
        // What is not allowed here fails with the default errno; the tests
        // check that it is the rule's.
        match rule.refused {
            Refused::Always => always.entry(rule.errno).or_default().push(name),
            // One entry per value: the engine would OR several comparisons of
            // one argument anyway.
            Refused::Unless { arg, allowed } => {
                syscalls.extend(allowed.iter().map(|&value| allow(vec![low_eq(arg, value)])));
            }
            Refused::AnyBit { arg, mask } => syscalls.push(allow(vec![json!(
                {"index": arg, "value": mask, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
            )])),
            // A refusal with arguments outranks an allow without them.
            Refused::OneOf { arg, values } => {
                syscalls.extend(values.iter().map(|&value| refuse(vec![low_eq(arg, value)])));
            }
        }
    }
    for (errno, names) in always {
        syscalls.push(json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno}));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": DEFAULT_ERRNO,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []},
        ],
        "syscalls": syscalls,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Answer {
        Allow,
        Errno(i64),
    }

    /// What the engine's libseccomp answers a call under `profile`: an
    /// entry's comparisons must all hold, a matching refusal outranks a
    /// matching allow, and a call nothing matches gets the default.
    fn answer(profile: &Value, name: &str, args: &[u64; 6]) -> Answer {
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        let default = profile["defaultErrnoRet"].as_i64().unwrap();
        let (mut allowed, mut refused) = (false, None);
        for entry in profile["syscalls"].as_array().unwrap() {
            if !entry["names"].as_array().unwrap().iter().any(|n| n == name) {
                continue;
            }
            let conditions = entry["args"].as_array().cloned().unwrap_or_default();
            let indices: BTreeSet<u64> = conditions
                .iter()
                .map(|c| c["index"].as_u64().unwrap())
                .collect();
            assert_eq!(
                indices.len(),
                conditions.len(),
                "{entry}: the engine would OR these"
            );
            let holds = conditions.iter().all(|c| {
                let arg = args[c["index"].as_u64().unwrap() as usize];
                let value = c["value"].as_u64().unwrap();
                match c["op"].as_str().unwrap() {
                    "SCMP_CMP_EQ" => arg == value,
                    "SCMP_CMP_MASKED_EQ" => arg & value == c["valueTwo"].as_u64().unwrap(),
                    op => panic!("{op} is not modelled"),
                }
            });
            if holds {
                match entry["action"].as_str().unwrap() {
                    "SCMP_ACT_ALLOW" => allowed = true,
                    "SCMP_ACT_ERRNO" => {
                        refused = Some(entry["errnoRet"].as_i64().unwrap_or(default));
                    }
                    action => panic!("{action} is not modelled"),
                }
            }
        }
        match (refused, allowed) {
            (Some(errno), _) => Answer::Errno(errno),
            (None, true) => Answer::Allow,
            (None, false) => Answer::Errno(default),
        }
    }

    fn built() -> Value {
        serde_json::from_str(&profile()).unwrap()
    }

    #[test]
    fn every_rule_in_the_table_is_what_the_profile_answers() {
        let profile = built();
        for rule in seccomp_rules::rules() {
            let name = rule.syscall.name;
            for args in rule.probes() {
                let expected = if rule.refuses(&args) {
                    Answer::Errno(i64::from(rule.errno))
                } else if matches!(rule.refused, Refused::OneOf { .. }) && !ALLOWED.contains(&name)
                {
                    Answer::Errno(i64::from(DEFAULT_ERRNO))
                } else {
                    Answer::Allow
                };
                assert_eq!(answer(&profile, name, &args), expected, "{name}{args:x?}");
            }
        }
    }

    #[test]
    fn ordinary_calls_stay_allowed() {
        let profile = built();
        let fork_like = (libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64;
        for (name, first, second) in [
            ("read", 0, 0),
            ("openat", 0, 0),
            ("execve", 0, 0),
            ("mmap", 0, 0),
            ("clone", fork_like, 0),
            ("socket", libc::AF_UNIX as u64, 0),
            // libc has no name for it: the kernel reads 0xffffffff as a
            // question about the persona, not a change.
            ("personality", u64::from(u32::MAX), 0),
            ("ioctl", 0, libc::TCGETS),
        ] {
            let args = [first, second, 0, 0, 0, 0];
            assert_eq!(answer(&profile, name, &args), Answer::Allow, "{name}");
        }
    }

    #[test]
    fn a_call_on_neither_list_is_refused() {
        assert_eq!(
            answer(&built(), "io_setup", &[0; 6]),
            Answer::Errno(i64::from(libc::EPERM))
        );
    }
}
