//! The sandbox's filesystem: a fresh tmpfs root holding only read-only binds
//! of what Python needs, the workspace (a sized tmpfs the run's inputs are
//! copied into: nothing the script writes reaches the host's disk), the
//! bridge's directory, a sized `/tmp`, a read-only minimal `/dev` and a
//! `/proc` of the sandbox's own pid namespace with the host's boot and
//! kernel details masked.
//!
//! The parent plans ([`plan`]: pure, from the host's layout), the sandbox's
//! init carries the plan out ([`build_root`]) inside its new mount namespace,
//! the way bubblewrap does: a tmpfs over `/tmp`, pivot into it with the host
//! root at `/oldroot`, bind from `/oldroot/...` into `/newroot/...`, detach
//! the host root, pivot into `/newroot`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use super::init::SetupError;
use super::python::SYSTEM_DIRS;
use crate::{
    PROC_MASKED_FILES, SANDBOX_BRIDGE_DIR, SANDBOX_GID, SANDBOX_INPUT_DIR, SANDBOX_UID,
    SANDBOX_WORKSPACE, WORKSPACE_INODES,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountStep {
    /// A host directory or file, read-only, nosuid, nodev.
    BindReadOnly {
        source: PathBuf,
        target: PathBuf,
    },
    /// The workspace: a tmpfs (nosuid, nodev, noexec) holding copies of
    /// the regular files in the host directory `inputs`.
    Workspace {
        inputs: PathBuf,
        target: PathBuf,
        size: u64,
        inodes: u64,
    },
    /// The files given to the script: a host directory bound read-only,
    /// nosuid, nodev and noexec inside the workspace.
    BindInputFiles {
        source: PathBuf,
        target: PathBuf,
    },
    /// A device node of the host's `/dev`: read-write, nosuid, noexec.
    BindDevice {
        source: PathBuf,
        target: PathBuf,
    },
    /// A small host file copied into the root (cheaper than a bind). Skipped
    /// when the sandbox's user cannot read it: these are conveniences.
    CopyFile {
        source: PathBuf,
        target: PathBuf,
    },
    WriteFile {
        target: PathBuf,
        contents: String,
    },
    Symlink {
        target: PathBuf,
        points_to: PathBuf,
    },
    Tmpfs {
        target: PathBuf,
        size: u64,
        mode: u32,
    },
    /// Makes a mount made earlier read-only (not its submounts).
    ReadOnly {
        target: PathBuf,
    },
    Proc {
        target: PathBuf,
    },
    /// Hides a file of the new root (under `/proc`) behind `/dev/null`;
    /// skipped where the kernel has no such file.
    Mask {
        target: PathBuf,
    },
}

/// What a host path is, as far as planning cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    Dir,
    File,
    Symlink(PathBuf),
    Missing,
}

pub trait HostProbe {
    fn entry(&self, path: &Path) -> HostEntry;
}

/// The real host.
pub struct Host;

impl HostProbe for Host {
    fn entry(&self, path: &Path) -> HostEntry {
        match std::fs::symlink_metadata(path) {
            Err(_) => HostEntry::Missing,
            Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(path)
                .map(HostEntry::Symlink)
                .unwrap_or(HostEntry::Missing),
            Ok(meta) if meta.is_dir() => HostEntry::Dir,
            Ok(_) => HostEntry::File,
        }
    }
}

pub struct PlanInputs<'a> {
    /// Canonical host paths (no symlinks: they are resolved again under
    /// `/oldroot`, where an absolute symlink would point into the new root).
    /// `inputs`: the files the workspace starts with.
    pub inputs: &'a Path,
    /// The files given to the script, seen at [`SANDBOX_INPUT_DIR`].
    pub input_files: Option<&'a Path>,
    pub bridge_dir: &'a Path,
    /// Interpreter directories outside the system ones.
    pub python_dirs: &'a [PathBuf],
    pub tmp_bytes: u64,
    pub disk_bytes: u64,
}

/// Files of `/etc` that Python and glibc read for ordinary work (the dynamic
/// linker's cache, name service switch, time zone, services, MIME types).
/// No `shadow`, no `passwd` of the host: those are written fresh.
const ETC_FILES: [&str; 9] = [
    "ld.so.cache",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "protocols",
    "services",
    "mime.types",
    "localtime",
    "timezone",
];
/// Directories of `/etc` with certificates and alternatives (symlinks that
/// `/usr/bin` entries point through).
const ETC_DIRS: [&str; 5] = [
    "ssl",
    "ca-certificates",
    "pki",
    "crypto-policies",
    "alternatives",
];

