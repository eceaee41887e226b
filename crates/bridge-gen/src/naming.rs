//! Original names (anything a server or config may say) → valid, stable,
//! collision-free Python identifiers.

use std::collections::HashSet;

/// Python's hard keywords: never usable as identifiers. Soft keywords (`match`,
/// `case`, `type`, `_`) are valid names and need no escaping.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Builtins the runtime code and the type hints rely on. Module-level names
/// (servers, `TypedDict`s) must not shadow any of them.
const BUILTINS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BaseExceptionGroup",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "BytesWarning",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DeprecationWarning",
    "EOFError",
    "Ellipsis",
    "EncodingWarning",
    "EnvironmentError",
    "Exception",
    "ExceptionGroup",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "FutureWarning",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "ImportWarning",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "NotADirectoryError",
    "NotImplemented",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PendingDeprecationWarning",
    "PermissionError",
    "ProcessLookupError",
    "PythonFinalizationError",
    "RecursionError",
    "ReferenceError",
    "ResourceWarning",
    "RuntimeError",
    "RuntimeWarning",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SyntaxWarning",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "UnicodeWarning",
    "UserWarning",
    "ValueError",
    "Warning",
    "ZeroDivisionError",
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "copyright",
    "credits",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "exit",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "license",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "quit",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
];

/// Names a script might reasonably expect the module to own, or that would
/// confuse a reader if a server took them (`mcp_tools.json` being a server).
const MODULE_WORDS: &[&str] = &[
    "call",
    "search",
    "json",
    "os",
    "sys",
    "socket",
    "select",
    "threading",
    "http",
    "urllib",
    "typing",
    "mcp_tools",
    "ToolError",
    "BridgeError",
];

/// Names the type hints use. A method, parameter or `TypedDict` key spelled
/// like one of them would shadow it where the hints are evaluated.
pub(crate) const ANNOTATION_NAMES: &[&str] = &[
    "Any",
    "Dict",
    "List",
    "Literal",
    "Optional",
    "TypedDict",
    "Union",
    "str",
    "int",
    "float",
    "bool",
];

pub(crate) fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

/// Whether `name` can appear as-is as a Python identifier (ASCII only).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !is_keyword(name)
}

/// Turns any string into a snake-ish ASCII identifier; `fallback` stands in
/// when nothing usable is left and prefixes names that start with a digit.
///
/// Leading and trailing underscores are dropped so that generated names are
/// never private (`_x`) or dunder (`__init__`) names, which the module keeps
/// for itself.
pub(crate) fn identifier(raw: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if let Some(folded) = fold_latin(c) {
            out.push_str(folded);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name = if trimmed.is_empty() {
        fallback.to_string()
    } else if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{fallback}_{trimmed}")
    } else {
        trimmed.to_string()
    };
    if is_keyword(&name) {
        name.push('_');
    }
    name
}

/// `fetch_latest` → `FetchLatest`; used for class names derived from tools,
/// parameters and `$defs`.
pub(crate) fn camel(raw: &str, fallback: &str) -> String {
    let ident = identifier(raw, fallback);
    let mut out = String::with_capacity(ident.len());
    for part in ident.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() {
        // Only a keyword with its `_` could get here; keep it valid.
        return camel(fallback, "Value");
    }
    out
}

/// One Python scope's names: what is taken and what must never be used.
#[derive(Debug, Clone, Default)]
pub(crate) struct Namespace {
    taken: HashSet<String>,
    reserved: HashSet<String>,
}

/// How a collision suffix is spelled: `get_item_2` or `Article2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Snake,
    Camel,
}

