//! One VM as a case sees it: booted (or restored) with the spec's files, the module loaded, a
//! case's steps run through the ledger, the module unloaded, the kernel log settled.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::event::{infra, Detail, Event, Failure, FailureKind, StepReport};
use super::ledger::{Ledger, StepRef};
use super::settings::{vm_config, RunSettings, DEFAULT_CPUS, DEFAULT_OUTPUT_LIMIT, DEFAULT_SETTLE};
use super::step::{execute, gap_failure, vm_failure, StepEnv, StepPlace};
use crate::image::{GuestModule, Image};
use crate::spec::{Action, Case, LoadedSpec, PlannedStep, Step};
use crate::vm::Vm;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A VM with what is known about its kernel log.
pub(super) struct Guest {
    pub vm: Vm,
    pub ledger: Ledger,
}

pub(super) fn start_vm(
    image: &Image,
    spec: &LoadedSpec,
    ci: usize,
    extra: Option<&[u8]>,
    settings: &RunSettings,
    events: &Sender<Event>,
    steps: &mut Vec<StepReport>,
) -> Result<Guest, Failure> {
    let mut cfg = vm_config(image, settings, spec.spec.cpus.unwrap_or(DEFAULT_CPUS));
    // A file's own memory and command line: its VMs get snapshots of their own (both are in
    // the snapshot's key).
    if let Some(m) = spec.spec.memory {
        cfg.memory_mb = (m.0 >> 20).max(64) as u32;
    }
    if let Some(extra) = &spec.spec.cmdline {
        cfg.cmdline = format!("{} {extra}", cfg.cmdline).trim().to_owned();
    }
    let line = spec.case_pos(ci).line;
    let vm = Vm::boot(&cfg, extra).map_err(|e| {
        let tail = e.console_tail().to_vec();
        infra(
            e.to_string(),
            "boot",
            line,
            vec![Detail::Lines {
                heading: "console".into(),
                lines: tail,
            }],
        )
    })?;
    let _ = events.send(Event::VmBooted {
        kernel: image.kernel.name.clone(),
        spec: spec.name.clone(),
        boot: vm.boot_time,
        guest_uptime: vm.guest_ready_uptime,
        restored: vm.restored,
        note: vm.boot_note.clone(),
    });
    let mut g = Guest {
        ledger: Ledger::new(0),
        vm,
    };
    if let Some(m) = &spec.spec.module {
        let line = spec.locator.find("module").line;
        let module = spec_module(image, spec)
            .ok_or_else(|| infra(no_module(image, spec), "module load", line, vec![]))?;
        let over = m.params.iter().map(|(k, v)| (k.clone(), v.to_string()));
        let cmd = module.insmod(&over.collect());
        run_fixed(&mut g, &cmd, "module load", line, steps).map_err(|mut f| {
            if f.kind == FailureKind::Assertion {
                f.kind = FailureKind::Infrastructure;
            }
            f.message = format!("`{cmd}` failed: {}", f.message);
            f
        })?;
    }
    Ok(g)
}

/// A step kspec adds itself (module load and unload).
fn run_fixed(
    g: &mut Guest,
    cmd: &str,
    label: &str,
    line: usize,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let step = Step {
        run: Some(cmd.into()),
        ..Default::default()
    };
    let action = Action::Run { cmd: cmd.into() };
    let place = StepPlace {
        label,
        line,
        timeout: Duration::from_secs(60),
        output_limit: DEFAULT_OUTPUT_LIMIT,
        env: &[],
        path: "",
    };
    let mut backgrounds = HashMap::new();
    let mut env = StepEnv {
        vm: &mut g.vm,
        ledger: &mut g.ledger,
        backgrounds: &mut backgrounds,
        steps,
    };
    execute(&mut env, &step, &action, &place)
}

/// The module `spec` loads: the one its `module:` names, else the image's first.
fn spec_module<'a>(image: &'a Image, spec: &LoadedSpec) -> Option<&'a GuestModule> {
    let name = spec.spec.module.as_ref().and_then(|m| m.name.as_deref());
    image.module(name)
}

fn no_module(image: &Image, spec: &LoadedSpec) -> String {
    let name = spec.spec.module.as_ref().and_then(|m| m.name.as_deref());
    format!(
        "the image of {} has no module {}",
        image.kernel.name,
        name.map_or("at all".into(), |n| format!("{n:?}"))
    )
}

