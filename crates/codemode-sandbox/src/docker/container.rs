//! What one run's container is: its command line, environment, user, mounts,
//! tmpfs and limits, and every isolation knob the engine has, turned to its
//! tightest.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};

use super::errors::failed;
use super::{seccomp, RUN_LABEL};
use crate::{
    HostUser, RunSpec, SandboxError, BRIDGE_SOCKET_NAME, PROC_MASKED_FILES, SANDBOX_BRIDGE_DIR,
    SANDBOX_INPUT_DIR, SANDBOX_WORKSPACE, WORKSPACE_INODES,
};

/// The `PATH` every run gets: Debian's, which is what python images use.
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the container sees the run's inputs (read-only), to copy them into
/// its workspace.
const INPUTS_DIR: &str = "/run/codemode-inputs";

const MIB: u64 = 1024 * 1024;

/// The container for `spec`, from `image`, labelled with `labels` and the
/// run's id.
pub(super) fn body(
    image: &str,
    labels: &HashMap<String, String>,
    spec: &RunSpec,
    run_id: &str,
) -> Result<ContainerCreateBody, SandboxError> {
    let limits = &spec.limits;
    // The workspace is a tmpfs, which the engine cannot upload into
    // under a read-only root, so the inputs are copied in by the
    // container itself before the interpreter replaces the shell. `$0`
    // and `$@` carry the interpreter's argv unquoted.
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!("cp -- {INPUTS_DIR}/* {SANDBOX_WORKSPACE}/ && exec \"$0\" \"$@\""),
    ];
    cmd.extend(spec.argv("python3"));
    let HostUser { uid, gid } = spec.host_user;

    let mut labels = labels.clone();
    labels.insert(RUN_LABEL.into(), run_id.into());

    let host_config = HostConfig {
        network_mode: Some("none".into()),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec![
            "no-new-privileges".into(),
            format!("seccomp={}", seccomp::profile()),
        ]),
        readonly_rootfs: Some(true),
        // Docker adds nosuid,nodev,noexec to tmpfs mounts by default.
        // Sized, and counted in the container's memory cgroup: filling
        // them is ENOSPC for the script and nothing for the host's disk.
        tmpfs: Some(HashMap::from([
            (
                "/tmp".to_string(),
                format!(
                    "rw,size={},nr_inodes={WORKSPACE_INODES},mode=1777",
                    limits.tmp_bytes.max(MIB)
                ),
            ),
            (
                SANDBOX_WORKSPACE.to_string(),
                format!(
                    "rw,size={},nr_inodes={WORKSPACE_INODES},uid={uid},gid={gid},mode=0700",
                    limits.disk_bytes.max(MIB)
                ),
            ),
        ])),
        ipc_mode: Some("private".into()),
        // Replaces the engine's default list, so it is repeated here.
        masked_paths: Some(
            PROC_MASKED_FILES
                .iter()
                .chain(&["/proc/asound", "/proc/acpi", "/proc/scsi", "/sys/firmware"])
                .map(|path| path.to_string())
                .collect(),
        ),
        pids_limit: Some(i64::from(limits.pids)),
        memory: limits.memory_bytes.map(clamp_i64),
        // Equal to `memory`: no swap, so the memory limit is the limit.
        memory_swap: limits.memory_bytes.map(clamp_i64),
        nano_cpus: (limits.cpus > 0.0).then(|| (limits.cpus * 1e9).round() as i64),
        // docker-init as PID 1 reaps zombies (a script's orphaned children
        // would otherwise pile up against the pids limit) and passes on
        // signals; Python as PID 1 does neither.
        init: Some(true),
        mounts: Some(mounts(spec)?),
        // Output reaches us through the attach stream only; the default
        // json-file driver would also copy every byte (floods included)
        // to the engine's disk.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..HostConfig::default()
    };

    Ok(ContainerCreateBody {
        image: Some(image.to_string()),
        // An image's own entrypoint would change what runs; ours is the
        // whole command line.
        entrypoint: Some(vec![]),
        cmd: Some(cmd),
        user: Some(format!("{uid}:{gid}")),
        working_dir: Some(SANDBOX_WORKSPACE.into()),
        env: Some(container_env(spec)?),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(false),
        tty: Some(false),
        network_disabled: Some(true),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    })
}

