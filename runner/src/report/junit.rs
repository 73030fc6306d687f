//! JUnit XML (one testsuite per kernel and spec) for CI test viewers.

use std::path::PathBuf;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Error, Reporter};
use crate::exec::{CaseReport, Event, Outcome};

/// Rewritten (atomically) after every case, so a cancelled or timed-out run keeps what finished.
pub struct Junit {
    path: PathBuf,
    done: Vec<CaseReport>,
}

impl Junit {
    pub fn new(path: PathBuf) -> Self {
        Junit {
            path,
            done: Vec::new(),
        }
    }

    fn write(&self, reports: &[CaseReport]) -> Result<(), Error> {
        let xml = render(reports)?;
        let tmp = self.path.with_extension("xml.part");
        std::fs::write(&tmp, xml)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })
    }
}

pub fn render(reports: &[CaseReport]) -> Result<String, Error> {
    let mut report = Report::new("kspec");
    let mut suites: Vec<(String, TestSuite)> = Vec::new();
    for r in reports {
        let suite_name = format!("{}/{}", r.id.kernel, r.id.spec);
        let idx = match suites.iter().position(|(n, _)| *n == suite_name) {
            Some(i) => i,
            None => {
                suites.push((suite_name.clone(), TestSuite::new(suite_name.clone())));
                suites.len() - 1
            }
        };
        let status = match &r.outcome {
            Outcome::Passed => TestCaseStatus::success(),
            Outcome::Skipped(why) => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(why.clone());
                s
            }
            // As pytest reports them: an expected failure is a skip, an unexpected pass a failure.
            Outcome::XFailed { reason, failure } => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!("expected failure ({reason}): {}", failure.message));
                s.set_description(super::human::failure_text(r));
                s
            }
            Outcome::XPassed(reason) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("passed unexpectedly (xfail: {reason})"));
                s.set_type("xpass");
                s
            }
            Outcome::Failed(f) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("{}: {}", f.kind.label(), f.message));
                s.set_type(f.kind.label());
                s.set_description(super::human::failure_text(r));
                s
            }
        };
        let mut tc = TestCase::new(r.id.case.clone(), status);
        tc.set_classname(format!("{}.{}", r.id.kernel, r.id.spec));
        tc.set_time(r.duration);
        tc.extra
            .insert("file".into(), r.file.display().to_string().into());
        tc.extra.insert("line".into(), r.line.to_string().into());
        if !r.artifacts.is_empty() {
            let list: Vec<String> = r
                .artifacts
                .iter()
                .map(|a| a.display().to_string())
                .collect();
            tc.set_system_out(format!("artifacts:\n{}\n", list.join("\n")));
        }
        suites[idx].1.add_test_case(tc);
        // Each KTAP test of the case is a test case of its own, named under the case.
        for t in r.steps.iter().flat_map(|s| &s.ktap) {
            suites[idx].1.add_test_case(ktap_case(r, t));
        }
    }
    report.add_test_suites(suites.into_iter().map(|(_, s)| s));
    Ok(report.to_string()?)
}

fn ktap_case(r: &CaseReport, t: &crate::exec::ktap::KtapResult) -> TestCase {
    use crate::exec::ktap::KtapOutcome;
    let status = match &t.outcome {
        KtapOutcome::Pass => TestCaseStatus::success(),
        KtapOutcome::Skip(why) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(why.clone());
            s
        }
        KtapOutcome::ExpectedFail => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("expected failure (KTAP XFAIL/TODO)");
            s
        }
        KtapOutcome::Fail => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("KTAP test {} failed", t.name));
            s.set_type("ktap");
            s.set_description(t.diagnostics.join("\n"));
            s
        }
    };
    let mut tc = TestCase::new(format!("{}/{}", r.id.case, t.name), status);
    tc.set_classname(format!("{}.{}", r.id.kernel, r.id.spec));
    tc
}

impl Reporter for Junit {
    fn event(&mut self, ev: &Event) {
        if let Event::CaseFinished(r) = ev {
            self.done.push((**r).clone());
            // A failed write is reported by finish(), which writes the same file again.
            let _ = self.write(&self.done);
        }
    }

    fn finish(&mut self, reports: &[CaseReport]) -> Result<(), Error> {
        self.write(reports)
    }
}
