//! `codemode init`: a codemode.toml from the MCP servers a user already has.
//!
//! It reads the `mcpServers` JSON of the desktop clients and editors it knows
//! (or the files named with `--from`), lets the user pick servers, writes the
//! config, and prints the entry that puts `codemode serve` into their client.
//! Secrets found in those files become `${VAR}` references: docs/ARCHITECTURE.md ("Config") keeps
//! them in the environment, never in codemode.toml. Without a terminal it
//! never prompts; what it would have asked must come from flags.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::InitArgs;
use crate::context::Context;
use crate::error::Error;
use codemode_config::mcp_json::{self, Entry};
use codemode_config::{Config, FILE_NAME};
use codemode_text::plural;

/// One MCP client config file, where it was found.
#[derive(Debug, Clone)]
struct Source {
    client: String,
    path: PathBuf,
}

#[derive(Debug, Clone)]
struct Found {
    name: String,
    source: usize,
    entry: Entry,
}

/// A value moved out of the config into an environment variable.
#[derive(Debug, Clone, PartialEq)]
struct Secret {
    var: String,
    /// Where it was, for the user: `github: env GITHUB_TOKEN`.
    origin: String,
    /// Whether its value is known (not a client-side prompt like `${input:x}`).
    value: Option<String>,
}

pub fn run(ctx: &Context, args: &InitArgs) -> Result<(), Error> {
    let interactive =
        !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let term = dialoguer::console::Term::stderr();

    let mut sources: Vec<Source> = if args.from.is_empty() {
        known_locations()
            .into_iter()
            .filter(|s| s.path.is_file())
            .collect()
    } else {
        for path in &args.from {
            if !path.is_file() {
                return Err(Error::Usage(format!(
                    "--from {}: no such file",
                    path.display()
                )));
            }
        }
        args.from
            .iter()
            .map(|path| Source {
                client: "--from".into(),
                path: path.clone(),
            })
            .collect()
    };
    if sources.is_empty() && interactive {
        ctx.say("No MCP client config found in the usual places.");
        let answer: String = dialoguer::Input::new()
            .with_prompt("Path of an mcpServers JSON file (Enter for none)")
            .allow_empty(true)
            .interact_text_on(&term)
            .map_err(prompt_error)?;
        if !answer.trim().is_empty() {
            sources.push(Source {
                client: "your file".into(),
                path: expand_home(answer.trim()),
            });
        }
    }

    let mut found: Vec<Found> = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        match mcp_json::read(&source.path) {
            Ok(servers) => {
                ctx.say(&format!(
                    "Found {} in {} ({})",
                    plural(servers.found.len(), "server"),
                    source.path.display(),
                    source.client
                ));
                for (name, why) in servers.skipped {
                    ctx.say(&format!("  skipped `{name}`: {why}"));
                }
                add(&mut found, servers.found, i);
            }
            // The error names the file (and the line and column of a syntax error).
            Err(err) if !args.from.is_empty() => return Err(err.into()),
            Err(err) => ctx.say(&format!("Skipped {err}")),
        }
    }
    if found.is_empty() && !interactive && !args.yes {
        return Err(Error::Usage(format!(
            "no MCP servers found (looked in {}); pass --from FILE, or --yes for a config without servers",
            looked_in()
        )));
    }

    let chosen = choose(&found, args, interactive, &term)?;
    let output = args.output.clone().unwrap_or_else(default_output);
    let to_stdout = output == Path::new("-");
    if !to_stdout && output.exists() && !args.force {
        let replace = interactive
            && dialoguer::Confirm::new()
                .with_prompt(format!("{} exists. Replace it?", output.display()))
                .default(false)
                .interact_on(&term)
                .map_err(prompt_error)?;
        if !replace {
            if interactive {
                ctx.say("Nothing written.");
                return Ok(());
            }
            return Err(Error::Usage(format!(
                "{} exists; pass --force to replace it, or --output PATH",
                output.display()
            )));
        }
    }

    let (text, secrets) = render(&chosen, &sources, !args.inline_secrets);
    // What codemode will read must parse: a bad name or value fails here, not
    // later in a desktop client's log.
    Config::parse(&text, &output)
        .map_err(|err| Error::Usage(format!("the config init would write is not valid: {err}")))?;
    if to_stdout {
        print!("{text}");
    } else {
        write_config(&output, &text)?;
    }

    let config_path = if to_stdout {
        PathBuf::from(FILE_NAME)
    } else {
        std::path::absolute(&output).unwrap_or(output.clone())
    };
    let vscode = chosen.iter().any(|f| sources[f.source].client == "VS Code");
    let report = next_steps(&config_path, &chosen, &secrets, vscode, to_stdout);
    if to_stdout {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    Ok(())
}

