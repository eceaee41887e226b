//! JSON Schema → Python type hints, and the `TypedDict`s that object schemas
//! with properties become.
//!
//! Anything the mapping cannot express faithfully becomes `Any`: a hint that is
//! too loose only costs the script author a little help, one that is too
//! strict makes valid calls fail `mypy`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::docs;
use crate::literal;
use crate::manifest::canonical_json;
use crate::naming::{self, Namespace, Style};

/// Nesting deeper than this is `Any`: real schemas stay far below it, and it
/// keeps hostile ones from recursing without end.
const MAX_DEPTH: usize = 24;
/// Schema nodes visited per document before everything else becomes `Any`.
const MAX_NODES: usize = 20_000;
/// Enums longer than this are typed by their values' base types instead of a
/// `Literal` nobody could read.
const MAX_LITERALS: usize = 256;
/// Longest derived class name; longer hints are cut (the namespace keeps the
/// result unique).
const MAX_CLASS_NAME: usize = 80;

/// A Python type hint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PyType {
    Any,
    Str,
    Int,
    Float,
    Bool,
    None,
    List(Box<PyType>),
    /// `Dict[str, T]`
    Dict(Box<PyType>),
    Literal(Vec<Lit>),
    Union(Vec<PyType>),
    /// A `TypedDict` defined in the module.
    Named(String),
}

/// A value a `Literal[...]` can hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Lit {
    Str(String),
    /// The integer's decimal spelling (Python ints have no size limit).
    Int(String),
    Bool(bool),
}

impl PyType {
    /// `Optional[Union[a, b]]`-free unions: flattened, deduplicated, `Any`
    /// absorbing everything (mypy treats a union with `Any` as `Any`, and the
    /// generated `return` relies on knowing when a hint is exactly `Any`),
    /// literals merged into one `Literal[...]`.
    pub(crate) fn union(members: Vec<PyType>) -> PyType {
        let mut flat: Vec<PyType> = Vec::new();
        let mut lits: Vec<Lit> = Vec::new();
        let mut stack: Vec<PyType> = members.into_iter().rev().collect();
        while let Some(member) = stack.pop() {
            match member {
                PyType::Any => return PyType::Any,
                PyType::Union(inner) => stack.extend(inner.into_iter().rev()),
                PyType::Literal(values) => {
                    if lits.is_empty() && !flat.iter().any(|m| matches!(m, PyType::Literal(_))) {
                        // Keeps the literal where it first appeared.
                        flat.push(PyType::Literal(Vec::new()));
                    }
                    for v in values {
                        if !lits.contains(&v) {
                            lits.push(v);
                        }
                    }
                }
                other => {
                    if !flat.contains(&other) {
                        flat.push(other);
                    }
                }
            }
        }
        let mut flat: Vec<PyType> = flat
            .into_iter()
            .filter_map(|m| match m {
                PyType::Literal(_) if lits.is_empty() => None,
                PyType::Literal(_) => Some(PyType::Literal(std::mem::take(&mut lits))),
                other => Some(other),
            })
            .collect();
        // `None` last reads as `Optional` and renders as one.
        if let Some(i) = flat.iter().position(|m| *m == PyType::None) {
            let none = flat.remove(i);
            flat.push(none);
        }
        match flat.len() {
            0 => PyType::Any,
            1 => flat.pop().unwrap_or(PyType::Any),
            _ => PyType::Union(flat),
        }
    }

    pub(crate) fn optional(self) -> PyType {
        PyType::union(vec![self, PyType::None])
    }

    /// The hint as Python source. `quote_named` writes `TypedDict` names as
    /// forward references, for use inside `TypedDict` bodies where the named
    /// class may not be defined yet (or be the class itself).
    pub(crate) fn render(&self, quote_named: bool) -> String {
        match self {
            PyType::Any => "Any".into(),
            PyType::Str => "str".into(),
            PyType::Int => "int".into(),
            PyType::Float => "float".into(),
            PyType::Bool => "bool".into(),
            PyType::None => "None".into(),
            PyType::List(item) => format!("List[{}]", item.render(quote_named)),
            PyType::Dict(value) => format!("Dict[str, {}]", value.render(quote_named)),
            PyType::Literal(values) => {
                let values: Vec<String> = values.iter().map(Lit::render).collect();
                format!("Literal[{}]", values.join(", "))
            }
            PyType::Union(members) => {
                let rendered: Vec<String> = members.iter().map(|m| m.render(quote_named)).collect();
                match members.as_slice() {
                    [_, PyType::None] => format!("Optional[{}]", rendered[0]),
                    _ => format!("Union[{}]", rendered.join(", ")),
                }
            }
            PyType::Named(name) if quote_named => format!("\"{name}\""),
            PyType::Named(name) => name.clone(),
        }
    }
}

