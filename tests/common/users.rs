//! Other host users, for running codemode as a normal user and for one
//! user attacking another's run. Made with `setpriv` (no passwd entry is
//! needed), so only a suite running as root can have them; elsewhere the
//! suite is a normal user already and [`User::others`] is empty.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{codemode_bin, example_bin, unique, ExecRun, Workdir};

/// An unprivileged host uid (its gid is the same number).
#[derive(Debug, Clone)]
pub struct User {
    pub uid: u32,
    /// Supplementary groups (the Docker socket's, for a user who may use it).
    pub groups: Vec<u32>,
}

pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl User {
    /// Two users unknown to each other: the victim and the attacker of the
    /// cross-user tests. None unless the suite runs as root.
    pub fn others() -> Option<(User, User)> {
        running_as_root().then(|| {
            (
                User {
                    uid: 4242,
                    groups: Vec::new(),
                },
                User {
                    uid: 4343,
                    groups: Vec::new(),
                },
            )
        })
    }

    /// The same user, also in the group that owns the Docker socket.
    pub fn with_docker(mut self) -> User {
        let socket = Path::new("/var/run/docker.sock");
        if let Ok(meta) = std::fs::metadata(socket) {
            self.groups.push(std::os::unix::fs::MetadataExt::gid(&meta));
        }
        self
    }

    /// `program` run as this user, with nothing of the suite's environment
    /// but `TMPDIR`.
    pub fn command(&self, program: &Path, tmpdir: &Path) -> Command {
        self.command_with_env(program, tmpdir, &[])
    }

    /// As [`User::command`], with `env` set for `program` too.
    pub fn command_with_env(&self, program: &Path, tmpdir: &Path, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid));
        if self.groups.is_empty() {
            cmd.arg("--clear-groups");
        } else {
            let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            cmd.arg(format!("--groups={}", groups.join(",")));
        }
        cmd.args(["env", "-i", "PATH=/usr/bin:/bin", "LANG=C.UTF-8"])
            .arg(format!("HOME={}", tmpdir.display()))
            .arg(format!("TMPDIR={}", tmpdir.display()))
            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .arg(program)
            .current_dir("/");
        cmd
    }
}

/// A directory everyone can enter and read, made fresh.
pub fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A temporary directory anyone may create files in, as `/tmp` is.
pub fn sticky_tmp() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// Copies of the built binaries that every user can run: the checkout may
/// sit below a directory only its owner can enter.
pub fn shared_bins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = shared_dir().keep();
        for (name, from) in [
            ("codemode", codemode_bin().to_path_buf()),
            ("news-server", example_bin("news-server")),
            ("summarizer-server", example_bin("summarizer-server")),
        ] {
            let to = dir.join(name);
            std::fs::copy(&from, &to).expect("copying a binary");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    })
}

/// The examples' config, with servers every user can start.
pub fn shared_config(extra: &str) -> String {
    let bins = shared_bins();
    format!(
        "[servers.news]\ncommand = {:?}\n\n[servers.summarizer]\ncommand = {:?}\n\n[sandbox]\nimage = {:?}\npython = \"/usr/bin/python3\"\n{extra}\n{}",
        bins.join("news-server"),
        bins.join("summarizer-server"),
        super::docker_image(),
        super::NO_WARM
    )
}

/// `exec --json` of `script` (written into `work`, which must be
/// [`Workdir::shared`]) with codemode started by `user`; as
/// [`super::exec_json`], whose `CODEMODE_TEST_HOST_SECRET` it passes on.
pub fn exec_json_as(
    user: &User,
    work: &Workdir,
    backend: &str,
    script: &str,
    extra: &[&str],
) -> ExecRun {
    let tmp = sticky_tmp();
    let name = format!("case_{backend}_{}.py", unique());
    std::fs::write(work.path().join(&name), script).unwrap();
    let secret = std::env::var("CODEMODE_TEST_HOST_SECRET").ok();
    let env: Vec<(&str, &str)> = secret
        .iter()
        .map(|value| ("CODEMODE_TEST_HOST_SECRET", value.as_str()))
        .collect();
    let output = user
        .command_with_env(&shared_bins().join("codemode"), tmp.path(), &env)
        .current_dir(work.path())
        .arg("--config")
        .arg(work.config())
        .args(["exec", "--json", "--sandbox", backend])
        .args(extra)
        .arg(&name)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    ExecRun::from_output(&output, tmp, name)
}
