//! The kernel log of one VM, judged exactly once record by record. Records that arrive while a
//! step runs are that step's; records between steps (and up to a case's settle) belong to the
//! step before them, judged with its `allow` as "after the step returned"; records while only a
//! background command owns the log wait for its `wait`/`kill` step. A report is one unit from
//! the header on (`splat`), and any report or new taint marks the kernel as damaged.

use std::collections::HashMap;

use super::splat::{self, Class, Report, ReportParser, EXPECTED_TAINT};
use crate::vm::{KmsgBatch, KmsgRecord};

/// Who the kernel log belongs to right now.
#[derive(Debug, Clone)]
pub enum Owner {
    /// Boot, or the time between one case's settle and the next case's first step.
    Nobody,
    Step(StepRef),
    Background(String),
}

#[derive(Debug, Clone)]
pub struct StepRef {
    pub label: String,
    pub line: usize,
    pub allow: Vec<String>,
}

/// Why a window fails: the message and the report lines that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub message: String,
    pub lines: Vec<String>,
}

#[derive(Debug, Default)]
struct Background {
    unjudged: KmsgBatch,
    /// Every record since it started (what its `kmsg:` expectations see).
    all: Vec<KmsgRecord>,
}

pub struct Ledger {
    parser: ReportParser,
    taint: u64,
    /// Classes of the allowed reports seen in this VM: the taint they leave is explained.
    explained: Vec<Class>,
    owner: Owner,
    backgrounds: HashMap<String, Background>,
    /// The first report or taint seen in this VM, allowed or not: the kernel is not reused.
    pub damage: Option<String>,
}

impl Ledger {
    pub fn new(taint_at_boot: u64) -> Ledger {
        Ledger {
            parser: ReportParser::new(),
            taint: taint_at_boot,
            explained: Vec::new(),
            owner: Owner::Nobody,
            backgrounds: HashMap::new(),
            damage: None,
        }
    }

    /// Judge one window: its records and the taint at its end.
    fn judge(&mut self, batch: &KmsgBatch, taint_to: u64, allow: &[String]) -> Option<Finding> {
        let mut finding: Option<Finding> = None;
        let mut fail = |message: String, lines: Vec<String>| {
            finding.get_or_insert(Finding { message, lines });
        };
        let allows = |what: &str| allow.iter().any(|a| a == what || a == "all");
        if batch.lost > 0 {
            // What was lost is unknown: the kernel cannot be trusted for another case.
            self.damage
                .get_or_insert_with(|| format!("{} kernel log records lost", batch.lost));
        }
        if batch.lost > 0 && !allows("kmsg_lost") {
            fail(
                format!(
                    "kernel log incomplete: {} records lost (overwritten before they were read)",
                    batch.lost
                ),
                vec![],
            );
        }
        let reports: Vec<Report> = batch
            .records
            .iter()
            .filter_map(|r| self.parser.feed(r))
            .collect();
        for r in &reports {
            self.damage
                .get_or_insert_with(|| format!("{} report: {}", r.class.name(), r.header));
            if splat::is_allowed(r.class, allow) {
                self.explained.push(r.class);
            } else {
                let lines = report_lines(&batch.records, r.seq);
                fail(
                    format!("kernel reported {}: {}", r.class.name(), r.header),
                    lines,
                );
            }
        }
        let before = self.taint;
        self.taint = taint_to;
        if taint_to & !before & !EXPECTED_TAINT != 0 {
            self.damage.get_or_insert_with(|| {
                format!(
                    "kernel became tainted {}",
                    splat::taint_letters(taint_to & !before)
                )
            });
        }
        if let Some(bits) = splat::unexplained_taint(before, taint_to, &self.explained, allow) {
            fail(
                format!(
                    "kernel became tainted: {} (tainted {before} -> {taint_to})",
                    splat::taint_letters(bits)
                ),
                vec![],
            );
        }
        finding
    }

    /// The records since the last boundary, closed by a new step starting (or a settle): they
    /// belong to the current owner. Returns who failed and why.
    pub fn close_gap(&mut self, batch: KmsgBatch, taint: u64) -> Option<(Owner, Finding)> {
        match self.owner.clone() {
            Owner::Background(name) => {
                let bg = self.backgrounds.entry(name).or_default();
                bg.all.extend(batch.records.iter().cloned());
                bg.unjudged.append(batch);
                // The taint is judged with the next window that is judged.
                None
            }
            Owner::Step(s) => {
                self.record_for_backgrounds(&batch);
                let f = self.judge(&batch, taint, &s.allow)?;
                Some((Owner::Step(s), f))
            }
            Owner::Nobody => {
                self.record_for_backgrounds(&batch);
                let f = self.judge(&batch, taint, &[])?;
                Some((Owner::Nobody, f))
            }
        }
    }

