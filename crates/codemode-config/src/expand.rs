//! `${VAR}` and `${VAR:-default}` references in config values.
//!
//! Only the braced form expands, so a literal `$` (in a regex argument, a price, a
//! password in a URL) never changes meaning by accident; `$${` writes a literal `${`.

/// Expands every reference in `text` with `lookup`; the error is the name of the
/// first variable that is unset and has no default.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            // An unclosed brace is text, not a reference.
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let reference = &body[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        match (
            lookup(name).filter(|v| !v.is_empty() || default.is_none()),
            default,
        ) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(name.to_string()),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn a_reference_expands() {
        assert_eq!(expand("${HOME}/bin", &env).unwrap(), "/home/u/bin");
    }

    #[test]
    fn an_unset_reference_names_the_variable() {
        assert_eq!(expand("Bearer ${TOKEN}", &env).unwrap_err(), "TOKEN");
    }

    #[test]
    fn a_default_applies_when_unset_or_empty() {
        assert_eq!(expand("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${EMPTY:-y}", &env).unwrap(), "y");
    }

    #[test]
    fn an_empty_value_without_default_is_kept() {
        assert_eq!(expand("a${EMPTY}b", &env).unwrap(), "ab");
    }

    #[test]
    fn a_bare_dollar_is_literal() {
        assert_eq!(
            expand("cost $5 and $HOME", &env).unwrap(),
            "cost $5 and $HOME"
        );
    }

    #[test]
    fn a_doubled_dollar_escapes_a_reference() {
        assert_eq!(expand("$${HOME}", &env).unwrap(), "${HOME}");
    }

    #[test]
    fn an_unclosed_brace_is_literal() {
        assert_eq!(expand("x ${HOME", &env).unwrap(), "x ${HOME");
    }
}
