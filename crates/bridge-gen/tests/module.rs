//! The shape of the generated module: names, signatures, bodies, types.

use bridge_gen::{generate, ServerTools};
use serde_json::{json, Value};

fn module(servers: Value) -> String {
    let servers: Vec<ServerTools> = serde_json::from_value(servers).expect("servers");
    generate(&servers)
}

fn one_tool(tool: Value) -> String {
    module(json!([{"name": "srv", "tools": [tool]}]))
}

fn assert_has(module: &str, needle: &str) {
    assert!(module.contains(needle), "missing {needle:?} in:\n{module}");
}

#[test]
fn each_server_is_a_class_with_a_module_level_instance() {
    let m = module(json!([{"name": "news_api", "tools": [{"name": "search"}]}]));
    assert_has(&m, "class _NewsApiServer:\n");
    assert_has(&m, "\nnews_api = _NewsApiServer()\n");
    assert_has(&m, "    def search(self) -> Any:\n");
}

#[test]
fn required_parameters_come_first_and_optional_ones_are_keyword_only() {
    let m = one_tool(json!({
        "name": "fetch",
        "inputSchema": {
            "type": "object",
            "properties": {"limit": {"type": "integer"}, "category": {"type": "string"}},
            "required": ["category"],
        },
    }));
    assert_has(
        &m,
        "def fetch(self, category: str, *, limit: Optional[int] = None) -> Any:",
    );
    assert_has(
        &m,
        "return _invoke(\"srv\", \"fetch\", {\"category\": category}, {\"limit\": limit})",
    );
}

#[test]
fn schema_defaults_and_descriptions_go_in_the_docstring() {
    let m = one_tool(json!({
        "name": "fetch",
        "description": "Fetch things.",
        "inputSchema": {"properties": {"limit": {"type": "integer", "description": "How many", "default": 5}}},
    }));
    assert_has(&m, "        \"\"\"Fetch things.\n\n        Args:\n            limit: How many. Defaults to 5.\n");
}

#[test]
fn tools_without_an_input_schema_take_no_parameters() {
    for schema in [
        json!(null),
        json!({}),
        json!({"type": "object"}),
        json!([1]),
    ] {
        let m = one_tool(json!({"name": "ping", "inputSchema": schema}));
        assert_has(&m, "    def ping(self) -> Any:\n");
        assert_has(&m, "return _invoke(\"srv\", \"ping\", {})\n");
    }
}

#[test]
fn keyword_names_get_a_trailing_underscore_and_travel_unchanged() {
    let m = module(json!([{"name": "class", "tools": [{
        "name": "import",
        "inputSchema": {"properties": {"from": {"type": "string"}}, "required": ["from"]},
    }]}]));
    assert_has(&m, "\nclass_ = _ClassServer()\n");
    assert_has(&m, "    def import_(self, from_: str) -> Any:\n");
    assert_has(
        &m,
        "return _invoke(\"class\", \"import\", {\"from\": from_})",
    );
}

#[test]
fn colliding_tool_names_are_numbered_and_valid_names_keep_theirs() {
    let m = one_tool(json!({"name": "get-item"}));
    assert_has(&m, "def get_item(self)");
    let m = module(json!([{"name": "srv", "tools": [{"name": "get-item"}, {"name": "get_item"}]}]));
    assert_has(
        &m,
        "    def get_item(self) -> Any:\n        \"\"\"Calls the tool \"get_item\"",
    );
    assert_has(
        &m,
        "    def get_item_2(self) -> Any:\n        \"\"\"Calls the tool \"get-item\"",
    );
}

#[test]
fn parameters_named_self_or_colliding_are_renamed() {
    let m = one_tool(json!({
        "name": "t",
        "inputSchema": {"properties": {"self": {}, "my-key": {}, "my_key": {}}},
    }));
    assert_has(&m, "self_: Any = None");
    assert_has(&m, "my_key: Any = None");
    assert_has(&m, "my_key_2: Any = None");
    assert_has(&m, "\"my-key\": my_key_2");
    assert_has(&m, "\"self\": self_");
}

