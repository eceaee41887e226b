//! Which Python the sandbox runs, and which host directories it needs.
//!
//! The interpreter runs as an unprivileged user inside a root made of a few
//! read-only binds, so it must be a real binary (not a pyenv or asdf shim,
//! which are shell scripts that look for things under `$HOME`) that this user
//! can read and execute, and its prefix must be mounted when it lies outside
//! `/usr`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Host directories the sandbox always gets, read-only (where they exist).
pub const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The real file (symlinks resolved); the same path inside the sandbox.
    pub path: PathBuf,
    /// Directories outside [`SYSTEM_DIRS`] the interpreter needs (its prefix,
    /// a virtualenv), to be mounted read-only at the same paths.
    pub extra_dirs: Vec<PathBuf>,
}

const HINT: &str = "set sandbox.python to a system interpreter such as /usr/bin/python3";

/// Finds and checks the interpreter: `configured` (`sandbox.python`) if set,
/// else `/usr/bin/python3`, else `python3` on `PATH`.
pub fn resolve(configured: Option<&Path>) -> Result<Interpreter, String> {
    let search_path = std::env::var_os("PATH").unwrap_or_default();
    let candidate = match configured {
        Some(path) if path.components().count() > 1 || path.is_absolute() => path.to_path_buf(),
        Some(name) => find_on_path(name.as_os_str(), &search_path)
            .ok_or_else(|| format!("python `{}` is not on PATH; {HINT}", name.display()))?,
        None if Path::new("/usr/bin/python3").exists() => PathBuf::from("/usr/bin/python3"),
        None => find_on_path("python3".as_ref(), &search_path).ok_or_else(|| {
            format!("no python3 found (not /usr/bin/python3, not on PATH); {HINT}")
        })?,
    };
    let real = std::fs::canonicalize(&candidate)
        .map_err(|e| format!("python {}: {e}; {HINT}", candidate.display()))?;
    check_is_binary(&real)?;
    let as_root = nix::unistd::geteuid().is_root();
    check_reachable(&real, as_root, true)?;
    // A virtualenv's python is a symlink that only means the venv when run
    // by its own path (Python finds `pyvenv.cfg` next to it): keep that path.
    let path = venv_python(&candidate).unwrap_or(real.clone());

    let prefixes = query_prefixes(&path)?;
    let mut wanted: Vec<PathBuf> = prefixes;
    wanted.extend(
        [&path, &real]
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf)),
    );
    let extra_dirs = dirs_outside_system(wanted);
    for dir in &extra_dirs {
        check_reachable(dir, as_root, false)?;
    }
    Ok(Interpreter { path, extra_dirs })
}

/// `<venv>/bin/python` with its directories' symlinks resolved, when
/// `candidate` is in a virtualenv.
fn venv_python(candidate: &Path) -> Option<PathBuf> {
    let bin = std::fs::canonicalize(candidate.parent()?).ok()?;
    let name = candidate.file_name()?;
    bin.parent()?
        .join("pyvenv.cfg")
        .is_file()
        .then(|| bin.join(name))
}

