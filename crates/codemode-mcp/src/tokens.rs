//! Token counts, as a model reads text: tiktoken's o200k_base, which ships inside
//! the crate, so counting works offline.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

static ENCODER: OnceLock<CoreBPE> = OnceLock::new();

fn encoder() -> &'static CoreBPE {
    ENCODER.get_or_init(|| {
        tiktoken_rs::o200k_base().expect("the o200k_base tables are embedded in tiktoken-rs")
    })
}

pub fn count(text: &str) -> usize {
    encoder().encode_with_special_tokens(text).len()
}

/// Loads the tables, which takes seconds on a slow machine: done ahead, on a
/// thread of its own, by whoever must not wait for it later.
pub fn load() {
    encoder();
}

/// The count once the tables are loaded; until then a cautious guess (o200k
/// averages about four bytes a token in English, so three rarely undercounts).
pub fn count_or_guess(text: &str) -> usize {
    if ENCODER.get().is_some() {
        count(text)
    } else {
        text.len().div_ceil(3)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_those_of_o200k_base() {
        assert_eq!(super::count(""), 0);
        assert_eq!(super::count("hello world"), 2);
    }
}
