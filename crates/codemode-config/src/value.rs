//! The typed values of the config and of the flags that override it. Each
//! is parsed once, by the same rules from a file (where a bad value is
//! reported with its line and column) and from a command line.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Which sandbox runs the scripts: `sandbox.backend`, `--sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Backend {
    /// Docker when an engine answers, the native sandbox otherwise.
    #[default]
    Auto,
    /// One container per run on the Docker engine.
    Docker,
    /// Namespaces, Landlock and seccomp on this host, no engine needed.
    Native,
}

impl Backend {
    pub const NAMES: &'static str = "auto, docker or native";

    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Docker => "docker",
            Backend::Native => "native",
        }
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Backend, String> {
        match text {
            "auto" => Ok(Backend::Auto),
            "docker" => Ok(Backend::Docker),
            "native" => Ok(Backend::Native),
            other => Err(format!(
                "unknown sandbox backend `{other}` (use {})",
                Backend::NAMES
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A number of bytes as people write it: `512m`, `1g`, `64k`, `1048576`
/// (binary units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        parse_size(text).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&codemode_text::human_bytes(self.0))
    }
}

/// A size limit the user set: a size, or `none` for no limit at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    Unlimited,
    Bytes(u64),
}

impl SizeLimit {
    pub fn bytes(self) -> Option<u64> {
        match self {
            SizeLimit::Unlimited => None,
            SizeLimit::Bytes(n) => Some(n),
        }
    }
}

impl FromStr for SizeLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<SizeLimit, String> {
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(SizeLimit::Unlimited);
        }
        parse_size(text).map(SizeLimit::Bytes)
    }
}

/// A share of CPU cores, like `0.5` or `2`; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus(pub f64);

impl FromStr for Cpus {
    type Err = String;

    fn from_str(text: &str) -> Result<Cpus, String> {
        text.trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| Cpus::new(n).ok())
            .ok_or_else(Cpus::rule)
    }
}

impl Cpus {
    fn new(n: f64) -> Result<Cpus, String> {
        if n.is_finite() && n >= 0.0 {
            Ok(Cpus(n))
        } else {
            Err(Cpus::rule())
        }
    }

    fn rule() -> String {
        "must be a share of cores like 0.5, or 0 for no limit".into()
    }
}

/// Reads a value from a TOML string through its `FromStr`, so that a file
/// and a flag accept the same text and a bad one is reported where it is.
struct FromText<T>(std::marker::PhantomData<T>);

impl<T: FromStr<Err = String>> Visitor<'_> for FromText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }

    // A bare number is a size in bytes or a share of cores.
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        self.visit_str(&n.to_string())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        self.visit_str(&n.to_string())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<T, E> {
        self.visit_str(&n.to_string())
    }
}

macro_rules! deserialize_from_text {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(FromText::<$ty>(std::marker::PhantomData))
            }
        }
    )*};
}

deserialize_from_text!(Backend, ByteSize, SizeLimit, Cpus);

/// Parses a size (see [`ByteSize`]).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches(['b', 'i']);
    let (digits, unit) = match trimmed
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((at, _)) => trimmed.split_at(at),
        None => (trimmed, ""),
    };
    let scale: u64 = match unit.trim() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size `{text}`; write it like \"512m\" or \"1g\""
            ))
        }
    };
    let number: f64 = digits
        .parse()
        .map_err(|_| format!("invalid size `{text}`; write it like \"512m\" or \"1g\""))?;
    Ok((number * scale as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_by_name_and_name_themselves() {
        for name in ["auto", "docker", "native"] {
            assert_eq!(name.parse::<Backend>().unwrap().to_string(), name);
        }
        let err = "dokcer".parse::<Backend>().unwrap_err();
        assert!(
            err.contains("`dokcer`") && err.contains(Backend::NAMES),
            "{err}"
        );
    }

    #[test]
    fn size_limits_take_none_or_a_size() {
        assert_eq!("none".parse::<SizeLimit>(), Ok(SizeLimit::Unlimited));
        assert_eq!("1k".parse::<SizeLimit>(), Ok(SizeLimit::Bytes(1024)));
        assert!("lots".parse::<SizeLimit>().is_err());
    }

    #[test]
    fn cpus_are_a_finite_share_of_zero_or_more() {
        assert_eq!("0.5".parse::<Cpus>(), Ok(Cpus(0.5)));
        assert_eq!("0".parse::<Cpus>(), Ok(Cpus(0.0)));
        for bad in ["-1", "inf", "NaN", "half"] {
            assert!(bad.parse::<Cpus>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_negative_size_is_refused() {
        assert!(parse_size("-1m").is_err());
    }
}
