//! A run's directory on the host: the files the run starts with (the
//! script and `mcp_tools.py`) and the directory of its bridge socket.
//!
//! The script never writes here: its workspace is a sized tmpfs inside the
//! sandbox that the inputs are copied into, so nothing it does can fill the
//! host's disk, plant files for another run or defeat the cleanup. What is
//! here is private to the run's host user: the directory is theirs with mode
//! 0700, so no other local user can read the inputs, plant a file before the
//! run starts, or reach the socket.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::HostUser;

/// Removed on [`RunDir::remove`], or, best effort, when dropped.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    inputs: PathBuf,
    bridge: PathBuf,
    owner: HostUser,
    /// Set by [`RunDir::remove`], so that drop does not try again.
    removed: bool,
}

impl RunDir {
    /// A fresh run directory in the temporary directory, owned by `owner`
    /// (the run's host user, from the backend).
    pub fn create(owner: HostUser) -> std::io::Result<RunDir> {
        let root = tempfile::Builder::new()
            .prefix("codemode-run-")
            .tempdir()?
            .keep();
        let dir = RunDir {
            inputs: root.join("inputs"),
            bridge: root.join("bridge"),
            root,
            owner,
            removed: false,
        };
        // From here on a failure removes what was made (Drop).
        let root = &dir.root;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
        std::fs::create_dir(&dir.inputs)?;
        std::fs::create_dir(&dir.bridge)?;
        // The Docker sandbox's container reaches the inputs through a bind
        // mount whose root is `inputs` itself, so only the 0700 parent keeps
        // others out; it is enough, as no one else can traverse it.
        std::fs::set_permissions(&dir.inputs, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&dir.bridge, std::fs::Permissions::from_mode(0o700))?;
        for path in [root, &dir.bridge] {
            dir.give(path)?;
        }
        Ok(dir)
    }

    /// The run's starting files, copied into its workspace.
    pub fn inputs(&self) -> &Path {
        &self.inputs
    }

    /// A fresh directory for the files given to the run
    /// ([`crate::RunSpec::input_files`]): 0755, codemode's, so the run's
    /// user can read it and only codemode can write it.
    pub fn input_files(&self) -> std::io::Result<PathBuf> {
        let dir = self.root.join("files");
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    }

    /// Where the run's bridge socket goes.
    pub fn bridge(&self) -> &Path {
        &self.bridge
    }

    /// Gives `path` to the run's host user: only root can, and only root
    /// needs to (otherwise the run's user is the invoking user).
    pub fn give(&self, path: &Path) -> std::io::Result<()> {
        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(self.owner.uid)),
                Some(nix::unistd::Gid::from_raw(self.owner.gid)),
            )?;
        }
        Ok(())
    }

    /// Writes one starting file, readable by the run's user.
    pub fn write(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        let path = self.inputs.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        Ok(path)
    }

    /// Removes the directory; an error says what is left behind, so that a
    /// caller can report it instead of keeping it silently.
    pub fn remove(mut self) -> std::io::Result<()> {
        self.removed = true;
        remove(&self.root)
    }
}

fn remove(root: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(root).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!(
                "could not remove the run directory {}: {err}",
                root.display()
            ),
        )
    })
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(err) = remove(&self.root) {
                tracing::warn!("{err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn me() -> HostUser {
        HostUser {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    #[test]
    fn the_directory_is_private_to_the_run_user() {
        let dir = RunDir::create(me()).unwrap();
        let root = dir.inputs().parent().unwrap().to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(dir.bridge()), 0o700);
        assert_eq!(std::fs::metadata(&root).unwrap().uid(), me().uid);
        dir.remove().unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn inputs_are_written_readable_and_removed_with_the_directory() {
        let dir = RunDir::create(me()).unwrap();
        let path = dir.write("main.py", "print(1)").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "print(1)");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        drop(dir);
        assert!(!path.exists());
    }
}
