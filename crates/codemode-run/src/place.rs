use codemode_mcp::bridge::{Bridge, Grant, GrantSpec, UnixSocket};
use codemode_sandbox::{self as sandbox, Backend, RunDir, RunUser};

use crate::RunError;

/// What a run or a session is given on the host before its sandbox starts:
/// its host user, its directory holding `files`, a grant of the bridge and
/// the bridge's socket, which only that user may connect to.
pub(crate) struct Place {
    pub user: RunUser,
    pub dirs: RunDir,
    pub grant: Grant,
    pub socket: UnixSocket,
}

impl Place {
    pub(crate) fn make(
        backend: &Backend,
        bridge: &Bridge,
        spec: GrantSpec,
        files: [(&str, &str); 2],
    ) -> Result<Place, RunError> {
        let user = backend.run_user()?;
        // Named, since a full or read-only TMPDIR is the user's to fix.
        let dirs = RunDir::create(user.user()).map_err(RunError::io(format!(
            "creating the run's directory in {}",
            std::env::temp_dir().display()
        )))?;
        for (name, text) in files {
            dirs.write(name, text).map_err(RunError::io(format!(
                "writing {}",
                dirs.inputs().join(name).display()
            )))?;
        }
        let grant = bridge
            .grant(spec)
            .map_err(|err| RunError::Token(err.to_string()))?;
        let socket_path = dirs.bridge().join(sandbox::BRIDGE_SOCKET_NAME);
        // The run's user alone may connect: the token is the second lock.
        let socket = UnixSocket::bind(&socket_path, 0o600)
            .and_then(|socket| dirs.give(&socket_path).map(|()| socket))
            .map_err(RunError::io(format!("binding {}", socket_path.display())))?;
        Ok(Place {
            user,
            dirs,
            grant,
            socket,
        })
    }
}
