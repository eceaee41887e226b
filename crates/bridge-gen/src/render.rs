//! Servers and tools → the text of `mcp_tools.py`: header, manifest, runtime,
//! `TypedDict`s, one class and instance per server, one method per tool.

use serde_json::Value;

use crate::docs;
use crate::literal;
use crate::manifest;
use crate::naming::{self, Namespace, Style};
use crate::types::{self, Converter, PyType, Registry, TypedDictDef};
use crate::{Detail, Module, ServerApi, ServerTools, ToolSpec};
use std::collections::BTreeSet;

/// The transport, errors and `call`: the same in every generated module.
const RUNTIME: &str = include_str!("runtime.py");

/// Signatures longer than this are written one parameter per line.
const LINE_WIDTH: usize = 88;

/// One parameter of a tool method.
struct Param {
    /// The property name the tool knows (sent on the wire).
    key: String,
    /// The Python parameter name.
    name: String,
    ty: PyType,
    required: bool,
    description: Option<String>,
    default: Option<Value>,
}

/// Free-form keyword arguments, for schemas that explicitly allow keys
/// beyond their properties.
struct Extra {
    name: String,
    ty: PyType,
}

/// Everything needed to write one tool's method.
struct ToolPlan<'a> {
    spec: &'a ToolSpec,
    method: String,
    params: Vec<Param>,
    extra: Option<Extra>,
    returns: PyType,
    returns_doc: Option<String>,
}

struct ServerPlan<'a> {
    original: &'a str,
    attr: String,
    class: String,
    tools: Vec<ToolPlan<'a>>,
}

/// The names the runtime defines at module level, read from its source so
/// the reserved list can never fall behind an edit of `runtime.py`.
pub(crate) fn runtime_globals() -> Vec<String> {
    let mut names = Vec::new();
    for line in RUNTIME.lines() {
        let first_word = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        if let Some(rest) = line
            .strip_prefix("def ")
            .or_else(|| line.strip_prefix("class "))
        {
            names.push(first_word(rest));
        } else if let Some(rest) = line.strip_prefix("import ") {
            names.push(rest.rsplit(' ').next().unwrap_or(rest).to_string());
        } else if let Some(rest) = line.strip_prefix("from ") {
            if let Some((_, imported)) = rest.split_once(" import ") {
                names.extend(imported.split(',').map(|n| n.trim().to_string()));
            }
        } else if line.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            names.push(first_word(line));
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// Sorted by original name, first occurrence of a duplicate kept.
fn sorted_unique<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| name(a).cmp(name(b)));
    sorted.dedup_by(|b, a| name(a) == name(b));
    sorted
}