    fn record_for_backgrounds(&mut self, batch: &KmsgBatch) {
        for bg in self.backgrounds.values_mut() {
            bg.all.extend(batch.records.iter().cloned());
        }
    }

    /// A step's own window (it ran from its start to its end); it owns the log afterwards.
    pub fn step_window(&mut self, step: StepRef, batch: &KmsgBatch, taint: u64) -> Option<Finding> {
        self.record_for_backgrounds(batch);
        let f = self.judge(batch, taint, &step.allow);
        self.owner = Owner::Step(step);
        f
    }

    pub fn start_background(&mut self, name: &str) {
        self.backgrounds
            .insert(name.to_owned(), Background::default());
        self.owner = Owner::Background(name.to_owned());
    }

    /// A `wait`/`kill` step's window: what it waited through, plus what only its background
    /// command owned. Returns the finding and every record since the background started.
    pub fn finish_background(
        &mut self,
        name: &str,
        step: StepRef,
        batch: &KmsgBatch,
        taint: u64,
    ) -> (Option<Finding>, Vec<KmsgRecord>) {
        let mut bg = self.backgrounds.remove(name).unwrap_or_default();
        self.record_for_backgrounds(batch);
        bg.all.extend(batch.records.iter().cloned());
        bg.unjudged.append(batch.clone());
        let f = self.judge(&bg.unjudged, taint, &step.allow);
        self.owner = Owner::Step(step);
        (f, bg.all)
    }

    /// A case is over (after its settle): what follows belongs to nobody until the next step.
    pub fn end_case(&mut self) {
        self.owner = Owner::Nobody;
        self.backgrounds.clear();
    }
}

/// The lines of the report whose header is record `seq` (up to 40), for the failure message.
fn report_lines(records: &[KmsgRecord], seq: u64) -> Vec<String> {
    records
        .iter()
        .skip_while(|r| r.seq != seq)
        .take(40)
        .map(|r| r.text.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, t: &str) -> KmsgRecord {
        KmsgRecord {
            seq,
            level: 4,
            ts_us: 0,
            text: t.into(),
        }
    }

    fn batch(recs: &[(u64, &str)]) -> KmsgBatch {
        KmsgBatch {
            records: recs.iter().map(|(s, t)| rec(*s, t)).collect(),
            lost: 0,
        }
    }

    fn step(label: &str, allow: &[&str]) -> StepRef {
        StepRef {
            label: label.into(),
            line: 1,
            allow: allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    const W: u64 = 1 << 9;

    #[test]
    fn a_report_after_the_step_returned_is_the_steps() {
        let mut l = Ledger::new(0);
        assert!(l
            .step_window(step("a", &[]), &batch(&[(1, "kchan: hi")]), 0)
            .is_none());
        let late = batch(&[(2, "WARNING: CPU: 1 PID: 9 at x.c:1 f+0x1/0x2")]);
        let (owner, f) = l.close_gap(late, W).unwrap();
        assert!(matches!(owner, Owner::Step(s) if s.label == "a"));
        assert!(f.message.contains("kernel reported warning"), "{f:?}");
        assert!(l.damage.is_some());
    }

    #[test]
    fn an_allowed_report_in_a_background_window_is_judged_once() {
        let mut l = Ledger::new(0);
        l.start_background("bg");
        // The intermediate step allows the WARN it causes, with its W taint.
        let warn = batch(&[(1, "WARNING: CPU: 0 PID: 5 at y.c:2 g+0x1/0x2")]);
        assert!(l.step_window(step("w", &["warning"]), &warn, W).is_none());
        let (f, all) = l.finish_background("bg", step("wait bg", &[]), &batch(&[]), W);
        assert_eq!(f, None);
        assert_eq!(all.len(), 1);
        assert!(l.damage.is_some());
    }

    #[test]
    fn lost_records_fail_unless_allowed() {
        let mut l = Ledger::new(0);
        let b = KmsgBatch {
            records: vec![],
            lost: 7,
        };
        let f = l.step_window(step("a", &[]), &b, 0).unwrap();
        assert!(f.message.contains("7 records lost"));
        assert!(l.step_window(step("b", &["kmsg_lost"]), &b, 0).is_none());
    }

    #[test]
    fn taint_without_a_report_fails() {
        let mut l = Ledger::new(1 << 12);
        let f = l
            .step_window(step("a", &[]), &batch(&[]), (1 << 12) | (1 << 6))
            .unwrap();
        assert!(f.message.contains("tainted: U"), "{f:?}");
    }
}