fn prompt_error(err: dialoguer::Error) -> Error {
    Error::Usage(format!("cannot ask: {err}"))
}

/// Where MCP clients keep their server lists, user-wide then per project.
fn known_locations() -> Vec<Source> {
    let mut places: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(config) = dirs::config_dir() {
        places.push((
            "Claude Desktop",
            config.join("Claude/claude_desktop_config.json"),
        ));
        places.push(("VS Code", config.join("Code/User/mcp.json")));
    }
    if let Some(home) = dirs::home_dir() {
        places.push(("Claude Code", home.join(".claude.json")));
        places.push(("Cursor", home.join(".cursor/mcp.json")));
        places.push(("Windsurf", home.join(".codeium/windsurf/mcp_config.json")));
        places.push(("Gemini CLI", home.join(".gemini/settings.json")));
    }
    places.push(("Claude Code (this project)", PathBuf::from(".mcp.json")));
    places.push(("Cursor (this project)", PathBuf::from(".cursor/mcp.json")));
    places.push(("VS Code (this project)", PathBuf::from(".vscode/mcp.json")));
    places
        .into_iter()
        .map(|(client, path)| Source {
            // Project files count as their client, for the snippet's shape.
            client: client.trim_end_matches(" (this project)").to_string(),
            path,
        })
        .collect()
}