pub(crate) fn module(servers: &[ServerTools]) -> Module {
    let servers = sorted_unique(servers, |s| s.name.as_str());
    let mut module_ns = Namespace::module(&runtime_globals());

    let originals: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let attrs = naming::assign(&originals, "server", &mut module_ns);
    let mut skeletons = Vec::new();
    for (server, attr) in servers.iter().zip(attrs) {
        let class = module_ns.claim(
            &format!("_{}Server", naming::camel(&attr, "Server")),
            Style::Camel,
        );
        let tools = sorted_unique(&server.tools, |t| t.name.as_str());
        let mut method_ns = Namespace::with_reserved(naming::ANNOTATION_NAMES.iter().copied());
        let tool_names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        let methods = naming::assign(&tool_names, "tool", &mut method_ns);
        skeletons.push((server, attr, class, tools, methods));
    }

    // `TypedDict` names live at module level but are used in hints inside
    // the server classes, where a method of the same name would shadow them.
    let mut type_ns = module_ns;
    for (_, _, _, _, methods) in &skeletons {
        type_ns.reserve_all(methods.iter().map(String::as_str));
    }
    let mut registry = Registry::new(type_ns);

    let plans: Vec<ServerPlan> = skeletons
        .into_iter()
        .map(|(server, attr, class, tools, methods)| ServerPlan {
            original: &server.name,
            attr,
            class,
            tools: tools
                .into_iter()
                .zip(methods)
                .map(|(spec, method)| plan_tool(&mut registry, spec, method))
                .collect(),
        })
        .collect();

    let mut out = String::new();
    out.push_str(&header(&plans));
    for server in &plans {
        for tool in &server.tools {
            out.push_str(&manifest::line(
                server.original,
                &tool.spec.name,
                &manifest::fingerprint(tool.spec),
            ));
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(RUNTIME);
    let defs = std::mem::take(&mut registry.defs);
    let shapes: Vec<(&str, String)> = defs
        .iter()
        .map(|def| (def.name.as_str(), typed_dict(&mut registry, def)))
        .collect();
    if !shapes.is_empty() {
        out.push_str("\n\n# Shapes of the objects the tools take and return.\n");
        for (_, text) in &shapes {
            out.push_str("\n\n");
            out.push_str(text);
        }
    }
    for server in &plans {
        out.push_str("\n\n");
        out.push_str(&server_class(server));
    }
    out.push_str("\n\n");
    out.push_str(&all_list(&plans));
    Module {
        text: out,
        servers: plans.iter().map(|plan| server_api(plan, &shapes)).collect(),
    }
}

/// One server's part of the module as a model reads it: the shapes its
/// methods name (and the shapes those name), its class with signatures and
/// docstrings but not the plumbing, and the instance scripts import.
fn server_api(server: &ServerPlan, shapes: &[(&str, String)]) -> ServerApi {
    let mut class = format!("class {}:\n", server.class);
    let doc = format!(
        "The tools of the MCP server {} ({}).",
        literal::string(server.original),
        plural(server.tools.len(), "tool", "tools")
    );
    class.push_str(&format!(
        "    \"\"\"{}\"\"\"\n\n",
        literal::docstring_body(&doc)
    ));
    for (i, tool) in server.tools.iter().enumerate() {
        if i > 0 {
            class.push('\n');
        }
        class.push_str(&tool_def(server.original, tool, "    ", Body::Elided));
    }
    let mut api = format!(
        "# The Python API of server {:?}: `from mcp_tools import {}`\n\n",
        server.original, server.attr
    );
    for (_, text) in shapes_named(&class, shapes) {
        api.push_str(text.trim_end());
        api.push_str("\n\n\n");
    }
    api.push_str(class.trim_end());
    api.push_str(&format!("\n\n\n{} = {}()\n", server.attr, server.class));
    ServerApi {
        name: server.original.to_string(),
        attr: server.attr.clone(),
        api,
    }
}

/// The shapes `text` names, with the shapes those name in turn, in module
/// order (which defines each before the shapes that use it by name).
fn shapes_named<'a>(text: &str, shapes: &'a [(&str, String)]) -> Vec<&'a (&'a str, String)> {
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    let mut pending: Vec<&str> = vec![text];
    while let Some(text) = pending.pop() {
        let words: BTreeSet<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        for (name, shape) in shapes {
            if words.contains(name) && wanted.insert(name) {
                pending.push(shape);
            }
        }
    }
    shapes
        .iter()
        .filter(|(name, _)| wanted.contains(name))
        .collect()
}