impl Lit {
    fn render(&self) -> String {
        match self {
            Lit::Str(s) => literal::string(s),
            Lit::Int(i) => i.clone(),
            Lit::Bool(true) => "True".into(),
            Lit::Bool(false) => "False".into(),
        }
    }
}

/// One key of a `TypedDict`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Field {
    pub key: String,
    pub ty: PyType,
    pub required: bool,
    /// A one-line summary of the property's description.
    pub comment: String,
}

/// A `TypedDict` to define in the module.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypedDictDef {
    pub name: String,
    /// Everything the definition renders apart from its name; two objects
    /// with the same fields are one `TypedDict` (see [`Registry`]).
    pub fields: Vec<Field>,
}

/// The module's `TypedDict`s, in an order where each is defined after the
/// ones it uses (except for recursion, which the quoted hints cover).
///
/// Structurally identical objects are defined once, wherever they occur (in
/// one tool, across tools, across servers). Two objects are identical when
/// their fields are: the same keys in the same order, each with the same
/// hint, the same required-ness and the same comment (the summary of the
/// property's description that the definition shows): the rendered
/// definitions are the same text but for the name. Comments take part
/// because they are what the model reads about a field: shapes that differ
/// only in their descriptions stay apart, so merging never drops or
/// misattributes a description. Nested objects are converted (and merged)
/// before the object holding them, so their hints already name the merged
/// type and identical nesting collapses level by level. The schemas'
/// `title`s and the tools' names do not count: they are not rendered, and
/// TypedDicts are structural types anyway.
///
/// The merged type keeps the name of its first occurrence in module order
/// (servers, then tools, by original name; input before output; fields in
/// their order), which is where a reader of the module meets it first; the
/// names later occurrences would have had are given back. Which occurrence
/// comes first depends only on the sorted input, so the output stays
/// deterministic, and a type that is not merged keeps its name.
#[derive(Debug)]
pub(crate) struct Registry {
    names: Namespace,
    pub defs: Vec<TypedDictDef>,
    /// Each definition's fields → its index in `defs`, to find an identical
    /// earlier definition without comparing against every one.
    by_fields: HashMap<Vec<Field>, usize>,
    /// `$defs` entries already converted, keyed by their content and that of
    /// the document they live in, so several tools sharing a model share
    /// one `TypedDict`.
    shared: HashMap<String, PyType>,
}

impl Registry {
    pub(crate) fn new(names: Namespace) -> Self {
        Registry {
            names,
            defs: Vec::new(),
            by_fields: HashMap::new(),
            shared: HashMap::new(),
        }
    }

    /// The module namespace the `TypedDict` names were claimed in, for
    /// helper classes the rendering needs.
    pub(crate) fn names_mut(&mut self) -> &mut Namespace {
        &mut self.names
    }
}

/// The properties of an object schema, required ones first in the order
/// the schema's `required` lists them (that order is the author's), then
/// the optional ones sorted by name (map order must not leak into output).
pub(crate) fn object_properties(schema: &Map<String, Value>) -> Vec<(&str, &Value, bool)> {
    static ANY: Value = Value::Bool(true);
    let props = schema.get("properties").and_then(Value::as_object);
    let mut out: Vec<(&str, &Value, bool)> = Vec::new();
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if out.iter().any(|(k, _, _)| *k == key) {
                continue;
            }
            let prop = props.and_then(|p| p.get(key)).unwrap_or(&ANY);
            out.push((key, prop, true));
        }
    }
    if let Some(props) = props {
        let mut optional: Vec<(&str, &Value)> = props
            .iter()
            .filter(|(k, _)| !out.iter().any(|(r, _, _)| r == k))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        optional.sort_by(|a, b| a.0.cmp(b.0));
        out.extend(optional.into_iter().map(|(k, v)| (k, v, false)));
    }
    out
}

