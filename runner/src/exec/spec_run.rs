//! Runs the selected cases of one spec file on one kernel image: one VM for the file by default,
//! a fresh one for `fresh_vm` cases, after a crash, and after any kernel report or taint (a
//! damaged kernel is never reused); module load before and a checked unload after; every
//! step's output, exit status and kernel log checked, and each case's log settled before its
//! verdict.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::event::{CaseId, CaseReport, Detail, Event, Failure, FailureKind, Outcome, StepReport};
use super::ledger::{Ledger, StepRef};
use super::step::{execute, gap_failure, vm_failure, StepEnv, StepPlace};
use crate::image::{initramfs, GuestModule, Image};
use crate::spec::{version_matches, Action, Case, Isolation, LoadedSpec, Step};
use crate::vm::{Accel, Vm, VmConfig};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MEMORY_MB: u32 = 256;
pub const DEFAULT_CPUS: u32 = 2;
pub const DEFAULT_OUTPUT_LIMIT: u64 = 4 << 20;
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub accel: Accel,
    /// Guest memory; None: the kernel list's `memory_mb`, else DEFAULT_MEMORY_MB.
    pub memory_mb: Option<u32>,
    pub boot_timeout: Duration,
    /// Where VM snapshots are kept (None: every VM boots cold).
    pub snapshots: Option<std::path::PathBuf>,
    /// For spec files that do not say: do their cases share a VM?
    pub isolation: Isolation,
}

impl RunSettings {
    /// The settings every front end uses: the boot bound for `accel`, and snapshots in the
    /// build cache unless `KSPEC_SNAPSHOTS=off`.
    pub fn new(accel: Accel, memory_mb: Option<u32>) -> Self {
        let snapshots = match std::env::var("KSPEC_SNAPSHOTS").as_deref() {
            Ok("off" | "0" | "no") => None,
            _ => crate::image::Cache::from_env()
                .and_then(|c| c.dir(&["snapshots"]))
                .ok(),
        };
        RunSettings {
            accel,
            memory_mb,
            boot_timeout: boot_timeout(accel),
            snapshots,
            isolation: Isolation::Spec,
        }
    }
}

/// TCG boots take seconds; leave room for slow or loaded machines and debug kernels.
pub fn boot_timeout(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => Duration::from_secs(60),
        Accel::Tcg => Duration::from_secs(180),
    }
}

/// A VM with what is known about its kernel log.
struct Guest {
    vm: Vm,
    ledger: Ledger,
}

/// How to boot `image` with `cpus` vCPUs: its vmlinux and initramfs, the memory the settings or
/// the kernel list ask for, its extra command line.
pub fn vm_config(image: &Image, settings: &RunSettings, cpus: u32) -> VmConfig {
    VmConfig {
        kernel: image.built.vmlinux.clone(),
        initramfs: image.initramfs.clone(),
        accel: settings.accel,
        memory_mb: settings
            .memory_mb
            .or(image.kernel.memory_mb)
            .unwrap_or(DEFAULT_MEMORY_MB),
        cpus,
        cmdline: image.kernel.cmdline.clone().unwrap_or_default(),
        boot_timeout: settings.boot_timeout,
        snapshots: settings.snapshots.clone(),
    }
}

/// Why the cases of `spec` will not run on `kernel`, as far as can be known before anything is
/// built (for test harnesses that list cases as ignored up front): the version range, and the
/// Kconfig symbols its fragments leave disabled. tinyconfig enables almost nothing, and the
/// build verifies every fragment symbol, so this agrees with `unmet_requirements` unless a
/// required symbol is only selected by another one.
pub fn unmet_before_build(
    spec: &LoadedSpec,
    kernel: &crate::image::Kernel,
    fragments: &[String],
) -> Option<String> {
    let mut set = std::collections::HashMap::new();
    for text in fragments {
        set.extend(crate::image::kernel::parse_fragment(text));
    }
    unmet(
        spec,
        kernel,
        |sym| matches!(set.get(sym).map(String::as_str), Some("y" | "m")),
        " (its Kconfig fragments do not enable it)",
    )
}

