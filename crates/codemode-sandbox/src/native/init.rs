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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{ForkResult, Pid};

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

/// The report pipe's write end, borrowed from `init_main`, which never
/// returns; a copy survives each `fork`.
#[derive(Clone, Copy)]
struct Reporter<'fd>(BorrowedFd<'fd>);

impl Reporter<'_> {
    fn send(self, report: &Report) {
        let line = report.encode();
        // One write below PIPE_BUF: atomic. Nothing to do if it fails (the
        // parent is gone).
        let _ = nix::unistd::write(self.0, line.as_bytes());
    }

    fn fail(self, error: &SetupError) -> ! {
        self.send(&Report::SetupFailed(error.to_string()));
        exit(SETUP_FAILED)
    }
}

/// `_exit`: no atexit handlers, no flushing of buffers a forked child shares
/// with its parent.
fn exit(code: i32) -> ! {
    // SAFETY: `_exit` takes no pointer and ends the process at once, running
    // none of our code on the way.
    unsafe { libc::_exit(code) }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// nix's error as the OS would word it, as every message here is.
fn os_error(err: nix::Error) -> std::io::Error {
    std::io::Error::from(err)
}

pub fn init_main() -> ! {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let fds: Option<Vec<RawFd>> = args.iter().map(|a| a.parse().ok()).collect();
    let Some(fds @ [spec_fd, report_fd, lifeline_fd]) =
        fds.as_deref().and_then(|f| <[RawFd; 3]>::try_from(f).ok())
    else {
        eprintln!("codemode: `{INIT_ARG}` is internal to the native sandbox");
        exit(SETUP_FAILED)
    };
    if !fds.iter().all(|&fd| is_open(fd)) {
        eprintln!("codemode: `{INIT_ARG}`: its descriptors are not open");
        exit(SETUP_FAILED)
    }
    if fds.iter().any(|&fd| fd <= 2)
        || spec_fd == report_fd
        || lifeline_fd == spec_fd
        || lifeline_fd == report_fd
    {
        eprintln!("codemode: `{INIT_ARG}`: its descriptors are not three of its own");
        exit(SETUP_FAILED)
    }
    // SAFETY: the three are open (checked above), distinct, and none of
    // stdin, stdout and stderr, so each gets one owner here. codemode passed
    // them to this process alone (`launch::spawn` clears close-on-exec on
    // exactly these), and nothing else in this freshly started process
    // refers to them.
    let (spec, report, lifeline) = unsafe {
        (
            OwnedFd::from_raw_fd(spec_fd),
            OwnedFd::from_raw_fd(report_fd),
            OwnedFd::from_raw_fd(lifeline_fd),
        )
    };
    let reporter = Reporter(report.as_fd());
    match setup(spec, reporter, lifeline) {
        Ok(never) => match never {},
        Err(error) => reporter.fail(&error),
    }
}

/// Whether `fd` is an open descriptor of this process.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer and only reads the descriptor's
    // flags; a number that is not open is EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

fn setup(spec: OwnedFd, report: Reporter<'_>, lifeline: OwnedFd) -> Result<Infallible, SetupError> {
    let spec = read_spec(spec)?;
    for fd in [report.0, lifeline.as_fd()] {
        set_cloexec(fd).map_err(|e| SetupError::new("descriptors", e.to_string()))?;
    }
    // Only what we were given explicitly goes further.
    close_fds_except(&[report.0.as_raw_fd(), lifeline.as_raw_fd()]);

    for procs in &spec.cgroup_procs {
        std::fs::write(procs, std::process::id().to_string())
            .map_err(|e| SetupError::new("cgroup", format!("joining {}: {e}", procs.display())))?;
    }
    drop_privileges(spec.drop_to)?;
    let (host_uid, host_gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    if host_uid == 0 || nix::unistd::geteuid().is_root() {
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
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None)
        .map_err(|e| SetupError::new("init", format!("sigprocmask: {}", os_error(e))))?;
    let sigfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| SetupError::new("init", format!("signalfd: {}", os_error(e))))?;
    // Closed only by this process's death: tells the init, which cannot ask
    // for its parent across the pid namespace, that we are gone.
    let (alive_read, alive_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| SetupError::new("init", format!("pipe: {}", os_error(e))))?;
    let devnull = open_devnull()?;

    // SAFETY: this process is single-threaded (`main` calls `init_main`
    // before anything could start a thread, and nothing here starts one), so
    // the child inherits no lock or allocator state held by a thread it lacks.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(SetupError::new("init", format!("fork: {}", os_error(e)))),
        Ok(ForkResult::Child) => {
            drop((alive_write, lifeline, sigfd, devnull));
            pid1(&spec, report, alive_read)
        }
        Ok(ForkResult::Parent { child: init }) => {
            drop(alive_read);
            report.send(&Report::InitPid(init.as_raw()));
            // Only the sandbox's processes hold the output pipes now, so
            // they close when the sandbox is gone.
            let _ = nix::unistd::dup2_stdout(&devnull);
            let _ = nix::unistd::dup2_stderr(&devnull);
            drop(devnull);
            supervise(init, lifeline, sigfd)
        }
    }
}

