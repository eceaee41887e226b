//! Data integrity: a failing server or a full disk never leaves a half-written
//! module or run directory, and says what failed in one line.

use crate::common;

use std::time::{Duration, Instant};

use common::{dir_entries, examples_config, Workdir};

use super::config;

#[test]
fn gen_bridge_keeps_the_old_module_when_a_server_fails() {
    for mode in ["no-init", "crash-list"] {
        let work = Workdir::with_config(&config(mode, "2s"));
        let module = work.path().join("mcp_tools.py");
        let good = "# a reviewed module\nGOOD = True\n";
        std::fs::write(&module, good).unwrap();
        let before = dir_entries(work.path());
        let started = Instant::now();
        let output = work
            .codemode()
            .args(["gen-bridge", "-o", "mcp_tools.py"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{mode}: gen-bridge must fail");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode}: {:?}",
            started.elapsed()
        );
        let stderr = common::stderr_of(&output);
        assert!(
            stderr.contains("bad"),
            "{mode}: the failed server is named: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&module).unwrap(),
            good,
            "{mode}: the module changed"
        );
        assert_eq!(
            dir_entries(work.path()),
            before,
            "{mode}: a temporary file was left"
        );
    }
}

/// A small tmpfs of its own, mounted for one test and filled up, so that
/// writes fail with ENOSPC for real. Unmounted when dropped.
struct FullDisk {
    dir: tempfile::TempDir,
}

impl FullDisk {
    /// Mounting needs root (CI runs the tests as root); elsewhere `None`,
    /// saying why.
    fn mount(options: &str) -> Option<FullDisk> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs to fill up needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(options),
        )
        .expect("a tmpfs to fill up");
        Some(FullDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Takes every block with one file, `fill`, then gives `spare` bytes back.
    fn fill_blocks(&self, spare: u64) {
        use std::io::Write;
        let path = self.path().join("fill");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(spare)).unwrap();
    }

    /// Takes every inode with empty files, then gives `spare` of them back.
    fn fill_inodes(&self, spare: usize) {
        let mut made = Vec::new();
        loop {
            let path = self.path().join(format!("inode-{}", made.len()));
            match std::fs::File::create(&path) {
                Ok(_) => made.push(path),
                Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        for path in made.iter().rev().take(spare) {
            std::fs::remove_file(path).unwrap();
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs `command` to the end, noting every process it had under it on the way
/// (the MCP servers `exec` starts for the stubs are gone again by the end).
fn output_watching_children(
    mut command: std::process::Command,
) -> (std::process::Output, Vec<(u32, String)>) {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen: Vec<(u32, String)> = Vec::new();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        for process in common::descendants_of(child.id()) {
            if !seen.contains(&process) {
                seen.push(process);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "it did not end"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), seen)
}

/// The one `codemode: error:` line of `stderr`, checked for being the whole
/// story: no panic, no Python traceback.
fn the_error_line(stderr: &str) -> String {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("codemode: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

fn exec_on_a_full_disk(disk: &FullDisk) -> (std::process::Output, Vec<(u32, String)>) {
    let work = Workdir::with_config(&common::serve_config());
    std::fs::write(work.path().join("noop.py"), "print('never')\n").unwrap();
    let mut command = std::process::Command::new(common::codemode_bin());
    command
        .current_dir(work.path())
        .env("TMPDIR", disk.path())
        .env_remove("CODEMODE_LOG")
        .arg("--config")
        .arg(work.config())
        .args(["exec", "--sandbox", "native", "noop.py"]);
    output_watching_children(command)
}

#[test]
fn a_disk_full_while_writing_the_run_directory_is_one_line_naming_the_file() {
    let Some(disk) = FullDisk::mount("size=256k,mode=0755") else {
        return;
    };
    // One page left: the script fits, the stub module does not.
    disk.fill_blocks(4096);
    let (output, seen) = exec_on_a_full_disk(&disk);
    let stderr = common::stderr_of(&output);
    let error = the_error_line(&stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        error.contains(&disk.path().display().to_string())
            && error.contains("mcp_tools.py")
            && error.contains("No space left on device"),
        "{error}"
    );
    assert!(common::stdout_of(&output).is_empty());
    assert_eq!(
        dir_entries(disk.path()),
        ["fill"],
        "the run's directory was left"
    );
    let left = common::wait_until_gone(&seen, Duration::from_secs(5));
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn a_run_directory_that_cannot_be_made_names_where_it_was_to_be() {
    let Some(disk) = FullDisk::mount("size=1m,nr_inodes=32,mode=0755") else {
        return;
    };
    // One inode left: the run's directory is made, the workspace in it is not.
    disk.fill_inodes(1);
    let before = dir_entries(disk.path());
    let (output, seen) = exec_on_a_full_disk(&disk);
    let stderr = common::stderr_of(&output);
    let error = the_error_line(&stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        error.contains(&disk.path().display().to_string())
            && error.contains("No space left on device"),
        "{error}"
    );
    assert_eq!(
        dir_entries(disk.path()),
        before,
        "a partial run directory was left"
    );
    let left = common::wait_until_gone(&seen, Duration::from_secs(5));
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn gen_bridge_onto_a_full_disk_keeps_the_old_module() {
    let Some(disk) = FullDisk::mount("size=256k,mode=0755") else {
        return;
    };
    let module = disk.path().join("mcp_tools.py");
    let good = "# a reviewed module\nGOOD = True\n";
    std::fs::write(&module, good).unwrap();
    disk.fill_blocks(0);
    let work = Workdir::with_config(&examples_config());
    let output = work
        .codemode()
        .arg("gen-bridge")
        .arg("-o")
        .arg(&module)
        .output()
        .unwrap();
    let stderr = common::stderr_of(&output);
    let error = the_error_line(&stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        error.contains(&format!("writing {}", module.display()))
            && error.contains("No space left on device"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&module).unwrap(), good);
    assert_eq!(
        dir_entries(disk.path()),
        ["fill", "mcp_tools.py"],
        "a temporary file was left"
    );
}