fn find_on_path(name: &std::ffi::OsStr, search_path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Shims are shell scripts; running one in the sandbox fails in confusing
/// ways, so say so up front.
fn check_is_binary(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .map_err(|e| format!("python {}: {e}; {HINT}", path.display()))?;
    if magic != *b"\x7fELF" {
        return Err(format!(
            "python {} is a script (a pyenv or asdf shim?), not an interpreter; {HINT}",
            path.display()
        ));
    }
    Ok(())
}

/// Whether the sandbox's host user can reach `path` (and read and execute it,
/// for the interpreter). As root each run has a host uid and gid no account
/// has, which own no file and are in no group, so only the bits for "other"
/// apply; otherwise it runs as the invoking user, and `access(2)` answers.
fn check_reachable(path: &Path, as_root: bool, executable: bool) -> Result<(), String> {
    let fail = |what: &str| {
        let who = if as_root {
            "an unused uid of its own, so the permissions for others apply".to_string()
        } else {
            format!("uid {}", nix::unistd::geteuid().as_raw())
        };
        Err(format!(
            "python {} is not {what} by the sandbox's user ({who}); {HINT}",
            path.display(),
        ))
    };
    if !as_root {
        use nix::unistd::{access, AccessFlags};
        let mode = if executable {
            AccessFlags::R_OK | AccessFlags::X_OK
        } else {
            AccessFlags::X_OK
        };
        return match access(path, mode) {
            Ok(()) => Ok(()),
            Err(_) => fail("readable"),
        };
    }
    for ancestor in path.ancestors().skip(1) {
        let Ok(meta) = ancestor.metadata() else {
            return fail("reachable");
        };
        if !others_may(meta.mode(), 0o1) {
            return fail("reachable");
        }
    }
    let Ok(meta) = path.metadata() else {
        return fail("reachable");
    };
    let needed = if executable { 0o5 } else { 0o1 };
    if !others_may(meta.mode(), needed) {
        return fail(if executable {
            "readable and executable"
        } else {
            "reachable"
        });
    }
    Ok(())
}

/// Whether `mode` gives others the `needed` rwx bits (r=4, w=2, x=1).
fn others_may(mode: u32, needed: u32) -> bool {
    mode & needed == needed
}

/// Asks the interpreter where it lives (`-I`: no environment, no user site,
/// so the answer is about the interpreter, not this shell; `site` stays on,
/// as it is what sets `sys.prefix` to a virtualenv).
fn query_prefixes(python: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new(python)
        .args([
            "-I",
            "-c",
            "import sys; print(sys.prefix); print(sys.base_prefix); \
             print(sys.exec_prefix); print(sys.base_exec_prefix)",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run python {}: {e}; {HINT}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "python {} failed ({}): {}; {HINT}",
            python.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect())
}

/// The directories not already under a system directory, without duplicates
/// or directories nested in others of the list.
fn dirs_outside_system(mut dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    dirs.retain(|d| !SYSTEM_DIRS.iter().any(|s| d.starts_with(s)) && d != Path::new("/"));
    dirs.sort();
    dirs.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        // Sorted, so a parent comes before what it contains.
        if !kept.iter().any(|k| dir.starts_with(k)) {
            kept.push(dir);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_here_is_debians_interpreter() {
        let python = resolve(None).unwrap();
        assert!(python.path.starts_with("/usr/bin/"), "{python:?}");
        assert!(python.extra_dirs.is_empty(), "{python:?}");
    }

    #[test]
    fn a_configured_name_is_looked_up_and_resolved() {
        let python = resolve(Some(Path::new("/usr/bin/python3"))).unwrap();
        assert!(python
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("python3."));
    }

    #[test]
    fn a_virtualenv_keeps_its_own_path_and_is_mounted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let venv = dir.path().join("venv");
        let made = Command::new("/usr/bin/python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no venv module here (python3-venv not installed)
        }
        let python = resolve(Some(&venv.join("bin/python3"))).unwrap();
        let venv = std::fs::canonicalize(&venv).unwrap();
        assert_eq!(python.path, venv.join("bin/python3"));
        assert!(python.extra_dirs.contains(&venv), "{python:?}");
    }

    #[test]
    fn a_shim_script_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("python3");
        std::fs::write(&shim, "#!/bin/sh\nexec pyenv exec python3 \"$@\"\n").unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = resolve(Some(&shim)).unwrap_err();
        assert!(
            err.contains("shim") && err.contains("sandbox.python"),
            "{err}"
        );
    }

    #[test]
    fn an_interpreter_under_a_private_directory_is_refused_as_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let copy = dir.path().join("python3");
        std::fs::copy("/usr/bin/python3", &copy).unwrap();
        let err = resolve(Some(&copy)).unwrap_err();
        assert!(
            err.contains("permissions for others") && err.contains("sandbox.python"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_name_is_reported() {
        let err = resolve(Some(Path::new("no-such-python-here"))).unwrap_err();
        assert!(err.contains("not on PATH"), "{err}");
    }

    #[test]
    fn path_search_skips_relative_entries_and_non_executables() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("python3");
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let search =
            std::env::join_paths([Path::new("relative"), dir.path(), Path::new("/usr/bin")])
                .unwrap();
        assert_eq!(
            find_on_path("python3".as_ref(), &search),
            Some(PathBuf::from("/usr/bin/python3"))
        );
    }

    #[test]
    fn only_the_permission_bits_for_others_count_as_root() {
        assert!(others_may(0o755, 0o5));
        assert!(!others_may(0o750, 0o1));
        assert!(!others_may(0o770, 0o4));
        assert!(others_may(0o001, 0o1));
    }

    #[test]
    fn only_dirs_outside_the_system_ones_are_extra() {
        let dirs = dirs_outside_system(vec![
            "/usr".into(),
            "/usr/local".into(),
            "/opt/py/3.12".into(),
            "/opt/py/3.12/bin".into(),
            "/home/me/venv".into(),
            "/opt/py/3.12".into(),
            "/".into(),
        ]);
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/home/me/venv"),
                PathBuf::from("/opt/py/3.12")
            ]
        );
    }
}
