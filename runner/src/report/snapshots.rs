//! Every reporter's output for one fixed run (a boot, a pass, a skip, failures of each kind),
//! compared with the files in `snapshots/`; `KSPEC_BLESS=1` rewrites them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{github::Github, human::Human, json::JsonLines, junit::Junit, Reporter};
use crate::exec::{CaseId, CaseReport, Detail, Event, Failure, FailureKind, Outcome, StepReport};

/// A writer the test can read back after the reporter is done with it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn case(name: &str, line: usize, outcome: Outcome) -> CaseReport {
    CaseReport {
        id: CaseId {
            kernel: "6.12".into(),
            spec: "demo".into(),
            case: name.into(),
        },
        file: PathBuf::from("specs/demo.yaml"),
        line,
        outcome,
        duration: Duration::from_millis(1250),
        steps: vec![StepReport {
            label: "kchanctl proc read".into(),
            exit: Some(0),
            duration: Duration::from_millis(12),
            passed: true,
            cpu_us: Some(900),
            memory_peak: Some(1 << 20),
            ktap: vec![],
            bless: vec![],
        }],
        note: None,
        artifacts: vec![],
    }
}

fn failure(kind: FailureKind, message: &str, details: Vec<Detail>) -> Outcome {
    Outcome::Failed(Failure {
        kind,
        step: "kchanctl sockopt last".into(),
        line: 9,
        message: message.into(),
        details,
    })
}

/// A failed case whose KTAP step holds a pass, a skip and a failure with diagnostics, and
/// whose artifacts were copied.
fn kunit() -> CaseReport {
    use crate::exec::ktap::{KtapOutcome, KtapResult};
    let result = |name: &str, outcome, diagnostics: &[&str]| KtapResult {
        name: name.into(),
        outcome,
        diagnostics: diagnostics.iter().map(|d| d.to_string()).collect(),
    };
    let mut r = case(
        "kunit suite",
        30,
        failure(
            FailureKind::Assertion,
            "ktap: 1 of 3 tests failed: example/fails",
            vec![Detail::Lines {
                heading: "ktap: example/fails failed".into(),
                lines: vec!["# fails: EXPECTATION FAILED at kspec_kunit.c:12".into()],
            }],
        ),
    );
    r.steps[0].ktap = vec![
        result("example/passes", KtapOutcome::Pass, &[]),
        result(
            "example/skipped",
            KtapOutcome::Skip("no hardware".into()),
            &[],
        ),
        result(
            "example/fails",
            KtapOutcome::Fail,
            &["# fails: EXPECTATION FAILED at kspec_kunit.c:12"],
        ),
    ];
    r.artifacts = vec![
        PathBuf::from("artifacts/6.12/demo/kunit_suite/console.log"),
        PathBuf::from("artifacts/6.12/demo/kunit_suite/kernel.log"),
    ];
    r
}

fn run() -> (Vec<Event>, Vec<CaseReport>) {
    let mut noted = case("fresh vm", 20, Outcome::Passed);
    noted.note = Some("a fresh VM: the previous case tainted the kernel".into());
    let reports = vec![
        case("passes", 5, Outcome::Passed),
        case(
            "wrong output",
            8,
            failure(
                FailureKind::Assertion,
                "stdout lines differ",
                vec![Detail::Diff {
                    what: "stdout".into(),
                    expected: "last: hello kernel!\nlen: 12\n".into(),
                    actual: "last: hello kernel\nlen: 12\n".into(),
                }],
            ),
        ),
        case(
            "warns",
            12,
            failure(
                FailureKind::KernelReport,
                "kernel reported warning: WARNING: CPU: 1 PID: 80 at kchan_main.rs:10",
                vec![Detail::Lines {
                    heading: "kernel log of the step".into(),
                    lines: vec![
                        "[    1.000000] WARNING: CPU: 1 PID: 80 at kchan_main.rs:10".into(),
                        "[    1.000001] Call Trace:".into(),
                    ],
                }],
            ),
        ),
        case(
            "hangs",
            15,
            failure(
                FailureKind::Timeout,
                "timed out after 2.0s (killed)",
                vec![],
            ),
        ),
        case(
            "needs kasan",
            18,
            Outcome::Skipped("kernel 6.12 lacks KASAN".into()),
        ),
        noted,
        case(
            "known bug",
            22,
            Outcome::XFailed {
                reason: "kchan#12: stats race".into(),
                failure: Failure {
                    kind: FailureKind::Assertion,
                    step: "cat /proc/kchan/stats".into(),
                    line: 24,
                    message: "stdout lines differ".into(),
                    details: vec![],
                },
            },
        ),
        case(
            "fixed bug",
            26,
            Outcome::XPassed("kchan#9: fixed since".into()),
        ),
        kunit(),
    ];
    let mut events = vec![Event::VmBooted {
        kernel: "6.12".into(),
        spec: "demo".into(),
        boot: Duration::from_millis(140),
        guest_uptime: 0.68,
        restored: true,
        note: None,
    }];
    for r in &reports {
        events.push(Event::CaseStarted(r.id.clone()));
        events.push(Event::CaseFinished(Box::new(r.clone())));
    }
    (events, reports)
}

fn feed(r: &mut dyn Reporter) {
    let (events, reports) = run();
    for e in &events {
        r.event(e);
    }
    r.finish(&reports).unwrap();
}

/// Compare `actual` with `snapshots/<name>`, or write it there with KSPEC_BLESS=1.
fn pinned(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/report/snapshots")
        .join(name);
    if std::env::var_os("KSPEC_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (KSPEC_BLESS=1 writes it)", path.display()));
    assert!(
        want == actual,
        "{name} differs from {} (KSPEC_BLESS=1 rewrites it):\n{}",
        path.display(),
        similar::TextDiff::from_lines(want.as_str(), actual).unified_diff()
    );
}

#[test]
fn human() {
    let out = Shared::default();
    feed(&mut Human::new(out.clone(), false));
    // The run's wall time is the one thing that differs between runs.
    let elapsed = regex::Regex::new(r"cases in [0-9.]+s").unwrap();
    let text = elapsed
        .replace_all(&out.text(), "cases in <elapsed>s")
        .into_owned();
    pinned("human.txt", &text);
}

#[test]
fn json_lines() {
    let out = Shared::default();
    feed(&mut JsonLines::new(out.clone()));
    pinned("json.txt", &out.text());
}

#[test]
fn github_annotations() {
    let out = Shared::default();
    feed(&mut Github::new(out.clone()));
    pinned("github.txt", &out.text());
}

#[test]
fn junit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xml");
    feed(&mut Junit::new(path.clone()));
    pinned("junit.xml", &std::fs::read_to_string(path).unwrap());
}
