//! A DSPy-style signature: named input and output fields with descriptions,
//! rendered to a prompt and parsed back from replies. As DSPy's chat adapter
//! does, every field is introduced by a marker line (`[[ ## code ## ]]`), so a
//! reply can be cut into fields however much the model chats around them.

use std::collections::BTreeMap;

pub struct Field {
    pub name: &'static str,
    pub description: &'static str,
}

pub struct Signature {
    pub instructions: &'static str,
    pub inputs: &'static [Field],
    pub outputs: &'static [Field],
}

/// The fields of one reply, by name; empty and placeholder values left out.
#[derive(Debug, Default)]
pub struct Parsed {
    fields: BTreeMap<String, String>,
}

impl Parsed {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

pub fn marker(name: &str) -> String {
    format!("[[ ## {name} ## ]]")
}

impl Signature {
    /// The system prompt: the fields, the reply's structure, the objective.
    pub fn system_prompt(&self) -> String {
        let mut out = String::from("Your input fields are:\n");
        for (i, field) in self.inputs.iter().enumerate() {
            out.push_str(&format!(
                "{}. `{}` (str): {}\n",
                i + 1,
                field.name,
                field.description
            ));
        }
        out.push_str("Your output fields are:\n");
        for (i, field) in self.outputs.iter().enumerate() {
            out.push_str(&format!(
                "{}. `{}` (str): {}\n",
                i + 1,
                field.name,
                field.description
            ));
        }
        out.push_str(
            "All interactions will be structured in the following way, with the appropriate values filled in.\n\n",
        );
        for field in self.inputs.iter().chain(self.outputs) {
            out.push_str(&format!("{}\n{{{}}}\n\n", marker(field.name), field.name));
        }
        out.push_str(&format!("{}\n", marker("completed")));
        out.push_str("In adhering to this structure, your objective is:\n");
        for line in self.instructions.lines() {
            out.push_str(&format!("        {line}\n"));
        }
        out
    }

    /// A user message with the given input fields, ending with what the
    /// reply must look like.
    pub fn render_inputs(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::new();
        for (name, value) in values {
            out.push_str(&format!("{}\n{}\n\n", marker(name), value.trim_end()));
        }
        out.push_str(&self.reply_format());
        out
    }

    /// Repeated in every user message: small models forget the format
    /// after a long observation.
    pub fn reply_format(&self) -> String {
        let names: Vec<String> = self.outputs.iter().map(|f| marker(f.name)).collect();
        format!(
            "Respond with the corresponding output fields, starting with the field {}, then {}, and then ending with the marker for `completed`: {}.",
            names.first().cloned().unwrap_or_default(),
            names[1..].join(", then "),
            marker("completed")
        )
    }