fn looked_in() -> String {
    known_locations()
        .iter()
        .map(|s| s.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

fn default_output() -> PathBuf {
    dirs::config_dir()
        .map(|dir| dir.join("codemode").join(FILE_NAME))
        .unwrap_or_else(|| PathBuf::from(FILE_NAME))
}

/// Adds a file's servers. The same server in two clients is taken once; two
/// different servers under one name keep both, the later one renamed.
fn add(found: &mut Vec<Found>, entries: Vec<(String, Entry)>, source: usize) {
    for (name, entry) in entries {
        if found.iter().any(|f| f.name == name && f.entry == entry) {
            continue;
        }
        let mut unique = name.clone();
        let mut n = 2;
        while found.iter().any(|f| f.name == unique) {
            unique = format!("{name}-{n}");
            n += 1;
        }
        found.push(Found {
            name: unique,
            source,
            entry,
        });
    }
}

fn choose(
    found: &[Found],
    args: &InitArgs,
    interactive: bool,
    term: &dialoguer::console::Term,
) -> Result<Vec<Found>, Error> {
    for name in &args.servers {
        if !found.iter().any(|f| &f.name == name) {
            let known: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--servers: no server `{name}` was found (found: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let preselected = |f: &Found| {
        if args.servers.is_empty() {
            !f.entry.disabled
        } else {
            args.servers.contains(&f.name)
        }
    };
    if found.is_empty() {
        return Ok(Vec::new());
    }
    if !interactive {
        if args.servers.is_empty() && !args.yes {
            return Err(Error::Usage(
                "no terminal to ask which servers to use: pass --yes (every server found) or --servers a,b"
                    .into(),
            ));
        }
        return Ok(found.iter().filter(|f| preselected(f)).cloned().collect());
    }
    let items: Vec<String> = found.iter().map(describe).collect();
    let defaults: Vec<bool> = found.iter().map(preselected).collect();
    let picked = dialoguer::MultiSelect::new()
        .with_prompt("Servers for codemode to wrap (space toggles, enter accepts)")
        .items(&items)
        .defaults(&defaults)
        .interact_on(term)
        .map_err(prompt_error)?;
    Ok(picked.into_iter().map(|i| found[i].clone()).collect())
}

fn describe(found: &Found) -> String {
    let what = match (&found.entry.command, &found.entry.url) {
        (Some(command), _) => {
            let mut line = command.clone();
            for arg in found.entry.args.iter().take(4) {
                line.push(' ');
                line.push_str(arg);
            }
            line
        }
        (None, Some(url)) => url.clone(),
        (None, None) => String::new(),
    };
    let disabled = if found.entry.disabled {
        " (disabled)"
    } else {
        ""
    };
    format!("{}{disabled}  {what}", found.name)
}

/// Whether a variable or header name says its value is a secret.
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase().replace('-', "_");
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "ACCESS_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
        "SESSION",
    ]
    .iter()
    .any(|word| upper.contains(word))
        || upper.ends_with("_KEY")
        || upper == "KEY"
        || upper.ends_with("_PAT")
}

fn env_name(parts: &[&str]) -> String {
    let mut name: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Secrets become `${VAR}` references (recorded in `secrets`), editor
/// variables become codemode's: `${env:X}` is `${X}`, and `${input:x}` (a
/// value the editor prompts for) becomes a variable to set.
struct Converter<'a> {
    server: &'a str,
    move_secrets: bool,
    secrets: &'a mut Vec<Secret>,
}

impl Converter<'_> {
    fn value(&mut self, key_hint: &str, origin: &str, value: &str) -> String {
        let value = value.replace("${env:", "${");
        if let Some(start) = value.find("${input:") {
            let end = value[start..]
                .find('}')
                .map_or(value.len(), |e| start + e + 1);
            let id = &value[start + "${input:".len()..end.saturating_sub(1)];
            let var = self.var(&[self.server, id], origin, None);
            return format!("{}${{{var}}}{}", &value[..start], &value[end..]);
        }
        if !self.move_secrets || !secret_name(key_hint) || value.is_empty() || value.contains("${")
        {
            return value;
        }
        // Keep the scheme of an Authorization header readable.
        let (scheme, secret) = match value.split_once(' ') {
            Some((scheme, rest))
                if ["Bearer", "Basic", "Token"].contains(&scheme) && !rest.is_empty() =>
            {
                (format!("{scheme} "), rest.to_string())
            }
            _ => (String::new(), value.clone()),
        };
        let var = self.var(&[key_hint], origin, Some(secret));
        format!("{scheme}${{{var}}}")
    }

    /// A variable for `value`: named after its key when that is free (or holds
    /// the same value), else prefixed with the server's name.
    fn var(&mut self, parts: &[&str], origin: &str, value: Option<String>) -> String {
        let mut var = env_name(parts);
        let taken = |secrets: &[Secret], var: &str| {
            secrets
                .iter()
                .any(|s| s.var == var && (s.value.is_none() || s.value != value))
        };
        if taken(self.secrets, &var) {
            var = env_name(&[self.server, &var]);
        }
        let mut n = 2;
        let base = var.clone();
        while taken(self.secrets, &var) {
            var = format!("{base}_{n}");
            n += 1;
        }
        if !self.secrets.iter().any(|s| s.var == var) {
            self.secrets.push(Secret {
                var: var.clone(),
                origin: origin.to_string(),
                value,
            });
        }
        var
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        toml_string(key)
    }
}

fn inline_table(map: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{} = {}", toml_key(k), toml_string(v)))
        .collect();
    format!("{{ {} }}", pairs.join(", "))
}

/// The config text, and the variables it now refers to.
fn render(chosen: &[Found], sources: &[Source], move_secrets: bool) -> (String, Vec<Secret>) {
    let mut out = String::from("# codemode.toml, written by `codemode init`");
    let used: Vec<usize> = {
        let mut used: Vec<usize> = chosen.iter().map(|f| f.source).collect();
        used.sort_unstable();
        used.dedup();
        used
    };
    if used.is_empty() {
        out.push_str(".\n");
    } else {
        out.push_str(" from:\n");
        for i in &used {
            out.push_str(&format!(
                "#   {}: {}\n",
                sources[*i].client,
                sources[*i].path.display()
            ));
        }
    }
    out.push_str(
        "# ${VAR} is read from the environment when a server starts: secrets stay out of this file.\n",
    );
    let mut secrets = Vec::new();
    if chosen.is_empty() {
        out.push_str(
            "\n# No servers yet. A stdio server:\n#\n# [servers.time]\n# command = \"uvx\"\n\
             # args = [\"mcp-server-time\"]\n#\n# A streamable HTTP server:\n#\n# [servers.docs]\n\
             # url = \"https://example.com/mcp\"\n# headers = { Authorization = \"Bearer ${DOCS_TOKEN}\" }\n",
        );
    }
    for found in chosen {
        let entry = &found.entry;
        let mut convert = Converter {
            server: &found.name,
            move_secrets,
            secrets: &mut secrets,
        };
        out.push_str(&format!("\n[servers.{}]\n", toml_key(&found.name)));
        if let Some(command) = &entry.command {
            out.push_str(&format!("command = {}\n", toml_string(command)));
            if !entry.args.is_empty() {
                let mut args = Vec::new();
                let mut flag: Option<String> = None;
                for arg in &entry.args {
                    let origin = format!("{}: args", found.name);
                    let converted = match (arg.split_once('='), &flag) {
                        // `--api-key=VALUE`
                        (Some((name, value)), _) if name.starts_with('-') && secret_name(name) => {
                            let hint = env_name(&[&found.name, name.trim_start_matches('-')]);
                            format!("{name}={}", convert.value(&hint, &origin, value))
                        }
                        // `--token VALUE`
                        (_, Some(name)) if !arg.starts_with('-') => {
                            let hint = env_name(&[&found.name, name.trim_start_matches('-')]);
                            convert.value(&hint, &origin, arg)
                        }
                        _ => convert.value("", &origin, arg),
                    };
                    flag = (arg.starts_with('-') && !arg.contains('=') && secret_name(arg))
                        .then(|| arg.clone());
                    args.push(toml_string(&converted));
                }
                out.push_str(&format!("args = [{}]\n", args.join(", ")));
            }
            if !entry.env.is_empty() {
                let env: BTreeMap<String, String> = entry
                    .env
                    .iter()
                    .map(|(k, v)| {
                        let origin = format!("{}: env {k}", found.name);
                        (k.clone(), convert.value(k, &origin, v))
                    })
                    .collect();
                out.push_str(&format!("env = {}\n", inline_table(&env)));
            }
            if let Some(cwd) = &entry.cwd {
                out.push_str(&format!("cwd = {}\n", toml_string(cwd)));
            }
        }
        if let Some(url) = &entry.url {
            out.push_str(&format!("url = {}\n", toml_string(url)));
            if !entry.headers.is_empty() {
                let headers: BTreeMap<String, String> = entry
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        let origin = format!("{}: header {k}", found.name);
                        let hint = env_name(&[&found.name, k]);
                        let hint = if secret_name(k) { hint } else { k.clone() };
                        (k.clone(), convert.value(&hint, &origin, v))
                    })
                    .collect();
                out.push_str(&format!("headers = {}\n", inline_table(&headers)));
            }
        }
        if entry.disabled {
            out.push_str("disabled = true\n");
        }
    }
    out.push_str(
        "\n[sandbox]\n\
         # auto: Docker when an engine answers (and has the image), else the native sandbox.\n\
         backend = \"auto\"\n\
         timeout = \"30s\"\n",
    );
    (out, secrets)
}