fn plan_tool<'a>(registry: &mut Registry, spec: &'a ToolSpec, method: String) -> ToolPlan<'a> {
    let tool_hint = naming::camel(&method, "Tool");
    let root = &spec.input_schema;
    // A root that is itself a `$ref` (rare, but legal) is followed once.
    let schema = match root.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with('#') => root.pointer(&r[1..]).unwrap_or(root),
        _ => root,
    };
    let empty = serde_json::Map::new();
    let object = schema.as_object().unwrap_or(&empty);
    let props = types::object_properties(object);
    let keys: Vec<&str> = props.iter().map(|(k, _, _)| *k).collect();
    let mut param_ns = Namespace::with_reserved(["self"]);
    let names = naming::assign(&keys, "arg", &mut param_ns);
    let mut input = Converter::new(registry, root);
    let params: Vec<Param> = props
        .into_iter()
        .zip(names)
        .map(|((key, prop, required), name)| {
            let hint = format!("{tool_hint}{}", naming::camel(&name, "Arg"));
            Param {
                key: key.to_string(),
                ty: input.convert(prop, &hint),
                name,
                required,
                description: prop
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                default: prop.get("default").cloned(),
            }
        })
        .collect();
    let extra = match object.get("additionalProperties") {
        Some(Value::Bool(true)) => Some(PyType::Any),
        Some(extra @ Value::Object(_)) => Some(input.convert(extra, &format!("{tool_hint}Extra"))),
        _ => None,
    }
    .map(|ty| Extra {
        name: param_ns.claim("arguments", Style::Snake),
        ty,
    });

    let (returns, returns_doc) = match &spec.output_schema {
        Some(output) => {
            let wrapped = output.get("x-fastmcp-wrap-result") == Some(&Value::Bool(true));
            let schema = if wrapped {
                output.pointer("/properties/result").unwrap_or(&Value::Null)
            } else {
                output
            };
            let doc = schema
                .get("description")
                .or_else(|| output.get("description"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let hint = format!("{tool_hint}Result");
            let ty = Converter::new(registry, output).convert(schema, &hint);
            (ty, doc)
        }
        None => (PyType::Any, None),
    };
    ToolPlan {
        spec,
        method,
        params,
        extra,
        returns,
        returns_doc,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn header(plans: &[ServerPlan]) -> String {
    let mut doc = String::from(
        "MCP tools as Python functions, for codemode scripts.\n\n\
         Generated by `codemode gen-bridge`. Do not edit: regenerate instead.\n\n\
         Each server is an object and each of its tools a method. Calls go to the\n\
         codemode bridge named by CODEMODE_BRIDGE_URL (with CODEMODE_BRIDGE_TOKEN),\n\
         and a tool that fails raises ToolError (with .kind and .message).\n",
    );
    if let Some((server, tool)) = plans.iter().find_map(|s| s.tools.first().map(|t| (s, t))) {
        doc.push_str(&format!(
            "\nUsage:\n    from mcp_tools import {}\n    result = {}.{}(...)\n",
            server.attr, server.attr, tool.method
        ));
    }
    doc.push_str("\nServers:\n");
    if plans.is_empty() {
        doc.push_str("    (none)\n");
    }
    for server in plans {
        // Original names go through a string literal: one line, whatever
        // they contain, so nothing can forge a line of the manifest.
        let original = if server.original == server.attr {
            String::new()
        } else {
            format!(" (server {})", literal::string(server.original))
        };
        doc.push_str(&format!(
            "    {}{}: {}\n",
            server.attr,
            original,
            plural(server.tools.len(), "tool", "tools")
        ));
    }
    format!("\"\"\"{}\"\"\"\n", literal::docstring_body(&doc))
}

fn all_list(plans: &[ServerPlan]) -> String {
    let mut names: Vec<&str> = plans.iter().map(|s| s.attr.as_str()).collect();
    names.extend(["call", "search", "ToolError", "BridgeError"]);
    let mut out = String::from("__all__ = [\n");
    for name in names {
        out.push_str(&format!("    {},\n", literal::string(name)));
    }
    out.push_str("]\n");
    out
}

/// Identifier-like words in a rendered hint, to spot keys that would shadow
/// a name the hint uses.
fn hint_words(hint: &str) -> impl Iterator<Item = &str> {
    hint.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

fn typed_dict(registry: &mut Registry, def: &TypedDictDef) -> String {
    let hints: Vec<String> = def.fields.iter().map(|f| f.ty.render(true)).collect();
    let class_syntax = def.fields.iter().all(|f| {
        naming::is_identifier(&f.key)
            // `__x` in a class body is name-mangled to `_Class__x`.
            && !f.key.starts_with("__")
            && !hints.iter().any(|h| hint_words(h).any(|w| w == f.key))
    });
    let fields: Vec<(&types::Field, &String)> = def.fields.iter().zip(&hints).collect();
    let required: Vec<_> = fields.iter().filter(|(f, _)| f.required).copied().collect();
    let optional: Vec<_> = fields
        .iter()
        .filter(|(f, _)| !f.required)
        .copied()
        .collect();

    let class_body = |fields: &[(&types::Field, &String)]| -> String {
        let mut body = String::new();
        for (field, hint) in fields {
            if !field.comment.is_empty() {
                body.push_str(&format!("    # {}\n", field.comment));
            }
            body.push_str(&format!("    {}: {}\n", field.key, hint));
        }
        if body.is_empty() {
            body.push_str("    pass\n");
        }
        body
    };
    let functional = |name: &str, fields: &[(&types::Field, &String)], total: bool| -> String {
        let mut out = format!(
            "{name} = TypedDict(\n    {},\n    {{\n",
            literal::string(name)
        );
        for (field, hint) in fields {
            if !field.comment.is_empty() {
                out.push_str(&format!("        # {}\n", field.comment));
            }
            out.push_str(&format!(
                "        {}: {},\n",
                literal::string(&field.key),
                hint
            ));
        }
        out.push_str("    },\n");
        if !total {
            out.push_str("    total=False,\n");
        }
        out.push_str(")\n");
        out
    };

    let name = &def.name;
    match (class_syntax, required.is_empty(), optional.is_empty()) {
        (true, _, true) => format!("class {name}(TypedDict):\n{}", class_body(&required)),
        (true, true, false) => format!(
            "class {name}(TypedDict, total=False):\n{}",
            class_body(&optional)
        ),
        (true, false, false) => {
            // Required and optional keys in one TypedDict without
            // `NotRequired` (3.11+): a total base and a non-total subclass.
            let base = registry
                .names_mut()
                .claim(&format!("_{name}Required"), Style::Camel);
            format!(
                "class {base}(TypedDict):\n{}\n\nclass {name}({base}, total=False):\n{}",
                class_body(&required),
                class_body(&optional)
            )
        }
        (false, _, true) => functional(name, &required, true),
        (false, true, false) => functional(name, &optional, false),
        (false, false, false) => {
            let required_base = registry
                .names_mut()
                .claim(&format!("_{name}Required"), Style::Camel);
            let optional_base = registry
                .names_mut()
                .claim(&format!("_{name}Optional"), Style::Camel);
            format!(
                "{}\n\n{}\n\nclass {name}({required_base}, {optional_base}):\n    pass\n",
                functional(&required_base, &required, true),
                functional(&optional_base, &optional, false),
            )
        }
    }
}

fn server_class(server: &ServerPlan) -> String {
    let mut out = format!("class {}:\n", server.class);
    let doc = format!(
        "The tools of the MCP server {} ({}).",
        literal::string(server.original),
        plural(server.tools.len(), "tool", "tools")
    );
    out.push_str(&format!(
        "    \"\"\"{}\"\"\"\n\n",
        literal::docstring_body(&doc)
    ));
    out.push_str("    def __repr__(self) -> str:\n");
    out.push_str(&format!(
        "        return {}\n",
        literal::string(&format!("<mcp_tools server {}>", server.original))
    ));
    for tool in &server.tools {
        out.push('\n');
        out.push_str(&tool_def(server.original, tool, "    ", Body::Invoke));
    }
    out.push_str(&format!("\n\n{} = {}()\n", server.attr, server.class));
    out
}

/// What a tool's `def` holds after its docstring.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// The method's call through the bridge: the module scripts import.
    Invoke,
    /// `...`: a method as a model reads it, in a server's API.
    Elided,
    /// Nothing: a free function showing how to call the tool
    /// ([`Detail::Full`]).
    None,
}

/// One tool as a `def`: a method of its server class, or a free function.
fn tool_def(server: &str, tool: &ToolPlan, indent: &str, body: Body) -> String {
    let with_self = body != Body::None;
    let mut params: Vec<String> = Vec::new();
    if with_self {
        params.push("self".into());
    }
    for p in tool.params.iter().filter(|p| p.required) {
        params.push(format!("{}: {}", p.name, p.ty.render(false)));
    }
    let optional: Vec<&Param> = tool.params.iter().filter(|p| !p.required).collect();
    if !optional.is_empty() {
        params.push("*".into());
    }
    for p in &optional {
        params.push(format!(
            "{}: {} = None",
            p.name,
            p.ty.clone().optional().render(false)
        ));
    }
    if let Some(extra) = &tool.extra {
        params.push(format!("**{}: {}", extra.name, extra.ty.render(false)));
    }
    let returns = tool.returns.render(false);
    let one_line = format!(
        "{indent}def {}({}) -> {returns}:",
        tool.method,
        params.join(", ")
    );
    let mut out = if one_line.len() <= LINE_WIDTH {
        one_line + "\n"
    } else {
        let mut s = format!("{indent}def {}(\n", tool.method);
        for p in &params {
            s.push_str(&format!("{indent}    {p},\n"));
        }
        s.push_str(&format!("{indent}) -> {returns}:\n"));
        s
    };
    let body_indent = format!("{indent}    ");
    out.push_str(&docstring(&method_doc(server, tool), &body_indent));
    match body {
        Body::Invoke => out.push_str(&invocation(server, tool, &body_indent)),
        Body::Elided => out.push_str(&format!("{body_indent}...\n")),
        Body::None => {}
    }
    out
}

/// The docstring of a tool method, Google style.
fn method_doc(server: &str, tool: &ToolPlan) -> String {
    let mut doc = match tool.spec.description.as_deref().map(docs::clean) {
        Some(d) if !d.is_empty() => d,
        _ => format!(
            "Calls the tool {} of the MCP server {}.",
            literal::string(&tool.spec.name),
            literal::string(server)
        ),
    };
    if tool.method != tool.spec.name {
        doc.push_str(&format!(
            "\n\nMCP tool name: {}.",
            literal::string(&tool.spec.name)
        ));
    }
    if !tool.params.is_empty() || tool.extra.is_some() {
        doc.push_str("\n\nArgs:");
        for p in &tool.params {
            let mut text = p
                .description
                .as_deref()
                .map(docs::clean)
                .unwrap_or_default();
            let mut notes = Vec::new();
            if p.name != p.key {
                notes.push(format!("Sent as {}.", literal::string(&p.key)));
            }
            // A `None` default is what the signature already says.
            if let Some(default) = p.default.as_ref().filter(|d| !d.is_null()) {
                let mut shown = literal::value(default);
                if shown.chars().count() > 200 {
                    shown = shown.chars().take(200).collect::<String>() + "...";
                }
                notes.push(format!("Defaults to {shown}."));
            }
            if !notes.is_empty() {
                if !text.is_empty() {
                    if !text.ends_with(['.', '!', '?', ':']) {
                        text.push('.');
                    }
                    text.push(if text.contains('\n') { '\n' } else { ' ' });
                }
                text.push_str(&notes.join(" "));
            }
            if text.is_empty() {
                text = "No description.".into();
            }
            doc.push_str(&format!(
                "\n    {}: {}",
                p.name,
                indent_rest(&text, "        ")
            ));
        }
        if let Some(extra) = &tool.extra {
            doc.push_str(&format!(
                "\n    **{}: Further arguments, sent as given.",
                extra.name
            ));
        }
    }
    if let Some(returns) = tool.returns_doc.as_deref().map(docs::clean) {
        if !returns.is_empty() {
            doc.push_str(&format!(
                "\n\nReturns:\n    {}",
                indent_rest(&returns, "    ")
            ));
        }
    }
    doc
}

/// Indents every line but the first (which follows a label).
fn indent_rest(text: &str, indent: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(indent);
            }
        }
        out.push_str(line);
    }
    out
}

