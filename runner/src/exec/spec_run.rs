//! Runs the selected cases of one spec file on one kernel image: one VM for the file by default,
//! a fresh one for `fresh_vm` cases, after a crash, and after any kernel report or taint (a
//! damaged kernel is never reused); module load before and a checked unload after; every
//! step's output, exit status and kernel log checked, and each case's log settled before its
//! verdict.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::artifacts;
use super::event::{infra, CaseId, CaseReport, Event, Failure, FailureKind, Outcome, StepReport};
use super::guest::{run_case, settle, start_vm, unload_module, vm_lost, Guest};
use super::requirements::unmet_requirements;
use super::settings::RunSettings;
use crate::image::{initramfs, Image};
use crate::spec::{Case, Isolation, LoadedSpec};
/// One run of a case: which case, and which of `--repeat`'s runs.
pub(super) struct Run<'a> {
    ci: usize,
    case: &'a Case,
    id: CaseId,
}

/// The runs of the selected cases whose own requirements hold, `repeat` times each (named
/// "<case> [run k/n]" then), and a report for each selected case that is skipped.
fn plan_runs<'a>(
    image: &Image,
    spec: &'a LoadedSpec,
    selected: &dyn Fn(&str) -> bool,
    repeat: u32,
) -> (Vec<Run<'a>>, Vec<CaseReport>) {
    let (mut runs, mut skipped) = (Vec::new(), Vec::new());
    let id = |name: String| CaseId {
        kernel: image.kernel.name.clone(),
        spec: spec.name.clone(),
        case: name,
    };
    for (ci, case) in spec.spec.cases.iter().enumerate() {
        if !selected(&case.name) {
            continue;
        }
        if let Some(reason) = unmet_requirements(spec, Some(ci), image) {
            let r = report(id(case.name.clone()), spec, ci, Outcome::Skipped(reason));
            skipped.push(r);
            continue;
        }
        for k in 1..=repeat.max(1) {
            let name = if repeat > 1 {
                run_name(&case.name, k, repeat)
            } else {
                case.name.clone()
            };
            runs.push(Run {
                ci,
                case,
                id: id(name),
            });
        }
    }
    (runs, skipped)
}

/// How run `k` of `n` of a repeated case is named.
fn run_name(case: &str, k: u32, n: u32) -> String {
    format!("{case} [run {k}/{n}]")
}

/// The case a (possibly repeated) run's name is of.
pub fn case_of_run(name: &str) -> &str {
    match name.rsplit_once(" [run ") {
        Some((case, rest)) if rest.ends_with(']') => case,
        _ => name,
    }
}

fn report(id: CaseId, spec: &LoadedSpec, ci: usize, outcome: Outcome) -> CaseReport {
    CaseReport {
        id,
        file: spec.path.clone(),
        line: spec.case_pos(ci).line,
        outcome,
        duration: Duration::ZERO,
        steps: vec![],
        note: None,
        artifacts: vec![],
    }
}

/// An `xfail` case's outcome: a failure is expected, a pass is not.
fn expected(case: &Case, outcome: Outcome) -> Outcome {
    match (&case.xfail, outcome) {
        (Some(reason), Outcome::Failed(failure)) => Outcome::XFailed {
            reason: reason.clone(),
            failure,
        },
        (Some(reason), Outcome::Passed) => Outcome::XPassed(reason.clone()),
        (_, o) => o,
    }
}

/// Run the cases of `spec` for which `selected(case name)` is true, sending events as they go.
pub fn run_spec(
    image: &Image,
    spec: &LoadedSpec,
    selected: &dyn Fn(&str) -> bool,
    settings: &RunSettings,
    events: &Sender<Event>,
) -> Vec<CaseReport> {
    let plan = plan_spec(image, spec, selected, settings);
    let mut reports = report_skipped(plan.skipped, events);
    let boots = BootFailures::default();
    for runs in &plan.groups {
        reports.extend(run_group(image, spec, runs, settings, events, &boots));
    }
    reports
}

/// The boot failures of (kernel, spec file) pairs so far: once a spec's VM failed to boot, its
/// other groups fail at once rather than each waiting out the boot timeout again.
#[derive(Default)]
pub(super) struct BootFailures(Mutex<HashMap<(String, String), Failure>>);

impl BootFailures {
    fn key(image: &Image, spec: &LoadedSpec) -> (String, String) {
        (image.kernel.name.clone(), spec.name.clone())
    }

    fn get(&self, image: &Image, spec: &LoadedSpec) -> Option<Failure> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&Self::key(image, spec)).cloned()
    }

    fn put(&self, image: &Image, spec: &LoadedSpec, f: &Failure) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(Self::key(image, spec), f.clone());
    }
}

