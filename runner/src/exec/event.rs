//! What a run reports, as one stream of events: reporters (human, JUnit, GitHub, JSON) only
//! render these.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseId {
    pub kernel: String,
    pub spec: String,
    pub case: String,
}

impl CaseId {
    /// `<spec>::<case>`, the trial name.
    pub fn name(&self) -> String {
        format!("{}::{}", self.spec, self.case)
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A VM for `spec` booted (or failed to; then the cases report it).
    VmBooted {
        kernel: String,
        spec: String,
        boot: Duration,
        guest_uptime: f64,
        /// Started from the image's snapshot instead of booting.
        restored: bool,
        /// Why a snapshot was not used or saved, if that happened.
        note: Option<String>,
    },
    CaseStarted(CaseId),
    CaseFinished(Box<CaseReport>),
}

#[derive(Debug, Clone)]
pub struct CaseReport {
    pub id: CaseId,
    pub file: PathBuf,
    /// Line of the case in the spec file.
    pub line: usize,
    pub outcome: Outcome,
    pub duration: Duration,
    pub steps: Vec<StepReport>,
    /// Something the reader should know, e.g. why the case got a fresh VM.
    pub note: Option<String>,
    /// Files `--artifacts` wrote for this case (a failed one).
    pub artifacts: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub label: String,
    pub exit: Option<i32>,
    pub duration: Duration,
    pub passed: bool,
    /// CPU time of the step's cgroup, µs.
    pub cpu_us: Option<u64>,
    /// Peak memory of the step's cgroup, bytes.
    pub memory_peak: Option<u64>,
    /// The tests of a `ktap: true` step's output, each reported on its own.
    pub ktap: Vec<super::ktap::KtapResult>,
    /// What `--bless` would write into the spec for the exact expectations that failed.
    pub bless: Vec<crate::spec::bless::BlessEdit>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Passed,
    Failed(Failure),
    Skipped(String),
    /// An `xfail` case failed, as expected for `reason`.
    XFailed {
        reason: String,
        failure: Failure,
    },
    /// An `xfail` case passed: the reason no longer holds. Fails the run.
    XPassed(String),
}

impl Outcome {
    /// Whether this outcome fails the run.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::XPassed(_))
    }

    /// The failure to show: the case's, or the expected one of an xfail case.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Failed(f) | Outcome::XFailed { failure: f, .. } => Some(f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// An expectation did not hold.
    Assertion,
    /// The kernel reported a problem (BUG, WARNING, KASAN, new taint...).
    KernelReport,
    /// The step ran past its timeout.
    Timeout,
    /// The guest died.
    Panic,
    /// Booting, loading the module, or the session itself failed.
    Infrastructure,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Assertion => "assertion failed",
            FailureKind::KernelReport => "kernel report",
            FailureKind::Timeout => "timeout",
            FailureKind::Panic => "kernel panic",
            FailureKind::Infrastructure => "infrastructure",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    /// Which step (label) and where it is in the spec file.
    pub step: String,
    pub line: usize,
    pub message: String,
    pub details: Vec<Detail>,
}

#[derive(Debug, Clone)]
pub enum Detail {
    /// Expected vs actual text of stdout/stderr/kmsg.
    Diff {
        what: String,
        expected: String,
        actual: String,
    },
    /// Text with a heading (output of a step, kernel lines, console tail).
    Lines { heading: String, lines: Vec<String> },
}

/// A failure of the machinery (VM, agent, module load), not of the kernel under test.
pub(crate) fn infra(message: String, step: &str, line: usize, details: Vec<Detail>) -> Failure {
    Failure {
        kind: FailureKind::Infrastructure,
        step: step.into(),
        line,
        message,
        details,
    }
}
