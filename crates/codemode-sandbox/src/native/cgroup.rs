//! The cgroup layer: one group per run bounding the whole run's memory,
//! process count and CPU share, where the host lets us make one (as root,
//! with the controller mounted; v1 or v2, per controller). An unprivileged
//! user usually cannot create them; then a limit the user set is refused
//! (see [`super::NativeSandbox::check`]) and a default is bounded otherwise
//! (per-process rlimits, the pid limit of the user namespace, the timeout).
//!
//! The parent creates and configures the group, the setup process joins it
//! (as its first act, before dropping root, so nothing of the run is ever
//! outside it), and the parent removes it once every process is gone.

use std::path::{Path, PathBuf};

use crate::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// Where each controller can be used on this host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hierarchies {
    /// v1 mount points, per controller.
    pub v1: Vec<(Controller, PathBuf)>,
    /// The v2 mount point and the controllers it offers.
    pub v2: Option<(PathBuf, Vec<String>)>,
}

/// Reads `/proc/self/mountinfo` for cgroup mounts.
pub fn discover() -> Hierarchies {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Hierarchies::default();
    };
    let mut found = parse_mountinfo(&info);
    if let Some((mount, controllers)) = &mut found.v2 {
        *controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))
            .map(|text| text.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
    }
    found
}

fn parse_mountinfo(info: &str) -> Hierarchies {
    let mut found = Hierarchies::default();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let (fstype, _source, options) = (right.next(), right.next(), right.next().unwrap_or(""));
        match fstype {
            Some("cgroup") => {
                for controller in [Controller::Memory, Controller::Pids, Controller::Cpu] {
                    let listed = options.split(',').any(|o| o == controller.name());
                    let known = found.v1.iter().any(|(c, _)| *c == controller);
                    if listed && !known {
                        found.v1.push((controller, PathBuf::from(mount_point)));
                    }
                }
            }
            Some("cgroup2") if found.v2.is_none() => {
                found.v2 = Some((PathBuf::from(mount_point), Vec::new()));
            }
            _ => {}
        }
    }
    found
}

/// One file to write in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub file: &'static str,
    pub value: String,
    /// Written only if the file exists (swap accounting may be off).
    pub optional: bool,
}

const CPU_PERIOD_US: u64 = 100_000;

/// The processes of the run besides the script's: the setup process and the
/// sandbox's init, which live in the group too.
const SETUP_PROCESSES: u32 = 2;

/// What to write for `controller`, v1 or v2 file names.
pub fn settings(controller: Controller, v2: bool, limits: &Limits) -> Vec<Setting> {
    let set = |file, value: String, optional| Setting {
        file,
        value,
        optional,
    };
    let pids = (limits.pids.saturating_add(SETUP_PROCESSES)).to_string();
    let quota = cpu_quota_us(limits.cpus);
    match (controller, v2) {
        (Controller::Memory, _) if limits.memory_bytes.is_none() => Vec::new(),
        (Controller::Memory, false) => {
            let bytes = limits.memory_bytes.unwrap_or(u64::MAX).to_string();
            vec![
                set("memory.limit_in_bytes", bytes.clone(), false),
                // memory+swap at the same figure: no swapping past the limit.
                set("memory.memsw.limit_in_bytes", bytes, true),
            ]
        }
        (Controller::Memory, true) => vec![
            set(
                "memory.max",
                limits.memory_bytes.unwrap_or(u64::MAX).to_string(),
                false,
            ),
            set("memory.swap.max", "0".into(), true),
        ],
        (Controller::Pids, _) => vec![set("pids.max", pids, false)],
        (Controller::Cpu, false) => match quota {
            Some(quota) => vec![
                set("cpu.cfs_period_us", CPU_PERIOD_US.to_string(), false),
                set("cpu.cfs_quota_us", quota.to_string(), false),
            ],
            None => Vec::new(),
        },
        (Controller::Cpu, true) => match quota {
            Some(quota) => vec![set("cpu.max", format!("{quota} {CPU_PERIOD_US}"), false)],
            None => Vec::new(),
        },
    }
}

/// Microseconds of CPU per period; `None` (no quota) for a share of zero or
/// less, or not a number. The kernel's floor is 1 ms.
fn cpu_quota_us(cpus: f64) -> Option<u64> {
    (cpus.is_finite() && cpus > 0.0).then(|| ((cpus * CPU_PERIOD_US as f64) as u64).max(1_000))
}