/// Why the cases of `spec` cannot run on `image`, if they cannot.
pub fn unmet_requirements(spec: &LoadedSpec, image: &Image) -> Option<String> {
    unmet(spec, &image.kernel, |sym| image.built.has_symbol(sym), "")
}

/// Why `spec`'s requirements rule out `kernel`, given which Kconfig symbols (without CONFIG_)
/// it enables; `why` says where that knowledge came from.
fn unmet(
    spec: &LoadedSpec,
    kernel: &crate::image::Kernel,
    enabled: impl Fn(&str) -> bool,
    why: &str,
) -> Option<String> {
    let r = &spec.spec.requires;
    let missing: Vec<&str> = r
        .kconfig
        .iter()
        .map(String::as_str)
        .filter(|s| !enabled(s.strip_prefix("CONFIG_").unwrap_or(s)))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "kernel {} lacks {}{why}",
            kernel.name,
            missing.join(", ")
        ));
    }
    match &r.kernel {
        Some(req) if !version_matches(req, &kernel.version) => {
            Some(format!("kernel {} does not satisfy {req}", kernel.version))
        }
        _ => None,
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
    let cases: Vec<(usize, &Case)> = spec
        .spec
        .cases
        .iter()
        .enumerate()
        .filter(|(_, c)| selected(&c.name))
        .collect();
    let id = |c: &Case| CaseId {
        kernel: image.kernel.name.clone(),
        spec: spec.name.clone(),
        case: c.name.clone(),
    };
    let mut reports = Vec::new();
    let finish = |r: CaseReport, reports: &mut Vec<CaseReport>| {
        let _ = events.send(Event::CaseFinished(Box::new(r.clone())));
        reports.push(r);
    };
    if let Some(reason) = unmet_requirements(spec, image) {
        for (ci, c) in &cases {
            let r = CaseReport {
                id: id(c),
                file: spec.path.clone(),
                line: spec.case_pos(*ci).line,
                outcome: Outcome::Skipped(reason.clone()),
                duration: Duration::ZERO,
                steps: vec![],
                note: None,
            };
            finish(r, &mut reports);
        }
        return reports;
    }
    let extra = match spec_files_archive(spec) {
        Ok(e) => e,
        Err(e) => {
            for (ci, c) in &cases {
                let f = infra(
                    format!("adding spec files: {e}"),
                    "setup",
                    spec.case_pos(*ci).line,
                    vec![],
                );
                finish(
                    failed_report(id(c), spec, *ci, f, Duration::ZERO, vec![]),
                    &mut reports,
                );
            }
            return reports;
        }
    };
    let mut guest: Option<Guest> = None;
    let mut boot_failure: Option<Failure> = None;
    // Why the previous case's VM was not reused (said on the next case's report).
    let mut fresh_because: Option<String> = None;
    let isolated = spec.spec.isolation.unwrap_or(settings.isolation) == Isolation::Case;
    let fresh = |c: &Case| c.fresh_vm || isolated;
    for (pos, (ci, case)) in cases.iter().enumerate() {
        let _ = events.send(Event::CaseStarted(id(case)));
        let started = Instant::now();
        if fresh(case) {
            guest = None;
        }
        // The VM ends after this case if the next selected case wants a fresh one, or none follows.
        let last_in_vm = fresh(case) || cases.get(pos + 1).is_none_or(|(_, n)| fresh(n));
        let mut steps = Vec::new();
        let note = if guest.is_none() {
            fresh_because.take().map(|w| format!("fresh VM: {w}"))
        } else {
            None
        };
        let outcome = match boot_failure.clone() {
            Some(f) => Err(f),
            None => (|| {
                if guest.is_none() {
                    guest = Some(
                        start_vm(
                            image,
                            spec,
                            *ci,
                            extra.as_deref(),
                            settings,
                            events,
                            &mut steps,
                        )
                        .inspect_err(|f| {
                            if f.kind == FailureKind::Infrastructure && f.step == "boot" {
                                boot_failure = Some(f.clone());
                            }
                        })?,
                    );
                }
                let g = guest.as_mut().expect("VM started above");
                let mut result = run_case(g, spec, *ci, case, &mut steps);
                if result.is_ok() && last_in_vm {
                    if let Some(m) = &spec.spec.module {
                        if m.unload {
                            result = unload_module(g, image, spec, &mut steps);
                        }
                    }
                }
                // After a crash, a hang or a broken protocol the VM is dropped unsettled.
                let vm_lost = matches!(&result, Err(f) if matches!(
                    f.kind,
                    FailureKind::Panic | FailureKind::Infrastructure | FailureKind::Timeout
                ));
                let settled = if vm_lost {
                    Ok(())
                } else {
                    settle(g, spec, &mut steps)
                };
                result.and(settled)
            })(),
        };
        let outcome = match outcome {
            Ok(()) => Outcome::Passed,
            Err(f) => {
                // A dead or confused guest is not reused.
                if matches!(
                    f.kind,
                    FailureKind::Panic | FailureKind::Infrastructure | FailureKind::Timeout
                ) && guest.is_some()
                {
                    guest = None;
                    fresh_because = Some(format!("the previous case ended in {}", f.kind.label()));
                }
                Outcome::Failed(f)
            }
        };
        if let Some(damage) = guest.as_ref().and_then(|g| g.ledger.damage.clone()) {
            guest = None;
            fresh_because = Some(format!(
                "the previous case left a damaged kernel ({damage})"
            ));
        }
        if last_in_vm {
            guest = None;
        }
        let r = CaseReport {
            id: id(case),
            file: spec.path.clone(),
            line: spec.case_pos(*ci).line,
            outcome,
            duration: started.elapsed(),
            steps,
            note,
        };
        finish(r, &mut reports);
    }
    reports
}

