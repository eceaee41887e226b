use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use codemode_config::{ApprovalRules, ResolvedServer, SandboxConfig, ToolFilter};
use codemode_mcp::bridge::{
    Approvals, ApproverSlot, Bridge, ConnectionLimits, GrantSpec, Listener, Records, RequestLimits,
};
use codemode_mcp::catalog::{self, Catalog, Watch};
use codemode_mcp::{McpError, Registry};
use codemode_sandbox::{
    self as sandbox, Backend, Finished, OutputSink, RunClock, RunDir, RunSpec, SandboxError,
};
use codemode_text::human_bytes;

use crate::approvals::Clocked;
use crate::outbox::{self, Outbox};
use crate::place::Place;
use crate::{Collection, InputFiles, Options, Outcome, Report, RunError, Session};

/// How long after the run the collector's last bytes may take to be read,
/// and how long past the run's time limit a collection may last.
const COLLECT_GRACE: Duration = Duration::from_secs(2);

/// Whether codemode, not the script, ended the run.
fn stopped_by_codemode(finished: &Finished) -> bool {
    finished.timed_out || finished.output_flooded || finished.oom_killed || finished.cancelled
}

/// Copies the run's input files into its directory; `None` when it has none.
pub(crate) fn give_input_files(
    dirs: &RunDir,
    files: &InputFiles,
) -> Result<Option<PathBuf>, RunError> {
    if files.is_empty() {
        return Ok(None);
    }
    let dir = dirs
        .input_files()
        .map_err(RunError::io("making the run's input directory"))?;
    files
        .copy_into(&dir)
        .map_err(RunError::io("copying the input files"))?;
    Ok(Some(dir))
}

/// What executions share: the MCP servers (started once, kept warm) and the
/// sandbox backend. `exec` makes one for one run; `serve` keeps one for all.
pub struct Runner {
    registry: Arc<Registry>,
    specs: Vec<ResolvedServer>,
    backend: Arc<Backend>,
}

impl Runner {
    /// Picks the backend, checks that it can enforce `options`' limits and
    /// prepares the registry; servers start when first used. Also returns
    /// what the user should be told once: which sandbox and why, and what
    /// it bounds otherwise than asked.
    pub async fn start(
        sandbox_config: &SandboxConfig,
        specs: Vec<ResolvedServer>,
        options: &Options,
    ) -> Result<(Runner, Vec<String>), RunError> {
        let (backend, note) = sandbox::select(
            options.backend,
            &sandbox_config.image,
            sandbox_config.python.as_ref().map(PathBuf::from),
        )
        .await?;
        let mut notes = vec![format!("sandbox: {note}")];
        for note in backend.check(&options.limits)? {
            notes.push(format!("note: {note}"));
        }
        let runner = Runner {
            registry: Arc::new(Registry::new(specs.clone())),
            specs,
            backend: Arc::new(backend),
        };
        Ok((runner, notes))
    }

    /// What a run narrowed to `allow` (`server.tool` patterns) may see and
    /// call: its stubs and its grant are both cut by this one filter.
    pub fn filter(&self, allow: &[String]) -> ToolFilter {
        ToolFilter::new(&self.specs).narrowed(allow)
    }