/// Whether an object schema allows keys beyond its `properties`
/// explicitly (`additionalProperties: true` or a schema). JSON Schema's
/// implicit default is ignored: nearly every real schema leaves it out.
fn explicitly_open(schema: &Map<String, Value>) -> bool {
    match schema.get("additionalProperties") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(_)) => true,
        _ => schema.contains_key("patternProperties"),
    }
}

/// Whether a schema becomes a `TypedDict`: a plain object with properties.
/// Kept in one place because `$ref` resolution must know it in advance to
/// name recursive definitions.
fn is_typed_dict_shape(schema: &Map<String, Value>) -> bool {
    let plain = [
        "$ref", "enum", "const", "anyOf", "oneOf", "allOf", "nullable",
    ]
    .iter()
    .all(|k| !schema.contains_key(*k));
    let is_object = match schema.get("type") {
        None => true,
        Some(Value::String(t)) => t == "object",
        Some(_) => false,
    };
    let has_props = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    plain && is_object && has_props && !explicitly_open(schema)
}

/// A `$ref` seen while converting one document.
#[derive(Debug, Clone)]
enum RefState {
    /// Being converted; a recursive reference gets this name (or `Any`
    /// when the target is not a `TypedDict` and so cannot be referred to).
    InProgress(Option<String>),
    Done(PyType),
}

/// Converts the schemas of one document (a tool's input or output schema),
/// against whose root `$ref`s resolve. One per document, so `$ref`s it
/// resolved once are not resolved again for the next parameter.
pub(crate) struct Converter<'r, 'v> {
    registry: &'r mut Registry,
    root: &'v Value,
    refs: HashMap<String, RefState>,
    /// Canonical text of the root's definitions, computed on first need.
    root_defs_key: Option<String>,
    nodes: usize,
}

impl<'r, 'v> Converter<'r, 'v> {
    pub(crate) fn new(registry: &'r mut Registry, root: &'v Value) -> Self {
        Converter {
            registry,
            root,
            refs: HashMap::new(),
            root_defs_key: None,
            nodes: 0,
        }
    }

    /// The type hint for `schema` (part of this document); object types get
    /// names from `hint`.
    pub(crate) fn convert(&mut self, schema: &Value, hint: &str) -> PyType {
        self.ty(schema, hint, 0)
    }

