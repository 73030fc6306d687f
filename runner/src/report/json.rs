//! JSON lines: one object per finished case, then a summary object.

use std::io::Write;

use serde_json::json;

use super::{count, Error, Reporter};
use crate::exec::{CaseReport, Detail, Event, Outcome};

pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }
}

pub fn case_json(r: &CaseReport) -> serde_json::Value {
    let outcome = match &r.outcome {
        Outcome::Passed => "passed",
        Outcome::Skipped(_) => "skipped",
        Outcome::Failed(_) => "failed",
        Outcome::XFailed { .. } => "xfailed",
        Outcome::XPassed(_) => "xpassed",
    };
    let reason = match &r.outcome {
        Outcome::Skipped(why) => Some(why),
        Outcome::XFailed { reason, .. } | Outcome::XPassed(reason) => Some(reason),
        _ => None,
    };
    let failure = match r.outcome.failure() {
        None => serde_json::Value::Null,
        Some(f) => json!({
                "kind": f.kind.label(),
                "step": f.step,
                "line": f.line,
                "message": f.message,
                "details": f.details.iter().map(|d| match d {
                    Detail::Diff { what, expected, actual } => json!({"what": what, "expected": expected, "actual": actual}),
                    Detail::Lines { heading, lines } => json!({"heading": heading, "lines": lines}),
                }).collect::<Vec<_>>(),
        }),
    };
    json!({
        "type": "case",
        "kernel": r.id.kernel,
        "spec": r.id.spec,
        "case": r.id.case,
        "file": r.file.display().to_string(),
        "line": r.line,
        "outcome": outcome,
        "duration_s": r.duration.as_secs_f64(),
        "failure": failure,
        "reason": reason,
        "note": r.note,
        "artifacts": r.artifacts.iter().map(|a| a.display().to_string()).collect::<Vec<_>>(),
        "steps": r.steps.iter().map(|s| json!({
            "label": s.label,
            "exit": s.exit,
            "duration_s": s.duration.as_secs_f64(),
            "passed": s.passed,
            "cpu_s": s.cpu_us.map(|c| c as f64 / 1e6),
            "memory_peak_bytes": s.memory_peak,
            "ktap": s.ktap.iter().map(|t| {
                let (outcome, reason) = super::ktap_outcome(&t.outcome);
                json!({"name": t.name, "outcome": outcome, "reason": reason, "diagnostics": t.diagnostics})
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

impl<W: Write> Reporter for JsonLines<W> {
    fn event(&mut self, ev: &Event) {
        let v = match ev {
            Event::CaseFinished(r) => case_json(r),
            Event::VmBooted {
                kernel,
                spec,
                boot,
                guest_uptime,
                restored,
                note,
            } => {
                json!({"type": "boot", "kernel": kernel, "spec": spec, "boot_s": boot.as_secs_f64(), "guest_uptime_s": guest_uptime, "restored": restored, "note": note})
            }
            Event::CaseStarted(_) => return,
        };
        let _ = writeln!(self.out, "{v}");
    }

    fn finish(&mut self, reports: &[CaseReport]) -> Result<(), Error> {
        let c = count(reports);
        let _ = writeln!(
            self.out,
            "{}",
            json!({"type": "summary", "passed": c.passed, "failed": c.failed, "skipped": c.skipped})
        );
        Ok(self.out.flush()?)
    }
}
