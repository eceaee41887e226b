//! Files given to a run (`--input`): copied by the host into the run's own
//! directory, which the sandbox sees read-only at `/workspace/in`
//! ([`codemode_sandbox::SANDBOX_INPUT_DIR`]). The copy, not the user's file,
//! is what the sandbox sees, so nothing it does reaches the original, and a
//! symlink inside a given directory (which could point anywhere on the
//! host) is skipped, not followed.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One file as the script finds it below `/workspace/in`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputFile {
    /// Its path below `in/`: the given name, then the path inside a given
    /// directory.
    pub name: String,
    pub size: u64,
    #[serde(skip)]
    source: PathBuf,
    /// Found inside a directory: opened without following a symlink that
    /// took its place since.
    #[serde(skip)]
    inside: bool,
}

/// The files of every `--input`, as found when they were named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputFiles {
    files: Vec<InputFile>,
    dirs: Vec<String>,
    /// What was left out, and why, for the user.
    pub notes: Vec<String>,
}

impl InputFiles {
    /// Looks at each of `paths` (a file, or a directory taken whole): a
    /// path that is missing, unreadable or of a name already given is an
    /// error.
    pub fn scan(paths: &[PathBuf]) -> Result<InputFiles, String> {
        let mut found = InputFiles::default();
        for path in paths {
            let meta = std::fs::metadata(path)
                .map_err(|err| format!("--input {}: {err}", path.display()))?;
            let name = path
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .ok_or_else(|| format!("--input {}: has no file name", path.display()))?;
            if found.files.iter().any(|f| f.name == name) || found.dirs.contains(&name) {
                return Err(format!(
                    "--input {}: another input is already named `{name}`",
                    path.display()
                ));
            }
            if meta.is_dir() {
                found.dirs.push(name.clone());
                found.walk(path, &name, 0)?;
            } else if meta.is_file() {
                found.files.push(InputFile {
                    name,
                    size: meta.len(),
                    source: path.clone(),
                    inside: false,
                });
            } else {
                return Err(format!(
                    "--input {}: not a regular file or a directory",
                    path.display()
                ));
            }
        }
        Ok(found)
    }

    fn walk(&mut self, dir: &Path, name: &str, depth: usize) -> Result<(), String> {
        if depth > 64 {
            self.notes
                .push(format!("input {name}: nested too deep, left out"));
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|err| format!("--input {}: {err}", dir.display()))?
            .collect::<Result<_, _>>()
            .map_err(|err| format!("--input {}: {err}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let here = format!("{name}/{}", entry.file_name().to_string_lossy());
            let kind = entry
                .file_type()
                .map_err(|err| format!("--input {}: {err}", entry.path().display()))?;
            if kind.is_symlink() {
                self.notes
                    .push(format!("input {here}: a symlink, skipped (not followed)"));
            } else if kind.is_dir() {
                self.dirs.push(here.clone());
                self.walk(&entry.path(), &here, depth + 1)?;
            } else if kind.is_file() {
                let size = entry
                    .metadata()
                    .map_err(|err| format!("--input {}: {err}", entry.path().display()))?
                    .len();
                self.files.push(InputFile {
                    name: here,
                    size,
                    source: entry.path(),
                    inside: true,
                });
            } else {
                self.notes
                    .push(format!("input {here}: not a regular file, skipped"));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }

    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    /// Copies every file into `to` (a fresh directory of the run's),
    /// directories 0755 and files 0644, readable by the run's user.
    pub(crate) fn copy_into(&self, to: &Path) -> std::io::Result<()> {
        for dir in &self.dirs {
            let path = to.join(dir);
            std::fs::create_dir_all(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        for file in &self.files {
            let target = to.join(&file.name);
            let mut open = std::fs::OpenOptions::new();
            open.read(true);
            if file.inside {
                open.custom_flags(libc::O_NOFOLLOW);
            }
            let mut source = open.open(&file.source).map_err(|err| {
                std::io::Error::new(
                    err.kind(),
                    format!("reading input {}: {err}", file.source.display()),
                )
            })?;
            if !source.metadata()?.is_file() {
                return Err(std::io::Error::other(format!(
                    "input {} is no longer a regular file",
                    file.source.display()
                )));
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&target)?;
            std::io::copy(&mut source, &mut out)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(())
    }

    /// One line per file, for a model: `in/NAME (SIZE)`.
    pub fn listing(&self) -> String {
        self.files
            .iter()
            .map(|f| {
                format!(
                    "/workspace/in/{} ({})",
                    f.name,
                    codemode_text::human_bytes(f.size)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_comes_whole_but_for_its_symlinks() {
        let host = tempfile::tempdir().unwrap();
        let data = host.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.csv"), "1,2\n").unwrap();
        std::fs::write(data.join("sub/b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        let single = host.path().join("one.txt");
        std::fs::write(&single, "x").unwrap();
        let found = InputFiles::scan(&[data, single]).unwrap();
        let names: Vec<_> = found.files().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["data/a.csv", "data/sub/b.txt", "one.txt"]);
        assert_eq!(found.notes.len(), 1);
        assert!(found.notes[0].contains("data/link"));
        let to = host.path().join("copy");
        std::fs::create_dir(&to).unwrap();
        found.copy_into(&to).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("data/sub/b.txt")).unwrap(),
            "b"
        );
        assert!(!to.join("data/link").exists());
    }

    #[test]
    fn two_inputs_of_one_name_and_missing_ones_are_errors() {
        let host = tempfile::tempdir().unwrap();
        let a = host.path().join("a");
        std::fs::create_dir_all(a.join("x")).unwrap();
        std::fs::write(host.path().join("x"), "").unwrap();
        std::fs::write(a.join("x/f"), "").unwrap();
        let twice = InputFiles::scan(&[host.path().join("x"), a.join("x")]);
        assert!(twice.unwrap_err().contains("already named"));
        assert!(InputFiles::scan(&[host.path().join("nope")]).is_err());
    }
}
