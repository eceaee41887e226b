//! `codemode.toml`: where it is found, what it holds, and how `${VAR}` references
//! become values.
//!
//! Secrets live in the environment, never in the file: the file names them as
//! `${VAR}`, and they are expanded only when a server is started, so a server whose
//! variable is unset fails alone, with a message that names the variable and never
//! its value.

mod approve;
mod duration;
mod expand;
mod filter;
pub mod mcp_json;
mod value;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use approve::ApprovalRules;
pub use expand::expand;
pub use filter::{glob_match, ToolFilter};
pub use value::{parse_size, Backend, ByteSize, Cpus, SizeLimit};

/// The file name looked for in the working directory and the user config dir.
pub const FILE_NAME: &str = "codemode.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config found: pass --config FILE, set CODEMODE_CONFIG, or create {FILE_NAME} (looked in {searched})")]
    NotFound { searched: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "server `{server}`: {field} refers to ${{{var}}}, which is not set in the environment"
    )]
    UnsetVariable {
        server: String,
        field: String,
        var: String,
    },
    #[error("server `{server}`: {message}")]
    Server { server: String, message: String },
    #[error("unknown server `{name}` (configured: {known})")]
    UnknownServer { name: String, known: String },
}

/// The whole configuration, as read from disk (references not yet expanded).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from; relative commands and directories resolve against it.
    pub source: Option<PathBuf>,
    pub servers: BTreeMap<String, ServerConfig>,
    pub bridge: BridgeConfig,
    // Parsed and checked now, so a config written today keeps working; read by
    // `exec` and `ask`.
    #[allow(dead_code)]
    pub sandbox: SandboxConfig,
    pub llm: LlmConfig,
    pub serve: ServeConfig,
    /// What loading left out and the user should hear about, one line each.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    servers: BTreeMap<String, CheckedServer>,
    #[serde(default)]
    bridge: BridgeConfig,
    #[serde(default)]
    sandbox: SandboxConfig,
    #[serde(default)]
    llm: LlmConfig,
    #[serde(default)]
    serve: ServeConfig,
}

/// A server table checked as it is read, so that a table that cannot be
/// started is reported at its own line and column.
#[derive(Debug, Clone)]
struct CheckedServer(ServerConfig);

impl<'de> Deserialize<'de> for CheckedServer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let server = ServerConfig::deserialize(deserializer)?;
        server.validate().map_err(serde::de::Error::custom)?;
        Ok(CheckedServer(server))
    }
}

/// One `[servers.NAME]` table. Exactly one of `command` (stdio) and `url`
/// (streamable HTTP) is set; `validate` checks that.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Tool names (or `*` patterns) that may reach the sandbox; all when absent.
    pub allow: Option<Vec<String>>,
    /// Tool names (or `*` patterns) whose every call waits for a person's yes.
    #[serde(default)]
    pub approve: Vec<String>,
    #[serde(default, with = "duration::option")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, with = "duration::option")]
    pub call_timeout: Option<Duration>,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    pub listen: Option<std::net::SocketAddr>,
}