    /// The grant a run or session under `options` gets: its filter, and
    /// its approvals asked through a slot (a session's asker may change from
    /// call to call) with `clock` standing while they wait.
    fn grant_spec(&self, options: &Options, clock: &RunClock) -> (GrantSpec, Arc<ApproverSlot>) {
        let slot = ApproverSlot::new(options.ask_with.approver());
        let spec = GrantSpec {
            approvals: Approvals {
                rules: ApprovalRules::new(&self.specs).adding(&options.approve),
                auto: options.auto_approve,
                approver: Arc::new(Clocked {
                    inner: slot.clone(),
                    clock: clock.clone(),
                }),
                timeout: options.approval_timeout,
            },
            ..GrantSpec::new(self.filter(&options.allow))
        };
        (spec, slot)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn specs(&self) -> &[ResolvedServer] {
        &self.specs
    }

    /// Every server's tools as `filter` lets a run see them, listed at once
    /// (starting the servers); the servers that failed apart.
    pub async fn catalog(
        &self,
        filter: &ToolFilter,
        watch: &impl Watch,
    ) -> (Catalog, Vec<McpError>) {
        catalog::collect(&self.registry, &self.specs, filter, watch).await
    }

    /// Runs `source` once, start to finish, with its own workspace, socket
    /// and grant, and cleans up after it whatever happens.
    pub async fn run(
        &self,
        stubs: &str,
        script_name: &str,
        source: &str,
        options: &Options,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<Outcome, RunError> {
        let started = Instant::now();
        let (finished, records, collected) = self
            .run_in_sandbox(stubs, script_name, source, options, sink, cancel)
            .await?;
        let (finished, lost) = match finished {
            Ok(finished) => (finished, None),
            // The output and calls so far are all the caller will ever get of
            // this run, so they travel with the cause instead of being dropped.
            Err(err @ SandboxError::Lost { .. }) => (Finished::default(), Some(err)),
            Err(err) => return Err(err.into()),
        };
        let captured = sink.captured();
        let error = if let Some(lost) = &lost {
            Some(lost.to_string())
        } else if finished.timed_out {
            Some(format!(
                "timed out after {}",
                humantime::format_duration(options.limits.timeout)
            ))
        } else if finished.output_flooded {
            Some("stopped: the script kept writing output far past the cap".into())
        } else if finished.oom_killed {
            Some(match options.limits.memory_bytes {
                Some(bytes) => format!("killed: over the memory limit of {}", human_bytes(bytes)),
                None => "killed: out of memory".into(),
            })
        } else if finished.cancelled {
            Some("cancelled".into())
        } else {
            finished.signal.map(|sig| format!("killed by signal {sig}"))
        };
        // As shells report a process a signal ended.
        let exit_code = finished.exit_code.or(finished.signal.map(|sig| 128 + sig));
        let report = Report {
            success: exit_code == Some(0) && error.is_none(),
            exit_code,
            stdout: captured.stdout,
            stderr: captured.stderr,
            timed_out: finished.timed_out,
            truncated: captured.truncated,
            stdout_dropped_bytes: captured.stdout_dropped,
            stderr_dropped_bytes: captured.stderr_dropped,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            sandbox: self.backend.name().to_string(),
            tool_calls: records.kept,
            tool_calls_dropped: records.dropped,
            error,
            ..Report::default()
        };
        let report = match (options.outputs, collected) {
            (None, _) => report,
            // What is in out/ when codemode stopped the script is not what
            // the script meant to hand back.
            (Some(_), _) if lost.is_some() || stopped_by_codemode(&finished) => {
                let why = report.error.clone().unwrap_or_default();
                report.with_files(Collection::not_collected(format!(
                    "out/ was not collected: {why}"
                )))
            }
            (Some(_), Some(collection)) => report.with_files(collection),
            (Some(_), None) => report.with_files(Collection::not_collected(
                "out/ was not collected: the collector did not report",
            )),
        };
        Ok(match lost {
            None => Outcome::Done(report),
            Some(cause) => Outcome::Lost { report, cause },
        })
    }

    async fn run_in_sandbox(
        &self,
        stubs: &str,
        script_name: &str,
        source: &str,
        options: &Options,
        sink: &OutputSink,
        cancel: CancellationToken,
    ) -> Result<(Result<Finished, SandboxError>, Records, Option<Collection>), RunError> {
        let bridge = Bridge::new(Arc::clone(&self.registry), RequestLimits::default());
        let clock = RunClock::new();
        let (grant_spec, _) = self.grant_spec(options, &clock);
        let Place {
            user,
            dirs,
            grant,
            socket,
        } = Place::make(
            &self.backend,
            &bridge,
            grant_spec,
            [(script_name, source), ("mcp_tools.py", stubs)],
        )?;

        let mut env = options.env.clone();
        env.insert("CODEMODE_BRIDGE_TOKEN".into(), grant.token());
        let input_files = give_input_files(&dirs, &options.input_files)?;
        let outbox = match options.outputs {
            Some(caps) => Some((Outbox::bind(&dirs)?, caps)),
            None => None,
        };
        let spec = RunSpec {
            inputs: dirs.inputs().to_path_buf(),
            script: script_name.to_string(),
            args: options.args.clone(),
            env,
            bridge_dir: dirs.bridge().to_path_buf(),
            host_user: user.user(),
            limits: options.limits.clone(),
            clock,
            input_files,
            parent: outbox
                .as_ref()
                .map(|(_, caps)| outbox::parent_source(*caps)),
        };

        // Read while the collector writes: it blocks once the socket's
        // buffer is full.
        let within = options.limits.timeout + COLLECT_GRACE;
        let receiving = outbox
            .map(|(outbox, caps)| tokio::spawn(async move { outbox.collect(caps, within).await }));
        let stop_bridge = CancellationToken::new();
        let serving = {
            let bridge = bridge.clone();
            let stop = stop_bridge.clone();
            tokio::spawn(async move {
                let limits = ConnectionLimits {
                    shutdown_grace: Duration::from_secs(2),
                    ..ConnectionLimits::default()
                };
                bridge
                    .serve(vec![Listener::Unix(socket)], limits, stop.cancelled_owned())
                    .await;
            })
        };
        let finished = self.backend.run(&spec, sink, cancel).await;
        let collected = match receiving {
            // Every process of the run is gone: a collector that connected
            // has sent all it will, and one that did not never will.
            Some(mut task) => match tokio::time::timeout(COLLECT_GRACE, &mut task).await {
                Ok(Ok(collection)) => Some(collection),
                _ => {
                    task.abort();
                    None
                }
            },
            None => None,
        };
        stop_bridge.cancel();
        let _ = serving.await;
        let records = grant.records();
        drop(grant);
        let removed = dirs.remove();
        // Only now that no file of the run is left may another run get its uid.
        drop(user);
        removed.map_err(RunError::io("cleaning up after the run"))?;
        Ok((finished, records, collected))
    }

    /// Starts a session ([`Session`]): one sandbox for many cells, with
    /// `options`' limits (its `timeout` bounds the session's whole life) and
    /// one grant for its life, cut by the same filter as a run's.
    pub async fn open_session(&self, stubs: &str, options: &Options) -> Result<Session, RunError> {
        let mut session = self.prepare_session(stubs, options).await?;
        session.arm().await?;
        Ok(session)
    }

    /// A session started ahead: the interpreter up and `stubs` imported,
    /// but without its token until [`Session::arm`] hands it over.
    pub async fn prepare_session(
        &self,
        stubs: &str,
        options: &Options,
    ) -> Result<Session, RunError> {
        let bridge = Bridge::new(Arc::clone(&self.registry), RequestLimits::default());
        let clock = RunClock::new();
        let (spec, asker) = self.grant_spec(options, &clock);
        Session::start(
            Arc::clone(&self.backend),
            bridge,
            spec,
            (asker, clock),
            stubs,
            options,
        )
        .await
    }

    /// Stops every MCP server the runs used.
    pub async fn shutdown(&self) {
        self.registry.shutdown().await;
    }
}