const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

const MIB: u64 = 1024 * 1024;

pub fn plan(host: &dyn HostProbe, inputs: &PlanInputs) -> Vec<MountStep> {
    let mut steps = Vec::new();
    for dir in SYSTEM_DIRS {
        let dir = PathBuf::from(dir);
        match host.entry(&dir) {
            HostEntry::Dir => steps.push(MountStep::BindReadOnly {
                source: dir.clone(),
                target: dir,
            }),
            // Merged /usr: /bin -> usr/bin and so on, kept as they are.
            HostEntry::Symlink(points_to) => steps.push(MountStep::Symlink {
                target: dir,
                points_to,
            }),
            HostEntry::File | HostEntry::Missing => {}
        }
    }
    for dir in inputs.python_dirs {
        steps.push(MountStep::BindReadOnly {
            source: dir.clone(),
            target: dir.clone(),
        });
    }

    let etc = Path::new("/etc");
    for name in ETC_FILES {
        let path = etc.join(name);
        match host.entry(&path) {
            HostEntry::File => steps.push(MountStep::CopyFile {
                source: path.clone(),
                target: path,
            }),
            // /etc/localtime -> /usr/share/zoneinfo/...: resolves in the sandbox.
            HostEntry::Symlink(points_to) => steps.push(MountStep::Symlink {
                target: path,
                points_to,
            }),
            HostEntry::Dir | HostEntry::Missing => {}
        }
    }
    for name in ETC_DIRS {
        let path = etc.join(name);
        match host.entry(&path) {
            HostEntry::Dir => steps.push(MountStep::BindReadOnly {
                source: path.clone(),
                target: path,
            }),
            HostEntry::Symlink(points_to) => steps.push(MountStep::Symlink {
                target: path,
                points_to,
            }),
            HostEntry::File | HostEntry::Missing => {}
        }
    }
    let write = |name: &str, contents: String| MountStep::WriteFile {
        target: etc.join(name),
        contents,
    };
    steps.push(write(
        "passwd",
        format!("nobody:x:{SANDBOX_UID}:{SANDBOX_GID}:nobody:/tmp:/usr/sbin/nologin\n"),
    ));
    steps.push(write("group", format!("nogroup:x:{SANDBOX_GID}:\n")));
    steps.push(write("hostname", format!("{HOSTNAME}\n")));
    steps.push(write(
        "hosts",
        format!("127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ));

    steps.push(MountStep::Workspace {
        inputs: inputs.inputs.to_path_buf(),
        target: SANDBOX_WORKSPACE.into(),
        size: inputs.disk_bytes.max(MIB),
        inodes: WORKSPACE_INODES,
    });
    // After the workspace: the bind's mount point lives on its tmpfs.
    if let Some(dir) = inputs.input_files {
        steps.push(MountStep::BindInputFiles {
            source: dir.to_path_buf(),
            target: SANDBOX_INPUT_DIR.into(),
        });
    }
    // Read-only is enough: connecting to a socket needs write permission on
    // the socket's inode, which a read-only mount does not take away.
    steps.push(MountStep::BindReadOnly {
        source: inputs.bridge_dir.to_path_buf(),
        target: SANDBOX_BRIDGE_DIR.into(),
    });
    steps.push(MountStep::Tmpfs {
        target: "/tmp".into(),
        size: inputs.tmp_bytes.max(MIB),
        mode: 0o1777,
    });

    steps.push(MountStep::Tmpfs {
        target: "/dev".into(),
        size: MIB,
        mode: 0o755,
    });
    for name in DEVICES {
        let path = Path::new("/dev").join(name);
        if host.entry(&path) != HostEntry::Missing {
            steps.push(MountStep::BindDevice {
                source: path.clone(),
                target: path,
            });
        }
    }
    for (name, points_to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        steps.push(MountStep::Symlink {
            target: Path::new("/dev").join(name),
            points_to: points_to.into(),
        });
    }
    // POSIX semaphores and shared memory (multiprocessing) live here.
    steps.push(MountStep::Tmpfs {
        target: "/dev/shm".into(),
        size: inputs.tmp_bytes.clamp(MIB, 64 * MIB),
        mode: 0o1777,
    });
    // Nothing may be created in /dev: the devices above are all there is.
    steps.push(MountStep::ReadOnly {
        target: "/dev".into(),
    });
    steps.push(MountStep::Proc {
        target: "/proc".into(),
    });
    for file in PROC_MASKED_FILES {
        steps.push(MountStep::Mask {
            target: file.into(),
        });
    }
    steps
}

pub const HOSTNAME: &str = "sandbox";

/// Where the host's root is while the new one is built, and the new root.
const OLD_ROOT: &str = "/oldroot";
const NEW_ROOT: &str = "/newroot";

fn under(root: &str, path: &Path) -> PathBuf {
    Path::new(root).join(path.strip_prefix("/").unwrap_or(path))
}

fn fail<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> SetupError {
    move |e| SetupError::new("mounts", format!("{what}: {e}"))
}

/// Builds the new root from `steps` and makes it the root of the calling
/// process's mount namespace (and of everything it forks). Returns notes for
/// conveniences that were skipped.
pub fn build_root(steps: &[MountStep]) -> Result<Vec<String>, SetupError> {
    let mut notes = Vec::new();
    // Nothing we do here may propagate back to the host's mounts.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail("making / private"))?;
    // A scratch tmpfs over /tmp (only in this namespace) to pivot into, so
    // the host root stays reachable at /oldroot while the new one is built.
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=64k,mode=0755"),
    )
    .map_err(fail("tmpfs for the scratch root"))?;
    std::env::set_current_dir("/tmp").map_err(fail("entering the scratch root"))?;
    for dir in ["newroot", "oldroot"] {
        std::fs::create_dir(dir).map_err(fail(format!("creating {dir}")))?;
    }
    mount(
        Some("tmpfs"),
        "newroot",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=4m,mode=0755"),
    )
    .map_err(fail("tmpfs for the new root"))?;
    nix::unistd::pivot_root(".", "oldroot").map_err(fail("pivot_root into the scratch root"))?;
    std::env::set_current_dir("/").map_err(fail("chdir /"))?;

    for step in steps {
        if let Some(note) = apply(step)? {
            notes.push(note);
        }
    }

    umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(fail("detaching the host root"))?;
    std::env::set_current_dir(NEW_ROOT).map_err(fail("entering the new root"))?;
    // pivot_root(".", ".") stacks the scratch root on top of the new one;
    // detaching "." then leaves only the new root.
    nix::unistd::pivot_root(".", ".").map_err(fail("pivot_root into the new root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(fail("detaching the scratch root"))?;
    std::env::set_current_dir("/").map_err(fail("chdir /"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(fail("making the new root read-only"))?;
    Ok(notes)
}

fn apply(step: &MountStep) -> Result<Option<String>, SetupError> {
    match step {
        MountStep::BindReadOnly { source, target } => bind(
            source,
            target,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        )?,
        MountStep::Workspace {
            inputs,
            target,
            size,
            inodes,
        } => {
            let dir = tmpfs(target, *size, *inodes, 0o700)?;
            copy_inputs(&under(OLD_ROOT, inputs), &dir)?;
        }
        MountStep::BindInputFiles { source, target } => bind(
            source,
            target,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )?,
        MountStep::BindDevice { source, target } => {
            bind(source, target, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?
        }
        MountStep::CopyFile { source, target } => {
            let source = under(OLD_ROOT, source);
            match std::fs::read(&source) {
                Ok(bytes) => write_file(target, &bytes)?,
                Err(e) => return Ok(Some(format!("skipped {}: {e}", source.display()))),
            }
        }
        MountStep::WriteFile { target, contents } => write_file(target, contents.as_bytes())?,
        MountStep::Symlink { target, points_to } => {
            let link = under(NEW_ROOT, target);
            make_parent(&link)?;
            std::os::unix::fs::symlink(points_to, &link)
                .map_err(fail(format!("symlink {}", target.display())))?;
        }
        MountStep::Tmpfs { target, size, mode } => {
            tmpfs(target, *size, WORKSPACE_INODES, *mode)?;
        }
        MountStep::ReadOnly { target } => {
            remount(&under(NEW_ROOT, target), MsFlags::MS_RDONLY)
                .map_err(fail(format!("making {} read-only", target.display())))?;
        }
        MountStep::Mask { target } => {
            let file = under(NEW_ROOT, target);
            if file.exists() {
                mount(
                    Some(&under(NEW_ROOT, Path::new("/dev/null"))),
                    &file,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(fail(format!("masking {}", target.display())))?;
            }
        }
        MountStep::Proc { target } => {
            let dir = under(NEW_ROOT, target);
            std::fs::create_dir_all(&dir).map_err(fail(format!("mkdir {}", target.display())))?;
            // The kernel refuses a new proc where the host's own /proc is
            // partly hidden (inside some containers). Python runs without
            // /proc, and an empty directory hides nothing, so carry on.
            if let Err(e) = mount(
                Some("proc"),
                &dir,
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            ) {
                return Ok(Some(format!("no /proc in the sandbox: mounting proc: {e}")));
            }
        }
    }
    Ok(None)
}

/// A tmpfs at `target` of the new root: nosuid, nodev, and noexec but for
/// `/dev`, which must let device nodes be opened.
fn tmpfs(target: &Path, size: u64, inodes: u64, mode: u32) -> Result<PathBuf, SetupError> {
    let dir = under(NEW_ROOT, target);
    std::fs::create_dir_all(&dir).map_err(fail(format!("mkdir {}", target.display())))?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if target != Path::new("/dev") {
        flags |= MsFlags::MS_NOEXEC;
    }
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        flags,
        Some(format!("size={size},nr_inodes={inodes},mode={mode:o}").as_str()),
    )
    .map_err(fail(format!("tmpfs on {}", target.display())))?;
    Ok(dir)
}

/// Copies the regular files directly in `from` (the run's inputs, which
/// only codemode writes) into the workspace at `to`.
fn copy_inputs(from: &Path, to: &Path) -> Result<(), SetupError> {
    let entries = std::fs::read_dir(from).map_err(fail(format!("reading {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(fail(format!("reading {}", from.display())))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file {
            continue;
        }
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target).map_err(fail(format!(
            "copying {} into the workspace",
            entry.path().display()
        )))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
            .map_err(fail(format!("chmod {}", target.display())))?;
    }
    Ok(())
}

fn make_parent(path: &Path) -> Result<(), SetupError> {
    match path.parent() {
        Some(parent) => {
            std::fs::create_dir_all(parent).map_err(fail(format!("mkdir {}", parent.display())))
        }
        None => Ok(()),
    }
}

fn write_file(target: &Path, bytes: &[u8]) -> Result<(), SetupError> {
    let path = under(NEW_ROOT, target);
    make_parent(&path)?;
    std::fs::write(&path, bytes).map_err(fail(format!("writing {}", target.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .map_err(fail(format!("chmod {}", target.display())))
}

/// Binds `source` (a host path) at `target` (a sandbox path), then remounts
/// the bind with `flags`, plus whatever flags the host mount had that a user
/// namespace may not drop (the kernel locks them; leaving one out is EPERM).
fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<(), SetupError> {
    let from = under(OLD_ROOT, source);
    let to = under(NEW_ROOT, target);
    let meta = std::fs::metadata(&from).map_err(fail(format!("bind {}", source.display())))?;
    if meta.is_dir() {
        std::fs::create_dir_all(&to).map_err(fail(format!("mkdir {}", target.display())))?;
    } else {
        make_parent(&to)?;
        std::fs::File::create(&to).map_err(fail(format!("creating {}", target.display())))?;
    }
    let what = format!("bind {} on {}", source.display(), target.display());
    // Non-recursive first: the kernel refuses it (EINVAL) when it would
    // uncover what locked submounts hide, and only then is a recursive bind
    // needed, whose submounts are then remounted one by one.
    let recursive = match mount(
        Some(&from),
        &to,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        Ok(()) => false,
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(&from),
                &to,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(fail(&what))?;
            true
        }
        Err(e) => return Err(fail(&what)(e)),
    };
    let mut mounts = vec![to.clone()];
    if recursive {
        mounts.extend(submounts(&to)?);
    }
    for point in mounts {
        remount(&point, flags).map_err(fail(format!("remounting {}", point.display())))?;
    }
    Ok(())
}

fn remount(point: &Path, flags: MsFlags) -> nix::Result<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let current = statvfs(point)?.flags();
    let mut all = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags;
    for (has, keep) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(has) {
            all |= keep;
        }
    }
    // No atime flag at all means strictatime, which must be kept too.
    if !current.intersects(FsFlags::ST_NOATIME | FsFlags::ST_RELATIME) {
        all |= MsFlags::MS_STRICTATIME;
    }
    mount(None::<&str>, point, None::<&str>, all, None::<&str>)
}

/// Mount points strictly below `dir`, parents first, from the host's view of
/// this process's mounts (paths relative to the current, scratch root).
fn submounts(dir: &Path) -> Result<Vec<PathBuf>, SetupError> {
    let info = std::fs::read_to_string(under(OLD_ROOT, Path::new("/proc/self/mountinfo")))
        .map_err(fail("reading mountinfo"))?;
    Ok(mount_points_below(&info, dir))
}

fn mount_points_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    points.sort_by_key(|p| p.components().count());
    points.dedup();
    points
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(value) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeHost(HashMap<PathBuf, HostEntry>);

    impl HostProbe for FakeHost {
        fn entry(&self, path: &Path) -> HostEntry {
            self.0.get(path).cloned().unwrap_or(HostEntry::Missing)
        }
    }

    fn merged_usr_host() -> FakeHost {
        let mut map = HashMap::new();
        map.insert("/usr".into(), HostEntry::Dir);
        for (link, to) in [
            ("/bin", "usr/bin"),
            ("/sbin", "usr/sbin"),
            ("/lib", "usr/lib"),
            ("/lib64", "usr/lib64"),
        ] {
            map.insert(link.into(), HostEntry::Symlink(to.into()));
        }
        map.insert("/etc/ld.so.cache".into(), HostEntry::File);
        map.insert(
            "/etc/localtime".into(),
            HostEntry::Symlink("/usr/share/zoneinfo/Etc/UTC".into()),
        );
        map.insert("/etc/ssl".into(), HostEntry::Dir);
        map.insert("/etc/shadow".into(), HostEntry::File);
        map.insert("/dev/null".into(), HostEntry::File);
        map.insert("/dev/urandom".into(), HostEntry::File);
        FakeHost(map)
    }

    fn inputs<'a>(python_dirs: &'a [PathBuf]) -> PlanInputs<'a> {
        PlanInputs {
            inputs: Path::new("/tmp/run/inputs"),
            input_files: None,
            bridge_dir: Path::new("/tmp/run/bridge"),
            python_dirs,
            tmp_bytes: 64 * MIB,
            disk_bytes: 256 * MIB,
        }
    }

    fn targets(steps: &[MountStep]) -> Vec<&Path> {
        steps
            .iter()
            .map(|s| match s {
                MountStep::BindReadOnly { target, .. }
                | MountStep::Workspace { target, .. }
                | MountStep::BindDevice { target, .. }
                | MountStep::BindInputFiles { target, .. }
                | MountStep::CopyFile { target, .. }
                | MountStep::WriteFile { target, .. }
                | MountStep::Symlink { target, .. }
                | MountStep::Tmpfs { target, .. }
                | MountStep::ReadOnly { target }
                | MountStep::Proc { target }
                | MountStep::Mask { target } => target.as_path(),
            })
            .collect()
    }

    #[test]
    fn input_files_are_bound_inside_the_workspace_once_it_is_mounted() {
        let mut with = inputs(&[]);
        with.input_files = Some(Path::new("/tmp/run/files"));
        let steps = plan(&merged_usr_host(), &with);
        let at = |target: &str| targets(&steps).iter().position(|t| *t == Path::new(target));
        let bound = steps.iter().position(|s| {
            *s == MountStep::BindInputFiles {
                source: "/tmp/run/files".into(),
                target: "/workspace/in".into(),
            }
        });
        assert!(bound.is_some() && bound > at("/workspace"));
        let without = plan(&merged_usr_host(), &inputs(&[]));
        assert!(!targets(&without).contains(&Path::new("/workspace/in")));
    }

    #[test]
    fn merged_usr_keeps_its_symlinks_and_binds_only_usr() {
        let steps = plan(&merged_usr_host(), &inputs(&[]));
        assert!(steps.contains(&MountStep::BindReadOnly {
            source: "/usr".into(),
            target: "/usr".into()
        }));
        assert!(steps.contains(&MountStep::Symlink {
            target: "/lib".into(),
            points_to: "usr/lib".into()
        }));
        assert!(!targets(&steps).contains(&Path::new("/lib32")));
    }

    #[test]
    fn only_harmless_etc_files_come_in_and_passwd_is_fresh() {
        let steps = plan(&merged_usr_host(), &inputs(&[]));
        let targets = targets(&steps);
        assert!(targets.contains(&Path::new("/etc/ld.so.cache")));
        assert!(targets.contains(&Path::new("/etc/ssl")));
        assert!(!targets.contains(&Path::new("/etc/shadow")));
        let passwd = steps.iter().find_map(|s| match s {
            MountStep::WriteFile { target, contents } if target == Path::new("/etc/passwd") => {
                Some(contents.clone())
            }
            _ => None,
        });
        assert_eq!(
            passwd.as_deref(),
            Some("nobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n")
        );
    }

    #[test]
    fn workspace_bridge_tmp_dev_and_proc_are_in_place() {
        let steps = plan(&merged_usr_host(), &inputs(&[]));
        assert!(steps.contains(&MountStep::Workspace {
            inputs: "/tmp/run/inputs".into(),
            target: "/workspace".into(),
            size: 256 * MIB,
            inodes: WORKSPACE_INODES,
        }));
        assert!(steps.contains(&MountStep::BindReadOnly {
            source: "/tmp/run/bridge".into(),
            target: "/run/codemode".into()
        }));
        assert!(steps.contains(&MountStep::Tmpfs {
            target: "/tmp".into(),
            size: 64 * MIB,
            mode: 0o1777
        }));
        assert!(steps.contains(&MountStep::BindDevice {
            source: "/dev/null".into(),
            target: "/dev/null".into()
        }));
        // The host has no /dev/zero in this fake: not planned.
        assert!(!targets(&steps).contains(&Path::new("/dev/zero")));
        // /dev comes before what goes in it.
        let all = targets(&steps);
        let dev = all.iter().position(|t| *t == Path::new("/dev")).unwrap();
        let null = all
            .iter()
            .position(|t| *t == Path::new("/dev/null"))
            .unwrap();
        assert!(dev < null);
        let proc = all.iter().position(|t| *t == Path::new("/proc")).unwrap();
        let cmdline = all
            .iter()
            .position(|t| *t == Path::new("/proc/cmdline"))
            .unwrap();
        assert!(proc < cmdline);
    }

    #[test]
    fn dev_is_made_read_only_once_its_devices_are_in() {
        let steps = plan(&merged_usr_host(), &inputs(&[]));
        let all = targets(&steps);
        let read_only = steps
            .iter()
            .position(|s| {
                *s == MountStep::ReadOnly {
                    target: "/dev".into(),
                }
            })
            .unwrap();
        let last_device = all
            .iter()
            .rposition(|t| t.starts_with("/dev") && *t != Path::new("/dev"))
            .unwrap();
        assert!(last_device < read_only);
    }

    #[test]
    fn the_host_boot_and_kernel_details_in_proc_are_masked() {
        let steps = plan(&merged_usr_host(), &inputs(&[]));
        for file in ["/proc/cmdline", "/proc/config.gz", "/proc/kcore"] {
            assert!(
                steps.contains(&MountStep::Mask {
                    target: file.into()
                }),
                "{file}"
            );
        }
    }

    #[test]
    fn an_interpreter_outside_usr_is_bound_at_its_own_path() {
        let dirs = vec![PathBuf::from("/opt/python3.12")];
        let steps = plan(&merged_usr_host(), &inputs(&dirs));
        assert!(steps.contains(&MountStep::BindReadOnly {
            source: "/opt/python3.12".into(),
            target: "/opt/python3.12".into()
        }));
    }

    #[test]
    fn a_zero_tmp_size_does_not_mean_unlimited() {
        let mut inputs = inputs(&[]);
        inputs.tmp_bytes = 0;
        let steps = plan(&merged_usr_host(), &inputs);
        assert!(steps.contains(&MountStep::Tmpfs {
            target: "/tmp".into(),
            size: MIB,
            mode: 0o1777
        }));
    }

    #[test]
    fn submounts_are_found_parents_first_and_unescaped() {
        let info = "\
27 1 254:0 / / rw - ext4 /dev/vda rw
50 27 0:40 / /newroot/usr rw - ext4 /dev/vda rw
52 50 0:41 / /newroot/usr/local/my\\040dir rw - tmpfs tmpfs rw
51 50 0:42 / /newroot/usr/share rw - tmpfs tmpfs rw
53 27 0:43 / /newroot/usrx rw - tmpfs tmpfs rw
";
        assert_eq!(
            mount_points_below(info, Path::new("/newroot/usr")),
            vec![
                PathBuf::from("/newroot/usr/share"),
                PathBuf::from("/newroot/usr/local/my dir")
            ]
        );
    }

    #[test]
    fn paths_are_rebased_under_a_root() {
        assert_eq!(
            under("/newroot", Path::new("/usr/lib")),
            PathBuf::from("/newroot/usr/lib")
        );
        assert_eq!(
            under("/oldroot", Path::new("/")),
            PathBuf::from("/oldroot/")
        );
    }
}