fn failed_report(
    id: CaseId,
    spec: &LoadedSpec,
    ci: usize,
    f: Failure,
    d: Duration,
    steps: Vec<StepReport>,
) -> CaseReport {
    CaseReport {
        id,
        file: spec.path.clone(),
        line: spec.case_pos(ci).line,
        outcome: Outcome::Failed(f),
        duration: d,
        steps,
        note: None,
    }
}

fn infra(message: String, step: &str, line: usize, details: Vec<Detail>) -> Failure {
    Failure {
        kind: FailureKind::Infrastructure,
        step: step.into(),
        line,
        message,
        details,
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

fn start_vm(
    image: &Image,
    spec: &LoadedSpec,
    ci: usize,
    extra: Option<&[u8]>,
    settings: &RunSettings,
    events: &Sender<Event>,
    steps: &mut Vec<StepReport>,
) -> Result<Guest, Failure> {
    let cfg = vm_config(image, settings, spec.spec.cpus.unwrap_or(DEFAULT_CPUS));
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
        let mut params = module.params.clone();
        params.extend(m.params.iter().map(|(k, v)| (k.clone(), v.to_string())));
        let mut cmd = format!("insmod {}", module.guest_path);
        for (k, v) in &params {
            cmd.push_str(&format!(" {k}={}", shell_quote(v)));
        }
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

fn unload_module(
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
fn settle(g: &mut Guest, spec: &LoadedSpec, steps: &mut Vec<StepReport>) -> Result<(), Failure> {
    let quiet = spec.spec.settle.map_or(DEFAULT_SETTLE, |t| t.0);
    let place = StepPlace {
        label: "settle",
        line: spec.locator.find("cases").line,
        timeout: quiet,
        output_limit: 0,
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

fn run_case(
    g: &mut Guest,
    spec: &LoadedSpec,
    ci: usize,
    case: &Case,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let mut backgrounds: HashMap<String, u32> = HashMap::new();
    let mut result = Ok(());
    for (si, step) in case.steps.iter().enumerate() {
        let label = spec.step_label(ci, si);
        let place = StepPlace {
            label: &label,
            line: spec.step_pos(ci, si).line,
            timeout: timeout_of(spec, case, step),
            output_limit: step
                .output_limit
                .or(spec.spec.output_limit)
                .map_or(DEFAULT_OUTPUT_LIMIT, |l| l.0),
        };
        let mut env = StepEnv {
            vm: &mut g.vm,
            ledger: &mut g.ledger,
            backgrounds: &mut backgrounds,
            steps,
        };
        if let Err(f) = execute(&mut env, step, spec.action(ci, si), &place) {
            result = Err(f);
            break;
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

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
