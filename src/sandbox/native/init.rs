//! The setup side: `codemode __sandbox-init <spec-fd> <report-fd> <lifeline-fd>`.
//!
//! Three processes, all single-threaded (no async runtime here: unsharing a
//! user namespace needs a single thread, and forking one is only safe then):
//!
//! 1. The setup process (host pid namespace): joins the run's cgroups as
//!    root, drops to an unprivileged host uid, unshares user, mount, pid,
//!    net, ipc, uts and cgroup namespaces, maps the sandbox uid, forks the
//!    init and supervises it: when the lifeline pipe from codemode closes (a
//!    kill, or codemode died) it SIGKILLs the init, and it exits only once the
//!    init is reaped, which the kernel allows only after every other process
//!    of the pid namespace is gone.
//! 2. The init (pid 1 of the new pid namespace): builds the new root, sets
//!    the hostname, forks the script process, forwards SIGTERM/SIGINT to it,
//!    reaps orphans, and exits with the script's status as soon as the script
//!    exits, which makes the kernel kill whatever else is left (daemons,
//!    stray children).
//! 3. The script process: rlimits, capabilities, Landlock, seccomp, then
//!    `execve` of the interpreter.
//!
//! Every failure is reported on the report pipe as `error <layer>: <why>`
//! and nothing of the script runs.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, RawFd};

use super::protocol::{InitSpec, Report};
use super::{landlock, mounts, rlimits, seccomp, INIT_ARG};

/// A layer that could not be set up, and why.
#[derive(Debug)]
pub struct SetupError {
    pub layer: &'static str,
    pub why: String,
}

impl SetupError {
    pub fn new(layer: &'static str, why: impl Into<String>) -> SetupError {
        SetupError {
            layer,
            why: why.into(),
        }
    }
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.layer, self.why)
    }
}

/// The exit status of a setup process, init or script process that failed
/// before the script ran (the report line says why).
pub const SETUP_FAILED: i32 = 125;

/// The report pipe's write end; a plain fd so that it survives `fork`.
#[derive(Clone, Copy)]
struct Reporter(RawFd);

impl Reporter {
    fn send(self, report: &Report) {
        let line = report.encode();
        // One write below PIPE_BUF: atomic. Nothing to do if it fails (the
        // parent is gone).
        unsafe { libc::write(self.0, line.as_ptr().cast(), line.len()) };
    }

    fn fail(self, error: &SetupError) -> ! {
        self.send(&Report::SetupFailed(error.to_string()));
        exit(SETUP_FAILED)
    }
}