pub(super) fn unload_module(
    g: &mut Guest,
    image: &Image,
    spec: &LoadedSpec,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let line = spec.locator.find("module").line;
    let module = spec_module(image, spec)
        .ok_or_else(|| infra(no_module(image, spec), "module unload", line, vec![]))?;
    run_fixed(
        g,
        &format!("rmmod {}", module.name),
        "module unload",
        line,
        steps,
    )
}

/// Wait for the kernel log to go quiet and judge what came since the last step: reports of
/// deferred work belong to this case. The case's log window closes here.
pub(super) fn settle(
    g: &mut Guest,
    spec: &LoadedSpec,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let quiet = spec.spec.settle.map_or(DEFAULT_SETTLE, |t| t.0);
    let place = StepPlace {
        label: "settle",
        line: spec.locator.find("cases").line,
        timeout: quiet,
        output_limit: 0,
        env: &[],
        path: "",
    };
    if quiet.is_zero() {
        g.ledger.end_case();
        return Ok(());
    }
    let started = Instant::now();
    let max = (quiet * 10).clamp(Duration::from_secs(2), Duration::from_secs(10));
    let s =
        g.vm.settle(quiet, max)
            .map_err(|e| vm_failure(e, &mut g.vm, &place, started, steps))?;
    let gap = g.ledger.close_gap(s.records, s.taint);
    g.ledger.end_case();
    match gap {
        Some((owner, f)) => Err(gap_failure(owner, f, &place)),
        None => Ok(()),
    }
}

fn timeout_of(spec: &LoadedSpec, case: &Case, step: &Step) -> Duration {
    step.timeout
        .or(case.timeout)
        .or(spec.spec.timeout)
        .map_or(DEFAULT_TIMEOUT, |t| t.0)
}

/// Run case `ci`: its steps (setup included) until one fails, then its teardown unless the
/// VM is lost; the case's result is the first failure.
/// With `blessing`, a step that fails only by output `--bless` will rewrite does not stop the
/// case: the steps after it run, so one run blesses them all.
pub(super) fn run_case(
    g: &mut Guest,
    spec: &LoadedSpec,
    ci: usize,
    blessing: bool,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let plan = spec.plan(ci);
    let case = &spec.spec.cases[ci];
    let result = run_steps(g, spec, case, &plan.steps, blessing, steps);
    if plan.teardown.is_empty() || matches!(&result, Err(f) if vm_lost(f)) {
        return result;
    }
    let torn = run_steps(g, spec, case, &plan.teardown, blessing, steps);
    result.and(torn)
}

/// A failure after which the VM is not used again (not even for a teardown).
pub(super) fn vm_lost(f: &Failure) -> bool {
    matches!(
        f.kind,
        FailureKind::Panic | FailureKind::Infrastructure | FailureKind::Timeout
    )
}

fn run_steps(
    g: &mut Guest,
    spec: &LoadedSpec,
    case: &Case,
    planned: &[PlannedStep],
    blessing: bool,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let mut backgrounds: HashMap<String, u32> = HashMap::new();
    let mut result = Ok(());
    for ps in planned {
        let label = ps.label();
        let place = StepPlace {
            label: &label,
            line: spec.planned_pos(ps).line,
            timeout: timeout_of(spec, case, &ps.step),
            output_limit: ps
                .step
                .output_limit
                .or(spec.spec.output_limit)
                .map_or(DEFAULT_OUTPUT_LIMIT, |l| l.0),
            env: &ps.env,
            path: &ps.path,
        };
        let mut env = StepEnv {
            vm: &mut g.vm,
            ledger: &mut g.ledger,
            backgrounds: &mut backgrounds,
            steps,
        };
        if let Err(f) = execute(&mut env, &ps.step, &ps.action, &place) {
            let blessed = blessing && steps.last().is_some_and(|s| !s.bless.is_empty());
            if result.is_ok() {
                result = Err(f);
            }
            if !blessed {
                break;
            }
        }
    }
    // A failed case may leave background commands running: stop them before the next case.
    // Their kernel log still goes through the ledger (the case has failed already, but a
    // report there marks the kernel as damaged).
    let kill = Some(nix::sys::signal::Signal::SIGKILL as i32);
    for (name, id) in backgrounds.drain() {
        let Ok(out) = g.vm.finish_background(id, kill, Duration::from_secs(5)) else {
            break;
        };
        let _ = g.ledger.close_gap(out.start.before, out.start.taint);
        let cleanup = StepRef {
            label: format!("kill {name} (cleanup)"),
            line: 0,
            allow: vec![],
        };
        let _ =
            g.ledger
                .finish_background(&name, cleanup, &out.end.during, out.end.result.taint_after);
    }
    result
}
