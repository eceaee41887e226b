//! The public API as the `codemode` binary uses it.

mod common;

use std::collections::BTreeMap;

use bridge_gen::{
    diff, generate, manifest, summary_line, tool_signature, Detail, ManifestDiff, ServerTools,
    ToolSpec,
};
use common::{random_input_schema, random_text, random_value, Rng};
use serde_json::json;

fn news_tool() -> ToolSpec {
    serde_json::from_value(json!({
        "name": "fetch_latest",
        "description": "Fetch the latest news. Newest first.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "category": {"type": "string", "description": "The category."},
                "limit": {"type": "integer", "default": 5},
                "filter": {
                    "type": "object",
                    "properties": {"since": {"type": "string"}},
                },
            },
            "required": ["category"],
        },
    }))
    .expect("tool")
}

fn server(name: &str, tools: Vec<ToolSpec>) -> ServerTools {
    ServerTools {
        name: name.into(),
        tools,
    }
}

#[test]
fn raw_tools_list_objects_deserialize_with_camel_case_schemas() {
    let tool: ToolSpec = serde_json::from_value(json!({
        "name": "t",
        "title": "ignored",
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": true},
    }))
    .expect("tool");
    assert_eq!(tool.input_schema, json!({"type": "object"}));
    assert_eq!(tool.output_schema, Some(json!({"type": "object"})));
    assert_eq!(tool.description, None);
}

#[test]
fn snake_case_fields_and_a_missing_input_schema_are_accepted() {
    let tool: ToolSpec =
        serde_json::from_value(json!({"name": "t", "output_schema": {"type": "object"}}))
            .expect("tool");
    assert_eq!(tool.input_schema, json!({}));
    assert!(tool.output_schema.is_some());
}

#[test]
fn name_detail_is_the_dotted_python_path() {
    assert_eq!(
        tool_signature("news_api", &news_tool(), Detail::Name),
        "news_api.fetch_latest"
    );
}

#[test]
fn name_detail_uses_python_names_for_odd_originals() {
    let mut tool = news_tool();
    tool.name = "fetch-latest".into();
    assert_eq!(
        tool_signature("news-api", &tool, Detail::Name),
        "news_api.fetch_latest"
    );
    assert_eq!(
        tool_signature("json", &tool, Detail::Name),
        "json_.fetch_latest"
    );
}

#[test]
fn summary_detail_adds_the_first_sentence() {
    assert_eq!(
        tool_signature("news_api", &news_tool(), Detail::Summary),
        "news_api.fetch_latest: Fetch the latest news."
    );
}

#[test]
fn summary_detail_without_a_description_is_just_the_name() {
    let mut tool = news_tool();
    tool.description = None;
    assert_eq!(
        tool_signature("news_api", &tool, Detail::Summary),
        "news_api.fetch_latest"
    );
}

#[test]
fn full_detail_is_the_def_with_its_typed_dicts_and_docstring() {
    let full = tool_signature("news_api", &news_tool(), Detail::Full);
    assert!(full.starts_with("# news_api.fetch_latest\n"), "{full}");
    assert!(
        full.contains("class FetchLatestFilter(TypedDict, total=False):"),
        "{full}"
    );
    assert!(full.contains("def fetch_latest("), "{full}");
    assert!(full.contains("category: str,"), "{full}");
    assert!(full.contains("limit: Optional[int] = None,"), "{full}");
    assert!(
        full.contains("filter: Optional[FetchLatestFilter] = None,"),
        "{full}"
    );
    assert!(
        full.contains("Fetch the latest news. Newest first."),
        "{full}"
    );
    assert!(full.contains("limit: Defaults to 5."), "{full}");
    assert!(!full.contains("self"), "{full}");
    assert!(!full.contains("_invoke"), "{full}");
}

#[test]
fn full_detail_defines_a_shape_two_parameters_share_once() {
    let point =
        json!({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]});
    let tool: ToolSpec = serde_json::from_value(json!({
        "name": "draw",
        "inputSchema": {
            "type": "object",
            "properties": {"start": point, "end": point},
            "required": ["start", "end"],
        },
    }))
    .expect("tool");
    let full = tool_signature("canvas", &tool, Detail::Full);
    assert_eq!(full.matches("(TypedDict)").count(), 1, "{full}");
    assert!(
        full.contains("def draw(start: DrawStart, end: DrawStart) -> Any:"),
        "{full}"
    );
}

#[test]
fn summary_line_is_public_and_trims() {
    assert_eq!(summary_line(Some("  One.  Two. ")), "One.");
    assert_eq!(summary_line(None), "");
}