/// `[serve]`: what `codemode serve` sends back, and how long its sessions live.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Output of each stream an `execute_python` result holds, like "32k".
    pub max_output: Option<ByteSize>,
    /// Sessions kept at once; past that the least recently used one ends.
    pub sessions: usize,
    /// A session unused this long ends.
    #[serde(with = "duration::required")]
    pub session_idle: Duration,
    /// No session lives longer than this.
    #[serde(with = "duration::required")]
    pub session_lifetime: Duration,
    /// Sessions started ahead, handed to new ones as they come.
    pub warm: usize,
    /// The most the files a cell leaves in /workspace/out may bring back in
    /// one result, like "4m".
    pub max_out_bytes: Option<ByteSize>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_output: None,
            sessions: 8,
            session_idle: Duration::from_secs(600),
            session_lifetime: Duration::from_secs(3600),
            warm: 2,
            max_out_bytes: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    pub backend: Backend,
    pub image: String,
    #[serde(with = "duration::required")]
    pub timeout: Duration,
    /// Unset: the default, enforced where the host can and said otherwise;
    /// set (a size, or "none"): enforced for the whole run or refused.
    pub memory: Option<SizeLimit>,
    /// As `memory`; 0 is no limit.
    pub cpus: Option<Cpus>,
    pub pids: u32,
    /// The size of the workspace, like "256m".
    pub disk: Option<ByteSize>,
    pub python: Option<String>,
    /// How long a call that needs approval waits for an answer before it is
    /// refused. Not counted towards `timeout`.
    #[serde(with = "duration::required")]
    pub approval_timeout: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            backend: Backend::Auto,
            image: "python:3.12-slim".into(),
            timeout: Duration::from_secs(30),
            memory: None,
            cpus: None,
            pids: 128,
            disk: None,
            python: None,
            approval_timeout: Duration::from_secs(300),
        }
    }
}

/// `[llm]`: what `ask` talks to. API keys are never read from here: they
/// come from the environment only, so a config file can be shared.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `provider/model`: `openai/gpt-4o-mini`, `anthropic/claude-sonnet-4-5`.
    pub model: String,
    pub temperature: f64,
    /// Model turns `ask` may take before giving up.
    pub max_steps: u32,
    /// The provider's base URL; `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` win over it.
    pub api_base: Option<String>,
    /// Bound on one request to the provider.
    #[serde(with = "duration::required")]
    pub timeout: Duration,
    /// Tokens the full stub API may take in the prompt; past that the model
    /// gets the index and finds signatures with `mcp_tools.search`.
    pub index_threshold: usize,
    /// The most tokens one reply may have (Anthropic requires a bound).
    pub max_tokens: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            model: "openai/gpt-4o-mini".into(),
            temperature: 0.7,
            max_steps: 5,
            api_base: None,
            timeout: Duration::from_secs(120),
            index_threshold: 4000,
            max_tokens: 4096,
        }
    }
}

/// Default bound on starting a server and finishing `initialize`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on one tool call or one `tools/list`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where to look for the config, in order. `explicit` is `--config`.
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(path) = explicit {
        return Ok(Some(path.to_path_buf()));
    }
    if let Some(path) = std::env::var_os("CODEMODE_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(Some(PathBuf::from(path)));
    }
    Ok(candidates().into_iter().find(|p| p.is_file()))
}

fn candidates() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(FILE_NAME)];
    if let Some(dir) = dirs::config_dir() {
        paths.push(dir.join("codemode").join(FILE_NAME));
    }
    paths
}

