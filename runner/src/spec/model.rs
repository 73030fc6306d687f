//! The YAML spec format. Every key is documented in README.md ("Spec reference"); `kspec schema`
//! prints the JSON Schema derived from these types.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use super::values::{ExitExpect, Size, TextExpect, Timeout};

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
    /// Guest memory of this file's VMs (e.g. "512MiB"; default: the kernel list's).
    #[serde(default)]
    pub memory: Option<Size>,
    /// Extra kernel command line for this file's VMs.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// Environment of every step (a case's and a step's `env` go on top).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Steps run before each case's own, as part of it.
    #[serde(default)]
    pub setup: Vec<Step>,
    /// Steps run after each case's own, also after a failure (unless the VM was lost).
    #[serde(default)]
    pub teardown: Vec<Step>,
    /// Named step lists a step can stand for with `include: <name>`.
    #[serde(default)]
    pub step_lists: BTreeMap<String, Vec<Step>>,
    /// Guest files copied out with `kspec run --artifacts DIR` when a case fails.
    #[serde(default)]
    pub artifacts: Vec<String>,
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
    /// This case's own requirements, on top of the file's: unmet, the case is skipped.
    #[serde(default)]
    pub requires: Requires,
    /// An expected failure, with the reason: failing, the case is reported as `xfail`;
    /// passing, as `xpass`, which fails the run (the reason no longer holds).
    #[serde(default)]
    pub xfail: Option<String>,
    /// Environment of this case's steps (on top of the file's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
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
    /// Run this command again and again until the step's expectations hold, at most for the
    /// step's timeout; the failure shows the last attempt.
    #[serde(default)]
    pub wait_until: Option<String>,
    /// Pause between `wait_until` attempts (default 100ms).
    #[serde(default)]
    pub interval: Option<Timeout>,
    /// Stands for the steps of the named `step_lists` entry (no other key with it).
    #[serde(default)]
    pub include: Option<String>,
    /// Environment of this step (on top of its case's and file's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The command prints KTAP (KUnit, kselftest): each test in it is reported as a result of
    /// its own, and a failing one fails the step.
    #[serde(default)]
    pub ktap: bool,
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