/// `_exit`: no atexit handlers, no flushing of buffers a forked child shares
/// with its parent.
fn exit(code: i32) -> ! {
    unsafe { libc::_exit(code) }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

pub fn init_main() -> ! {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let fds: Option<Vec<RawFd>> = args.iter().map(|a| a.parse().ok()).collect();
    let Some([spec_fd, report_fd, lifeline_fd]) =
        fds.as_deref().and_then(|f| <[RawFd; 3]>::try_from(f).ok())
    else {
        eprintln!("codemode: `{INIT_ARG}` is internal to the native sandbox");
        exit(SETUP_FAILED)
    };
    if [spec_fd, report_fd, lifeline_fd]
        .iter()
        .any(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0)
    {
        eprintln!("codemode: `{INIT_ARG}`: its descriptors are not open");
        exit(SETUP_FAILED)
    }
    let report = Reporter(report_fd);
    match setup(spec_fd, report, lifeline_fd) {
        Ok(never) => match never {},
        Err(error) => report.fail(&error),
    }
}

fn setup(spec_fd: RawFd, report: Reporter, lifeline: RawFd) -> Result<Infallible, SetupError> {
    let spec = read_spec(spec_fd)?;
    for fd in [report.0, lifeline] {
        set_cloexec(fd).map_err(|e| SetupError::new("descriptors", e.to_string()))?;
    }
    // Only what we were given explicitly goes further.
    close_fds_except(&[report.0, lifeline]);

    for procs in &spec.cgroup_procs {
        std::fs::write(procs, std::process::id().to_string())
            .map_err(|e| SetupError::new("cgroup", format!("joining {}: {e}", procs.display())))?;
    }
    drop_privileges(spec.drop_to)?;
    let (host_uid, host_gid) = (unsafe { libc::getuid() }, unsafe { libc::getgid() });
    if host_uid == 0 || unsafe { libc::geteuid() } == 0 {
        return Err(SetupError::new(
            "privileges",
            "refusing to build the sandbox as host root",
        ));
    }

    use nix::sched::CloneFlags;
    nix::sched::unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWCGROUP,
    )
    .map_err(|e| SetupError::new("namespaces", format!("unshare: {e}{}", userns_hint())))?;
    map_ids(&spec, host_uid, host_gid)?;

    // The init's exit is seen through a signalfd, so that the wait can also
    // watch the lifeline.
    let mut chld = empty_sigset();
    unsafe {
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &chld, std::ptr::null_mut());
    }
    let sigfd = unsafe { libc::signalfd(-1, &chld, libc::SFD_CLOEXEC) };
    if sigfd < 0 {
        return Err(SetupError::new("init", format!("signalfd: {}", errno())));
    }
    // Closed only by this process's death: tells the init, which cannot ask
    // for its parent across the pid namespace, that we are gone.
    let (alive_read, alive_write) = pipe()?;
    let devnull = open_devnull()?;

    match unsafe { libc::fork() } {
        -1 => Err(SetupError::new("init", format!("fork: {}", errno()))),
        0 => {
            for fd in [alive_write, lifeline, sigfd, devnull] {
                unsafe { libc::close(fd) };
            }
            pid1(&spec, report, alive_read)
        }
        init => {
            unsafe { libc::close(alive_read) };
            report.send(&Report::InitPid(init));
            // Only the sandbox's processes hold the output pipes now, so
            // they close when the sandbox is gone.
            unsafe {
                libc::dup2(devnull, 1);
                libc::dup2(devnull, 2);
                libc::close(devnull);
            }
            supervise(init, lifeline, sigfd)
        }
    }
}

fn read_spec(fd: RawFd) -> Result<InitSpec, SetupError> {
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| SetupError::new("spec", e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| SetupError::new("spec", e.to_string()))
}

fn set_cloexec(fd: RawFd) -> std::io::Result<()> {
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(errno());
    }
    Ok(())
}

fn close_fds_except(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<RawFd> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            unsafe { libc::close(fd) };
        }
    }
}

fn pipe() -> Result<(RawFd, RawFd), SetupError> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SetupError::new("init", format!("pipe: {}", errno())));
    }
    Ok((fds[0], fds[1]))
}

fn open_devnull() -> Result<RawFd, SetupError> {
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(SetupError::new("init", format!("/dev/null: {}", errno())));
    }
    Ok(fd)
}

/// As host root, becomes `drop_to` for good: no supplementary groups, no
/// saved root uid, no capabilities (the kernel clears them on the switch).
fn drop_privileges(drop_to: Option<(u32, u32)>) -> Result<(), SetupError> {
    let fail = |what: &str, e: nix::Error| SetupError::new("privileges", format!("{what}: {e}"));
    if let Some((uid, gid)) = drop_to {
        if nix::unistd::geteuid().is_root() {
            use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
            setgroups(&[]).map_err(|e| fail("setgroups", e))?;
            let gid = Gid::from_raw(gid);
            setresgid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
            let uid = Uid::from_raw(uid);
            setresuid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
            if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
                return Err(SetupError::new("privileges", "root could be regained"));
            }
        }
    }
    // Changing uid made us non-dumpable, which makes /proc/self/uid_map
    // root's and unwritable to us.
    nix::sys::prctl::set_dumpable(true).map_err(|e| fail("PR_SET_DUMPABLE", e))
}

/// Writes the user namespace's maps: the sandbox uid/gid is the (now
/// unprivileged) host uid/gid, and nothing else is mapped.
fn map_ids(spec: &InitSpec, host_uid: u32, host_gid: u32) -> Result<(), SetupError> {
    let write = |file: &str, text: String| {
        std::fs::write(file, text)
            .map_err(|e| SetupError::new("user namespace", format!("writing {file}: {e}")))
    };
    // `deny` is required before an unprivileged gid_map; it also stops the
    // sandbox from ever dropping a group to get past a "deny to group" mode.
    match std::fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(SetupError::new(
                "user namespace",
                format!("writing /proc/self/setgroups: {e}"),
            ))
        }
        _ => {}
    }
    write(
        "/proc/self/uid_map",
        format!("{} {host_uid} 1\n", spec.sandbox_uid),
    )?;
    write(
        "/proc/self/gid_map",
        format!("{} {host_gid} 1\n", spec.sandbox_gid),
    )
}