/// Loads the config `--config`, `$CODEMODE_CONFIG` or discovery names, then adds
/// the servers of an `mcpServers` JSON file when one is given. With neither a
/// config nor a JSON file there is nothing to do, which is an error.
/// Entries of the JSON file that are left out are named in `notes`.
pub fn load(explicit: Option<&Path>, mcp_json: Option<&Path>) -> Result<Config, ConfigError> {
    let mut config = match locate(explicit)? {
        Some(path) => Config::from_file(&path)?,
        None if mcp_json.is_some() => Config::default(),
        None => {
            let searched = candidates()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ConfigError::NotFound { searched });
        }
    };
    if let Some(json_path) = mcp_json {
        let servers = mcp_json::read(json_path)?;
        if servers.found.is_empty() && servers.skipped.is_empty() {
            return Err(ConfigError::Invalid {
                path: json_path.to_path_buf(),
                message: "no `mcpServers` entries found".into(),
            });
        }
        for (name, why) in servers.skipped {
            config.notes.push(format!(
                "skipped server `{name}` of {}: {why}",
                json_path.display()
            ));
        }
        for (name, entry) in servers.found {
            if config.servers.contains_key(&name) {
                return Err(ConfigError::Invalid {
                    path: json_path.to_path_buf(),
                    message: format!("server `{name}` is also defined in the config file"),
                });
            }
            config.servers.insert(name, entry.into());
        }
    }
    Ok(config)
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses TOML text; `path` is used for messages and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: err.message().trim().to_string(),
            }
        })?;
        // The path names the key a bad value belongs to (`sandbox.memory`),
        // which the value's own rule cannot know.
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            let err = err.into_inner();
            let (line, column) = err
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            let message = err.message().trim();
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: match key.split_once('.') {
                    _ if key == "." || message.contains(&format!("`{key}`")) => message.to_string(),
                    Some(("servers", name)) if !name.contains('.') => {
                        format!("server `{name}`: {message}")
                    }
                    _ => format!("{key}: {message}"),
                },
            }
        })?;
        Ok(Config {
            source: Some(path.to_path_buf()),
            servers: raw
                .servers
                .into_iter()
                .map(|(name, server)| (name, server.0))
                .collect(),
            bridge: raw.bridge,
            sandbox: raw.sandbox,
            llm: raw.llm,
            serve: raw.serve,
            notes: Vec::new(),
        })
    }

    /// The directory relative paths in the config resolve against.
    pub fn base_dir(&self) -> PathBuf {
        self.source
            .as_deref()
            .and_then(Path::parent)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The enabled servers, or only the named ones (an unknown name is an error;
    /// naming a disabled server enables it for this run).
    pub fn select(&self, names: &[String]) -> Result<Vec<(&str, &ServerConfig)>, ConfigError> {
        if names.is_empty() {
            return Ok(self
                .servers
                .iter()
                .filter(|(_, s)| !s.disabled)
                .map(|(n, s)| (n.as_str(), s))
                .collect());
        }
        let mut chosen = Vec::new();
        for name in names {
            let (key, server) =
                self.servers
                    .get_key_value(name)
                    .ok_or_else(|| ConfigError::UnknownServer {
                        name: name.clone(),
                        known: self.server_names(),
                    })?;
            if !chosen.iter().any(|(n, _)| *n == key.as_str()) {
                chosen.push((key.as_str(), server));
            }
        }
        chosen.sort_by(|a, b| a.0.cmp(b.0));
        Ok(chosen)
    }

    fn server_names(&self) -> String {
        if self.servers.is_empty() {
            "none".into()
        } else {
            self.servers.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

/// A server with every `${VAR}` expanded and every relative path resolved: what
/// the registry starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedServer {
    pub name: String,
    pub transport: Transport,
    pub allow: Option<Vec<String>>,
    pub approve: Vec<String>,
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
}

#[derive(Clone, PartialEq)]
pub enum Transport {
    Stdio {
        command: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

// Hand-written so that env values and headers (where secrets live) never reach a log.
impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Stdio {
                command, args, env, ..
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .finish(),
            Transport::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), String> {
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => {
                Err("set either `command` (stdio) or `url` (HTTP), not both".into())
            }
            (None, None) => {
                Err("needs `command` (a stdio server) or `url` (an HTTP server)".into())
            }
            (Some(command), None) if command.trim().is_empty() => Err("`command` is empty".into()),
            (Some(_), None) if !self.headers.is_empty() => {
                Err("`headers` applies to HTTP servers only; use `env` for a stdio server".into())
            }
            (None, Some(_))
                if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() =>
            {
                Err("`args`, `env` and `cwd` apply to stdio servers only".into())
            }
            _ => Ok(()),
        }
    }

    /// Expands `${VAR}` references from `lookup` and resolves relative paths
    /// against `base_dir`.
    pub fn resolve(
        &self,
        name: &str,
        base_dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ResolvedServer, ConfigError> {
        let field = |label: String, value: &str| -> Result<String, ConfigError> {
            expand(value, lookup).map_err(|var| ConfigError::UnsetVariable {
                server: name.to_string(),
                field: label,
                var,
            })
        };
        let transport = if let Some(url) = &self.url {
            let url = field("url".into(), url)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Server {
                    server: name.into(),
                    message: format!("url `{url}` must start with http:// or https://"),
                });
            }
            let mut headers = BTreeMap::new();
            for (key, value) in &self.headers {
                headers.insert(key.clone(), field(format!("headers.{key}"), value)?);
            }
            Transport::Http { url, headers }
        } else {
            let command = field(
                "command".into(),
                self.command.as_deref().unwrap_or_default(),
            )?;
            let args = self
                .args
                .iter()
                .enumerate()
                .map(|(i, a)| field(format!("args[{i}]"), a))
                .collect::<Result<Vec<_>, _>>()?;
            let mut env = BTreeMap::new();
            for (key, value) in &self.env {
                env.insert(key.clone(), field(format!("env.{key}"), value)?);
            }
            let cwd = match &self.cwd {
                Some(cwd) => Some(base_dir.join(field("cwd".into(), cwd)?)),
                None => None,
            };
            // A bare name is looked up on PATH; a path with a slash is relative to
            // the config file, so a checked-in config works from any directory.
            let command = if command.contains('/') {
                base_dir.join(command)
            } else {
                PathBuf::from(command)
            };
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            }
        };
        Ok(ResolvedServer {
            name: name.to_string(),
            transport,
            allow: self.allow.clone(),
            approve: self.approve.clone(),
            connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            call_timeout: self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT),
        })
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/codemode/codemode.toml"))
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_design_example_parses() {
        let config = parse(
            r#"
            [servers.news_api]
            command = "news-server"
            args = []
            env = { NEWS_API_KEY = "${NEWS_API_KEY}" }
            allow = ["fetch_latest"]

            [servers.docs]
            url = "https://example.com/mcp"
            headers = { Authorization = "Bearer ${DOCS_TOKEN}" }

            [bridge]
            listen = "127.0.0.1:8765"

            [sandbox]
            backend = "auto"
            image = "python:3.12-slim"
            timeout = "30s"
            memory = "512m"
            cpus = 0.5
            pids = 128

            [llm]
            model = "openai/gpt-4o-mini"
            temperature = 0.7
            "#,
        )
        .unwrap();
        assert_eq!(config.servers.len(), 2);
        assert_eq!(
            config.servers["news_api"].allow,
            Some(vec!["fetch_latest".to_string()])
        );
        assert_eq!(config.sandbox.timeout, Duration::from_secs(30));
        assert_eq!(
            config.bridge.listen,
            Some("127.0.0.1:8765".parse().unwrap())
        );
    }

    #[test]
    fn a_syntax_error_reports_line_and_column() {
        let err = parse("[servers.a]\ncommand = \"x\"\nargs = [1, \n").unwrap_err();
        match err {
            ConfigError::Parse { line, .. } => assert!(line >= 3, "line {line}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_unknown_key_is_rejected_with_its_position() {
        let err = parse("[servers.a]\ncommand = \"x\"\ncomand = \"y\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(":3:"), "{text}");
        assert!(text.contains("comand"), "{text}");
    }

    #[test]
    fn a_server_needs_a_command_or_a_url() {
        let err = parse("[servers.a]\nargs = [\"x\"]\n").unwrap_err();
        assert!(err.to_string().contains("server `a`"), "{err}");
    }

    #[test]
    fn a_server_cannot_have_both_command_and_url() {
        let err = parse("[servers.a]\ncommand = \"x\"\nurl = \"http://h/mcp\"\n").unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn an_unset_variable_is_named_in_the_error() {
        let config =
            parse("[servers.a]\ncommand = \"x\"\nenv = { K = \"${SECRET_K}\" }\n").unwrap();
        let err = config.servers["a"]
            .resolve("a", Path::new("/"), &no_env)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "server `a`: env.K refers to ${SECRET_K}, which is not set in the environment"
        );
    }

    #[test]
    fn variables_expand_in_headers() {
        let config = parse(
            "[servers.d]\nurl = \"https://h/mcp\"\nheaders = { Authorization = \"Bearer ${T}\" }\n",
        )
        .unwrap();
        let lookup = |name: &str| (name == "T").then(|| "s3cret".to_string());
        let resolved = config.servers["d"]
            .resolve("d", Path::new("/"), &lookup)
            .unwrap();
        match &resolved.transport {
            Transport::Http { headers, .. } => {
                assert_eq!(headers["Authorization"], "Bearer s3cret")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!format!("{resolved:?}").contains("s3cret"));
    }

    #[test]
    fn a_relative_command_resolves_against_the_config_directory() {
        let config = parse("[servers.a]\ncommand = \"../bin/server\"\n").unwrap();
        let resolved = config.servers["a"]
            .resolve("a", &config.base_dir(), &no_env)
            .unwrap();
        match resolved.transport {
            Transport::Stdio { command, .. } => {
                assert_eq!(command, PathBuf::from("/etc/codemode/../bin/server"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bare_command_is_left_for_path_lookup() {
        let config = parse("[servers.a]\ncommand = \"uvx\"\n").unwrap();
        let resolved = config.servers["a"]
            .resolve("a", &config.base_dir(), &no_env)
            .unwrap();
        assert!(
            matches!(resolved.transport, Transport::Stdio { ref command, .. } if command == Path::new("uvx"))
        );
    }

    #[test]
    fn select_skips_disabled_servers_and_rejects_unknown_names() {
        let config =
            parse("[servers.a]\ncommand = \"x\"\n[servers.b]\ncommand = \"y\"\ndisabled = true\n")
                .unwrap();
        let names: Vec<_> = config
            .select(&[])
            .unwrap()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names, ["a"]);
        let err = config.select(&["c".into()]).unwrap_err();
        assert_eq!(err.to_string(), "unknown server `c` (configured: a, b)");
    }

    #[test]
    fn every_example_config_parses() {
        for (name, text) in [
            (
                "codemode.toml",
                include_str!("../../../config/codemode.toml"),
            ),
            (
                "python-servers.toml",
                include_str!("../../../config/python-servers.toml"),
            ),
            (
                "npm-servers.toml",
                include_str!("../../../config/npm-servers.toml"),
            ),
            (
                "remote-http.toml",
                include_str!("../../../config/remote-http.toml"),
            ),
        ] {
            let config =
                Config::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!config.servers.is_empty(), "{name}");
        }
    }

    #[test]
    fn an_unknown_sandbox_backend_is_rejected() {
        let err = parse("[sandbox]\nbackend = \"vm\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2:11: sandbox.backend") && err.contains("`vm`"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_listen_address_is_blamed_on_the_config_key() {
        let err = parse("[bridge]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2:10: bridge.listen"), "{err}");
        assert!(!err.contains("--listen"), "{err}");
    }

    #[test]
    fn a_bad_disk_size_is_reported_at_its_line_and_column() {
        let err = parse("[servers.a]\ncommand = \"x\"\n\n[sandbox]\ndisk = \"1 hand\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":5:8: sandbox.disk: invalid size"), "{err}");
    }

    #[test]
    fn a_server_table_that_cannot_start_is_reported_at_its_line() {
        let err =
            parse("[sandbox]\npids = 64\n\n[servers.a]\nurl = \"http://x\"\nargs = [\"y\"]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains(":4:1: server `a`: "), "{err}");
    }

    #[test]
    fn an_unreadable_memory_size_is_rejected() {
        let err = parse("[sandbox]\nmemory = \"lots\"\n").unwrap_err();
        assert!(err.to_string().contains("sandbox.memory"), "{err}");
    }

    #[test]
    fn serve_max_output_is_read_and_checked() {
        let config = parse("[serve]\nmax_output = \"64k\"\n").unwrap();
        assert_eq!(config.serve.max_output, Some(ByteSize(64 * 1024)));
        let err = parse("[serve]\nmax_output = \"lots\"\n").unwrap_err();
        assert!(err.to_string().contains("serve.max_output"), "{err}");
    }

    #[test]
    fn an_unknown_serve_key_is_rejected() {
        assert!(parse("[serve]\nmax_outptu = \"64k\"\n").is_err());
    }

    #[test]
    fn a_memory_limit_of_none_is_no_limit() {
        assert_eq!("none".parse::<SizeLimit>().unwrap().bytes(), None);
        assert_eq!("1g".parse::<SizeLimit>().unwrap().bytes(), Some(1 << 30));
        assert!(parse("[sandbox]\nmemory = \"none\"\n").is_ok());
    }

    #[test]
    fn a_negative_cpu_share_is_rejected() {
        let err = parse("[sandbox]\ncpus = -1\n").unwrap_err();
        assert!(err.to_string().contains("sandbox.cpus"), "{err}");
    }

    #[test]
    fn sizes_read_with_binary_units() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5x").is_err());
    }

    #[test]
    fn glob_patterns_match_with_stars() {
        assert!(glob_match("fetch_latest", "fetch_latest"));
        assert!(!glob_match("fetch_latest", "fetch_latest_2"));
        assert!(glob_match("get_*", "get_time"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*_time", "convert_time"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn an_invalid_duration_is_a_parse_error() {
        let err = parse("[sandbox]\ntimeout = \"soon\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err:?}");
    }

    /// Property test (cargo-fuzz needs a nightly toolchain): thousands of
    /// randomly mutated configs must parse or fail with an error, never panic,
    /// and so must resolving every server of those that parse.
    #[test]
    fn mutated_configs_never_panic() {
        let seeds: [&str; 5] = [
            include_str!("../../../config/codemode.toml"),
            include_str!("../../../config/npm-servers.toml"),
            include_str!("../../../config/python-servers.toml"),
            include_str!("../../../config/remote-http.toml"),
            "[servers.a]\ncommand = \"x\"\nargs = [\"-v\"]\nenv = { K = \"${K}\" }\nallow = [\"t*\"]\n\
             call_timeout = \"1s\"\n[servers.b]\nurl = \"https://h/mcp\"\nheaders = { A = \"${T}\" }\n\
             [sandbox]\nbackend = \"native\"\nmemory = \"512m\"\ncpus = 0.5\npids = 128\ntimeout = \"30s\"\n\
             [bridge]\nlisten = \"127.0.0.1:1\"\n[llm]\nmodel = \"a/b\"\ntemperature = 0.7\n",
        ];
        const TOKENS: [&str; 14] = [
            "\"",
            "[",
            "]",
            "{",
            "}",
            "=",
            "\n",
            "${",
            "\u{e9}",
            "\u{1f600}",
            "0.0",
            "-1",
            "99999999999999999999",
            "\"\"\"",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let lookup = |_: &str| Some("value".to_string());
        for round in 0..4000 {
            let mut text = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % (text.len() + 1);
                match next() % 5 {
                    0 if at < text.len() => text[at] = next() as u8,
                    1 => text
                        .splice(at..at, TOKENS[next() as usize % TOKENS.len()].bytes())
                        .for_each(drop),
                    2 => {
                        let end = (at + (next() as usize) % 16).min(text.len());
                        text.drain(at..end);
                    }
                    3 => {
                        let end = (at + (next() as usize) % 32).min(text.len());
                        let copy = text[at..end].to_vec();
                        text.splice(at..at, copy);
                    }
                    _ => text.truncate(at),
                }
            }
            let text = String::from_utf8_lossy(&text);
            let outcome = std::panic::catch_unwind(|| {
                if let Ok(config) = parse(&text) {
                    for (name, server) in &config.servers {
                        let _ = server.resolve(name, &config.base_dir(), &lookup);
                    }
                } else if let Err(err) = parse(&text) {
                    let _ = err.to_string();
                }
            });
            assert!(outcome.is_ok(), "round {round} panicked on:\n{text}");
        }
    }
}