/// A spec file's selected cases for one image, planned once: the reports of those skipped, and
/// the runs in VM groups (a case with a fresh VM alone, consecutive others together, in
/// order). No state passes from one group to the next, so groups may run at once.
pub(super) struct SpecPlan<'a> {
    pub(super) skipped: Vec<CaseReport>,
    pub(super) groups: Vec<Vec<Run<'a>>>,
}

pub(super) fn plan_spec<'a>(
    image: &Image,
    spec: &'a LoadedSpec,
    selected: &dyn Fn(&str) -> bool,
    settings: &RunSettings,
) -> SpecPlan<'a> {
    let (runs, skipped) = plan_runs(image, spec, selected, settings.repeat);
    SpecPlan {
        skipped,
        groups: group_runs(spec, settings, runs),
    }
}

/// Is `case` given a VM of its own?
fn fresh(spec: &LoadedSpec, settings: &RunSettings, case: &Case) -> bool {
    case.fresh_vm || spec.spec.isolation.unwrap_or(settings.isolation) == Isolation::Case
}

fn group_runs<'a>(
    spec: &LoadedSpec,
    settings: &RunSettings,
    runs: Vec<Run<'a>>,
) -> Vec<Vec<Run<'a>>> {
    let mut groups: Vec<Vec<Run>> = Vec::new();
    for run in runs {
        let alone = fresh(spec, settings, run.case);
        match groups.last_mut() {
            Some(g) if !alone && !fresh(spec, settings, g[0].case) => g.push(run),
            _ => groups.push(vec![run]),
        }
    }
    groups
}

/// Send and return the reports of skipped cases.
pub(super) fn report_skipped(skipped: Vec<CaseReport>, events: &Sender<Event>) -> Vec<CaseReport> {
    for r in &skipped {
        let _ = events.send(Event::CaseFinished(Box::new(r.clone())));
    }
    skipped
}

/// Run one VM group of a spec file's plan, in one VM while its cases leave the kernel clean.
pub(super) fn run_group(
    image: &Image,
    spec: &LoadedSpec,
    runs: &[Run],
    settings: &RunSettings,
    events: &Sender<Event>,
    boots: &BootFailures,
) -> Vec<CaseReport> {
    let mut reports = Vec::new();
    let finish = |r: CaseReport, reports: &mut Vec<CaseReport>| {
        let _ = events.send(Event::CaseFinished(Box::new(r.clone())));
        reports.push(r);
    };
    if runs.is_empty() {
        return reports;
    }
    let extra = match spec_files_archive(spec) {
        Ok(e) => e,
        Err(e) => {
            for run in runs {
                let line = spec.case_pos(run.ci).line;
                let f = infra(format!("adding spec files: {e}"), "setup", line, vec![]);
                finish(
                    report(run.id.clone(), spec, run.ci, Outcome::Failed(f)),
                    &mut reports,
                );
            }
            return reports;
        }
    };
    let mut vm = VmSlot::default();
    let last = runs.len() - 1;
    for (pos, run) in runs.iter().enumerate() {
        let _ = events.send(Event::CaseStarted(run.id.clone()));
        let started = Instant::now();
        let mut steps = Vec::new();
        let note = if vm.guest.is_none() {
            vm.fresh_because.take().map(|w| format!("fresh VM: {w}"))
        } else {
            None
        };
        let ctx = CaseCtx {
            image,
            spec,
            ci: run.ci,
            extra: extra.as_deref(),
            settings,
            events,
            boots,
            last_in_vm: pos == last,
        };
        let (outcome, artifacts) = vm.run_case(&ctx, &run.id, &mut steps);
        let r = CaseReport {
            duration: started.elapsed(),
            steps,
            note,
            artifacts,
            ..report(run.id.clone(), spec, run.ci, expected(run.case, outcome))
        };
        finish(r, &mut reports);
    }
    reports
}

/// What a case needs to know to run in the file's VM.
struct CaseCtx<'a> {
    image: &'a Image,
    spec: &'a LoadedSpec,
    ci: usize,
    extra: Option<&'a [u8]>,
    settings: &'a RunSettings,
    events: &'a Sender<Event>,
    boots: &'a BootFailures,
    last_in_vm: bool,
}

/// The file's VM between cases: kept while cases leave the kernel clean.
#[derive(Default)]
struct VmSlot {
    guest: Option<Guest>,
    /// Why the previous case's VM was not reused (said on the next case's report).
    fresh_because: Option<String>,
}