fn docstring(text: &str, indent: &str) -> String {
    let body = literal::docstring_body(text);
    if !body.contains('\n') {
        return format!("{indent}\"\"\"{body}\"\"\"\n");
    }
    let mut out = format!("{indent}\"\"\"");
    for (i, line) in body.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(indent);
            }
        }
        out.push_str(line);
    }
    out.push_str(&format!("\n{indent}\"\"\"\n"));
    out
}

/// The method body: hand the arguments to `_invoke` under their wire names.
fn invocation(server: &str, tool: &ToolPlan, indent: &str) -> String {
    let entries = |required: bool| -> Vec<String> {
        tool.params
            .iter()
            .filter(|p| p.required == required)
            .map(|p| format!("{}: {}", literal::string(&p.key), p.name))
            .collect()
    };
    let mut args = vec![
        literal::string(server),
        literal::string(&tool.spec.name),
        format!("{{{}}}", entries(true).join(", ")),
    ];
    let optional = entries(false);
    if !optional.is_empty() || tool.extra.is_some() {
        args.push(format!("{{{}}}", optional.join(", ")));
    }
    if let Some(extra) = &tool.extra {
        args.push(extra.name.clone());
    }
    // `_invoke` returns Any; mypy --strict wants that acknowledged whenever
    // the hint is narrower. A `cast` would need the hint's names inside the
    // method, where parameters could shadow them; the comment cannot clash.
    let (lead, ignore) = match tool.returns {
        PyType::Any => ("return ", ""),
        PyType::None => ("", ""),
        _ => ("return ", "  # type: ignore[no-any-return]"),
    };
    let one_line = format!("{indent}{lead}_invoke({}){ignore}", args.join(", "));
    if one_line.len() - ignore.len() <= LINE_WIDTH {
        return one_line + "\n";
    }
    // Black's layout: one argument per line, a dict split further only when
    // it does not fit on its line either.
    let inner = format!("{indent}    ");
    let mut out = format!("{indent}{lead}_invoke({ignore}\n");
    let dict = |items: Vec<String>| -> String {
        let flat = format!("{{{}}}", items.join(", "));
        if inner.len() + flat.len() < LINE_WIDTH {
            return flat;
        }
        let mut s = String::from("{\n");
        for item in items {
            s.push_str(&format!("{inner}    {item},\n"));
        }
        s.push_str(&format!("{inner}}}"));
        s
    };
    out.push_str(&format!("{inner}{},\n", literal::string(server)));
    out.push_str(&format!("{inner}{},\n", literal::string(&tool.spec.name)));
    out.push_str(&format!("{inner}{},\n", dict(entries(true))));
    if !optional.is_empty() || tool.extra.is_some() {
        out.push_str(&format!("{inner}{},\n", dict(optional)));
    }
    if let Some(extra) = &tool.extra {
        out.push_str(&format!("{inner}{},\n", extra.name));
    }
    out.push_str(&format!("{indent})\n"));
    out
}

