//! `codemode doctor`: what this machine lets each sandbox enforce, found by
//! asking it: a real run in the native sandbox (whose layers fail closed, so
//! a run that works has them all), the cgroups a run gets, and whether a
//! Docker engine with the image answers.

use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::DoctorArgs;
use crate::context::Context;
use crate::error::Error;
use codemode_config::{Config, ConfigError};
use codemode_sandbox::{docker, native, Limits, OutputSink, RunDir, RunSpec};

#[derive(Debug, Serialize)]
struct Findings {
    /// Who codemode runs as: limits and the script's host user depend on it.
    uid: u32,
    root: bool,
    native: Backend,
    docker: Backend,
    /// What `--sandbox auto` picks here (with the image there already).
    auto: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Backend {
    works: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// How long a `print` took, start to finish, where one was run.
    #[serde(skip_serializing_if = "Option::is_none")]
    trial_run_ms: Option<u64>,
    /// The isolation layers every run gets (a run that lacks one fails).
    layers: Vec<&'static str>,
    /// The script's host user.
    script_user: String,
    /// Each limit and how far it reaches.
    limits: Vec<Limit>,
}

#[derive(Debug, Serialize)]
struct Limit {
    limit: &'static str,
    enforced: String,
}

pub async fn run(ctx: &Context, args: &DoctorArgs) -> Result<(), Error> {
    let config = match ctx.config() {
        Ok(config) => config,
        // Doctor answers about the machine; no config is not a problem here.
        Err(Error::Config(ConfigError::NotFound { .. })) if ctx.global.config.is_none() => {
            Config::default()
        }
        Err(err) => return Err(err),
    };
    let root = nix::unistd::geteuid().is_root();
    let native = native_findings(&config).await;
    let docker = docker_findings(&config).await;
    let auto = if docker.works {
        Some("docker")
    } else if native.works {
        Some("native")
    } else {
        None
    };
    let findings = Findings {
        uid: nix::unistd::geteuid().as_raw(),
        root,
        native,
        docker,
        auto,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_default()
        );
    } else {
        print!("{}", render(&findings));
    }
    match findings.auto {
        Some(_) => Ok(()),
        None => Err(Error::Sandbox(
            codemode_sandbox::SandboxError::Unavailable {
                backend: "native",
                reason: "no sandbox works on this machine (see above)".into(),
            },
        )),
    }
}

const NATIVE_LAYERS: [&str; 9] = [
    "user, pid, mount, net, ipc, uts and cgroup namespaces",
    "a minimal root of read-only binds",
    "a sized tmpfs workspace and /tmp",
    "read-only /dev, host details in /proc masked",
    "Landlock",
    "seccomp",
    "rlimits",
    "no capabilities, no_new_privs",
    "python -E -s: nothing imported from the workspace before the script",
];

const DOCKER_LAYERS: [&str; 7] = [
    "network none",
    "read-only root",
    "a sized tmpfs workspace and /tmp",
    "all capabilities dropped, no-new-privileges",
    "seccomp allowlist",
    "host details in /proc masked",
    "python -E -s: nothing imported from the workspace before the script",
];

async fn native_findings(config: &Config) -> Backend {
    let python = config.sandbox.python.as_ref().map(std::path::PathBuf::from);
    let sandbox = match native::NativeSandbox::new(python) {
        Ok(sandbox) => sandbox,
        Err(err) => {
            return Backend {
                works: false,
                reason: Some(err.to_string()),
                trial_run_ms: None,
                layers: NATIVE_LAYERS.to_vec(),
                script_user: String::new(),
                limits: Vec::new(),
            }
        }
    };
    let limits = sandbox
        .enforcement()
        .into_iter()
        .map(|(limit, enforced)| Limit { limit, enforced })
        .collect();
    let backend = codemode_sandbox::Backend::Native(sandbox);
    let script_user = script_user(&backend);
    let started = Instant::now();
    let trial = trial_run(&backend).await;
    Backend {
        works: trial.is_ok(),
        reason: trial.err(),
        trial_run_ms: Some(started.elapsed().as_millis() as u64),
        layers: NATIVE_LAYERS.to_vec(),
        script_user,
        limits,
    }
}

