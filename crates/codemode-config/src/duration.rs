//! Durations in the config are written as people say them: `"30s"`, `"500ms"`, `"2m"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

fn parse<'de, D: Deserializer<'de>>(text: &str) -> Result<Duration, D::Error> {
    humantime::parse_duration(text.trim()).map_err(|err| {
        serde::de::Error::custom(format!(
            "invalid duration `{text}` ({err}); write it like \"30s\", \"500ms\" or \"2m\""
        ))
    })
}

pub mod required {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse::<D>(&text)
    }
}

pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| parse::<D>(&t)).transpose()
    }
}