    fn ty(&mut self, schema: &Value, hint: &str, depth: usize) -> PyType {
        self.nodes += 1;
        if depth > MAX_DEPTH || self.nodes > MAX_NODES {
            return PyType::Any;
        }
        let Value::Object(map) = schema else {
            return PyType::Any;
        };
        if is_typed_dict_shape(map) {
            return self.inline_typed_dict(map, hint, depth);
        }
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let ty = self.reference(reference, depth);
            return nullable(map, ty);
        }
        if let Some(constant) = map.get("const") {
            return nullable(map, literal_union(std::slice::from_ref(constant)));
        }
        if let Some(values) = map.get("enum").and_then(Value::as_array) {
            return nullable(map, literal_union(values));
        }
        let base = self.declared_type(map, hint, depth);
        // `anyOf` and `oneOf` mean the same to a type hint (and a schema
        // with both is rare enough to read only the first).
        let alternatives = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| map.get(*k).and_then(Value::as_array))
            .map(|members| {
                let tys = members
                    .iter()
                    .map(|m| self.ty(m, hint, depth + 1))
                    .collect::<Vec<_>>();
                PyType::union(tys)
            })
            .next();
        let mut ty = match alternatives {
            // Members that only add constraints (`{"required": [...]}`) say
            // nothing about the type; the declared one then stands.
            Some(PyType::Any) | None => base,
            Some(union) => union,
        };
        if ty == PyType::Any {
            if let Some(members) = map.get("allOf").and_then(Value::as_array) {
                ty = self.all_of(map, members, hint, depth);
            }
        }
        nullable(map, ty)
    }

    /// The type from the `type` keyword, or guessed from `properties` /
    /// `items` when it is missing.
    fn declared_type(&mut self, map: &Map<String, Value>, hint: &str, depth: usize) -> PyType {
        match map.get("type") {
            Some(Value::String(t)) => self.named_type(t, map, hint, depth),
            Some(Value::Array(types)) => {
                let tys = types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some(t) => self.named_type(t, map, hint, depth),
                        None => PyType::Any,
                    })
                    .collect();
                PyType::union(tys)
            }
            Some(_) => PyType::Any,
            None if map.contains_key("properties") || map.contains_key("additionalProperties") => {
                self.named_type("object", map, hint, depth)
            }
            None if map.contains_key("items") || map.contains_key("prefixItems") => {
                self.named_type("array", map, hint, depth)
            }
            None => PyType::Any,
        }
    }

    fn named_type(
        &mut self,
        t: &str,
        map: &Map<String, Value>,
        hint: &str,
        depth: usize,
    ) -> PyType {
        match t {
            "string" => PyType::Str,
            "integer" => PyType::Int,
            "number" => PyType::Float,
            "boolean" => PyType::Bool,
            "null" => PyType::None,
            "array" => PyType::List(Box::new(self.items(map, hint, depth))),
            "object" => self.object(map, hint, depth),
            _ => PyType::Any,
        }
    }

    fn items(&mut self, map: &Map<String, Value>, hint: &str, depth: usize) -> PyType {
        let item_hint = format!("{hint}Item");
        let tuple = map
            .get("prefixItems")
            .or_else(|| map.get("items").filter(|i| i.is_array()));
        if let Some(Value::Array(members)) = tuple {
            let tys = members
                .iter()
                .map(|m| self.ty(m, &item_hint, depth + 1))
                .collect();
            return PyType::union(tys);
        }
        match map.get("items") {
            Some(items) => self.ty(items, &item_hint, depth + 1),
            None => PyType::Any,
        }
    }

    fn object(&mut self, map: &Map<String, Value>, hint: &str, depth: usize) -> PyType {
        let has_props = map
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_props && !explicitly_open(map) {
            return self.inline_typed_dict(map, hint, depth);
        }
        match map.get("additionalProperties") {
            Some(extra @ Value::Object(_)) if !has_props => {
                let value = self.ty(extra, &format!("{hint}Value"), depth + 1);
                PyType::Dict(Box::new(value))
            }
            _ => PyType::Dict(Box::new(PyType::Any)),
        }
    }

    fn inline_typed_dict(&mut self, map: &Map<String, Value>, hint: &str, depth: usize) -> PyType {
        let name = self.registry.names.claim(&class_name(hint), Style::Camel);
        self.typed_dict(name, map, depth)
    }

    /// Defines the `TypedDict` `name` (already claimed) from an object
    /// schema, or reuses an identical one defined before (the rule is on
    /// [`Registry`]).
    ///
    /// Reuse is safe: an identical earlier definition can only refer to
    /// older names, so nothing built here refers to `name`, which is given
    /// back. For the same reason a recursive object, whose fields name
    /// itself, is never merged with an earlier one of the same structure.
    fn typed_dict(&mut self, name: String, map: &Map<String, Value>, depth: usize) -> PyType {
        let mut fields = Vec::new();
        for (key, prop, required) in object_properties(map) {
            let hint = format!("{name}{}", naming::camel(key, "Value"));
            let ty = self.ty(prop, &hint, depth + 1);
            let description = prop.get("description").and_then(Value::as_str);
            fields.push(Field {
                key: key.to_string(),
                ty,
                required,
                comment: docs::summary_line(description),
            });
        }
        if let Some(&existing) = self.registry.by_fields.get(&fields) {
            let reused = PyType::Named(self.registry.defs[existing].name.clone());
            self.registry.names.release(&name);
            return reused;
        }
        self.registry
            .by_fields
            .insert(fields.clone(), self.registry.defs.len());
        self.registry.defs.push(TypedDictDef {
            name: name.clone(),
            fields,
        });
        PyType::Named(name)
    }

    fn reference(&mut self, reference: &str, depth: usize) -> PyType {
        match self.refs.get(reference) {
            Some(RefState::Done(ty)) => return ty.clone(),
            Some(RefState::InProgress(Some(name))) => return PyType::Named(name.clone()),
            Some(RefState::InProgress(None)) => return PyType::Any,
            None => {}
        }
        let Some(target) = resolve(self.root, reference) else {
            return PyType::Any;
        };
        let shared_key = format!(
            "{}\u{0}{}\u{0}{}",
            reference,
            canonical_json(target),
            self.root_defs_key()
        );
        if let Some(ty) = self.registry.shared.get(&shared_key) {
            let ty = ty.clone();
            self.refs
                .insert(reference.to_string(), RefState::Done(ty.clone()));
            return ty;
        }
        let hint = ref_hint(reference);
        let ty = match target {
            Value::Object(map) if is_typed_dict_shape(map) => {
                let name = self.registry.names.claim(&class_name(&hint), Style::Camel);
                self.refs.insert(
                    reference.to_string(),
                    RefState::InProgress(Some(name.clone())),
                );
                self.typed_dict(name, map, depth + 1)
            }
            _ => {
                self.refs
                    .insert(reference.to_string(), RefState::InProgress(None));
                self.ty(target, &hint, depth + 1)
            }
        };
        self.refs
            .insert(reference.to_string(), RefState::Done(ty.clone()));
        self.registry.shared.insert(shared_key, ty.clone());
        ty
    }

    fn root_defs_key(&mut self) -> &str {
        let root = self.root;
        self.root_defs_key.get_or_insert_with(|| {
            let defs: Vec<String> = ["$defs", "definitions"]
                .iter()
                .map(|k| root.get(*k).map(canonical_json).unwrap_or_default())
                .collect();
            defs.join("\u{0}")
        })
    }

    /// `allOf`: one member is that member; several object members are merged
    /// into one object; anything else is beyond a type hint.
    fn all_of(
        &mut self,
        map: &Map<String, Value>,
        members: &[Value],
        hint: &str,
        depth: usize,
    ) -> PyType {
        if let [only] = members {
            return self.ty(only, hint, depth + 1);
        }
        let mut properties = Map::new();
        let mut required: Vec<Value> = Vec::new();
        let mut parts: Vec<&Map<String, Value>> = vec![map];
        for member in members {
            match self.follow_refs(member) {
                Some(Value::Object(m)) => parts.push(m),
                _ => return PyType::Any,
            }
        }
        for part in parts {
            let typed_object = match part.get("type") {
                None => true,
                Some(Value::String(t)) => t == "object",
                Some(_) => false,
            };
            if !typed_object || part.contains_key("anyOf") || part.contains_key("oneOf") {
                return PyType::Any;
            }
            if let Some(props) = part.get("properties").and_then(Value::as_object) {
                let mut keys: Vec<&String> = props.keys().collect();
                keys.sort();
                for key in keys {
                    if !properties.contains_key(key) {
                        properties.insert(key.clone(), props[key].clone());
                    }
                }
            }
            if let Some(req) = part.get("required").and_then(Value::as_array) {
                required.extend(req.iter().filter(|r| r.is_string()).cloned());
            }
        }
        if properties.is_empty() {
            return PyType::Dict(Box::new(PyType::Any));
        }
        let mut merged = Map::new();
        merged.insert("type".into(), Value::String("object".into()));
        merged.insert("properties".into(), Value::Object(properties));
        merged.insert("required".into(), Value::Array(required));
        self.ty(&Value::Object(merged), hint, depth + 1)
    }

    fn follow_refs<'s>(&self, mut schema: &'s Value) -> Option<&'s Value>
    where
        'v: 's,
    {
        for _ in 0..8 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => schema = resolve(self.root, r)?,
                None => return Some(schema),
            }
        }
        None
    }
}