/// Who the backend's next script would be on the host.
fn script_user(backend: &codemode_sandbox::Backend) -> String {
    let me = nix::unistd::geteuid().as_raw();
    match backend.run_user().map(|user| user.user().uid) {
        Ok(uid) if uid == me => format!("the invoking user (uid {uid})"),
        Ok(codemode_sandbox::SANDBOX_UID) => format!(
            "uid {} (nobody): no unused uid range is mapped here",
            codemode_sandbox::SANDBOX_UID
        ),
        Ok(_) => "a host uid of the run's own, picked at random from an unused range".into(),
        Err(err) => format!("none: {err}"),
    }
}

async fn docker_findings(config: &Config) -> Backend {
    let engine = "whole run (the engine's cgroups)".to_string();
    let limits = vec![
        Limit {
            limit: "memory",
            enforced: engine.clone(),
        },
        Limit {
            limit: "cpus",
            enforced: engine.clone(),
        },
        Limit {
            limit: "pids",
            enforced: engine,
        },
        Limit {
            limit: "disk",
            enforced: "whole run (sized tmpfs workspace and /tmp)".into(),
        },
        Limit {
            limit: "timeout",
            enforced: "whole run (the container is killed)".into(),
        },
    ];
    let (works, reason, trial_run_ms, script_user) =
        match docker::DockerSandbox::connect_without_pull(&config.sandbox.image).await {
            Ok(sandbox) => {
                let backend = codemode_sandbox::Backend::Docker(sandbox);
                let started = Instant::now();
                let trial = trial_run(&backend).await;
                (
                    trial.is_ok(),
                    trial.err(),
                    Some(started.elapsed().as_millis() as u64),
                    script_user(&backend),
                )
            }
            Err(err) => (false, Some(err.to_string()), None, String::new()),
        };
    Backend {
        works,
        reason,
        trial_run_ms,
        layers: DOCKER_LAYERS.to_vec(),
        script_user,
        limits,
    }
}

/// Runs `print('ok')` with the default limits and no bridge.
async fn trial_run(backend: &codemode_sandbox::Backend) -> Result<(), String> {
    let user = backend.run_user().map_err(|e| e.to_string())?;
    let dir = RunDir::create(user.user()).map_err(|e| e.to_string())?;
    dir.write("main.py", "print('ok')\n")
        .map_err(|e| e.to_string())?;
    let limits = Limits::default();
    let spec = RunSpec {
        inputs: dir.inputs().to_path_buf(),
        script: "main.py".into(),
        args: Vec::new(),
        env: Default::default(),
        bridge_dir: dir.bridge().to_path_buf(),
        host_user: user.user(),
        limits,
        clock: Default::default(),
        input_files: None,
        parent: None,
    };
    let sink = OutputSink::new(1024, None);
    let finished = backend
        .run(&spec, &sink, CancellationToken::new())
        .await
        .map_err(|e| e.to_string())?;
    dir.remove().map_err(|e| e.to_string())?;
    let out = sink.captured();
    if finished.exit_code == Some(0) && out.stdout == "ok\n" {
        Ok(())
    } else {
        Err(format!(
            "a trial run printed {:?} and ended {:?}: {}",
            out.stdout,
            finished,
            codemode_text::one_line(&out.stderr)
        ))
    }
}

fn render(findings: &Findings) -> String {
    let mut text = format!(
        "codemode runs as uid {}{}\n",
        findings.uid,
        if findings.root { " (root)" } else { "" }
    );
    for (name, backend) in [("native", &findings.native), ("docker", &findings.docker)] {
        text.push('\n');
        match (&backend.reason, backend.trial_run_ms) {
            (None, Some(ms)) => text.push_str(&format!(
                "{name} sandbox: works (a trial run took {ms} ms)\n"
            )),
            (Some(why), _) => text.push_str(&format!("{name} sandbox: does not work: {why}\n")),
            (None, None) => text.push_str(&format!("{name} sandbox: not tried\n")),
        }
        if !backend.works {
            continue;
        }
        text.push_str(&format!("  script's host user: {}\n", backend.script_user));
        text.push_str("  layers:\n");
        for layer in &backend.layers {
            text.push_str(&format!("    {layer}\n"));
        }
        text.push_str("  limits:\n");
        for limit in &backend.limits {
            text.push_str(&format!("    {:<8} {}\n", limit.limit, limit.enforced));
        }
    }
    text.push_str(&match findings.auto {
        Some(name) => format!("\n--sandbox auto picks {name} here\n"),
        None => "\nno sandbox works here: codemode refuses to run scripts\n".into(),
    });
    text
}