/// The run's groups; removed by [`RunCgroup::remove`], or on drop.
#[derive(Debug)]
pub struct RunCgroup {
    /// Group directories, one per v1 hierarchy used, or the single v2 one.
    dirs: Vec<PathBuf>,
    /// Which controllers are in effect, for the log.
    pub used: Vec<String>,
    /// The same, for deciding what still needs bounding otherwise.
    pub controllers: Vec<Controller>,
    /// Where the kernel counts OOM kills for this group.
    oom_events: Option<PathBuf>,
}

impl RunCgroup {
    /// Creates and configures the run's groups. `None` when none could be
    /// made; the reasons go to the debug log.
    pub fn create(id: &str, limits: &Limits) -> Option<RunCgroup> {
        if !nix::unistd::geteuid().is_root() {
            tracing::debug!("native sandbox: no cgroups (not root); rlimits only");
            return None;
        }
        let hierarchies = discover();
        let mut group = RunCgroup {
            dirs: Vec::new(),
            used: Vec::new(),
            controllers: Vec::new(),
            oom_events: None,
        };
        let mut wanted = vec![Controller::Pids];
        if limits.memory_bytes.is_some() {
            wanted.push(Controller::Memory);
        }
        if cpu_quota_us(limits.cpus).is_some() {
            wanted.push(Controller::Cpu);
        }
        let mut for_v2 = Vec::new();
        for controller in wanted {
            match hierarchies.v1.iter().find(|(c, _)| *c == controller) {
                Some((_, mount)) => {
                    let dir = mount.join("codemode").join(id);
                    match make_group(&dir, &settings(controller, false, limits)) {
                        Ok(()) => {
                            if controller == Controller::Memory {
                                group.oom_events = Some(dir.join("memory.oom_control"));
                            }
                            group.dirs.push(dir);
                            group.controllers.push(controller);
                            group.used.push(format!("{} (v1)", controller.name()));
                        }
                        Err(why) => tracing::debug!(
                            "native sandbox: no {} cgroup: {why}",
                            controller.name()
                        ),
                    }
                }
                None => for_v2.push(controller),
            }
        }
        if let (false, Some((mount, available))) = (for_v2.is_empty(), &hierarchies.v2) {
            group.add_v2(mount, available, &for_v2, id, limits);
        }
        if group.dirs.is_empty() {
            tracing::debug!("native sandbox: no cgroups available; rlimits only");
            return None;
        }
        tracing::debug!("native sandbox cgroups: {}", group.used.join(", "));
        Some(group)
    }

    fn add_v2(
        &mut self,
        mount: &Path,
        available: &[String],
        wanted: &[Controller],
        id: &str,
        limits: &Limits,
    ) {
        let usable: Vec<Controller> = wanted
            .iter()
            .copied()
            .filter(|c| available.iter().any(|a| a == c.name()))
            .collect();
        if usable.is_empty() {
            tracing::debug!(
                "native sandbox: cgroup v2 at {} offers none of the controllers needed",
                mount.display()
            );
            return;
        }
        // Children only get the controllers their parent hands down; the
        // root group has no processes rule, so this may be switched on.
        let enable: Vec<String> = usable.iter().map(|c| format!("+{}", c.name())).collect();
        if let Err(e) = std::fs::write(mount.join("cgroup.subtree_control"), enable.join(" ")) {
            tracing::debug!("native sandbox: enabling cgroup v2 controllers: {e}");
            return;
        }
        let dir = mount.join(format!("codemode-{id}"));
        let settings: Vec<Setting> = usable
            .iter()
            .flat_map(|&c| settings(c, true, limits))
            .collect();
        match make_group(&dir, &settings) {
            Ok(()) => {
                if usable.contains(&Controller::Memory) {
                    self.oom_events = Some(dir.join("memory.events"));
                }
                self.used
                    .extend(usable.iter().map(|c| format!("{} (v2)", c.name())));
                self.controllers.extend(usable.iter().copied());
                self.dirs.push(dir);
            }
            Err(why) => tracing::debug!("native sandbox: no cgroup v2 group: {why}"),
        }
    }

    /// Which controllers runs get here: makes a group with the default
    /// limits and removes it at once.
    pub fn probe() -> Vec<Controller> {
        match RunCgroup::create(&format!("probe-{}", new_id()), &Limits::default()) {
            // Empty: dropping it removes it.
            Some(group) => group.controllers.clone(),
            None => Vec::new(),
        }
    }

