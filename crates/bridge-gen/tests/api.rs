//! Each server's API as `get_api` shows it, cut by the generator itself.

use bridge_gen::{generate_module, Module, ServerTools, ToolSpec};
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

fn api<'a>(module: &'a Module, server: &str) -> &'a str {
    &module
        .servers
        .iter()
        .find(|s| s.name == server)
        .unwrap_or_else(|| panic!("no api for {server}"))
        .api
}

/// The names of the module's top-level `TypedDict`s whose name starts with `prefix`.
fn shapes_starting(module: &str, prefix: &str) -> Vec<String> {
    module
        .lines()
        .filter_map(|line| {
            let name = line
                .strip_prefix("class ")
                .and_then(|rest| {
                    rest.split('(').next().filter(|_| {
                        rest.contains("TypedDict")
                            || rest.contains("total=False")
                            || rest.contains("Required")
                    })
                })
                .or_else(|| line.split_once(" = TypedDict(").map(|(name, _)| name))?;
            name.trim_start_matches('_')
                .starts_with(prefix)
                .then(|| name.to_string())
        })
        .collect()
}

#[test]
fn the_module_text_is_what_generate_returns() {
    let servers = servers();
    assert_eq!(
        generate_module(&servers).text,
        bridge_gen::generate(&servers)
    );
}

#[test]
fn a_server_api_has_its_class_its_shapes_and_no_plumbing() {
    let module = generate_module(&servers());
    let news = api(&module, "news");
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
    let latest = shapes_starting(&module.text, "Latest");
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
    let module = generate_module(&servers());
    let other = api(&module, "news-api");
    let attr = &module
        .servers
        .iter()
        .find(|s| s.name == "news-api")
        .unwrap()
        .attr;
    assert_ne!(attr, "news");
    assert!(
        other
            .lines()
            .next()
            .unwrap()
            .ends_with(&format!("import {attr}`")),
        "{other}"
    );
    assert!(
        module.text.contains(&format!("\n{attr} = ")),
        "{attr} not in the module"
    );
    assert!(other.contains("def ping(self)"), "{other}");
    let plain = api(&module, "plain");
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
    let module = generate_module(&servers);
    assert!(api(&module, "empty").contains("class _EmptyServer:"));
    assert!(api(&module, "plain").contains("def echo("));
    let news = module.servers.iter().find(|s| s.name == "news").unwrap();
    assert_eq!(news.attr, "news");
}

#[test]
fn an_api_defines_its_shapes_before_the_class_that_names_them() {
    let module = generate_module(&servers());
    for server in &module.servers {
        // The server's class is the last class of its API.
        let class_at = server.api.rfind("\nclass _").unwrap();
        for shape in shapes_starting(&server.api, "") {
            let defined_at = server
                .api
                .find(&format!("class {shape}"))
                .or_else(|| server.api.find(&format!("{shape} = TypedDict")))
                .unwrap();
            assert!(
                defined_at < class_at,
                "{shape} after the class:\n{}",
                server.api
            );
        }
    }
}