fn read_spec(fd: OwnedFd) -> Result<InitSpec, SetupError> {
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| SetupError::new("spec", e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| SetupError::new("spec", e.to_string()))
}

fn set_cloexec(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(os_error)
}

/// Closes every descriptor above stderr but `keep`. This process was just
/// started and owns none of them itself: they are strays inherited from
/// whatever started codemode.
fn close_fds_except(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<RawFd> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            let _ = nix::unistd::close(fd);
        }
    }
}

fn open_devnull() -> Result<OwnedFd, SetupError> {
    // Close-on-exec, as std opens every file: no copy of it reaches the
    // script.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| SetupError::new("init", format!("/dev/null: {e}")))
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

/// `poll(2)`: nix's wrapper is behind a feature this crate leaves off.
fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> std::io::Result<libc::c_int> {
    // SAFETY: `fds` is a live, writable array of exactly `fds.len()` pollfd
    // structs for the whole call, and poll writes only their `revents`.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if ready < 0 {
        return Err(errno());
    }
    Ok(ready)
}

fn readable(fd: BorrowedFd<'_>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

/// `waitpid(2)`, giving the pid and the raw status. nix's would fail on a
/// signal it has no name for (a real-time one) after the child is already
/// reaped, and its status would be lost.
fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> std::io::Result<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: `status` is a live local that the call writes one int to.
    let got = unsafe { libc::waitpid(pid, &mut status, flags) };
    if got < 0 {
        return Err(errno());
    }
    Ok((got, status))
}

/// The setup process after the fork: waits for the init, or kills it when
/// the lifeline closes, and exits only once it is reaped.
fn supervise(init: Pid, lifeline: OwnedFd, sigfd: SignalFd) -> ! {
    let mut watch = [readable(lifeline.as_fd()), readable(sigfd.as_fd())];
    loop {
        if let Some(code) = reap(init, libc::WNOHANG) {
            exit(code);
        }
        if poll(&mut watch, -1).is_err() {
            continue; // EINTR
        }
        if watch[0].revents != 0 {
            // Nothing is ever written: readable means closed. A kill.
            let _ = kill(init, Signal::SIGKILL);
            loop {
                if let Some(code) = reap(init, 0) {
                    exit(code);
                }
            }
        }
        if watch[1].revents != 0 {
            let _ = sigfd.read_signal();
        }
    }
}