#[test]
fn manifest_reads_back_what_generate_wrote() {
    let module = generate(&[server("news_api", vec![news_tool()])]);
    let listed = manifest(&module);
    assert_eq!(listed.len(), 1);
    let fingerprint = &listed["news_api.fetch_latest"];
    assert_eq!(fingerprint.len(), 16);
    assert!(module.contains(&format!(
        "# codemode-tool: news_api.fetch_latest {fingerprint}\n"
    )));
}

#[test]
fn manifest_of_unrelated_text_is_empty() {
    assert!(manifest("print('hello')\n# codemode-tool:\n").is_empty());
}

#[test]
fn diff_sees_added_removed_and_changed_tools() {
    let mut search = news_tool();
    search.name = "search".into();
    let old = manifest(&generate(&[server("news_api", vec![news_tool(), search])]));

    let mut changed = news_tool();
    changed.description = Some("Now different.".into());
    let mut added = news_tool();
    added.name = "trending".into();
    let new = manifest(&generate(&[server("news_api", vec![changed, added])]));

    assert_eq!(
        diff(&old, &new),
        ManifestDiff {
            added: vec!["news_api.trending".into()],
            removed: vec!["news_api.search".into()],
            changed: vec!["news_api.fetch_latest".into()],
        }
    );
}

#[test]
fn diff_of_equal_manifests_is_empty() {
    let m = manifest(&generate(&[server("news_api", vec![news_tool()])]));
    assert_eq!(diff(&m, &m), ManifestDiff::default());
    assert_eq!(
        diff(&BTreeMap::new(), &BTreeMap::new()),
        ManifestDiff::default()
    );
}

#[test]
fn a_schema_change_changes_the_fingerprint_but_key_order_does_not() {
    let a: ToolSpec = serde_json::from_str(
        r#"{"name": "t", "inputSchema": {"type": "object", "properties": {"x": {}, "y": {}}}}"#,
    )
    .expect("tool");
    let b: ToolSpec = serde_json::from_str(
        r#"{"name": "t", "inputSchema": {"properties": {"y": {}, "x": {}}, "type": "object"}}"#,
    )
    .expect("tool");
    let mut c = a.clone();
    c.input_schema["properties"]["x"] = json!({"type": "string"});
    let fp = |t: &ToolSpec| manifest(&generate(&[server("s", vec![t.clone()])]))["s.t"].clone();
    assert_eq!(fp(&a), fp(&b));
    assert_ne!(fp(&a), fp(&c));
}

#[test]
fn an_empty_server_list_still_gives_a_module() {
    let module = generate(&[]);
    assert!(module.contains("Generated by `codemode gen-bridge`"));
    assert!(module.contains("def call("));
    assert!(module.contains(
        "__all__ = [\n    \"call\",\n    \"search\",\n    \"ToolError\",\n    \"BridgeError\",\n]"
    ));
    assert!(manifest(&module).is_empty());
}

#[test]
fn the_header_lists_servers_and_tool_counts() {
    let module = generate(&[
        server("news_api", vec![news_tool()]),
        server("empty", vec![]),
    ]);
    assert!(module.contains("    empty: 0 tools\n"), "{module}");
    assert!(module.contains("    news_api: 1 tool\n"), "{module}");
}

#[test]
fn generate_and_signatures_never_panic_on_arbitrary_values() {
    let mut rng = Rng::new(0x5eed_0001);
    for round in 0..1500 {
        let input_schema = if round % 3 == 0 {
            random_input_schema(&mut rng)
        } else {
            random_value(&mut rng, 5)
        };
        let tool = ToolSpec {
            name: random_text(&mut rng),
            description: Some(random_text(&mut rng)).filter(|_| rng.chance(70)),
            input_schema,
            output_schema: Some(random_value(&mut rng, 4)).filter(|_| rng.chance(60)),
        };
        let module = generate(&[server(&random_text(&mut rng), vec![tool.clone()])]);
        assert_eq!(manifest(&module).len(), 1, "round {round}");
        for detail in [Detail::Name, Detail::Summary, Detail::Full] {
            let _ = tool_signature("s", &tool, detail);
        }
    }
}

#[test]
fn deeply_nested_schemas_are_cut_off_instead_of_overflowing() {
    let mut schema = json!({"type": "string"});
    for _ in 0..2000 {
        schema = json!({"type": "array", "items": schema});
    }
    let tool = ToolSpec {
        name: "deep".into(),
        description: None,
        input_schema: json!({"type": "object", "properties": {"x": schema}}),
        output_schema: None,
    };
    let module = generate(&[server("s", vec![tool])]);
    assert!(module.contains("List[List["));
    assert!(module.contains("Any]"));
}