/// A new config is readable by its owner only: it names commands and may
/// hold inline secrets. An existing file is replaced through a temporary file
/// (never half-written), keeping its mode.
fn write_config(path: &Path, text: &str) -> Result<(), Error> {
    let context = || format!("writing {}", path.display());
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(Error::Usage(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(Error::io(context()))?;
    }
    crate::atomic::write(path, text.as_bytes(), 0o600).map_err(Error::io(context()))
}

/// What to do next: the client entry for `codemode serve`, and the
/// variables to set.
fn next_steps(
    config: &Path,
    chosen: &[Found],
    secrets: &[Secret],
    vscode: bool,
    to_stdout: bool,
) -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "codemode".into());
    let mut out = String::new();
    if !to_stdout {
        out.push_str(&format!(
            "Wrote {} with {}.\n",
            config.display(),
            plural(chosen.len(), "server")
        ));
    }
    let env: Vec<(String, String)> = secrets
        .iter()
        .map(|s| {
            let hint = match &s.value {
                Some(_) => format!("<the value of {}>", s.origin),
                None => format!("<a value for {}>", s.origin),
            };
            (s.var.clone(), hint)
        })
        .collect();
    let args = [
        "--config".to_string(),
        config.display().to_string(),
        "serve".to_string(),
    ];
    out.push_str(
        "\nAdd codemode to your MCP client (Claude Desktop, Cursor, Claude Code, Windsurf...):\n\n",
    );
    out.push_str(&client_entry("mcpServers", None, &exe, &args, &env));
    if vscode {
        out.push_str("\nIn VS Code's mcp.json:\n\n");
        out.push_str(&client_entry("servers", Some("stdio"), &exe, &args, &env));
    }
    if !secrets.is_empty() {
        out.push_str(
            "\nSecrets were left out of the config as ${VAR} references; set them in the entry's \
             \"env\" above (or wherever codemode runs):\n",
        );
        for secret in secrets {
            out.push_str(&format!("  {:<24} from {}\n", secret.var, secret.origin));
        }
    }
    if !chosen.is_empty() {
        let names: Vec<&str> = chosen.iter().map(|f| f.name.as_str()).collect();
        out.push_str(&format!(
            "\nThen remove {} from the client's own list, so the model reaches them through \
             codemode only, and restart the client. Check the setup with `codemode --config {} tools`.\n",
            names.join(", "),
            config.display()
        ));
    }
    out
}