fn sysctl_is(path: &str, value: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value)
}

/// Why this host refuses unprivileged user namespaces outright, if it does
/// (the sandbox always creates its namespace unprivileged, even under root).
pub fn userns_disabled() -> Option<&'static str> {
    if sysctl_is("/proc/sys/kernel/unprivileged_userns_clone", "0") {
        return Some("user namespaces are disabled: sysctl kernel.unprivileged_userns_clone=0");
    }
    if sysctl_is("/proc/sys/user/max_user_namespaces", "0") {
        return Some("user namespaces are disabled: sysctl user.max_user_namespaces=0");
    }
    None
}

/// Why an unprivileged user namespace may be refused or powerless.
fn userns_hint() -> String {
    if let Some(why) = userns_disabled() {
        return format!(" ({why})");
    }
    if sysctl_is(
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1",
    ) {
        return " (AppArmor restricts unprivileged user namespaces: \
                 sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
            .into();
    }
    String::new()
}

fn empty_sigset() -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// The setup process after the fork: waits for the init, or kills it when
/// the lifeline closes, and exits only once it is reaped.
fn supervise(init: libc::pid_t, lifeline: RawFd, sigfd: RawFd) -> ! {
    let mut watch = [
        libc::pollfd {
            fd: lifeline,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sigfd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        if let Some(code) = reap(init, libc::WNOHANG) {
            exit(code);
        }
        let ready = unsafe { libc::poll(watch.as_mut_ptr(), watch.len() as libc::nfds_t, -1) };
        if ready < 0 {
            continue; // EINTR
        }
        if watch[0].revents != 0 {
            // Nothing is ever written: readable means closed. A kill.
            unsafe { libc::kill(init, libc::SIGKILL) };
            loop {
                if let Some(code) = reap(init, 0) {
                    exit(code);
                }
            }
        }
        if watch[1].revents != 0 {
            let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
            unsafe { libc::read(sigfd, info.as_mut_ptr().cast(), info.len()) };
        }
    }
}

/// The exit code standing for `pid`'s end (128+signal for a signal), once
/// it has ended; `None` while it runs (or on EINTR).
fn reap(pid: libc::pid_t, flags: libc::c_int) -> Option<i32> {
    let mut status = 0;
    let got = unsafe { libc::waitpid(pid, &mut status, flags) };
    if got == pid {
        if libc::WIFEXITED(status) {
            return Some(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            return Some(128 + libc::WTERMSIG(status));
        }
    }
    if got < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
        return Some(SETUP_FAILED);
    }
    None
}

/// Signals the init passes on to the script rather than ignoring.
const FORWARDED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

fn pid1(spec: &InitSpec, report: Reporter, alive: RawFd) -> ! {
    if let Err(error) = prepare_pid1(spec, report, alive) {
        report.fail(&error);
    }
    // Everything the init waits for arrives as a signal it keeps blocked.
    let mut waited = empty_sigset();
    unsafe {
        libc::sigaddset(&mut waited, libc::SIGCHLD);
        for sig in FORWARDED {
            libc::sigaddset(&mut waited, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &waited, std::ptr::null_mut());
    }
    let script = match unsafe { libc::fork() } {
        -1 => report.fail(&SetupError::new("init", format!("fork: {}", errno()))),
        0 => run_script(spec, report),
        pid => pid,
    };
    loop {
        let sig = unsafe { libc::sigwaitinfo(&waited, std::ptr::null_mut()) };
        if sig == libc::SIGCHLD {
            reap_all(script, report);
        } else if sig > 0 {
            unsafe { libc::kill(script, sig) };
        }
    }
}

/// Reaps every child that has ended; when one is the script, reports its
/// status and exits, which ends the pid namespace.
fn reap_all(script: libc::pid_t, report: Reporter) {
    loop {
        let mut status = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if pid == script {
            if libc::WIFEXITED(status) {
                let code = libc::WEXITSTATUS(status);
                report.send(&Report::Exited(code));
                exit(code);
            }
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                report.send(&Report::Signaled(sig));
                exit(128 + sig);
            }
        }
    }
}

fn prepare_pid1(spec: &InitSpec, report: Reporter, alive: RawFd) -> Result<(), SetupError> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| SetupError::new("init", format!("{what}: {e}"));
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| fail("PR_SET_PDEATHSIG", &e))?;
    // The setup process may have died before the line above took effect.
    let mut probe = libc::pollfd {
        fd: alive,
        events: libc::POLLIN,
        revents: 0,
    };
    if unsafe { libc::poll(&mut probe, 1, 0) } != 0 {
        exit(SETUP_FAILED);
    }
    unsafe { libc::close(alive) };
    // A session of its own: no controlling terminal to inject input into.
    nix::unistd::setsid().map_err(|e| fail("setsid", &e))?;

    let notes = mounts::build_root(&spec.mounts).map_err(|mut e| {
        e.why.push_str(&userns_hint());
        e
    })?;
    for note in notes {
        report.send(&Report::Note(format!("mounts: {note}")));
    }
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| SetupError::new("hostname", e.to_string()))?;
    Ok(())
}

