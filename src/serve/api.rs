//! One server's part of `mcp_tools.py`, for `get_api`: its class with the
//! methods' signatures and docstrings, and the `TypedDict`s they use, cut out
//! of the very module the sandbox imports, so the names a model reads are the
//! names its code will call (collision suffixes included).

use std::collections::{BTreeMap, BTreeSet};

use bridge_gen::ServerTools;

/// A top-level statement of the module: a class, a def, an assignment.
struct Block {
    /// The name it defines (`Article`, `_NewsServer`, `news`).
    name: String,
    text: String,
}

/// Each server's API text, by its configured name.
pub struct ServerApis {
    apis: BTreeMap<String, String>,
    /// Configured name → the module attribute scripts import.
    attrs: BTreeMap<String, String>,
}

impl ServerApis {
    /// Cuts `module` (generated from `servers`) into one API text per server.
    pub fn new(servers: &[ServerTools], module: &str) -> ServerApis {
        let runtime: BTreeSet<String> = blocks(&bridge_gen::generate(&[]))
            .into_iter()
            .map(|b| b.name)
            .collect();
        let blocks: Vec<Block> = blocks(module)
            .into_iter()
            .filter(|b| !runtime.contains(&b.name))
            .collect();
        // `news = _NewsServer()`: the module-level instance of each server class.
        let instances: Vec<(&Block, String)> = blocks
            .iter()
            .filter_map(|b| {
                let (_, rhs) = b.text.trim().split_once(" = ")?;
                let class = rhs.strip_suffix("()")?;
                (class.starts_with('_') && is_identifier(class)).then(|| (b, class.to_string()))
            })
            .collect();
        let server_classes: BTreeSet<&str> = instances.iter().map(|(_, c)| c.as_str()).collect();
        let shapes: Vec<&Block> = blocks
            .iter()
            .filter(|b| {
                !server_classes.contains(b.name.as_str())
                    && !instances.iter().any(|(i, _)| i.name == b.name)
            })
            .collect();

        // The module lists servers sorted by their configured names, as the
        // catalog holds them; each instance follows its class.
        let mut names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut apis = BTreeMap::new();
        let mut attrs = BTreeMap::new();
        if names.len() == instances.len() {
            for (name, (instance, class)) in names.into_iter().zip(&instances) {
                let Some(class_block) = blocks.iter().find(|b| &b.name == class) else {
                    continue;
                };
                let class_text = without_bodies(&class_block.text);
                let used = shapes_used(&class_text, &shapes);
                let mut text = format!(
                    "# The Python API of server {name:?}: `from mcp_tools import {}`\n\n",
                    instance.name
                );
                for shape in used {
                    text.push_str(shape.text.trim_end());
                    text.push_str("\n\n\n");
                }
                text.push_str(class_text.trim_end());
                text.push_str("\n\n\n");
                text.push_str(instance.text.trim_end());
                text.push('\n');
                apis.insert(name.to_string(), text);
                attrs.insert(name.to_string(), instance.name.clone());
            }
        } else {
            tracing::warn!(
                "the stub module lists {} servers, the catalog {}: get_api will not answer",
                instances.len(),
                names.len()
            );
        }
        ServerApis { apis, attrs }
    }

    pub fn attrs(&self) -> &BTreeMap<String, String> {
        &self.attrs
    }

    pub fn get(&self, server: &str) -> Option<&str> {
        self.apis.get(server).map(String::as_str)
    }
}

/// The module's top-level statements. A statement starts on a line at column
/// 0 outside a triple-quoted string (the header docstring has such lines);
/// closing brackets at column 0 belong to the statement they close, and
/// comment lines belong to none.
fn blocks(module: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut current: Option<Block> = None;
    let mut in_string = false;
    for line in module.lines() {
        let starts = !in_string
            && line
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && !")]}".contains(c));
        // Docstring bodies escape any quote next to another, so an unescaped
        // `"""` only ever opens or closes a string.
        if line.matches("\"\"\"").count() % 2 == 1 {
            in_string = !in_string;
        }
        if starts {
            blocks.extend(current.take());
            if line.starts_with('#') {
                continue;
            }
            current = Some(Block {
                name: defined_name(line),
                text: String::new(),
            });
        }
        if let Some(block) = current.as_mut() {
            block.text.push_str(line);
            block.text.push('\n');
        }
    }
    blocks.extend(current);
    blocks
}

