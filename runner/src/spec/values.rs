//! The value types of the spec format: text expectations, exit statuses, durations and sizes,
//! each with the deserializer that gives a useful error.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// Expectations on a text (stdout, stderr or the step's kernel log).
/// A plain string means `equals` for stdout/stderr and `contains` for kmsg.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum TextExpect {
    Plain(String),
    Rules(TextRules),
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextRules {
    /// The whole text, exactly (CRLF normalised).
    #[serde(default)]
    pub equals: Option<String>,
    /// Substrings that must all appear.
    #[serde(default)]
    pub contains: OneOrMany,
    /// Regexes that must all match somewhere (use (?m) for ^/$ per line).
    #[serde(default)]
    pub regex: OneOrMany,
    /// Substrings that must not appear.
    #[serde(default)]
    pub absent: OneOrMany,
    /// The text's lines, exactly and in order.
    #[serde(default)]
    pub lines: Option<Vec<String>>,
    /// How many lines match this regex, exactly: `{ regex: "...", count: 3 }`.
    #[serde(default)]
    pub count: Option<LineCount>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineCount {
    pub regex: String,
    pub count: usize,
}

impl<'de> Deserialize<'de> for TextExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Not #[serde(untagged)]: its errors lose the reason (e.g. an unknown key in the map).
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TextExpect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a map with equals/contains/regex/absent/lines/count")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TextExpect, E> {
                Ok(TextExpect::Plain(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<TextExpect, A::Error> {
                TextRules::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(TextExpect::Rules)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or a list of strings.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> &[String] {
        match self {
            OneOrMany::None => &[],
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = s.next_element::<String>()? {
                    v.push(x);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub enum ExitExpect {
    Code(i32),
    /// "any" or "nonzero"
    Word(ExitWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum ExitWord {
    #[serde(rename = "any")]
    Any,
    #[serde(rename = "nonzero")]
    NonZero,
}

impl ExitExpect {
    pub fn accepts(self, code: i32) -> bool {
        match self {
            ExitExpect::Code(c) => c == code,
            ExitExpect::Word(ExitWord::Any) => true,
            ExitExpect::Word(ExitWord::NonZero) => code != 0,
        }
    }
}

impl fmt::Display for ExitExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitExpect::Code(c) => write!(f, "{c}"),
            ExitExpect::Word(ExitWord::Any) => f.write_str("any"),
            ExitExpect::Word(ExitWord::NonZero) => f.write_str("nonzero"),
        }
    }
}

impl<'de> Deserialize<'de> for ExitExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ExitExpect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an exit code 0..=255, \"any\" or \"nonzero\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ExitExpect, E> {
                match i32::try_from(v) {
                    Ok(c) if (0..=255).contains(&c) => Ok(ExitExpect::Code(c)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ExitExpect, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ExitExpect, E> {
                match v {
                    "any" => Ok(ExitExpect::Word(ExitWord::Any)),
                    "nonzero" => Ok(ExitExpect::Word(ExitWord::NonZero)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written as "500ms", "10s", "2m" or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct Timeout(#[schemars(with = "String")] pub Duration);

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timeout;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like \"500ms\", \"10s\", \"2m\" or a number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timeout, E> {
                Ok(Timeout(Duration::from_secs(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timeout, E> {
                u64::try_from(v)
                    .map(|v| Timeout(Duration::from_secs(v)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Timeout, E> {
                Duration::try_from_secs_f64(v)
                    .map(Timeout)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timeout, E> {
                parse_duration(v)
                    .map(Timeout)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes written as a number or with a unit: "512KiB", "4MiB", "1GiB", "100kB", "2MB".
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct Size(#[schemars(with = "String")] pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like \"4MiB\", \"512KiB\", \"2MB\" or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v)
                    .map(Size)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// "4MiB" -> (4.0, "MiB"): a decimal number and the unit after it.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

pub fn parse_size(s: &str) -> Option<u64> {
    let (n, unit) = number_and_unit(s)?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// Bytes for people: "4.0MiB", "512KiB", "100B".
pub fn format_size(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = number_and_unit(s)?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}