/// `enum` / `const` values → `Literal[...]` where Python allows it; floats
/// add `float`, and objects or arrays make the whole thing `Any`.
fn literal_union(values: &[Value]) -> PyType {
    if values.is_empty() {
        return PyType::Any;
    }
    let mut members = Vec::new();
    let mut lits = Vec::new();
    for v in values {
        match v {
            Value::Null => members.push(PyType::None),
            Value::Bool(b) => lits.push(Lit::Bool(*b)),
            Value::String(s) => lits.push(Lit::Str(s.clone())),
            // mypy keeps literal ints in 64 bits; beyond that only `int` works.
            Value::Number(n) => match n.as_i64() {
                Some(i) if i != i64::MIN => lits.push(Lit::Int(i.to_string())),
                _ if n.is_u64() || n.is_i64() => members.push(PyType::Int),
                _ => members.push(PyType::Float),
            },
            Value::Array(_) | Value::Object(_) => return PyType::Any,
        }
    }
    if lits.len() > MAX_LITERALS {
        for lit in lits.drain(..) {
            members.push(match lit {
                Lit::Str(_) => PyType::Str,
                Lit::Int(_) => PyType::Int,
                Lit::Bool(_) => PyType::Bool,
            });
        }
    }
    if !lits.is_empty() {
        members.insert(0, PyType::Literal(lits));
    }
    PyType::union(members)
}