fn defined_name(line: &str) -> String {
    let rest = line
        .strip_prefix("class ")
        .or_else(|| line.strip_prefix("def "))
        .unwrap_or(line);
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The class with `__repr__` and each method's `return _invoke(...)` left
/// out: a model reading the API needs the signatures and docstrings, not the
/// plumbing, and every line left out is context it keeps.
fn without_bodies(class: &str) -> String {
    let mut out = String::new();
    let mut lines = class.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("def __repr__(") {
            // The def, its one-line body and the blank line after it.
            lines.next();
            if lines.peek().is_some_and(|l| l.trim().is_empty()) {
                lines.next();
            }
            continue;
        }
        if let Some(arguments) = line.strip_prefix("        return _invoke(") {
            out.push_str("        ...\n");
            // `return _invoke(  # type: ignore[...]` opens a call over several
            // lines, which ends with `)` back at the body's indent.
            let opens_block = arguments
                .split("  #")
                .next()
                .unwrap_or("")
                .trim()
                .is_empty();
            if opens_block {
                for inner in lines.by_ref() {
                    if inner == "        )" {
                        break;
                    }
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The shapes `text` names, with the shapes those name in turn, in module
/// order (which defines each before the shapes that use it by name).
fn shapes_used<'a>(text: &str, shapes: &[&'a Block]) -> Vec<&'a Block> {
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    let mut pending: Vec<String> = vec![text.to_string()];
    while let Some(text) = pending.pop() {
        let words: BTreeSet<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        for shape in shapes {
            if words.contains(shape.name.as_str()) && wanted.insert(shape.name.as_str()) {
                pending.push(shape.text.clone());
            }
        }
    }
    shapes
        .iter()
        .copied()
        .filter(|s| wanted.contains(s.name.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_gen::ToolSpec;
    use serde_json::json;

    fn tool(name: &str, input: serde_json::Value, output: Option<serde_json::Value>) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: Some(format!("Does {name}.")),
            input_schema: input,
            output_schema: output,
        }
    }

    fn servers() -> Vec<ServerTools> {
        let article = json!({"type": "object", "properties": {
            "title": {"type": "string"}, "tags": {"type": "array", "items": {
                "type": "object", "title": "Tag", "properties": {"name": {"type": "string"}}, "required": ["name"]}}
        }, "required": ["title"]});
        vec![
            ServerTools {
                name: "news".into(),
                tools: vec![
                    tool(
                        "latest",
                        json!({"type": "object", "properties": {"limit": {"type": "integer"}}}),
                        Some(
                            json!({"type": "object", "title": "Article", "properties": {"article": article}, "required": ["article"]}),
                        ),
                    ),
                    tool(
                        "search",
                        json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
                        None,
                    ),
                ],
            },
            ServerTools {
                name: "news-api".into(),
                tools: vec![tool("ping", json!({"type": "object"}), None)],
            },
            ServerTools {
                name: "plain".into(),
                tools: vec![
                    // A typed one-line call ends in `# type: ignore[...]`, not `)`.
                    tool(
                        "echo",
                        json!({"type": "object", "properties": {"text": {"type": "string"}}}),
                        Some(json!({"type": "object", "properties": {"text": {"type": "string"}}})),
                    ),
                    tool("zeta", json!({"type": "object"}), None),
                ],
            },
        ]
    }

    #[test]
    fn a_server_api_has_its_class_its_shapes_and_no_plumbing() {
        let servers = servers();
        let module = bridge_gen::generate(&servers);
        let apis = ServerApis::new(&servers, &module);
        let news = apis.get("news").expect("news api");
        assert!(news.contains("`from mcp_tools import news`"), "{news}");
        assert!(news.contains("    def latest("), "{news}");
        assert!(
            news.contains("    def search(self, q: str) -> Any:"),
            "{news}"
        );
        assert!(news.contains("Does latest."), "{news}");
        assert!(news.contains("\nnews = _NewsServer()\n"), "{news}");
        assert!(!news.contains("_invoke"), "{news}");
        assert!(!news.contains("__repr__"), "{news}");
        // The result's shapes, nested ones included, and nothing of the runtime.
        let latest = module_shapes(&module);
        let latest: Vec<&String> = latest
            .iter()
            .filter(|s| s.trim_start_matches('_').starts_with("Latest"))
            .collect();
        assert!(latest.len() >= 3, "{latest:?}");
        for shape in latest {
            assert!(
                news.contains(&format!("class {shape}"))
                    || news.contains(&format!("{shape} = TypedDict")),
                "{shape} missing:\n{news}"
            );
        }
        assert!(!news.contains("class ToolError"), "{news}");
        assert!(
            !news.contains("echo") && !news.contains("EchoResult"),
            "{news}"
        );
    }

    #[test]
    fn colliding_server_names_keep_the_modules_suffixes() {
        let servers = servers();
        let module = bridge_gen::generate(&servers);
        let apis = ServerApis::new(&servers, &module);
        let other = apis.get("news-api").expect("news-api api");
        let import = other.lines().next().unwrap().to_string();
        let attr = import
            .rsplit("import ")
            .next()
            .unwrap()
            .trim_end_matches('`');
        assert!(
            module.contains(&format!("\n{attr} = ")),
            "{attr} not in the module"
        );
        assert!(other.contains("def ping(self)"), "{other}");
        let plain = apis.get("plain").unwrap();
        assert!(plain.contains("def echo("), "{plain}");
        assert!(plain.contains("def zeta(self) -> Any:"), "{plain}");
        assert!(!plain.contains("_invoke"), "{plain}");
    }

    #[test]
    fn a_server_without_tools_keeps_the_others_in_step() {
        let mut servers = servers();
        servers.insert(
            0,
            ServerTools {
                name: "empty".into(),
                tools: vec![],
            },
        );
        let module = bridge_gen::generate(&servers);
        let apis = ServerApis::new(&servers, &module);
        assert!(apis.get("empty").unwrap().contains("class _EmptyServer:"));
        assert!(apis.get("plain").unwrap().contains("def echo("));
        assert_eq!(apis.attrs()["news"], "news");
    }

    fn module_shapes(module: &str) -> Vec<String> {
        let runtime: BTreeSet<String> = blocks(&bridge_gen::generate(&[]))
            .into_iter()
            .map(|b| b.name)
            .collect();
        blocks(module)
            .into_iter()
            .filter(|b| {
                !runtime.contains(&b.name)
                    && !b.name.ends_with("Server")
                    && !b.text.contains("Server()")
            })
            .filter(|b| b.text.contains("TypedDict") || b.text.contains("total=False"))
            .map(|b| b.name)
            .collect()
    }
}