impl Namespace {
    pub(crate) fn with_reserved<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Namespace {
            taken: HashSet::new(),
            reserved: names.into_iter().map(str::to_string).collect(),
        }
    }

    /// The module scope: builtins, the runtime's own names and the names
    /// the type hints use are all off limits.
    pub(crate) fn module(runtime_globals: &[String]) -> Self {
        let mut ns = Namespace::with_reserved(
            BUILTINS
                .iter()
                .chain(MODULE_WORDS)
                .chain(ANNOTATION_NAMES)
                .copied(),
        );
        ns.reserve_all(runtime_globals.iter().map(String::as_str));
        ns
    }

    pub(crate) fn reserve_all<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.reserved.extend(names.into_iter().map(str::to_string));
    }

    pub(crate) fn is_free(&self, name: &str) -> bool {
        !self.taken.contains(name) && !self.reserved.contains(name)
    }

    /// Gives a claimed name back, for a definition that turned out to be
    /// a duplicate.
    pub(crate) fn release(&mut self, name: &str) {
        self.taken.remove(name);
    }

    /// Claims `base` (already a valid identifier) or the first free variant
    /// of it: a reserved name gets a trailing `_` (PEP 8's way of avoiding a
    /// clash), a taken one a counter.
    pub(crate) fn claim(&mut self, base: &str, style: Style) -> String {
        let mut candidate = base.to_string();
        if self.reserved.contains(&candidate) {
            candidate.push('_');
        }
        let mut n = 2u64;
        while !self.is_free(&candidate) {
            candidate = match style {
                Style::Snake => format!("{base}_{n}"),
                Style::Camel => format!("{base}{n}"),
            };
            n += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}

/// Names for a list of originals, in the same order, claimed in `ns`.
///
/// Originals that are already usable identifiers are served first, so that a
/// new `get-item` next to an existing `get_item` becomes `get_item_2` instead
/// of renaming the old one under a script's feet.
pub(crate) fn assign(originals: &[&str], fallback: &str, ns: &mut Namespace) -> Vec<String> {
    let mut names = vec![String::new(); originals.len()];
    let exact = |raw: &str| is_identifier(raw) && identifier(raw, fallback) == raw;
    for pass_exact in [true, false] {
        for (slot, raw) in names.iter_mut().zip(originals) {
            if exact(raw) == pass_exact {
                *slot = ns.claim(&identifier(raw, fallback), Style::Snake);
            }
        }
    }
    names
}

/// ASCII spellings for the accented Latin letters common in names; anything
/// else non-ASCII becomes `_`.
fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'à'..='å' | 'ā' | 'ă' | 'ą' => "a",
        'Æ' => "AE",
        'æ' => "ae",
        'Ç' | 'Ć' | 'Č' => "C",
        'ç' | 'ć' | 'č' => "c",
        'Ð' | 'Ď' | 'Đ' => "D",
        'ð' | 'ď' | 'đ' => "d",
        'È'..='Ë' | 'Ē' | 'Ė' | 'Ę' | 'Ě' => "E",
        'è'..='ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'Ğ' => "G",
        'ğ' => "g",
        'Ì'..='Ï' | 'Ī' | 'İ' => "I",
        'ì'..='ï' | 'ī' | 'ı' => "i",
        'Ł' => "L",
        'ł' => "l",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'ñ' | 'ń' | 'ň' => "n",
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ő' => "O",
        'ò'..='ö' | 'ø' | 'ō' | 'ő' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ř' => "R",
        'ř' => "r",
        'Ś' | 'Š' | 'Ş' => "S",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'Ť' | 'Ţ' => "T",
        'ť' | 'ţ' => "t",
        'Þ' => "TH",
        'þ' => "th",
        'Ù'..='Ü' | 'Ū' | 'Ů' | 'Ű' => "U",
        'ù'..='ü' | 'ū' | 'ů' | 'ű' => "u",
        'Ý' | 'Ÿ' => "Y",
        'ý' | 'ÿ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashes_dots_and_spaces_become_underscores() {
        assert_eq!(identifier("get-item.v2 now", "tool"), "get_item_v2_now");
    }

    #[test]
    fn keywords_get_a_trailing_underscore() {
        assert_eq!(identifier("class", "tool"), "class_");
        assert_eq!(identifier("None", "tool"), "None_");
    }

    #[test]
    fn soft_keywords_stay_as_they_are() {
        assert_eq!(identifier("match", "tool"), "match");
        assert_eq!(identifier("type", "tool"), "type");
    }

    #[test]
    fn leading_digits_get_the_fallback_prefix() {
        assert_eq!(identifier("3d-render", "tool"), "tool_3d_render");
    }

    #[test]
    fn empty_and_symbol_only_names_become_the_fallback() {
        assert_eq!(identifier("", "arg"), "arg");
        assert_eq!(identifier("-- !", "arg"), "arg");
        assert_eq!(identifier("_", "arg"), "arg");
    }

    #[test]
    fn leading_and_trailing_underscores_are_dropped() {
        assert_eq!(identifier("__init__", "tool"), "init");
        assert_eq!(identifier("_private", "tool"), "private");
    }

    #[test]
    fn accented_latin_letters_fold_to_ascii() {
        assert_eq!(identifier("café_straße", "tool"), "cafe_strasse");
    }

    #[test]
    fn other_unicode_becomes_underscores_or_the_fallback() {
        assert_eq!(identifier("搜索", "tool"), "tool");
        assert_eq!(identifier("naïve→ok", "tool"), "naive_ok");
    }

    #[test]
    fn case_is_kept() {
        assert_eq!(identifier("getItem", "tool"), "getItem");
    }

    #[test]
    fn camel_joins_parts_with_capitals() {
        assert_eq!(camel("fetch_latest", "X"), "FetchLatest");
        assert_eq!(camel("my-key", "X"), "MyKey");
        assert_eq!(camel("HTTPRequest", "X"), "HTTPRequest");
        assert_eq!(camel("", "Value"), "Value");
        assert_eq!(camel("class", "Value"), "Class");
    }

    #[test]
    fn collisions_get_counters_in_order() {
        let mut ns = Namespace::default();
        assert_eq!(ns.claim("get_item", Style::Snake), "get_item");
        assert_eq!(ns.claim("get_item", Style::Snake), "get_item_2");
        assert_eq!(ns.claim("get_item", Style::Snake), "get_item_3");
        assert_eq!(ns.claim("Article", Style::Camel), "Article");
        assert_eq!(ns.claim("Article", Style::Camel), "Article2");
    }

    #[test]
    fn reserved_names_get_a_trailing_underscore() {
        let mut ns = Namespace::with_reserved(["self"]);
        assert_eq!(ns.claim("self", Style::Snake), "self_");
        assert_eq!(ns.claim("self", Style::Snake), "self_2");
    }

    #[test]
    fn module_scope_reserves_the_runtime_and_builtins() {
        let mut ns = Namespace::module(&["_invoke".to_string()]);
        assert_eq!(ns.claim("call", Style::Snake), "call_");
        assert_eq!(ns.claim("json", Style::Snake), "json_");
        assert_eq!(ns.claim("print", Style::Snake), "print_");
        assert_eq!(ns.claim("_invoke", Style::Snake), "_invoke_");
        assert_eq!(ns.claim("news_api", Style::Snake), "news_api");
    }

    #[test]
    fn already_valid_names_keep_their_spelling_when_others_collide_with_them() {
        let mut ns = Namespace::default();
        let names = assign(&["get-item", "get_item"], "tool", &mut ns);
        assert_eq!(names, ["get_item_2", "get_item"]);
    }

    #[test]
    fn assigned_names_are_unique_even_for_identical_originals() {
        let mut ns = Namespace::default();
        let names = assign(&["", "", "x"], "tool", &mut ns);
        assert_eq!(names, ["tool", "tool_2", "x"]);
    }
}
