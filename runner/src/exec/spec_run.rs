//! Runs the selected cases of one spec file on one kernel image: one VM for the file by default,
//! a fresh one for `fresh_vm` cases or after a crash; module load before and a checked unload
//! after; every step's output, exit status and kernel lines checked.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::check::{self, Problem};
use super::event::{CaseId, CaseReport, Detail, Event, Failure, FailureKind, Outcome, StepReport};
use super::splat;
use crate::image::initramfs::{self, MODULE_PATH};
use crate::image::Image;
use crate::spec::{version_matches, Case, LoadedSpec, Step, StepKind};
use crate::vm::{Accel, StepOutput, Vm, VmConfig, VmError};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MEMORY_MB: u32 = 256;

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub accel: Accel,
    /// Guest memory; None: the kernel list's `memory_mb`, else DEFAULT_MEMORY_MB.
    pub memory_mb: Option<u32>,
    pub boot_timeout: Duration,
}

/// How to boot `image`: its vmlinux and initramfs, the memory the settings or the kernel list
/// ask for, its extra command line.
pub fn vm_config(image: &Image, settings: &RunSettings) -> VmConfig {
    VmConfig {
        kernel: image.built.vmlinux.clone(),
        initramfs: image.initramfs.clone(),
        accel: settings.accel,
        memory_mb: settings
            .memory_mb
            .or(image.kernel.memory_mb)
            .unwrap_or(DEFAULT_MEMORY_MB),
        cmdline: image.kernel.cmdline.clone().unwrap_or_default(),
        boot_timeout: settings.boot_timeout,
    }
}

