//! A first look at a call's arguments against the tool's input schema, so the
//! common mistakes (a missing argument, a wrong type, a value outside an enum, a
//! misspelled name) come back as `invalid_arguments` with a message that says
//! exactly what to fix, without a round trip to the server.
//!
//! Deliberately shallow: only the top level, and only rules that cannot reject
//! a valid call. Everything deeper is the server's to judge.

use serde_json::{Map, Value};

/// The first problem found, as a message for the caller.
pub fn check(schema: &Map<String, Value>, arguments: &Map<String, Value>) -> Result<(), String> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !arguments.contains_key(name) {
                return Err(format!("missing required argument `{name}`"));
            }
        }
    }
    let Some(properties) = properties else {
        return Ok(());
    };
    for (name, value) in arguments {
        match properties.get(name) {
            Some(property) => check_value(name, property, value)?,
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                let mut accepted: Vec<&str> = properties.keys().map(String::as_str).collect();
                accepted.sort_unstable();
                return Err(format!(
                    "unexpected argument `{name}` (accepted: {})",
                    accepted.join(", ")
                ));
            }
            None => {}
        }
    }
    Ok(())
}

fn check_value(name: &str, property: &Value, value: &Value) -> Result<(), String> {
    if let Some(types) = declared_types(property) {
        if !types.iter().any(|t| has_type(value, t)) {
            return Err(format!(
                "argument `{name}` must be {}, not {}",
                types.join(" or "),
                type_of(value)
            ));
        }
    }
    if let Some(allowed) = property.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let shown: Vec<String> = allowed.iter().take(12).map(Value::to_string).collect();
            return Err(format!(
                "argument `{name}` is {value}, not one of {}",
                shown.join(", ")
            ));
        }
    }
    Ok(())
}

fn declared_types(property: &Value) -> Option<Vec<&str>> {
    match property.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => {
            let types: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            (!types.is_empty()).then_some(types)
        }
        _ => None,
    }
}

fn has_type(value: &Value, declared: &str) -> bool {
    match declared {
        "string" => value.is_string(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        // A type this check does not know: leave it to the server.
        _ => true,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Map<String, Value> {
        json!({
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["world", "science"]},
                "limit": {"type": "integer"},
                "ratio": {"type": ["number", "null"]},
                "anything": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
            },
            "required": ["category"],
            "additionalProperties": false
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_valid_call_passes() {
        assert!(check(
            &schema(),
            &args(json!({"category": "world", "limit": 3, "ratio": null, "anything": [1]}))
        )
        .is_ok());
    }

    #[test]
    fn a_missing_required_argument_is_named() {
        assert_eq!(
            check(&schema(), &args(json!({"limit": 3}))).unwrap_err(),
            "missing required argument `category`"
        );
    }

    #[test]
    fn a_wrong_type_says_what_was_expected() {
        assert_eq!(
            check(&schema(), &args(json!({"category": "world", "limit": "3"}))).unwrap_err(),
            "argument `limit` must be integer, not a string"
        );
    }

    #[test]
    fn a_whole_float_counts_as_an_integer() {
        assert!(check(&schema(), &args(json!({"category": "world", "limit": 3.0}))).is_ok());
        assert!(check(&schema(), &args(json!({"category": "world", "limit": 3.5}))).is_err());
    }

    #[test]
    fn a_value_outside_the_enum_lists_the_choices() {
        let err = check(&schema(), &args(json!({"category": "sports"}))).unwrap_err();
        assert_eq!(
            err,
            "argument `category` is \"sports\", not one of \"world\", \"science\""
        );
    }

    #[test]
    fn an_unexpected_argument_is_refused_when_the_schema_closes_the_object() {
        let err = check(&schema(), &args(json!({"category": "world", "limti": 3}))).unwrap_err();
        assert!(err.starts_with("unexpected argument `limti`"), "{err}");
    }

    #[test]
    fn an_open_schema_accepts_extra_arguments() {
        let open = json!({"properties": {"q": {"type": "string"}}})
            .as_object()
            .unwrap()
            .clone();
        assert!(check(&open, &args(json!({"q": "x", "extra": 1}))).is_ok());
    }

    #[test]
    fn an_empty_schema_accepts_anything() {
        assert!(check(&Map::new(), &args(json!({"x": 1}))).is_ok());
    }
}
