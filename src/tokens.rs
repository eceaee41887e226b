//! Token counts, as a model reads text: tiktoken's o200k_base, which ships inside
//! the crate, so counting works offline.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

fn encoder() -> &'static CoreBPE {
    static ENCODER: OnceLock<CoreBPE> = OnceLock::new();
    ENCODER.get_or_init(|| {
        tiktoken_rs::o200k_base().expect("the o200k_base tables are embedded in tiktoken-rs")
    })
}

pub fn count(text: &str) -> usize {
    encoder().encode_with_special_tokens(text).len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_those_of_o200k_base() {
        assert_eq!(super::count(""), 0);
        assert_eq!(super::count("hello world"), 2);
    }
}