#[test]
fn server_names_that_clash_with_the_module_are_suffixed() {
    let m = module(json!([
        {"name": "call", "tools": []},
        {"name": "ToolError", "tools": []},
        {"name": "json", "tools": []},
        {"name": "print", "tools": []},
    ]));
    for name in ["call_", "ToolError_", "json_", "print_"] {
        assert_has(&m, &format!("\n{name} = _"));
    }
    assert_has(
        &m,
        "\ndef call(server: str, tool: str, /, **arguments: Any) -> Any:\n",
    );
}

#[test]
fn tool_names_that_shadow_type_hint_names_are_suffixed() {
    let m = module(json!([{"name": "srv", "tools": [{"name": "str"}, {"name": "List"}]}]));
    assert_has(&m, "def str_(self)");
    assert_has(&m, "def List_(self)");
}

#[test]
fn non_identifier_keys_use_the_functional_typed_dict_syntax() {
    let m = one_tool(json!({
        "name": "t",
        "inputSchema": {"properties": {"opts": {
            "type": "object",
            "properties": {"my-key": {"type": "string"}, "from": {"type": "integer"}},
        }}},
    }));
    assert_has(
        &m,
        "TOpts = TypedDict(\n    \"TOpts\",\n    {\n        \"from\": int,\n        \"my-key\": str,\n    },\n    total=False,\n)\n",
    );
}

#[test]
fn mixed_required_and_optional_keys_use_a_total_base_class() {
    let m = one_tool(json!({
        "name": "t",
        "inputSchema": {"properties": {"opts": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            "required": ["a"],
        }}},
    }));
    assert_has(
        &m,
        "class _TOptsRequired(TypedDict):\n    a: str\n\n\nclass TOpts(_TOptsRequired, total=False):\n    b: int\n",
    );
    assert!(!m.contains("NotRequired"));
}

/// The `TypedDict`s a module defines, in order (the all-required and
/// all-optional ones these tests use).
fn shapes(module: &str) -> Vec<&str> {
    module
        .lines()
        .filter_map(|l| l.strip_prefix("class "))
        .filter(|l| l.contains("(TypedDict"))
        .filter_map(|l| l.split('(').next())
        .collect()
}

/// An object schema with two required string keys, the first described.
fn article(id_description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": id_description},
            "title": {"type": "string"},
        },
        "required": ["id", "title"],
    })
}

fn returning(tool: &str, output: Value) -> Value {
    json!({"name": tool, "outputSchema": output})
}

#[test]
fn two_tools_returning_identical_objects_share_one_typed_dict() {
    let m = module(json!([{"name": "srv", "tools": [
        returning("get", article("Stable id.")),
        returning("latest", article("Stable id.")),
    ]}]));
    assert_eq!(shapes(&m), ["GetResult"], "{m}");
    assert_has(&m, "def get(self) -> GetResult:");
    assert_has(&m, "def latest(self) -> GetResult:");
}

#[test]
fn objects_that_differ_in_structure_stay_separate() {
    let same = article("Stable id.");
    let mut other_type = same.clone();
    other_type["properties"]["title"]["type"] = json!("integer");
    let mut other_required = same.clone();
    other_required["required"] = json!(["id"]);
    let mut other_key = same.clone();
    other_key["properties"]["name"] = other_key["properties"]["title"].take();
    other_key["properties"]
        .as_object_mut()
        .unwrap()
        .remove("title");
    other_key["required"] = json!(["id", "name"]);
    let mut other_order = same.clone();
    other_order["required"] = json!(["title", "id"]);
    for other in [other_type, other_required, other_key, other_order] {
        let m = module(json!([{"name": "srv", "tools": [
            returning("a", same.clone()),
            returning("b", other.clone()),
        ]}]));
        assert!(m.contains("def b(self) -> BResult:"), "{other}:\n{m}");
        assert!(
            m.contains("class BResult(") || m.contains("class _BResultRequired("),
            "{other}:\n{m}"
        );
    }
}

