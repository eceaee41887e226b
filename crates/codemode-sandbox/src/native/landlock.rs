//! The Landlock layer: what the script may do with files, TCP and signals,
//! enforced by the kernel on the script process and everything it starts,
//! in addition to (and independent of) the mount namespace.
//!
//! Rules are tied to the inodes of the new root, so even a path that somehow
//! led out of that root would fall outside every rule and be denied.
//!
//! Required: the filesystem rights of ABI 1 (Linux 5.13). Without them the
//! run fails closed, saying Landlock is missing. Newer rights (refer,
//! truncate, ioctl on devices), TCP bind/connect (ABI 4) and the scoping of
//! abstract Unix sockets and signals (ABI 6) are applied where the kernel has
//! them: the network namespace and the pid namespace already cover what they
//! add, so an older kernel loses depth, not isolation.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use serde::{Deserialize, Serialize};

use super::init::SetupError;
use super::mounts::MountStep;

/// Paths inside the sandbox and what they allow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// Read files and list directories (the whole curated root).
    pub read: Vec<PathBuf>,
    /// Also execute (system and interpreter directories).
    pub execute: Vec<PathBuf>,
    /// Create, change and remove files (workspace, /tmp, /dev/shm).
    pub write: Vec<PathBuf>,
    /// Read and write device files (/dev/null and friends).
    pub devices: Vec<PathBuf>,
}

/// Derives the rules from the mount plan, so the two cannot disagree.
pub fn plan(mounts: &[MountStep]) -> LandlockPlan {
    let mut plan = LandlockPlan {
        read: vec!["/".into()],
        ..LandlockPlan::default()
    };
    for step in mounts {
        match step {
            MountStep::BindReadOnly { target, .. }
                if !target.starts_with("/etc") && !target.starts_with("/run") =>
            {
                plan.execute.push(target.clone())
            }
            MountStep::Workspace { target, .. } => plan.write.push(target.clone()),
            MountStep::Tmpfs { target, .. } if target != Path::new("/dev") => {
                plan.write.push(target.clone())
            }
            MountStep::BindDevice { target, .. } => plan.devices.push(target.clone()),
            _ => {}
        }
    }
    plan
}

/// The file rights this code was written and tested against (ABI 6 has all
/// of them; ABI 7 only adds logging).
const FS_ABI: ABI = ABI::V6;

fn fail<E: std::fmt::Display>(e: E) -> SetupError {
    SetupError::new("landlock", e.to_string())
}

/// Restricts the calling thread (single-threaded here: the script process
/// before `execve`). Sets `no_new_privs`, which seccomp needs too.
pub fn restrict_self(plan: &LandlockPlan) -> Result<(), SetupError> {
    let all = AccessFs::from_all(FS_ABI);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let execute = read | AccessFs::Execute;
    let write = all & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock);
    let device = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev;

    let ruleset = Ruleset::default()
        // The floor: refuse to run where Landlock cannot confine files at all.
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .map_err(|e| fail(explain_missing(e)))?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(fail)?
        .handle_access(AccessNet::from_all(ABI::V4))
        .map_err(fail)?
        .scope(Scope::from_all(ABI::V6))
        .map_err(fail)?
        .create()
        .map_err(fail)?;

    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = Vec::new();
    rules.extend(plan.read.iter().map(|p| (p.clone(), read)));
    rules.extend(plan.execute.iter().map(|p| (p.clone(), execute)));
    rules.extend(plan.write.iter().map(|p| (p.clone(), write)));
    rules.extend(plan.devices.iter().map(|p| (p.clone(), device)));
    let mut ruleset = ruleset;
    for (path, access) in rules {
        let fd = PathFd::new(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    // No TCP port rules: every bind and connect is denied.
    let status = ruleset.restrict_self().map_err(fail)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
        RulesetStatus::NotEnforced => Err(fail(
            "the kernel did not enforce the ruleset (Landlock disabled at boot?)",
        )),
    }
}

fn explain_missing(e: landlock::RulesetError) -> String {
    format!(
        "not available on this kernel ({e}); the native sandbox needs Landlock \
         (Linux 5.13+, with `landlock` in the boot-time LSM list)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::mounts::{plan as mount_plan, Host, PlanInputs};

    #[test]
    fn the_rules_follow_the_mounts() {
        let mounts = mount_plan(
            &Host,
            &PlanInputs {
                inputs: Path::new("/w"),
                input_files: Some(Path::new("/f")),
                bridge_dir: Path::new("/b"),
                python_dirs: &["/opt/py".into()],
                tmp_bytes: 1 << 20,
                disk_bytes: 1 << 20,
            },
        );
        let plan = plan(&mounts);
        assert_eq!(plan.read, vec![PathBuf::from("/")]);
        assert!(plan.execute.contains(&"/usr".into()));
        assert!(plan.execute.contains(&"/opt/py".into()));
        assert!(!plan
            .execute
            .iter()
            .any(|p| p.starts_with("/etc") || p.starts_with("/run")));
        assert!(!plan.execute.contains(&"/workspace".into()));
        assert!(!plan.execute.contains(&"/workspace/in".into()));
        for dir in ["/workspace", "/tmp", "/dev/shm"] {
            assert!(plan.write.contains(&dir.into()), "{dir}");
        }
        assert!(!plan.write.contains(&"/dev".into()));
        assert!(plan.devices.contains(&"/dev/null".into()));
    }
}