    /// The files the setup process writes its pid into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Whether the kernel killed something of the run for want of memory.
    pub fn oom_killed(&self) -> bool {
        let Some(file) = &self.oom_events else {
            return false;
        };
        std::fs::read_to_string(file)
            .map(|text| oom_kills(&text) > 0)
            .unwrap_or(false)
    }

    /// Removes the groups; the run's processes must all be gone (the kernel
    /// may take a moment to let go of the last one, hence the retries).
    pub async fn remove(mut self) {
        for attempt in 0..50 {
            self.dirs
                .retain(|dir| std::fs::remove_dir(dir).is_err() && dir.exists());
            if self.dirs.is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2 + attempt)).await;
        }
        for dir in &self.dirs {
            tracing::warn!("could not remove cgroup {}", dir.display());
        }
        self.dirs.clear();
    }
}

impl Drop for RunCgroup {
    /// A run abandoned midway (its future dropped): the processes are being
    /// killed, so try for a little while on a thread of its own.
    fn drop(&mut self) {
        let mut dirs = std::mem::take(&mut self.dirs);
        if dirs.is_empty() {
            return;
        }
        std::thread::spawn(move || {
            for _ in 0..100 {
                dirs.retain(|dir| std::fs::remove_dir(dir).is_err() && dir.exists());
                if dirs.is_empty() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
    }
}

/// `oom_kill N` from v1's memory.oom_control or v2's memory.events.
fn oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn make_group(dir: &Path, settings: &[Setting]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    for setting in settings {
        let file = dir.join(setting.file);
        if setting.optional && !file.exists() {
            continue;
        }
        if let Err(e) = std::fs::write(&file, &setting.value) {
            let _ = std::fs::remove_dir(dir);
            return Err(format!(
                "writing {} to {}: {e}",
                setting.value,
                file.display()
            ));
        }
    }
    Ok(())
}

/// A fresh name for a run's group: the process id keeps concurrent codemode
/// processes apart, the random part keeps runs of one process apart.
pub fn new_id() -> String {
    let mut random = [0u8; 6];
    // On the (theoretical) failure the counter alone still separates runs.
    let _ = getrandom::fill(&mut random);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{n}-{hex}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_controllers_and_the_v2_mount_are_found() {
        let found = parse_mountinfo(HERE);
        assert_eq!(
            found.v1,
            vec![
                (Controller::Cpu, PathBuf::from("/sys/fs/cgroup/cpu")),
                (Controller::Memory, PathBuf::from("/sys/fs/cgroup/memory")),
                (Controller::Pids, PathBuf::from("/sys/fs/cgroup/pids")),
            ]
        );
        assert_eq!(
            found.v2,
            Some(("/sys/fs/cgroup/unified".into(), Vec::new()))
        );
    }

    #[test]
    fn comounted_cpu_and_a_pure_v2_host_are_recognised() {
        let info = "\
1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
2 0 0:2 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset
";
        assert_eq!(
            parse_mountinfo(info).v1,
            vec![(Controller::Cpu, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))]
        );
        let v2 = "9 1 0:3 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let found = parse_mountinfo(v2);
        assert!(found.v1.is_empty());
        assert_eq!(found.v2, Some(("/sys/fs/cgroup".into(), Vec::new())));
    }

    #[test]
    fn limits_become_the_right_files() {
        let limits = Limits {
            memory_bytes: Some(256 << 20),
            pids: 64,
            cpus: 0.5,
            ..Limits::default()
        };
        let v1 = settings(Controller::Memory, false, &limits);
        assert_eq!(v1[0].file, "memory.limit_in_bytes");
        assert_eq!(v1[0].value, (256u64 << 20).to_string());
        assert!(v1[1].optional);
        assert_eq!(settings(Controller::Pids, true, &limits)[0].value, "66");
        assert_eq!(
            settings(Controller::Cpu, true, &limits)[0].value,
            "50000 100000"
        );
        let cpu_v1 = settings(Controller::Cpu, false, &limits);
        assert_eq!(cpu_v1[1].value, "50000");
    }

    #[test]
    fn cpu_quota_has_a_floor_and_zero_means_none() {
        assert_eq!(cpu_quota_us(0.0), None);
        assert_eq!(cpu_quota_us(f64::NAN), None);
        assert_eq!(cpu_quota_us(0.001), Some(1_000));
        assert_eq!(cpu_quota_us(2.0), Some(200_000));
    }

    #[test]
    fn oom_kills_are_read_from_either_version() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 1);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }

    #[test]
    fn ids_differ() {
        assert_ne!(new_id(), new_id());
    }
}