/// The exit code standing for `pid`'s end (128+signal for a signal), once
/// it has ended; `None` while it runs (or on EINTR).
fn reap(pid: Pid, flags: libc::c_int) -> Option<i32> {
    match waitpid(pid.as_raw(), flags) {
        Ok((got, status)) if got == pid.as_raw() => {
            if libc::WIFEXITED(status) {
                return Some(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Some(128 + libc::WTERMSIG(status));
            }
            None
        }
        Ok(_) => None,
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Some(SETUP_FAILED),
        Err(_) => None,
    }
}

/// Signals the init passes on to the script rather than ignoring.
const FORWARDED: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

fn pid1(spec: &InitSpec, report: Reporter<'_>, alive: OwnedFd) -> ! {
    if let Err(error) = prepare_pid1(spec, report, alive) {
        report.fail(&error);
    }
    // Everything the init waits for arrives as a signal it keeps blocked.
    let mut waited = SigSet::empty();
    waited.add(Signal::SIGCHLD);
    for sig in FORWARDED {
        waited.add(sig);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None) {
        report.fail(&SetupError::new(
            "init",
            format!("sigprocmask: {}", os_error(e)),
        ));
    }
    // SAFETY: the init is single-threaded, a fork of the single-threaded
    // setup process that starts no thread, so the child inherits no lock or
    // allocator state held by a thread it lacks.
    let script = match unsafe { nix::unistd::fork() } {
        Err(e) => report.fail(&SetupError::new("init", format!("fork: {}", os_error(e)))),
        Ok(ForkResult::Child) => run_script(spec, report),
        Ok(ForkResult::Parent { child }) => child,
    };
    loop {
        match waited.wait() {
            Ok(Signal::SIGCHLD) => reap_all(script, report),
            Ok(sig) => {
                let _ = kill(script, sig);
            }
            Err(_) => {}
        }
    }
}

/// Reaps every child that has ended; when one is the script, reports its
/// status and exits, which ends the pid namespace.
fn reap_all(script: Pid, report: Reporter<'_>) {
    loop {
        let Ok((pid, status)) = waitpid(-1, libc::WNOHANG) else {
            return;
        };
        if pid <= 0 {
            return;
        }
        if pid == script.as_raw() {
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

fn prepare_pid1(spec: &InitSpec, report: Reporter<'_>, alive: OwnedFd) -> Result<(), SetupError> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| SetupError::new("init", format!("{what}: {e}"));
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| fail("PR_SET_PDEATHSIG", &e))?;
    // The setup process may have died before the line above took effect.
    if !matches!(poll(&mut [readable(alive.as_fd())], 0), Ok(0)) {
        exit(SETUP_FAILED);
    }
    drop(alive);
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

fn run_script(spec: &InitSpec, report: Reporter<'_>) -> ! {
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
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| SetupError::new("signals", format!("sigprocmask: {}", os_error(e))))?;
    default_signal_actions();
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

/// Every signal back to its default action. By number, since nix names no
/// real-time signal.
fn default_signal_actions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler, so none of our code can
            // run in signal context; a number the C library keeps for itself
            // is refused with EINVAL.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
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
    // SAFETY: close_range takes no pointer, and marking descriptors
    // close-on-exec changes nothing before the `execve` this prepares.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return;
    }
    // Kernels before 5.11: one by one.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let open: Vec<RawFd> = dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for fd in open.into_iter().filter(|&fd| fd > 2) {
            // SAFETY: F_SETFD takes no pointer (a number closed meanwhile,
            // like the listing's own, is EBADF), and close-on-exec changes
            // nothing before the `execve` this prepares.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// `prctl(2)` with integer arguments only.
fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: each option used here reads `arg2` as a number, never as a
    // pointer, and ignores the zeros after it.
    if unsafe { libc::prctl(option, arg2, 0, 0, 0) } < 0 {
        return Err(errno());
    }
    Ok(())
}

/// The script's uid is not root in its namespace, so `execve` would clear
/// its capabilities anyway; clearing them here (and the bounding set, so no
/// file capability can bring one back) does not depend on that reasoning.
fn drop_capabilities() -> Result<(), SetupError> {
    let fail =
        |what: &str, e: std::io::Error| SetupError::new("capabilities", format!("{what}: {e}"));
    // EINVAL: a capability this kernel does not have, or no ambient set.
    let unsupported = |e: &std::io::Error| e.raw_os_error() == Some(libc::EINVAL);
    for cap in 0..64 {
        match prctl(libc::PR_CAPBSET_DROP, cap) {
            Err(e) if !unsupported(&e) => return Err(fail("PR_CAPBSET_DROP", e)),
            _ => {}
        }
    }
    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    ) {
        Err(e) if !unsupported(&e) => return Err(fail("PR_CAP_AMBIENT_CLEAR_ALL", e)),
        _ => {}
    }
    // The kernel's `__user_cap_header_struct` and `__user_cap_data_struct`,
    // which libc does not declare.
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
    // Version 3 (64-bit sets, two `Data`); libc has no constant for it.
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
    // SAFETY: both pointers are to live locals laid out as the kernel reads
    // them for version 3 (a header and two data structs), and capset only
    // reads them (and may write the header's version, which is ours).
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } < 0 {
        return Err(fail("capset", errno()));
    }
    Ok(())
}