/// The JSON of a client's entry for `codemode serve`, keys in the order
/// people write them (command before args), ready to paste.
fn client_entry(
    list: &str,
    kind: Option<&str>,
    exe: &str,
    args: &[String],
    env: &[(String, String)],
) -> String {
    let quote = |text: &str| Value::String(text.to_string()).to_string();
    let mut fields = Vec::new();
    if let Some(kind) = kind {
        fields.push(format!("\"type\": {}", quote(kind)));
    }
    fields.push(format!("\"command\": {}", quote(exe)));
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    fields.push(format!("\"args\": [{}]", args.join(", ")));
    if !env.is_empty() {
        let pairs: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("        {}: {}", quote(k), quote(v)))
            .collect();
        fields.push(format!("\"env\": {{\n{}\n      }}", pairs.join(",\n")));
    }
    let body: Vec<String> = fields.iter().map(|f| format!("      {f}")).collect();
    format!(
        "{{\n  {}: {{\n    \"codemode\": {{\n{}\n    }}\n  }}\n}}\n",
        quote(list),
        body.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<(String, Entry)> {
        mcp_json::parse(text, Path::new("mcp.json")).unwrap().found
    }

    #[test]
    fn secrets_become_references_and_plain_values_stay() {
        let found = vec![Found {
            name: "gh".into(),
            source: 0,
            entry: parse(
                r#"{"mcpServers": {"gh": {"command": "gh-mcp", "args": ["--token", "ghp_1", "--api-key=k2", "--verbose"],
                    "env": {"GITHUB_TOKEN": "ghp_1", "TZ": "UTC", "HOST": "${env:GH_HOST}"}}}}"#,
            )
            .remove(0)
            .1,
        }];
        let sources = vec![Source {
            client: "Cursor".into(),
            path: "/x/mcp.json".into(),
        }];
        let (text, secrets) = render(&found, &sources, true);
        assert!(!text.contains("ghp_1") && !text.contains("k2"), "{text}");
        assert!(
            text.contains(
                r#"args = ["--token", "${GH_TOKEN}", "--api-key=${GH_API_KEY}", "--verbose"]"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"env = { GITHUB_TOKEN = "${GITHUB_TOKEN}", HOST = "${GH_HOST}", TZ = "UTC" }"#
            ),
            "{text}"
        );
        let vars: Vec<&str> = secrets.iter().map(|s| s.var.as_str()).collect();
        assert_eq!(vars, ["GH_TOKEN", "GH_API_KEY", "GITHUB_TOKEN"]);
        Config::parse(&text, Path::new("codemode.toml")).unwrap();
    }

    #[test]
    fn headers_keep_their_scheme_and_input_prompts_become_variables() {
        let found = vec![Found {
            name: "docs".into(),
            source: 0,
            entry: parse(
                r#"{"servers": {"docs": {"type": "http", "url": "https://d/mcp",
                    "headers": {"Authorization": "Bearer abc", "X-Team": "${input:team}"}}}}"#,
            )
            .remove(0)
            .1,
        }];
        let sources = vec![Source {
            client: "VS Code".into(),
            path: "/x/mcp.json".into(),
        }];
        let (text, secrets) = render(&found, &sources, true);
        assert!(
            text.contains(r#"headers = { Authorization = "Bearer ${DOCS_AUTHORIZATION}", X-Team = "${DOCS_TEAM}" }"#),
            "{text}"
        );
        assert_eq!(secrets[1].value, None);
        let (inline, none) = render(&found, &sources, false);
        assert!(inline.contains("Bearer abc") && none.len() == 1, "{inline}");
    }

    #[test]
    fn the_same_key_with_different_values_gets_the_servers_prefix() {
        let entry = |v: &str| Entry {
            command: Some("x".into()),
            args: vec![],
            env: BTreeMap::from([("API_KEY".to_string(), v.to_string())]),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            disabled: false,
        };
        let found = vec![
            Found {
                name: "a".into(),
                source: 0,
                entry: entry("1"),
            },
            Found {
                name: "b".into(),
                source: 0,
                entry: entry("2"),
            },
            Found {
                name: "c".into(),
                source: 0,
                entry: entry("1"),
            },
        ];
        let sources = vec![Source {
            client: "x".into(),
            path: "/x".into(),
        }];
        let (text, secrets) = render(&found, &sources, true);
        let vars: Vec<&str> = secrets.iter().map(|s| s.var.as_str()).collect();
        assert_eq!(vars, ["API_KEY", "B_API_KEY"], "{text}");
    }

    #[test]
    fn one_name_in_two_clients_is_taken_once_or_renamed() {
        let mut found = Vec::new();
        let e = parse(r#"{"mcpServers": {"t": {"command": "x"}}}"#);
        add(&mut found, e.clone(), 0);
        add(&mut found, e, 1);
        add(
            &mut found,
            parse(r#"{"mcpServers": {"t": {"command": "y"}}}"#),
            1,
        );
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["t", "t-2"]);
    }

    #[test]
    fn odd_server_names_are_quoted_keys() {
        assert_eq!(toml_key("my server"), "\"my server\"");
        assert_eq!(toml_key("time-2"), "time-2");
    }
}
