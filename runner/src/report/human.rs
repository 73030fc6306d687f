//! Human-readable progress and failures: one line per case, and for a failure the step, its
//! spec line, a diff of expected vs actual and the step's kernel lines.

use std::io::Write;
use std::time::Instant;

use similar::{ChangeTag, TextDiff};

use super::{count, Error, Reporter};
use crate::exec::{CaseReport, Detail, Event, Outcome};

pub struct Human<W: Write> {
    out: W,
    started: Instant,
    color: bool,
}

impl<W: Write> Human<W> {
    pub fn new(out: W, color: bool) -> Self {
        Human {
            out,
            started: Instant::now(),
            color,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// The failure block of one case, as text lines (shared with the libtest harness).
pub fn failure_text(r: &CaseReport) -> String {
    if let Outcome::XPassed(reason) = &r.outcome {
        return format!(
            "{}:{}: passed, but it is marked xfail: {reason} (remove `xfail` if that is fixed)\n",
            r.file.display(),
            r.line
        );
    }
    let Some(f) = r.outcome.failure() else {
        return String::new();
    };
    let mut s = format!(
        "{}:{}: {} in step `{}`: {}\n",
        r.file.display(),
        f.line,
        f.kind.label(),
        f.step,
        f.message
    );
    if let Some(st) = r.steps.last() {
        if let (Some(cpu), Some(mem)) = (st.cpu_us, st.memory_peak) {
            s.push_str(&format!(
                "  step figures: {:.3}s wall, {:.3}s CPU, peak memory {}\n",
                st.duration.as_secs_f64(),
                cpu as f64 / 1e6,
                crate::spec::format_size(mem)
            ));
        }
    }
    for d in &f.details {
        match d {
            Detail::Diff {
                what,
                expected,
                actual,
            } => {
                s.push_str(&format!("  {what} (- expected, + actual):\n"));
                let diff = TextDiff::from_lines(expected, actual);
                for change in diff.iter_all_changes() {
                    let sign = match change.tag() {
                        ChangeTag::Delete => "-",
                        ChangeTag::Insert => "+",
                        ChangeTag::Equal => " ",
                    };
                    let line = change.value();
                    let shown = if line.ends_with('\n') {
                        line.to_owned()
                    } else {
                        format!("{line}⏎ (no newline)\n")
                    };
                    s.push_str(&format!(
                        "    {sign}{}",
                        shown.escape_debug().to_string().replace("\\n", "\n")
                    ));
                }
            }
            Detail::Lines { heading, lines } => {
                if lines.is_empty() {
                    s.push_str(&format!("  {heading}: (none)\n"));
                    continue;
                }
                s.push_str(&format!("  {heading}:\n"));
                for l in lines.iter().take(60) {
                    s.push_str(&format!("    | {l}\n"));
                }
                if lines.len() > 60 {
                    s.push_str(&format!("    | ... {} more lines\n", lines.len() - 60));
                }
            }
        }
    }
    s
}

impl<W: Write> Reporter for Human<W> {
    fn event(&mut self, ev: &Event) {
        match ev {
            Event::VmBooted {
                kernel,
                spec,
                boot,
                guest_uptime,
                restored,
                note,
            } => {
                let how = if *restored {
                    "VM restored from its snapshot in"
                } else {
                    "VM ready in"
                };
                let note = note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
                let _ = writeln!(
                    self.out,
                    "{} [{kernel}] {spec}: {how} {:.2}s (guest uptime {guest_uptime:.2}s{note})",
                    self.paint("2", "      BOOT"),
                    boot.as_secs_f64()
                );
            }
            Event::CaseStarted(_) => {}
            Event::CaseFinished(r) => {
                let (tag, color) = match &r.outcome {
                    Outcome::Passed => ("      PASS", "32"),
                    Outcome::Failed(_) => ("      FAIL", "31;1"),
                    Outcome::Skipped(_) => ("      SKIP", "33"),
                    Outcome::XFailed { .. } => ("     XFAIL", "33"),
                    Outcome::XPassed(_) => ("     XPASS", "31;1"),
                };
                let extra = match &r.outcome {
                    Outcome::Skipped(why) => format!(": {why}"),
                    Outcome::XFailed { reason, .. } => format!(": expected ({reason})"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    self.out,
                    "{} [{}] {} ({:.2}s){extra}",
                    self.paint(color, tag),
                    r.id.kernel,
                    r.id.name(),
                    r.duration.as_secs_f64()
                );
                if let Some(note) = &r.note {
                    let _ = writeln!(self.out, "        note: {note}");
                }
                for t in r.steps.iter().flat_map(|s| &s.ktap) {
                    let (outcome, why) = super::ktap_outcome(&t.outcome);
                    let why = why.map(|w| format!(": {w}")).unwrap_or_default();
                    let _ = writeln!(self.out, "        ktap {outcome:<7} {}{why}", t.name);
                }
                for a in &r.artifacts {
                    let _ = writeln!(self.out, "        artifact: {}", a.display());
                }
                if r.outcome.is_failure() {
                    for l in failure_text(r).lines() {
                        let _ = writeln!(self.out, "        {l}");
                    }
                }
                let _ = self.out.flush();
            }
        }
    }

    fn finish(&mut self, reports: &[CaseReport]) -> Result<(), Error> {
        let c = count(reports);
        let failed: Vec<&CaseReport> = reports.iter().filter(|r| r.outcome.is_failure()).collect();
        if !failed.is_empty() {
            let _ = writeln!(self.out, "\nFailed cases:");
            for r in failed {
                let line = match &r.outcome {
                    Outcome::Failed(f) => f.line,
                    _ => r.line,
                };
                let _ = writeln!(
                    self.out,
                    "  [{}] {} ({}:{})",
                    r.id.kernel,
                    r.id.name(),
                    r.file.display(),
                    line
                );
            }
        }
        let _ = writeln!(
            self.out,
            "\nkspec: {} cases in {:.1}s",
            reports.len(),
            self.started.elapsed().as_secs_f64()
        );
        // The closing line CI tools read.
        let xfailed = if c.xfailed > 0 {
            format!(", {} xfailed", c.xfailed)
        } else {
            String::new()
        };
        let _ = writeln!(
            self.out,
            "{} passed, {} failed, {} skipped{xfailed}",
            c.passed, c.failed, c.skipped
        );
        Ok(self.out.flush()?)
    }
}