fn nullable(map: &Map<String, Value>, ty: PyType) -> PyType {
    if map.get("nullable") == Some(&Value::Bool(true)) {
        ty.optional()
    } else {
        ty
    }
}

/// Resolves a local reference (`#`, `#/$defs/X`, any `#/json/pointer`);
/// references to other documents are not followed.
fn resolve<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

/// `#/$defs/NewsArticle` → `NewsArticle`.
fn ref_hint(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or("");
    let last = last.replace("~1", "/").replace("~0", "~");
    naming::camel(&last, "Model")
}

fn class_name(hint: &str) -> String {
    let mut name = naming::camel(hint, "Model");
    if name.len() > MAX_CLASS_NAME {
        name.truncate(MAX_CLASS_NAME);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The rendered hint for `schema` (converted as its own document) and
    /// the `TypedDict`s it needed.
    fn convert(schema: Value) -> (String, Vec<TypedDictDef>) {
        let mut registry = Registry::new(Namespace::default());
        let ty = Converter::new(&mut registry, &schema).convert(&schema, "Tool");
        (ty.render(false), registry.defs)
    }

    fn hint(schema: Value) -> String {
        convert(schema).0
    }

    /// The hint for property `key` of `root`, with `$ref`s resolving in `root`.
    fn property_hint(root: Value, key: &str) -> (String, Vec<TypedDictDef>) {
        let mut registry = Registry::new(Namespace::default());
        let ty = Converter::new(&mut registry, &root).convert(&root["properties"][key], "Tool");
        (ty.render(false), registry.defs)
    }

    fn field_hints(def: &TypedDictDef) -> Vec<(String, String, bool)> {
        def.fields
            .iter()
            .map(|f| (f.key.clone(), f.ty.render(true), f.required))
            .collect()
    }

    #[test]
    fn primitive_types_map_to_builtins() {
        assert_eq!(hint(json!({"type": "string"})), "str");
        assert_eq!(hint(json!({"type": "integer"})), "int");
        assert_eq!(hint(json!({"type": "number"})), "float");
        assert_eq!(hint(json!({"type": "boolean"})), "bool");
        assert_eq!(hint(json!({"type": "null"})), "None");
    }

    #[test]
    fn arrays_are_lists_of_their_items() {
        assert_eq!(
            hint(json!({"type": "array", "items": {"type": "integer"}})),
            "List[int]"
        );
        assert_eq!(hint(json!({"type": "array"})), "List[Any]");
        assert_eq!(
            hint(
                json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]})
            ),
            "List[Union[str, int]]"
        );
    }

    #[test]
    fn free_form_objects_are_dicts() {
        assert_eq!(hint(json!({"type": "object"})), "Dict[str, Any]");
        assert_eq!(
            hint(json!({"type": "object", "properties": {}})),
            "Dict[str, Any]"
        );
        assert_eq!(
            hint(json!({"type": "object", "additionalProperties": {"type": "number"}})),
            "Dict[str, float]"
        );
    }

    #[test]
    fn objects_with_properties_become_typed_dicts_with_required_keys_first() {
        let (ty, defs) = convert(json!({
            "type": "object",
            "properties": {"b": {"type": "integer"}, "a": {"type": "string"}, "z": {}},
            "required": ["z", "b"],
        }));
        assert_eq!(ty, "Tool");
        assert_eq!(defs.len(), 1);
        assert_eq!(
            field_hints(&defs[0]),
            [
                ("z".into(), "Any".into(), true),
                ("b".into(), "int".into(), true),
                ("a".into(), "str".into(), false),
            ]
        );
    }

    #[test]
    fn nested_objects_get_names_from_their_path() {
        let (_, defs) = convert(json!({
            "properties": {"range": {"properties": {"start": {"type": "string"}}}},
        }));
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["ToolRange", "Tool"]);
        assert_eq!(field_hints(&defs[1])[0].1, "\"ToolRange\"");
    }

    #[test]
    fn explicitly_open_objects_with_properties_stay_dicts() {
        let schema = json!({"properties": {"a": {}}, "additionalProperties": true});
        assert_eq!(hint(schema), "Dict[str, Any]");
    }

    #[test]
    fn enums_and_consts_are_literals() {
        assert_eq!(hint(json!({"enum": ["a", "b"]})), "Literal[\"a\", \"b\"]");
        assert_eq!(hint(json!({"const": 3})), "Literal[3]");
        assert_eq!(
            hint(json!({"enum": ["a", 1, true, null, 2.5]})),
            "Union[Literal[\"a\", 1, True], float, None]"
        );
        assert_eq!(hint(json!({"enum": [null]})), "None");
        assert_eq!(hint(json!({"enum": []})), "Any");
        assert_eq!(hint(json!({"enum": ["a", {"x": 1}]})), "Any");
    }

    #[test]
    fn literal_strings_are_escaped() {
        assert_eq!(
            hint(json!({"const": "say \"hi\"\n"})),
            r#"Literal["say \"hi\"\n"]"#
        );
    }

    #[test]
    fn integers_beyond_64_bits_fall_back_to_int() {
        assert_eq!(
            hint(json!({"enum": [u64::MAX, 1]})),
            "Union[Literal[1], int]"
        );
        assert_eq!(hint(json!({"const": i64::MIN})), "int");
    }

    #[test]
    fn huge_enums_fall_back_to_their_base_types() {
        let values: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
        assert_eq!(hint(json!({"enum": values})), "str");
    }

    #[test]
    fn any_of_one_of_and_type_lists_are_unions() {
        let two = json!([{"type": "string"}, {"type": "integer"}]);
        assert_eq!(hint(json!({"anyOf": two})), "Union[str, int]");
        assert_eq!(hint(json!({"oneOf": two})), "Union[str, int]");
        assert_eq!(
            hint(json!({"type": ["string", "integer"]})),
            "Union[str, int]"
        );
    }

    #[test]
    fn nullable_types_are_optional() {
        assert_eq!(hint(json!({"type": ["string", "null"]})), "Optional[str]");
        assert_eq!(
            hint(json!({"type": "integer", "nullable": true})),
            "Optional[int]"
        );
        assert_eq!(
            hint(json!({"anyOf": [{"type": "null"}, {"type": "string"}, {"type": "integer"}]})),
            "Union[str, int, None]"
        );
    }

    #[test]
    fn a_union_with_any_is_any() {
        assert_eq!(hint(json!({"anyOf": [{"type": "string"}, {}]})), "Any");
        assert_eq!(hint(json!({"type": ["null", "whatever"]})), "Any");
    }

    #[test]
    fn constraint_only_alternatives_keep_the_declared_type() {
        let schema = json!({"type": "string", "anyOf": [{"minLength": 1}, {"pattern": "x"}]});
        assert_eq!(hint(schema), "str");
    }

    #[test]
    fn refs_resolve_through_defs_and_definitions() {
        let root = json!({
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "definitions": {"Name": {"type": "string"}},
            "properties": {"p": {"$ref": "#/$defs/Point"}, "n": {"$ref": "#/definitions/Name"}},
        });
        let (ty, defs) = property_hint(root.clone(), "p");
        assert_eq!(ty, "Point");
        assert_eq!(defs[0].name, "Point");
        assert_eq!(property_hint(root, "n").0, "str");
    }

    #[test]
    fn recursive_refs_become_forward_references() {
        let root = json!({
            "$defs": {"Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }},
            "properties": {"tree": {"$ref": "#/$defs/Node"}},
        });
        let (ty, defs) = property_hint(root, "tree");
        assert_eq!(ty, "Node");
        assert_eq!(field_hints(&defs[0])[0].1, "List[\"Node\"]");
    }

    #[test]
    fn recursion_that_cannot_be_named_becomes_any() {
        let root = json!({
            "$defs": {
                "Json": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/$defs/Json"}}]},
                "Loop": {"$ref": "#/$defs/Loop"},
            },
            "properties": {"j": {"$ref": "#/$defs/Json"}, "l": {"$ref": "#/$defs/Loop"}},
        });
        assert_eq!(property_hint(root.clone(), "j").0, "Union[str, List[Any]]");
        assert_eq!(property_hint(root, "l").0, "Any");
    }

    #[test]
    fn unresolvable_refs_are_any() {
        let root = json!({"properties": {
            "missing": {"$ref": "#/$defs/Nope"},
            "remote": {"$ref": "https://example.com/s.json"},
        }});
        assert_eq!(property_hint(root.clone(), "missing").0, "Any");
        assert_eq!(property_hint(root, "remote").0, "Any");
    }

    #[test]
    fn all_of_with_one_member_is_that_member() {
        let root = json!({
            "$defs": {"Base": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "properties": {"x": {"allOf": [{"$ref": "#/$defs/Base"}], "description": "d"}},
        });
        assert_eq!(property_hint(root, "x").0, "Base");
    }

    #[test]
    fn all_of_objects_merge_into_one_typed_dict() {
        let (ty, defs) = convert(json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "integer"}}},
        ]}));
        assert_eq!(ty, "Tool");
        assert_eq!(
            field_hints(&defs[0]),
            [
                ("a".into(), "str".into(), true),
                ("b".into(), "int".into(), false)
            ]
        );
    }

    #[test]
    fn all_of_that_cannot_merge_is_any() {
        assert_eq!(
            hint(json!({"allOf": [{"type": "string"}, {"minLength": 1}]})),
            "Any"
        );
    }

    #[test]
    fn unknown_and_malformed_schemas_are_any() {
        assert_eq!(hint(json!({})), "Any");
        assert_eq!(hint(json!(true)), "Any");
        assert_eq!(hint(json!("string")), "Any");
        assert_eq!(hint(json!({"type": "file"})), "Any");
        assert_eq!(hint(json!({"type": 7})), "Any");
        assert_eq!(hint(json!({"$ref": 7})), "Any");
    }

    #[test]
    fn nesting_beyond_the_depth_limit_is_any() {
        let mut schema = json!({"type": "string"});
        for _ in 0..(MAX_DEPTH + 10) {
            schema = json!({"type": "array", "items": schema});
        }
        let rendered = hint(schema);
        assert_eq!(rendered.matches("List[").count(), MAX_DEPTH + 1);
        assert!(rendered.contains("[Any]"));
    }

    #[test]
    fn identical_models_with_one_title_share_a_typed_dict() {
        let model =
            json!({"title": "Point", "type": "object", "properties": {"x": {"type": "number"}}});
        let root = json!({
            "$defs": {"Point": model},
            "properties": {"a": {"$ref": "#/$defs/Point"}, "b": model},
        });
        let mut registry = Registry::new(Namespace::default());
        let mut converter = Converter::new(&mut registry, &root);
        let a = converter.convert(&root["properties"]["a"], "ToolA");
        let b = converter.convert(&root["properties"]["b"], "ToolB");
        assert_eq!(
            (a.render(false), b.render(false)),
            ("Point".into(), "Point".into())
        );
        assert_eq!(registry.defs.len(), 1);
    }

    #[test]
    fn identical_objects_with_different_titles_share_a_typed_dict() {
        let mut registry = Registry::new(Namespace::default());
        for title in ["Point", "Vector"] {
            let root = json!({"title": title, "properties": {"x": {"type": "number"}}});
            Converter::new(&mut registry, &root).convert(&root, title);
        }
        let names: Vec<&str> = registry.defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Point"]);
    }

    #[test]
    fn identical_recursive_objects_stay_apart() {
        let mut registry = Registry::new(Namespace::default());
        // Two documents that differ elsewhere, so the second does not reuse
        // the first one's `$defs` conversion.
        for other in ["A", "B"] {
            let root = json!({
                "$defs": {
                    "Node": {"properties": {"next": {"$ref": "#/$defs/Node"}}},
                    other: {"type": "string"},
                },
                "properties": {"head": {"$ref": "#/$defs/Node"}},
            });
            Converter::new(&mut registry, &root).convert(&root["properties"]["head"], "Tool");
        }
        let names: Vec<&str> = registry.defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Node", "Node2"]);
    }

    #[test]
    fn different_models_with_one_name_get_distinct_names() {
        let mut registry = Registry::new(Namespace::default());
        for field in ["x", "y"] {
            let root = json!({
                "$defs": {"Point": {"type": "object", "properties": {field: {"type": "number"}}}},
                "properties": {"p": {"$ref": "#/$defs/Point"}},
            });
            Converter::new(&mut registry, &root).convert(&root["properties"]["p"], "Tool");
        }
        let names: Vec<&str> = registry.defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Point", "Point2"]);
    }

    #[test]
    fn optional_of_optional_is_one_optional() {
        let ty = PyType::union(vec![PyType::Str, PyType::None]).optional();
        assert_eq!(ty.render(false), "Optional[str]");
        assert_eq!(PyType::Any.optional().render(false), "Any");
    }
}
