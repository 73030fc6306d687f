//! Step execution: runs (kernel, spec) units on worker threads, each unit in its own VM(s), and
//! reports through one event stream. Joins spec, image and vm below it.

mod artifacts;
pub mod check;
pub mod event;
mod guest;
pub mod ktap;
pub mod ledger;
mod prepare;
mod requirements;
mod settings;
pub mod spec_run;
pub mod splat;
pub mod step;

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

pub use event::{CaseId, CaseReport, Detail, Event, Failure, FailureKind, Outcome, StepReport};
pub use prepare::{prepare, PrepareError, PrepareOptions, Prepared};
pub use requirements::{unmet_before_build, unmet_requirements};
pub use settings::{boot_timeout, vm_config, RunSettings, DEFAULT_CPUS, DEFAULT_MEMORY_MB};
pub use spec_run::{case_of_run, run_spec};
use spec_run::{plan_spec, report_skipped, run_group, BootFailures, Run};

use crate::image::Image;
use crate::spec::LoadedSpec;

/// Run every (image, spec) pair with at most `jobs` VMs at a time, each VM group of a spec
/// (see `SpecPlan`) as a unit of its own. `selected` filters cases.
/// Each worker thread owns its VMs from spawn to kill: QEMU's parent-death signal follows the
/// thread that forked it.
pub fn run_all(
    images: &[Image],
    specs: &[LoadedSpec],
    selected: &(dyn Fn(&CaseId) -> bool + Sync),
    settings: &RunSettings,
    jobs: usize,
    events: &Sender<Event>,
) -> Vec<CaseReport> {
    // Each spec is planned once (its requirements read the built kernel's config); skipped
    // cases are reported here, and each VM group becomes a unit of work.
    let mut skipped = Vec::new();
    let mut units: VecDeque<(&Image, &LoadedSpec, Vec<Run>)> = VecDeque::new();
    for img in images {
        for s in specs {
            let pick = |case: &str| {
                selected(&CaseId {
                    kernel: img.kernel.name.clone(),
                    spec: s.name.clone(),
                    case: case.to_owned(),
                })
            };
            let plan = plan_spec(img, s, &pick, settings);
            skipped.extend(report_skipped(plan.skipped, events));
            units.extend(plan.groups.into_iter().map(|g| (img, s, g)));
        }
    }
    let queue = Mutex::new(units);
    let boots = BootFailures::default();
    let results = Mutex::new(skipped);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let events = events.clone();
            scope.spawn(|| {
                let events = events;
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some((img, spec, runs)) = next else {
                        break;
                    };
                    let r = run_group(img, spec, &runs, settings, &events, &boots);
                    results.lock().unwrap_or_else(|e| e.into_inner()).extend(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
