//! What every subcommand starts from: the global flags, the config they name,
//! and the servers it selects.

use crate::cli::GlobalArgs;
use crate::error::Error;
use crate::progress::Progress;
use codemode_config::{Config, ResolvedServer};
use codemode_mcp::catalog::{self, Catalog};
use codemode_mcp::{McpError, Registry};
use codemode_run::{Options, Runner};

pub struct Context {
    pub global: GlobalArgs,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Context {
        Context { global }
    }

    pub fn config(&self) -> Result<Config, Error> {
        let config = codemode_config::load(
            self.global.config.as_deref(),
            self.global.mcp_json.as_deref(),
        )?;
        for note in &config.notes {
            self.say(&format!("codemode: {note}"));
        }
        Ok(config)
    }

    /// The selected servers with `${VAR}`s expanded from the environment; an
    /// error when there are none.
    pub fn servers(&self, config: &Config, names: &[String]) -> Result<Vec<ResolvedServer>, Error> {
        let servers = self.servers_or_none(config, names)?;
        if servers.is_empty() {
            return Err(Error::Usage(format!(
                "no servers configured in {}; add a [servers.NAME] table",
                config
                    .source
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the config".into())
            )));
        }
        Ok(servers)
    }

    /// The selected servers, possibly none (a script may use no tools).
    pub fn servers_or_none(
        &self,
        config: &Config,
        names: &[String],
    ) -> Result<Vec<ResolvedServer>, Error> {
        let base = config.base_dir();
        let lookup = |name: &str| std::env::var(name).ok();
        Ok(config
            .select(names)?
            .into_iter()
            .map(|(name, server)| server.resolve(name, &base, &lookup))
            .collect::<Result<_, _>>()?)
    }

    /// Starts the selected servers, lists their tools and stops them again.
    /// Servers that fail are named on stderr; unless `allow_partial`, any
    /// failure fails the command.
    pub async fn catalog(&self, names: &[String], allow_partial: bool) -> Result<Catalog, Error> {
        let config = self.config()?;
        let specs = self.servers(&config, names)?;
        let registry = Registry::new(specs.clone());
        let progress = Progress::new(self.global.quiet);
        let filter = codemode_config::ToolFilter::new(&specs);
        let (catalog, failures) = catalog::collect(&registry, &specs, &filter, &progress).await;
        registry.shutdown().await;
        self.check_failures(&catalog, failures, allow_partial)?;
        Ok(catalog)
    }

    /// The runner for `specs` with `options`' backend and limits, its notes
    /// (which sandbox, what it bounds otherwise) said once on stderr.
    pub async fn runner(
        &self,
        config: &Config,
        specs: Vec<ResolvedServer>,
        options: &Options,
    ) -> Result<Runner, Error> {
        let (runner, notes) = Runner::start(&config.sandbox, specs, options).await?;
        for note in notes {
            self.say(&format!("codemode: {note}"));
        }
        Ok(runner)
    }

    /// The tools a run narrowed to `allow` sees, and their stub module;
    /// servers that failed to list them are handled as [`Self::check_failures`]
    /// says.
    pub async fn stubs(
        &self,
        runner: &Runner,
        allow: &[String],
        allow_partial: bool,
        progress: &Progress,
    ) -> Result<(Catalog, bridge_gen::Module), Error> {
        if runner.specs().is_empty() {
            return Ok((Catalog::default(), bridge_gen::generate_module(&[])));
        }
        let (catalog, failures) = runner.catalog(&runner.filter(allow), progress).await;
        self.check_failures(&catalog, failures, allow_partial)?;
        let module = bridge_gen::generate_module(&catalog.servers);
        Ok((catalog, module))
    }

    /// Servers that failed to list their tools: named on stderr and tolerated
    /// with `allow_partial` (when some others answered), an error otherwise.
    pub fn check_failures(
        &self,
        catalog: &Catalog,
        failures: Vec<McpError>,
        allow_partial: bool,
    ) -> Result<(), Error> {
        if failures.is_empty() {
            return Ok(());
        }
        if allow_partial && !catalog.servers.is_empty() {
            for failure in &failures {
                eprintln!("codemode: warning: skipped {failure}");
            }
            return Ok(());
        }
        if let [only] = failures.as_slice() {
            return Err(only.clone().into());
        }
        for failure in &failures {
            eprintln!("codemode: error: {failure}");
        }
        let names: Vec<String> = failures
            .iter()
            .map(|f| format!("`{}`", f.server()))
            .collect();
        Err(Error::ServersFailed {
            servers: format!("servers {}", names.join(", ")),
        })
    }

    /// A status line on stderr, unless `--quiet`.
    pub fn say(&self, message: &str) {
        if !self.global.quiet {
            eprintln!("{message}");
        }
    }
}