#[test]
fn objects_that_differ_only_in_field_descriptions_stay_separate() {
    let m = module(json!([{"name": "srv", "tools": [
        returning("get", article("Stable id.")),
        returning("latest", article("Id of the newest article.")),
    ]}]));
    assert_eq!(shapes(&m), ["GetResult", "LatestResult"], "{m}");
    assert_has(&m, "# Id of the newest article.\n    id: str\n");
}

#[test]
fn identical_nested_objects_collapse_with_the_objects_holding_them() {
    let list = json!({
        "type": "object",
        "properties": {"articles": {"type": "array", "items": article("Stable id.")}},
        "required": ["articles"],
    });
    let m = module(json!([{"name": "srv", "tools": [
        returning("latest", list.clone()),
        returning("one", article("Stable id.")),
        returning("search", list),
    ]}]));
    assert_eq!(
        shapes(&m),
        ["LatestResultArticlesItem", "LatestResult"],
        "{m}"
    );
    assert_has(&m, "def one(self) -> LatestResultArticlesItem:");
    assert_has(&m, "def search(self) -> LatestResult:");
}

#[test]
fn identical_nested_objects_in_different_parents_are_defined_once() {
    let with = |extra: &str| {
        json!({
            "type": "object",
            "properties": {"article": article("Stable id."), extra: {"type": "integer"}},
            "required": ["article", extra],
        })
    };
    let m = module(json!([{"name": "srv", "tools": [
        returning("a", with("count")),
        returning("b", with("total")),
    ]}]));
    assert_eq!(shapes(&m), ["AResultArticle", "AResult", "BResult"], "{m}");
    assert_has(
        &m,
        "class BResult(TypedDict):\n    article: \"AResultArticle\"\n",
    );
}

#[test]
fn identical_objects_on_two_servers_are_defined_once() {
    let m = module(json!([
        {"name": "alpha", "tools": [returning("get", article("Stable id."))]},
        {"name": "beta", "tools": [returning("fetch", article("Stable id."))]},
    ]));
    assert_eq!(shapes(&m), ["GetResult"], "{m}");
    assert_has(&m, "def fetch(self) -> GetResult:");
}

#[test]
fn a_parameter_and_a_result_of_one_shape_share_the_parameters_type() {
    let m = module(json!([{"name": "srv", "tools": [{
        "name": "save",
        "inputSchema": {
            "type": "object",
            "properties": {"article": article("Stable id.")},
            "required": ["article"],
        },
        "outputSchema": article("Stable id."),
    }]}]));
    assert_eq!(shapes(&m), ["SaveArticle"], "{m}");
    assert_has(&m, "def save(self, article: SaveArticle) -> SaveArticle:");
}

#[test]
fn a_merged_type_is_named_after_its_first_occurrence_whatever_the_input_order() {
    let servers = |order: [usize; 2], tools: [usize; 2]| {
        let server = |name: &str| {
            let all = [
                returning("a_first", article("Stable id.")),
                returning("b_second", article("Stable id.")),
            ];
            json!({"name": name, "tools": [all[tools[0]].clone(), all[tools[1]].clone()]})
        };
        let all = [server("alpha"), server("beta")];
        module(json!([all[order[0]].clone(), all[order[1]].clone()]))
    };
    let m = servers([0, 1], [0, 1]);
    assert_eq!(shapes(&m), ["AFirstResult"], "{m}");
    for (order, tools) in [([1, 0], [0, 1]), ([0, 1], [1, 0]), ([1, 0], [1, 0])] {
        assert_eq!(servers(order, tools), m, "{order:?} {tools:?}");
    }
}

