//! Reports: render the event stream. Human output for terminals and logs, JUnit XML for CI,
//! GitHub annotations, JSON lines for tools.

pub mod github;
pub mod human;
pub mod json;
pub mod junit;
pub mod summary;

use std::path::PathBuf;

use crate::exec::{CaseReport, Event, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A report could not be written where it was asked for.
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
    #[error("rendering JUnit XML: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    /// An input report (`kspec summary`) is not what `run --json-file` writes.
    #[error("{0}")]
    Input(String),
}

pub trait Reporter {
    fn event(&mut self, ev: &Event);
    /// Called once with every case report after the run.
    fn finish(&mut self, _reports: &[CaseReport]) -> Result<(), Error> {
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Expected failures (`xfail`); an unexpected pass counts as failed.
    pub xfailed: usize,
}

pub fn count(reports: &[CaseReport]) -> Counts {
    let mut c = Counts::default();
    for r in reports {
        match r.outcome {
            Outcome::Passed => c.passed += 1,
            Outcome::Failed(_) => c.failed += 1,
            Outcome::Skipped(_) => c.skipped += 1,
            Outcome::XFailed { .. } => c.xfailed += 1,
            Outcome::XPassed(_) => c.failed += 1,
        }
    }
    c
}

/// How reports name a KTAP test's outcome, and its reason if it has one.
pub fn ktap_outcome(o: &crate::exec::ktap::KtapOutcome) -> (&'static str, Option<&str>) {
    use crate::exec::ktap::KtapOutcome;
    match o {
        KtapOutcome::Pass => ("passed", None),
        KtapOutcome::Fail => ("failed", None),
        KtapOutcome::Skip(why) => ("skipped", Some(why)),
        KtapOutcome::ExpectedFail => ("xfailed", None),
    }
}

#[cfg(test)]
mod snapshots;