/// Why the cases of `spec` cannot run on `image`, if they cannot.
pub fn unmet_requirements(spec: &LoadedSpec, image: &Image) -> Option<String> {
    let r = &spec.spec.requires;
    let missing: Vec<&str> = r
        .kconfig
        .iter()
        .map(String::as_str)
        .filter(|s| !image.built.has_symbol(s))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "kernel {} lacks {}",
            image.kernel.name,
            missing.join(", ")
        ));
    }
    if let Some(req) = &r.kernel {
        if !version_matches(req, &image.kernel.version) {
            return Some(format!(
                "kernel {} does not satisfy {req}",
                image.kernel.version
            ));
        }
    }
    None
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
    let mut vm: Option<Vm> = None;
    let mut boot_failure: Option<Failure> = None;
    for (pos, (ci, case)) in cases.iter().enumerate() {
        let _ = events.send(Event::CaseStarted(id(case)));
        let started = Instant::now();
        if case.fresh_vm {
            vm = None;
        }
        // The VM ends after this case if the next selected case wants a fresh one, or none follows.
        let last_in_vm = case.fresh_vm || cases.get(pos + 1).is_none_or(|(_, n)| n.fresh_vm);
        let mut steps = Vec::new();
        let outcome = match boot_failure.clone() {
            Some(f) => Err(f),
            None => (|| {
                if vm.is_none() {
                    vm = Some(
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
                let v = vm.as_mut().expect("VM started above");
                run_case(v, spec, *ci, case, &mut steps)?;
                if last_in_vm {
                    if let Some(m) = &spec.spec.module {
                        if m.unload {
                            unload_module(v, spec, &mut steps)?;
                        }
                    }
                }
                Ok(())
            })(),
        };
        let outcome = match outcome {
            Ok(()) => Outcome::Passed,
            Err(f) => {
                // A dead or confused guest is not reused.
                if matches!(
                    f.kind,
                    FailureKind::Panic | FailureKind::Infrastructure | FailureKind::Timeout
                ) {
                    vm = None;
                }
                Outcome::Failed(f)
            }
        };
        if last_in_vm {
            vm = None;
        }
        let r = CaseReport {
            id: id(case),
            file: spec.path.clone(),
            line: spec.case_pos(*ci).line,
            outcome,
            duration: started.elapsed(),
            steps,
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
    initramfs::extra(&files).map(Some)
}

fn start_vm(
    image: &Image,
    spec: &LoadedSpec,
    ci: usize,
    extra: Option<&[u8]>,
    settings: &RunSettings,
    events: &Sender<Event>,
    steps: &mut Vec<StepReport>,
) -> Result<Vm, Failure> {
    let cfg = vm_config(image, settings);
    let line = spec.case_pos(ci).line;
    let mut vm = Vm::boot(&cfg, extra).map_err(|e| {
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
    });
    if let Some(m) = &spec.spec.module {
        let mut cmd = format!("insmod {MODULE_PATH}");
        for (k, v) in &m.params {
            cmd.push_str(&format!(" {k}={}", shell_quote(&v.to_string())));
        }
        let step = Step {
            run: Some(cmd.clone()),
            ..Default::default()
        };
        let line = spec.locator.find("module").line;
        execute(
            &mut vm,
            &step,
            "module load",
            line,
            Duration::from_secs(60),
            &mut HashMap::new(),
            steps,
        )
        .map_err(|mut f| {
            f.kind = if f.kind == FailureKind::Assertion {
                FailureKind::Infrastructure
            } else {
                f.kind
            };
            f.message = format!("`{cmd}` failed: {}", f.message);
            f
        })?;
    }
    Ok(vm)
}

fn unload_module(
    vm: &mut Vm,
    spec: &LoadedSpec,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let step = Step {
        run: Some("rmmod kchan".into()),
        ..Default::default()
    };
    let line = spec.locator.find("module").line;
    execute(
        vm,
        &step,
        "module unload",
        line,
        Duration::from_secs(60),
        &mut HashMap::new(),
        steps,
    )
}

fn timeout_of(spec: &LoadedSpec, case: &Case, step: &Step) -> Duration {
    step.timeout
        .or(case.timeout)
        .or(spec.spec.timeout)
        .map_or(DEFAULT_TIMEOUT, |t| t.0)
}

fn run_case(
    vm: &mut Vm,
    spec: &LoadedSpec,
    ci: usize,
    case: &Case,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let mut background: HashMap<String, String> = HashMap::new();
    let mut result = Ok(());
    for (si, step) in case.steps.iter().enumerate() {
        let line = spec.step_pos(ci, si).line;
        let label = step.label();
        if let Err(f) = execute(
            vm,
            step,
            &label,
            line,
            timeout_of(spec, case, step),
            &mut background,
            steps,
        ) {
            result = Err(f);
            break;
        }
    }
    // A failed case may leave background commands running: stop them before the next case.
    if result.is_err() && !background.is_empty() {
        let names: Vec<(String, String)> = background.drain().collect();
        for (name, begin) in names {
            if vm
                .finish_background(&name, &begin, Some("KILL"), Duration::from_secs(5))
                .is_err()
            {
                break;
            }
        }
    }
    result
}

/// Run one step and check everything about it.
fn execute(
    vm: &mut Vm,
    step: &Step,
    label: &str,
    line: usize,
    timeout: Duration,
    background: &mut HashMap<String, String>,
    steps: &mut Vec<StepReport>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let fail = |kind: FailureKind, message: String, details: Vec<Detail>| Failure {
        kind,
        step: label.to_owned(),
        line,
        message,
        details,
    };
    // The step that lost the VM is still part of the case's record.
    let vm_failure = |e: VmError, vm: &mut Vm, steps: &mut Vec<StepReport>| {
        steps.push(StepReport {
            label: label.to_owned(),
            exit: None,
            duration: started.elapsed(),
            passed: false,
        });
        let mut details = vec![Detail::Lines {
            heading: "console (last lines)".into(),
            lines: e.console_tail().to_vec(),
        }];
        let k: Vec<String> = vm.kmsg_tail(30).into_iter().map(|r| r.text).collect();
        if !k.is_empty() {
            details.push(Detail::Lines {
                heading: "kernel log (last lines)".into(),
                lines: k,
            });
        }
        let kind = match e {
            VmError::Crashed { .. } => FailureKind::Panic,
            VmError::Hung { .. } => FailureKind::Timeout,
            _ => FailureKind::Infrastructure,
        };
        fail(kind, e.to_string(), details)
    };
    let output: StepOutput = match step.kind() {
        StepKind::Run { cmd } => vm.run(cmd, timeout).map_err(|e| vm_failure(e, vm, steps))?,
        StepKind::Start { cmd, name } => {
            let nonce = vm
                .start_background(name, cmd)
                .map_err(|e| vm_failure(e, vm, steps))?;
            background.insert(name.to_owned(), nonce);
            steps.push(StepReport {
                label: label.to_owned(),
                exit: None,
                duration: started.elapsed(),
                passed: true,
            });
            return Ok(());
        }
        StepKind::Wait { name } | StepKind::Kill { name } => {
            let begin = background.remove(name).ok_or_else(|| {
                fail(
                    FailureKind::Infrastructure,
                    format!("background {name:?} is not running"),
                    vec![],
                )
            })?;
            let signal = match step.kind() {
                StepKind::Kill { .. } => Some(
                    step.signal
                        .as_deref()
                        .unwrap_or("TERM")
                        .trim_start_matches("SIG"),
                ),
                _ => None,
            };
            vm.finish_background(name, &begin, signal, timeout)
                .map_err(|e| vm_failure(e, vm, steps))?
        }
        StepKind::Invalid => {
            return Err(fail(
                FailureKind::Infrastructure,
                "invalid step".into(),
                vec![],
            ))
        }
    };
    let reply = &output.reply;
    let stdout = String::from_utf8_lossy(&crate::vm::protocol::normalise_newlines(&reply.stdout))
        .into_owned();
    let stderr = String::from_utf8_lossy(&crate::vm::protocol::normalise_newlines(&reply.stderr))
        .into_owned();
    let kernel_lines: Vec<String> = output.kmsg.iter().map(|r| r.text.clone()).collect();
    let kmsg_text = kernel_lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let mut context = vec![];
    if !stdout.is_empty() {
        context.push(Detail::Lines {
            heading: "stdout".into(),
            lines: stdout.lines().map(str::to_owned).collect(),
        });
    }
    if !stderr.is_empty() {
        context.push(Detail::Lines {
            heading: "stderr".into(),
            lines: stderr.lines().map(str::to_owned).collect(),
        });
    }
    context.push(Detail::Lines {
        heading: "kernel log of the step".into(),
        lines: kernel_lines.clone(),
    });
    steps.push(StepReport {
        label: label.to_owned(),
        exit: Some(reply.exit),
        duration: output.elapsed,
        passed: false,
    });
    let mark_passed = |steps: &mut Vec<StepReport>| {
        if let Some(s) = steps.last_mut() {
            s.passed = true;
        }
    };

    if reply.timed_out {
        return Err(fail(
            FailureKind::Timeout,
            format!("timed out after {:.1}s (killed)", timeout.as_secs_f64()),
            context,
        ));
    }
    let reports = splat::find(&output.kmsg, &step.allow);
    if !reports.is_empty() {
        let kinds: Vec<&str> = reports.iter().map(|r| r.kind).collect();
        return Err(fail(
            FailureKind::KernelReport,
            format!("kernel reported {}: {}", kinds.join(", "), reports[0].line),
            context,
        ));
    }
    if let Some(t) = splat::new_taint(reply.taint_before, reply.taint_after, &step.allow) {
        return Err(fail(
            FailureKind::KernelReport,
            format!(
                "kernel became tainted: {t} (tainted {} -> {})",
                reply.taint_before, reply.taint_after
            ),
            context,
        ));
    }
    let mut problems: Vec<Problem> = Vec::new();
    problems.extend(check::check_exit(step.exit, reply.exit));
    if let Some(e) = &step.stdout {
        problems.extend(check::check_text("stdout", e, &stdout, false));
    }
    if let Some(e) = &step.stderr {
        problems.extend(check::check_text("stderr", e, &stderr, false));
    }
    if let Some(e) = &step.kmsg {
        problems.extend(check::check_text("kernel log", e, &kmsg_text, true));
    }
    if problems.is_empty() {
        mark_passed(steps);
        return Ok(());
    }
    let mut details = Vec::new();
    for p in &problems {
        if let Some((exp, act)) = &p.diff {
            details.push(Detail::Diff {
                what: p.message.clone(),
                expected: exp.clone(),
                actual: act.clone(),
            });
        }
    }
    details.extend(context);
    let message = problems
        .iter()
        .map(|p| p.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    Err(fail(FailureKind::Assertion, message, details))
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