impl VmSlot {
    fn run_case(
        &mut self,
        c: &CaseCtx,
        id: &CaseId,
        steps: &mut Vec<StepReport>,
    ) -> (Outcome, Vec<PathBuf>) {
        let result = match c.boots.get(c.image, c.spec) {
            Some(f) => Err(f),
            None => self.in_vm(c, steps),
        };
        let artifacts = match (&result, &c.settings.artifacts) {
            (Err(f), Some(dir)) => {
                // A lost guest cannot be asked for files; its log and console are still here.
                let files: &[String] = if vm_lost(f) {
                    &[]
                } else {
                    &c.spec.spec.artifacts
                };
                let vm = self.guest.as_mut().map(|g| &mut g.vm);
                let console = vm.as_ref().map(|v| v.console_log());
                artifacts::collect(dir, id, vm, console, files)
            }
            _ => vec![],
        };
        let outcome = match result {
            Ok(()) => Outcome::Passed,
            Err(f) => {
                // A dead or confused guest is not reused.
                if vm_lost(&f) && self.guest.take().is_some() {
                    self.fresh_because =
                        Some(format!("the previous case ended in {}", f.kind.label()));
                }
                Outcome::Failed(f)
            }
        };
        if let Some(damage) = self.guest.as_ref().and_then(|g| g.ledger.damage.clone()) {
            self.guest = None;
            self.fresh_because = Some(format!(
                "the previous case left a damaged kernel ({damage})"
            ));
        }
        if c.last_in_vm {
            self.guest = None;
        }
        (outcome, artifacts)
    }

    fn in_vm(&mut self, c: &CaseCtx, steps: &mut Vec<StepReport>) -> Result<(), Failure> {
        if self.guest.is_none() {
            let started = start_vm(c.image, c.spec, c.ci, c.extra, c.settings, c.events, steps);
            match started {
                Ok(g) => self.guest = Some(g),
                Err(f) => {
                    if f.kind == FailureKind::Infrastructure && f.step == "boot" {
                        c.boots.put(c.image, c.spec, &f);
                    }
                    return Err(f);
                }
            }
        }
        let g = self.guest.as_mut().expect("VM started above");
        let mut result = run_case(g, c.spec, c.ci, c.settings.bless, steps);
        let unload = c.spec.spec.module.as_ref().is_some_and(|m| m.unload);
        if result.is_ok() && c.last_in_vm && unload {
            result = unload_module(g, c.image, c.spec, steps);
        }
        // After a crash, a hang or a broken protocol the VM is dropped unsettled.
        if matches!(&result, Err(f) if vm_lost(f)) {
            return result;
        }
        result.and(settle(g, c.spec, steps))
    }
}

fn spec_files_archive(spec: &LoadedSpec) -> Result<Option<Vec<u8>>, String> {
    if spec.spec.files.is_empty() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for f in &spec.spec.files {
        use std::os::unix::fs::PermissionsExt;
        let src = spec.dir().join(&f.src);
        let data = std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let exec = std::fs::metadata(&src)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        let mode = match &f.mode {
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .map_err(|e| format!("mode {m}: {e}"))?,
            None if exec => 0o755,
            None => 0o644,
        };
        files.push((f.dest.clone(), data, mode));
    }
    initramfs::extra(&files)
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::Accel;

    fn groups_of(text: &str, isolation: Isolation) -> Vec<Vec<String>> {
        let spec = crate::spec::load_str(std::path::Path::new("g.yaml"), text).unwrap();
        let mut settings = RunSettings::new(Accel::Tcg, None);
        settings.isolation = isolation;
        let runs = spec
            .spec
            .cases
            .iter()
            .enumerate()
            .map(|(ci, case)| Run {
                ci,
                case,
                id: CaseId {
                    kernel: "k".into(),
                    spec: "g".into(),
                    case: case.name.clone(),
                },
            })
            .collect();
        group_runs(&spec, &settings, runs)
            .into_iter()
            .map(|g| g.into_iter().map(|r| r.id.case).collect())
            .collect()
    }

    #[test]
    fn a_fresh_vm_case_is_a_group_of_its_own_and_the_others_keep_their_order() {
        let text = "name: g\ncases:\n\
            - { name: a, steps: [{ run: 'true' }] }\n\
            - { name: b, steps: [{ run: 'true' }] }\n\
            - { name: c, fresh_vm: true, steps: [{ run: 'true' }] }\n\
            - { name: d, steps: [{ run: 'true' }] }\n\
            - { name: e, fresh_vm: true, steps: [{ run: 'true' }] }\n\
            - { name: f, fresh_vm: true, steps: [{ run: 'true' }] }\n";
        assert_eq!(
            groups_of(text, Isolation::Spec),
            [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"], vec!["f"]]
        );
        assert_eq!(groups_of(text, Isolation::Case).len(), 6);
    }

    #[test]
    fn a_runs_name_leads_back_to_its_case() {
        let name = super::run_name("a [b] case", 2, 5);
        assert_eq!(name, "a [b] case [run 2/5]");
        assert_eq!(super::case_of_run(&name), "a [b] case");
        assert_eq!(super::case_of_run("plain case"), "plain case");
    }
}
