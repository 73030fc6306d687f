//! The YAML spec format. Every key is documented in README.md ("Spec reference"); `kspec schema`
//! prints the JSON Schema derived from these types.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// One spec file: the cases for one channel or feature, run in order in one VM by default.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Short name; defaults to the file stem. Trial names are `<name>::<case>`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// When these are not met the cases are reported as skipped, with the reason.
    #[serde(default)]
    pub requires: Requires,
    /// Load a module of the project before the first case of each VM and unload it (checked
    /// clean) after the last.
    #[serde(default)]
    pub module: Option<ModuleSetup>,
    /// Default timeout of each step (e.g. "10s", "500ms"); 30s when absent.
    #[serde(default)]
    pub timeout: Option<Timeout>,
    /// Host files added to the guest (paths relative to the spec file).
    #[serde(default)]
    pub files: Vec<GuestFile>,
    /// vCPUs of this file's VMs (default 2).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// How long the kernel log must stay quiet at the end of each case before its verdict, so
    /// that reports from deferred work are caught (default 500ms; bounded by 10 x this).
    #[serde(default)]
    pub settle: Option<Timeout>,
    /// Default limit of each step's stdout and of its stderr (default 4MiB).
    #[serde(default)]
    pub output_limit: Option<Size>,
    /// `spec`: the cases share a VM (kept while they leave the kernel clean); `case`: every
    /// case gets its own, restored from the image's snapshot. Default: the run's (`kspec run
    /// --isolation`), else `spec`.
    #[serde(default)]
    pub isolation: Option<Isolation>,
    pub cases: Vec<Case>,
}

/// How much VM the cases of a spec file share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    #[default]
    Spec,
    Case,
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spec" => Ok(Isolation::Spec),
            "case" => Ok(Isolation::Case),
            _ => Err(format!("isolation is `spec` or `case`, not {s:?}")),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// Kconfig symbols that must be `=y` or `=m` (with or without the CONFIG_ prefix).
    #[serde(default)]
    pub kconfig: Vec<String>,
    /// Kernel version range, e.g. ">=6.12" or ">=6.12, <7.0".
    #[serde(default)]
    pub kernel: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleSetup {
    /// Which of the project's modules (kspec.toml); default: the first.
    #[serde(default)]
    pub name: Option<String>,
    /// Module parameters passed to insmod, on top of the project's, e.g. `{ mmap_pages: 1024 }`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    /// Unload after the last case and fail it unless rmmod succeeds with a clean kernel log.
    #[serde(default = "yes")]
    pub unload: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Bool(b) => write!(f, "{}", if *b { "1" } else { "0" }),
            ParamValue::Str(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestFile {
    /// Host path, relative to the spec file's directory.
    pub src: String,
    /// Absolute guest path.
    pub dest: String,
    /// Octal mode, e.g. "0755"; default 0644, or 0755 when the host file is executable.
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Run this case in a VM of its own (module loaded again if the spec has `module`).
    #[serde(default)]
    pub fresh_vm: bool,
    /// Default step timeout for this case.
    #[serde(default)]
    pub timeout: Option<Timeout>,
    pub steps: Vec<Step>,
}

/// One step: exactly one of `run`, `wait` or `kill`, plus expectations.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Human-readable label shown in reports (defaults to the command).
    #[serde(default)]
    pub name: Option<String>,
    /// Shell command run by the guest's /bin/sh (stdin is /dev/null).
    #[serde(default)]
    pub run: Option<String>,
    /// With `run`: start it in the background under this name; a later `wait` or `kill` step
    /// checks its expectations.
    #[serde(default)]
    pub background: Option<String>,
    /// Wait for the background command of this name to exit.
    #[serde(default)]
    pub wait: Option<String>,
    /// Send `signal` (default TERM) to the background command of this name, then wait for it.
    #[serde(default)]
    pub kill: Option<String>,
    #[serde(default)]
    pub signal: Option<String>,
    /// Expected exit status: a number (default 0), "any" or "nonzero".
    #[serde(default)]
    pub exit: Option<ExitExpect>,
    #[serde(default)]
    pub stdout: Option<TextExpect>,
    #[serde(default)]
    pub stderr: Option<TextExpect>,
    /// Kernel log lines produced during the step (for wait/kill: since the background start).
    #[serde(default)]
    pub kmsg: Option<TextExpect>,
    /// Kernel report classes this step may produce without failing (warning, bug, oops,
    /// call_trace, kasan, ubsan, kfence, lockdep, hung_task, rcu_stall, soft_lockup, kmemleak,
    /// panic), `taint`, `kmsg_lost`, or "all".
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub timeout: Option<Timeout>,
    /// Limit of this step's stdout and of its stderr; past it the step fails at once.
    #[serde(default)]
    pub output_limit: Option<Size>,
    /// The step's cgroup may peak at this much memory (memory.peak), e.g. "16MiB".
    #[serde(default)]
    pub max_memory: Option<Size>,
    /// CPU time of the step's cgroup divided by its wall time must reach this (e.g. 1.5 shows
    /// that two CPUs were busy at once).
    #[serde(default)]
    pub min_parallelism: Option<f64>,
    /// At least this many CPUs were busy (whole system, kernel threads included) for at least
    /// half of the step's wall time: work the kernel does for the step counts too.
    #[serde(default)]
    pub min_busy_cpus: Option<u32>,
}

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

/// What a step does. Decided once, when its file is loaded ([`Action::of`]): a loaded spec
/// holds one for every step, so nothing past loading meets an invalid step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run {
        cmd: String,
    },
    /// Start `cmd` in the background under `name`.
    Start {
        cmd: String,
        name: String,
    },
    Wait {
        name: String,
    },
    /// Send `signal` (a name without SIG, e.g. "TERM") to `name`, then wait for it.
    Kill {
        name: String,
        signal: String,
    },
}