fn mounts(spec: &RunSpec) -> Result<Vec<Mount>, SandboxError> {
    let mut mounts = vec![
        bind(&spec.inputs, INPUTS_DIR, true)?,
        // Read-only: the script connects to the socket (sockets are
        // exempt from the read-only check) but cannot plant files.
        bind(&spec.bridge_dir, SANDBOX_BRIDGE_DIR, true)?,
    ];
    // The engine mounts the workspace's tmpfs before a bind below it.
    if let Some(dir) = &spec.input_files {
        mounts.push(bind(dir, SANDBOX_INPUT_DIR, true)?);
    }
    Ok(mounts)
}

/// The script's environment: the spec's, the few variables every run gets
/// (they win: the sandbox depends on them), and the bridge's address and the
/// user's name unless the spec names others.
fn container_env(spec: &RunSpec) -> Result<Vec<String>, SandboxError> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(spec.env.len() + 8);
    for (key, value) in &spec.env {
        // Docker splits each entry at its first `=`: such a key would set a
        // different variable than the one asked for.
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(failed(format!("invalid environment variable name {key:?}")));
        }
        env.push((key.clone(), value.clone()));
    }
    let fixed = [
        ("PATH", CONTAINER_PATH.to_string()),
        ("HOME", "/tmp".to_string()),
        ("LANG", "C.UTF-8".to_string()),
    ];
    env.retain(|(key, _)| !fixed.iter().any(|(fixed, _)| fixed == key));
    env.extend(
        fixed
            .into_iter()
            .map(|(key, value)| (key.to_string(), value)),
    );
    // A leased uid has no entry in the image's /etc/passwd, and
    // `getpass.getuser()` (and what calls it) raises without one unless
    // these say who the user is: `nobody`, as in the native sandbox.
    for name in ["USER", "LOGNAME"] {
        if !spec.env.contains_key(name) {
            env.push((name.into(), "nobody".into()));
        }
    }
    if !spec.env.contains_key("CODEMODE_BRIDGE_URL") {
        env.push((
            "CODEMODE_BRIDGE_URL".into(),
            format!("unix://{SANDBOX_BRIDGE_DIR}/{BRIDGE_SOCKET_NAME}"),
        ));
    }
    Ok(env
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect())
}

fn bind(source: &Path, target: &str, read_only: bool) -> Result<Mount, SandboxError> {
    // The engine resolves bind sources on its own host: a relative path would
    // mean nothing there.
    let source = std::path::absolute(source)
        .map_err(|err| failed(format!("cannot resolve {}: {err}", source.display())))?;
    let source = source
        .to_str()
        .ok_or_else(|| failed(format!("{} is not valid UTF-8", source.display())))?
        .to_string();
    Ok(Mount {
        target: Some(target.into()),
        source: Some(source),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Mount::default()
    })
}

/// The engine takes sizes as `i64`; a `u64` past its range is as good as
/// no limit.
fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use std::collections::BTreeMap;

    fn spec() -> RunSpec {
        RunSpec {
            inputs: "/run-dir/inputs".into(),
            script: "job.py".into(),
            args: vec![],
            env: BTreeMap::new(),
            bridge_dir: "/run-dir/bridge".into(),
            host_user: HostUser {
                uid: 1000,
                gid: 1000,
            },
            limits: Limits::default(),
            clock: Default::default(),
            input_files: None,
            parent: None,
        }
    }

    #[test]
    fn a_parent_runs_first_with_the_usual_command_as_its_arguments() {
        let mut spec = spec();
        spec.parent = Some("P".into());
        spec.input_files = Some("/run-dir/files".into());
        let body = body("img", &HashMap::new(), &spec, "id").unwrap();
        let cmd = body.cmd.unwrap();
        let tail: Vec<_> = cmd[3..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "python3",
                "-I",
                "-B",
                "-c",
                "P",
                "--",
                "python3",
                "-E",
                "-s",
                "-u",
                "-B",
                "/workspace/job.py"
            ]
        );
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let files = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/workspace/in"));
        assert_eq!(files.and_then(|m| m.read_only), Some(true));
    }

    #[test]
    fn env_keys_that_docker_would_misread_are_refused() {
        let mut spec = spec();
        spec.env.insert("A=B".into(), "c".into());
        assert!(container_env(&spec).is_err());
    }
}