#[test]
fn the_return_type_comes_from_the_output_schema() {
    let m = one_tool(json!({
        "name": "count",
        "outputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    }));
    assert_has(&m, "class CountResult(TypedDict):\n    n: int\n");
    assert_has(&m, "def count(self) -> CountResult:");
    assert_has(
        &m,
        "return _invoke(\"srv\", \"count\", {})  # type: ignore[no-any-return]\n",
    );
}

#[test]
fn a_wrapped_fastmcp_result_is_typed_as_its_result_property() {
    let m = one_tool(json!({
        "name": "words",
        "outputSchema": {
            "type": "object",
            "properties": {"result": {"type": "array", "items": {"type": "string"}}},
            "x-fastmcp-wrap-result": true,
        },
    }));
    assert_has(&m, "def words(self) -> List[str]:");
}

#[test]
fn a_null_result_is_not_returned() {
    let m = one_tool(json!({
        "name": "fire",
        "outputSchema": {"properties": {"result": {"type": "null"}}, "x-fastmcp-wrap-result": true},
    }));
    assert_has(&m, "    def fire(self) -> None:\n");
    assert_has(&m, "        _invoke(\"srv\", \"fire\", {})\n");
}

#[test]
fn explicitly_open_input_schemas_take_free_keyword_arguments() {
    let m = one_tool(json!({
        "name": "open",
        "inputSchema": {"type": "object", "additionalProperties": {"type": "integer"}},
    }));
    assert_has(&m, "def open(self, **arguments: int) -> Any:");
    assert_has(&m, "_invoke(\"srv\", \"open\", {}, {}, arguments)");
}

#[test]
fn servers_and_tools_are_sorted_by_original_name() {
    let m = module(json!([
        {"name": "zeta", "tools": [{"name": "b"}, {"name": "a"}]},
        {"name": "alpha", "tools": []},
    ]));
    let alpha = m.find("class _AlphaServer").expect("alpha");
    let zeta = m.find("class _ZetaServer").expect("zeta");
    assert!(alpha < zeta);
    assert!(m.find("def a(self)").expect("a") < m.find("def b(self)").expect("b"));
}

#[test]
fn duplicate_names_keep_the_first_occurrence() {
    let m = module(json!([{"name": "s", "tools": [
        {"name": "t", "description": "First of two."},
        {"name": "t", "description": "Second of two."},
    ]}]));
    assert_has(&m, "\"\"\"First of two.\"\"\"");
    assert!(!m.contains("Second of two."));
}

#[test]
fn all_lists_servers_call_search_and_the_errors() {
    let m = module(json!([{"name": "news_api", "tools": []}]));
    assert_has(
        &m,
        "__all__ = [\n    \"news_api\",\n    \"call\",\n    \"search\",\n    \"ToolError\",\n    \"BridgeError\",\n]\n",
    );
}

#[test]
fn the_module_uses_only_the_standard_library() {
    let m = module(json!([]));
    for line in m
        .lines()
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
    {
        let module = line.split_whitespace().nth(1).expect("module name");
        let top = module.split('.').next().expect("top-level module");
        assert!(
            [
                "http",
                "json",
                "os",
                "select",
                "socket",
                "threading",
                "urllib",
                "typing"
            ]
            .contains(&top),
            "unexpected import: {line}"
        );
    }
}

#[test]
fn the_transport_reads_the_bridge_environment_at_call_time() {
    let m = module(json!([]));
    for needle in [
        "\"CODEMODE_BRIDGE_URL\"",
        "\"CODEMODE_BRIDGE_TOKEN\"",
        "\"CODEMODE_BRIDGE_TIMEOUT\"",
        "headers[\"Authorization\"] = f\"Bearer {token}\"",
        "conn.request(method, base + endpoint, body=body, headers=headers)",
        "_send(\"POST\", \"/rpc\", body, server, tool)",
    ] {
        assert_has(&m, needle);
    }
}