fn run_script(spec: &InitSpec, report: Reporter) -> ! {
    match prepare_script(spec) {
        Err(error) => report.fail(&error),
        Ok((path, argv, env)) => {
            let Err(e) = nix::unistd::execve(&path, &argv, &env);
            report.fail(&SetupError::new(
                "exec",
                format!("{}: {e}", path.to_string_lossy()),
            ))
        }
    }
}

type Exec = (CString, Vec<CString>, Vec<CString>);

fn prepare_script(spec: &InitSpec) -> Result<Exec, SetupError> {
    // A clean slate of signals: nothing blocked, nothing ignored (the init
    // blocks some, Rust ignores SIGPIPE).
    unsafe {
        let none = empty_sigset();
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    mark_fds_cloexec();
    std::env::set_current_dir(&spec.cwd)
        .map_err(|e| SetupError::new("workspace", format!("chdir {}: {e}", spec.cwd.display())))?;
    let exec = exec_args(spec)?;
    let filters = seccomp::programs()?;

    rlimits::apply(&spec.rlimits)?;
    drop_capabilities()?;
    // Landlock and seccomp both require it of an unprivileged caller; no
    // setuid binary or file capability can raise privileges after this.
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| SetupError::new("no_new_privs", e.to_string()))?;
    landlock::restrict_self(&spec.landlock)?;
    seccomp::install(&filters)?;
    Ok(exec)
}

fn exec_args(spec: &InitSpec) -> Result<Exec, SetupError> {
    let c = |s: String| {
        CString::new(s).map_err(|_| SetupError::new("exec", "an argument contains a NUL byte"))
    };
    let argv = spec
        .argv
        .iter()
        .cloned()
        .map(c)
        .collect::<Result<Vec<_>, _>>()?;
    let path = argv
        .first()
        .cloned()
        .ok_or_else(|| SetupError::new("exec", "no interpreter"))?;
    let env = spec
        .env
        .iter()
        .map(|(k, v)| c(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((path, argv, env))
}

/// Whatever is still open beyond stdin/stdout/stderr (the report pipe) closes
/// at `execve`, and only then, so a failed `execve` can still be reported.
fn mark_fds_cloexec() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let done = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if done == 0 {
        return;
    }
    // Kernels before 5.11: one by one.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let open: Vec<RawFd> = dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for fd in open.into_iter().filter(|&fd| fd > 2) {
            let _ = set_cloexec(fd);
        }
    }
}

/// The script's uid is not root in its namespace, so `execve` would clear
/// its capabilities anyway; clearing them here (and the bounding set, so no
/// file capability can bring one back) does not depend on that reasoning.
fn drop_capabilities() -> Result<(), SetupError> {
    let fail = |what: &str| SetupError::new("capabilities", format!("{what}: {}", errno()));
    for cap in 0..64 {
        let done = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if done < 0 && errno().raw_os_error() != Some(libc::EINVAL) {
            return Err(fail("PR_CAPBSET_DROP"));
        }
    }
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } < 0
        && errno().raw_os_error() != Some(libc::EINVAL)
    {
        return Err(fail("PR_CAP_AMBIENT_CLEAR_ALL"));
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } < 0 {
        return Err(fail("capset"));
    }
    Ok(())
}