    /// Cuts a reply into its output fields. Text before the first marker and
    /// after `completed` is chatter and ignored; markers may sit in bold or
    /// in a code block the model wrapped everything in. An error says what was
    /// wrong, for the model to fix.
    pub fn parse(&self, reply: &str) -> Result<Parsed, String> {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut seen_any = false;
        for line in reply.lines() {
            if let Some((name, rest)) = marker_line(line) {
                seen_any = true;
                if name == "completed" {
                    break;
                }
                // An input field's marker (a model echoing `observation`)
                // ends the field before it; its text is not an output.
                current = self
                    .outputs
                    .iter()
                    .any(|f| f.name == name)
                    .then(|| name.clone());
                if let Some(name) = &current {
                    let value = fields.entry(name.clone()).or_default();
                    value.push_str(rest.trim());
                    value.push('\n');
                }
                continue;
            }
            if let Some(name) = &current {
                let value = fields.entry(name.clone()).or_default();
                value.push_str(line);
                value.push('\n');
            }
        }
        if !seen_any {
            return Err(format!(
                "the reply has no field markers. {}",
                self.reply_format()
            ));
        }
        let fields = fields
            .into_iter()
            .filter_map(|(name, value)| {
                let value = clean(&value);
                let placeholder = matches!(
                    value.to_lowercase().as_str(),
                    "" | "none" | "n/a" | "null" | "-" | "(none)" | "(empty)" | "empty"
                );
                (!placeholder).then_some((name, value))
            })
            .collect();
        Ok(Parsed { fields })
    }
}

/// `[[ ## name ## ]]` at the start of a line (after spaces, `*` or `#`):
/// the field's name, lowercased, and the rest of the line.
fn marker_line(line: &str) -> Option<(String, &str)> {
    let trimmed = line.trim_start_matches(|c: char| c.is_whitespace() || c == '*' || c == '#');
    let inner_start = trimmed.strip_prefix("[[")?;
    let end = inner_start.find("]]")?;
    let name = inner_start[..end]
        .trim()
        .trim_matches('#')
        .trim()
        .to_lowercase();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let rest = inner_start[end + 2..].trim_start_matches('*');
    Some((name, rest))
}

/// A field's value without surrounding blank lines and stray fence lines
/// (left when a model wraps its whole reply in one code block).
fn clean(value: &str) -> String {
    let mut lines: Vec<&str> = value.lines().collect();
    while lines
        .last()
        .is_some_and(|l| l.trim().is_empty() || is_bare_fence(l))
    {
        lines.pop();
    }
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    lines.join("\n")
}

fn is_bare_fence(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("```") && t[3..].chars().all(|c| c.is_ascii_alphanumeric())
}

/// The code inside a field: the first fenced block when there is one (the
/// model's chatter around it dropped), else the whole value.
pub fn code_of(value: &str) -> String {
    let lines: Vec<&str> = value.lines().collect();
    let Some(open) = lines.iter().position(|l| l.trim_start().starts_with("```")) else {
        return value.trim_matches('\n').to_string();
    };
    let body = &lines[open + 1..];
    let close = body
        .iter()
        .position(|l| l.trim() == "```")
        .unwrap_or(body.len());
    let mut code = body[..close].join("\n");
    code.push('\n');
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: Signature = Signature {
        instructions: "Do the task.",
        inputs: &[Field {
            name: "task",
            description: "What to do.",
        }],
        outputs: &[
            Field {
                name: "reasoning",
                description: "Why.",
            },
            Field {
                name: "code",
                description: "A script.",
            },
            Field {
                name: "answer",
                description: "The answer.",
            },
        ],
    };

    #[test]
    fn the_prompt_names_fields_and_their_markers() {
        let prompt = SIG.system_prompt();
        assert!(prompt.contains("1. `task` (str): What to do."), "{prompt}");
        assert!(prompt.contains("[[ ## code ## ]]\n{code}"), "{prompt}");
        assert!(prompt.contains("[[ ## completed ## ]]"), "{prompt}");
        assert!(prompt.ends_with("        Do the task.\n"), "{prompt}");
    }

    #[test]
    fn fields_parse_despite_chatter_and_fences() {
        let reply = "Sure! Here you go.\n**[[ ## reasoning ## ]]**\nFetch first.\n\n[[ ## code ## ]]\nI'll run:\n```python\nprint(1)\n```\nThat's it.\n[[ ## answer ## ]]\nNone\n[[ ## completed ## ]]\nHope that helps";
        let parsed = SIG.parse(reply).unwrap();
        assert_eq!(parsed.get("reasoning"), Some("Fetch first."));
        assert_eq!(code_of(parsed.get("code").unwrap()), "print(1)\n");
        assert_eq!(parsed.get("answer"), None);
    }

    #[test]
    fn a_reply_wrapped_in_one_code_block_parses() {
        let reply = "```\n[[ ## reasoning ## ]]\nDone.\n[[ ## answer ## ]]\n42\n```";
        let parsed = SIG.parse(reply).unwrap();
        assert_eq!(parsed.get("answer"), Some("42"));
    }

    #[test]
    fn a_marker_with_its_value_on_the_same_line() {
        let parsed = SIG.parse("[[ ## answer ## ]] 42\n").unwrap();
        assert_eq!(parsed.get("answer"), Some("42"));
    }

    #[test]
    fn no_markers_is_an_error_that_teaches_the_format() {
        let err = SIG.parse("The answer is 42.").unwrap_err();
        assert!(err.contains("no field markers"), "{err}");
        assert!(err.contains("[[ ## reasoning ## ]]"), "{err}");
    }

    #[test]
    fn unfenced_code_is_taken_whole() {
        assert_eq!(code_of("import x\nprint(x)\n"), "import x\nprint(x)");
    }
}