impl Action {
    /// The action a YAML step describes, or why it describes none: (the key at fault, as a
    /// path suffix such as ".signal" or "" for the step, message).
    pub fn of(step: &Step) -> Result<Action, (&'static str, String)> {
        let signal = step.signal.as_deref().map(|s| s.trim_start_matches("SIG"));
        if let Some(sig) = signal {
            if step.kill.is_none() {
                return Err((".signal", "`signal` goes with `kill`".into()));
            }
            if !SIGNALS.contains(&sig) {
                let known = SIGNALS.join(", ");
                return Err((
                    ".signal",
                    format!("unknown signal {sig:?}, expected one of {known}"),
                ));
            }
        }
        match (&step.run, &step.background, &step.wait, &step.kill) {
            (Some(cmd), _, None, None) if cmd.trim().is_empty() => {
                Err((".run", "`run` is empty".into()))
            }
            (Some(cmd), Some(bg), None, None) => Ok(Action::Start {
                cmd: cmd.clone(),
                name: bg.clone(),
            }),
            (Some(cmd), None, None, None) => Ok(Action::Run { cmd: cmd.clone() }),
            (None, None, Some(name), None) => Ok(Action::Wait { name: name.clone() }),
            (None, None, None, Some(name)) => Ok(Action::Kill {
                name: name.clone(),
                signal: signal.unwrap_or("TERM").to_owned(),
            }),
            _ => Err((
                "",
                "a step needs exactly one of `run`, `wait` or `kill` (`background` goes with `run`)"
                    .into(),
            )),
        }
    }

    /// How reports name a step without a `name`.
    pub fn label(&self) -> String {
        let first = |cmd: &str| cmd.lines().next().unwrap_or("").to_owned();
        match self {
            Action::Run { cmd } => first(cmd),
            Action::Start { cmd, name } => format!("start {name}: {}", first(cmd)),
            Action::Wait { name } => format!("wait {name}"),
            Action::Kill { name, .. } => format!("kill {name}"),
        }
    }
}

/// Signals a `kill` step may send.
pub const SIGNALS: &[&str] = &["TERM", "INT", "KILL", "HUP", "USR1", "USR2", "QUIT"];