pub(crate) fn signature(server: &str, tool: &ToolSpec, detail: Detail) -> String {
    let mut module_ns = Namespace::module(&runtime_globals());
    let attr = naming::assign(&[server], "server", &mut module_ns).remove(0);
    let mut method_ns = Namespace::with_reserved(naming::ANNOTATION_NAMES.iter().copied());
    let method = naming::assign(&[tool.name.as_str()], "tool", &mut method_ns).remove(0);
    let name = format!("{attr}.{method}");
    match detail {
        Detail::Name => name,
        Detail::Summary => {
            let summary = docs::summary_line(tool.description.as_deref());
            if summary.is_empty() {
                name
            } else {
                format!("{name}: {summary}")
            }
        }
        Detail::Full => {
            module_ns.reserve_all([method.as_str()]);
            let mut registry = Registry::new(module_ns);
            let plan = plan_tool(&mut registry, tool, method);
            let mut out = format!("# {name}\n");
            let defs = std::mem::take(&mut registry.defs);
            for def in &defs {
                out.push_str(&typed_dict(&mut registry, def));
                out.push('\n');
            }
            out.push_str(&tool_def(server, &plan, "", Body::None));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_globals_are_read_from_the_runtime_source() {
        let names = runtime_globals();
        for expected in [
            "_invoke",
            "call",
            "ToolError",
            "BridgeError",
            "_state",
            "_URL_ENV",
            "_http_client",
            "_json",
            "Any",
            "TypedDict",
            "_UnixHTTPConnection",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not in {names:?}"
            );
        }
        assert!(names.iter().all(|n| naming::is_identifier(n)), "{names:?}");
    }

    #[test]
    fn long_signatures_wrap_one_parameter_per_line() {
        let tool = ToolSpec {
            name: "t".into(),
            description: None,
            input_schema: serde_json::json!({"properties": {
                "a_rather_long_parameter_name": {"type": "string"},
                "another_rather_long_parameter_name": {"type": "string"},
            }}),
            output_schema: None,
        };
        let module = module(&[ServerTools {
            name: "s".into(),
            tools: vec![tool],
        }])
        .text;
        assert!(
            module.contains(
                "    def t(\n        self,\n        *,\n        a_rather_long_parameter_name: Optional[str] = None,\n"
            ),
            "{module}"
        );
    }
}
