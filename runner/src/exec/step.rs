//! One step in a VM: send it, place its kernel log in the ledger, check everything about it.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::check::{self, Problem};
use super::event::{Detail, Failure, FailureKind, StepReport};
use super::ktap::{self, KtapOutcome};
use super::ledger::{Finding, Ledger, Owner, StepRef};
use crate::spec::bless::BlessEdit;
use crate::spec::{format_size, Action, Step};
use crate::vm::{normalise_newlines, StepOutput, StepRequest, Vm, VmError};

/// Lines of a step's output shown in a failure, and characters of each.
const SHOWN_LINES: usize = 60;
const SHOWN_WIDTH: usize = 300;

/// Everything a step needs besides the step itself.
pub struct StepEnv<'a> {
    pub vm: &'a mut Vm,
    pub ledger: &'a mut Ledger,
    /// Running background commands: name -> the agent's step id.
    pub backgrounds: &'a mut HashMap<String, u32>,
    pub steps: &'a mut Vec<StepReport>,
}

/// Where a step sits and what bounds it.
pub struct StepPlace<'a> {
    pub label: &'a str,
    pub line: usize,
    pub timeout: Duration,
    pub output_limit: u64,
    /// Environment of the step's command.
    pub env: &'a [(String, String)],
    /// Its YAML path in the spec file ("" for steps kspec adds itself).
    pub path: &'a str,
}

fn failure(kind: FailureKind, p: &StepPlace, message: String, details: Vec<Detail>) -> Failure {
    Failure {
        kind,
        step: p.label.to_owned(),
        line: p.line,
        message,
        details,
    }
}

/// A finding about the log window before this step: it fails the step that owned that window.
pub fn gap_failure(owner: Owner, f: Finding, here: &StepPlace) -> Failure {
    let (step, line, message) = match owner {
        Owner::Step(s) => (
            s.label,
            s.line,
            format!("after the step returned: {}", f.message),
        ),
        Owner::Background(name) => (format!("background {name}"), here.line, f.message),
        Owner::Nobody => (
            here.label.to_owned(),
            here.line,
            format!("before the step (boot or between cases): {}", f.message),
        ),
    };
    Failure {
        kind: FailureKind::KernelReport,
        step,
        line,
        message,
        details: vec![Detail::Lines {
            heading: "kernel report".into(),
            lines: f.lines,
        }],
    }
}

/// The VM failed under this step: the step is recorded, the failure says how the VM died.
pub fn vm_failure(
    e: VmError,
    vm: &mut Vm,
    p: &StepPlace,
    started: Instant,
    steps: &mut Vec<StepReport>,
) -> Failure {
    steps.push(StepReport {
        label: p.label.to_owned(),
        exit: None,
        duration: started.elapsed(),
        passed: false,
        cpu_us: None,
        memory_peak: None,
        ktap: vec![],
        bless: vec![],
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
    failure(kind, p, e.to_string(), details)
}

fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim_start_matches("SIG");
    nix::sys::signal::Signal::from_str(&format!("SIG{name}"))
        .ok()
        .map(|s| s as i32)
}

/// Run one step and check everything about it.
pub fn execute(
    env: &mut StepEnv,
    step: &Step,
    action: &Action,
    p: &StepPlace,
) -> Result<(), Failure> {
    let started = Instant::now();
    let me = StepRef {
        label: p.label.to_owned(),
        line: p.line,
        allow: step.allow.clone(),
    };
    let req = |cmd| StepRequest {
        script: cmd,
        timeout: p.timeout,
        stdout_limit: p.output_limit,
        stderr_limit: p.output_limit,
        env: p.env,
    };
    let (out, finding, kmsg): (StepOutput, _, Vec<_>) = match action {
        Action::Run { cmd } => run_once(env, &req(cmd), me, p, started)?,
        Action::WaitUntil { cmd, interval } => {
            return wait_until(env, step, cmd, *interval, me, p, started);
        }
        Action::Start { cmd, name } => {
            let (id, start) = env
                .vm
                .start_background(&req(cmd))
                .map_err(|e| vm_failure(e, env.vm, p, started, env.steps))?;
            if let Some((owner, f)) = env.ledger.close_gap(start.before, start.taint) {
                return Err(gap_failure(owner, f, p));
            }
            env.ledger.start_background(name);
            env.backgrounds.insert(name.to_owned(), id);
            env.steps.push(StepReport {
                label: p.label.to_owned(),
                exit: None,
                duration: started.elapsed(),
                passed: true,
                cpu_us: None,
                memory_peak: None,
                ktap: vec![],
                bless: vec![],
            });
            return Ok(());
        }
        Action::Wait { name } | Action::Kill { name, .. } => {
            let id = env.backgrounds.remove(name).ok_or_else(|| {
                failure(
                    FailureKind::Infrastructure,
                    p,
                    format!("background {name:?} is not running"),
                    vec![],
                )
            })?;
            let signal = match action {
                Action::Kill { signal, .. } => signal_number(signal),
                _ => None,
            };
            let out = env
                .vm
                .finish_background(id, signal, p.timeout)
                .map_err(|e| vm_failure(e, env.vm, p, started, env.steps))?;
            if let Some((owner, f)) = env
                .ledger
                .close_gap(out.start.before.clone(), out.start.taint)
            {
                return Err(gap_failure(owner, f, p));
            }
            let (f, kmsg) =
                env.ledger
                    .finish_background(name, me, &out.end.during, out.end.result.taint_after);
            (out, f, kmsg)
        }
    };
    check_step(env, step, p, &out, finding, &kmsg)
}

type Ran = (StepOutput, Option<Finding>, Vec<crate::vm::KmsgRecord>);

/// Run `req` in the foreground and place its kernel log.
fn run_once(
    env: &mut StepEnv,
    req: &StepRequest,
    me: StepRef,
    p: &StepPlace,
    started: Instant,
) -> Result<Ran, Failure> {
    let out = env
        .vm
        .run(req)
        .map_err(|e| vm_failure(e, env.vm, p, started, env.steps))?;
    if let Some((owner, f)) = env
        .ledger
        .close_gap(out.start.before.clone(), out.start.taint)
    {
        return Err(gap_failure(owner, f, p));
    }
    let f = env
        .ledger
        .step_window(me, &out.end.during, out.end.result.taint_after);
    let kmsg = out.end.during.records.clone();
    Ok((out, f, kmsg))
}

/// Run `cmd` until the step's expectations hold. Only unmet expectations are retried: a
/// kernel report, a hung attempt or a dead VM ends the step at once. The step's timeout bounds
/// all attempts together; the failure is the last finished attempt's.
fn wait_until(
    env: &mut StepEnv,
    step: &Step,
    cmd: &str,
    interval: Duration,
    me: StepRef,
    p: &StepPlace,
    started: Instant,
) -> Result<(), Failure> {
    // An attempt given less than this would fail by its own timeout, not by its output.
    const MIN_ATTEMPT: Duration = Duration::from_millis(250);
    let deadline = started + p.timeout;
    let mut attempts = 0;
    let not_so = |mut f: Failure, attempts: u32| {
        f.message = format!(
            "not so after {attempts} attempts in {:.1}s: {}",
            started.elapsed().as_secs_f64(),
            f.message
        );
        f
    };
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let req = StepRequest {
            script: cmd,
            timeout: left.max(MIN_ATTEMPT),
            stdout_limit: p.output_limit,
            stderr_limit: p.output_limit,
            env: p.env,
        };
        let (out, finding, kmsg) = run_once(env, &req, me.clone(), p, started)?;
        let checked = check_step(env, step, p, &out, finding, &kmsg);
        // The step's report is its last attempt's, but its time is all the attempts': that is
        // what the case waited.
        if let Some(last) = env.steps.last_mut() {
            last.duration = started.elapsed();
        }
        match checked {
            Ok(()) => return Ok(()),
            Err(f) if f.kind != FailureKind::Assertion => return Err(f),
            Err(f) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left < interval + MIN_ATTEMPT {
                    return Err(not_so(f, attempts));
                }
            }
        }
        // Only the last attempt is the step's report.
        env.steps.pop();
        std::thread::sleep(interval);
    }
}

/// A `ktap: true` step's tests, kept on its report; each failing test, and output that is not
/// whole (a plan not met, a bail out), is a problem of the step. Each failed test's
/// diagnostics come back as a detail.
fn ktap_check(env: &mut StepEnv, stdout: &str) -> (Vec<Problem>, Vec<Detail>) {
    let doc = ktap::parse(stdout);
    let mut problems = Vec::new();
    let details = doc
        .results
        .iter()
        .filter(|r| r.outcome == KtapOutcome::Fail)
        .map(|r| Detail::Lines {
            heading: format!("ktap: {} failed", r.name),
            lines: r.diagnostics.clone(),
        })
        .collect();
    if doc.results.is_empty() {
        problems.push(check::problem(
            "ktap: the output holds no KTAP test result".into(),
        ));
    }
    let failed: Vec<&str> = doc
        .results
        .iter()
        .filter(|r| r.outcome == KtapOutcome::Fail)
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        problems.push(check::problem(format!(
            "ktap: {} of {} tests failed: {}",
            failed.len(),
            doc.results.len(),
            failed.join(", ")
        )));
    }
    if !doc.problems.is_empty() {
        problems.push(check::problem(format!(
            "ktap: the output is not whole: {}",
            doc.problems.join("; ")
        )));
    }
    if let Some(s) = env.steps.last_mut() {
        s.ktap = doc.results;
    }
    (problems, details)
}

/// At most SHOWN_LINES lines of at most SHOWN_WIDTH characters.
fn clipped(heading: &str, text: &str) -> Detail {
    let clip = |l: &str| match l.char_indices().nth(SHOWN_WIDTH) {
        Some((i, _)) => format!("{}… ({} more bytes)", &l[..i], l.len() - i),
        None => l.to_owned(),
    };
    let mut lines: Vec<String> = text.lines().take(SHOWN_LINES).map(clip).collect();
    let total = text.lines().count();
    if total > SHOWN_LINES {
        lines.push(format!("... ({} more lines)", total - SHOWN_LINES));
    }
    Detail::Lines {
        heading: heading.into(),
        lines,
    }
}

fn check_step(
    env: &mut StepEnv,
    step: &Step,
    p: &StepPlace,
    out: &StepOutput,
    finding: Option<Finding>,
    kmsg: &[crate::vm::KmsgRecord],
) -> Result<(), Failure> {
    let r = &out.end.result;
    let exit = r.status.shell_code();
    let stdout = String::from_utf8_lossy(&normalise_newlines(&out.stdout)).into_owned();
    let stderr = String::from_utf8_lossy(&normalise_newlines(&out.stderr)).into_owned();
    let kernel_lines: Vec<String> = kmsg.iter().map(|r| r.text.clone()).collect();
    let kmsg_text: String = kernel_lines.iter().map(|l| format!("{l}\n")).collect();
    let mut context = vec![];
    if !stdout.is_empty() {
        context.push(clipped("stdout", &stdout));
    }
    if !stderr.is_empty() {
        context.push(clipped("stderr", &stderr));
    }
    context.push(clipped("kernel log of the step", &kmsg_text));
    env.steps.push(StepReport {
        label: p.label.to_owned(),
        exit: Some(exit),
        duration: out.elapsed,
        passed: false,
        cpu_us: Some(r.cpu_us),
        memory_peak: Some(r.memory_peak),
        ktap: vec![],
        bless: vec![],
    });
    let fail = |kind, message: String, mut details: Vec<Detail>| {
        details.extend(context.clone());
        Err(failure(kind, p, message, details))
    };
    if r.timed_out {
        return fail(
            FailureKind::Timeout,
            format!("timed out after {:.1}s (killed)", p.timeout.as_secs_f64()),
            vec![],
        );
    }
    for (what, exceeded, bytes) in [
        ("stdout", r.stdout_exceeded, r.stdout_bytes),
        ("stderr", r.stderr_exceeded, r.stderr_bytes),
    ] {
        if exceeded {
            return fail(
                FailureKind::Assertion,
                format!(
                    "{what} exceeded {} ({} bytes; at least {bytes} written): the step was killed \
                     (raise `output_limit` if this much output is expected)",
                    format_size(p.output_limit),
                    p.output_limit
                ),
                vec![],
            );
        }
    }
    if let Some(f) = finding {
        let mut details = vec![];
        if !f.lines.is_empty() {
            details.push(Detail::Lines {
                heading: "kernel report".into(),
                lines: f.lines.clone(),
            });
        }
        return fail(FailureKind::KernelReport, f.message, details);
    }
    let mut problems: Vec<Problem> = Vec::new();
    problems.extend(check::check_exit(step.exit, exit));
    let mut bless = Vec::new();
    for (field, exp, text) in [
        ("stdout", &step.stdout, &stdout),
        ("stderr", &step.stderr, &stderr),
    ] {
        let Some(e) = exp else { continue };
        for mut pr in check::check_text(field, e, text, false) {
            if let (Some((key, value)), false) = (pr.bless.take(), p.path.is_empty()) {
                bless.push(BlessEdit {
                    path: format!("{}.{field}{key}", p.path),
                    value,
                });
            }
            problems.push(pr);
        }
    }
    // Only edits that make the step pass are worth writing (and let a blessing run go on).
    let all_blessable = bless.len() == problems.len();
    if let Some(s) = env.steps.last_mut() {
        if all_blessable {
            s.bless = bless;
        }
    }
    if let Some(e) = &step.kmsg {
        problems.extend(check::check_text("kernel log", e, &kmsg_text, true));
    }
    if let Some(max) = step.max_memory {
        if r.memory_peak > max.0 {
            problems.push(check::problem(format!(
                "memory peak {} over max_memory {}",
                format_size(r.memory_peak),
                format_size(max.0)
            )));
        }
    }
    if let Some(min) = step.min_parallelism {
        let wall = r.elapsed_us.max(1) as f64;
        let got = r.cpu_us as f64 / wall;
        if got < min {
            problems.push(check::problem(format!(
                "parallelism {got:.2} (CPU {:.3}s in {:.3}s) below min_parallelism {min}",
                r.cpu_us as f64 / 1e6,
                wall / 1e6
            )));
        }
    }
    if let Some(min) = step.min_busy_cpus {
        let half = r.elapsed_us / 2000;
        let busy = r.cpu_busy_ms.iter().filter(|b| **b >= half).count() as u32;
        if busy < min {
            problems.push(check::problem(format!(
                "{busy} CPUs busy for half of the step's {:.3}s (busy ms per CPU: {:?}), expected min_busy_cpus {min}",
                r.elapsed_us as f64 / 1e6,
                r.cpu_busy_ms
            )));
        }
    }
    let mut ktap_details = Vec::new();
    if step.ktap {
        let (p, d) = ktap_check(env, &stdout);
        problems.extend(p);
        ktap_details = d;
    }
    if problems.is_empty() {
        if let Some(s) = env.steps.last_mut() {
            s.passed = true;
        }
        return Ok(());
    }
    let mut details = ktap_details;
    for p in &problems {
        if let Some((exp, act)) = &p.diff {
            details.push(Detail::Diff {
                what: p.message.clone(),
                expected: exp.clone(),
                actual: act.clone(),
            });
        }
    }
    let message = problems
        .iter()
        .map(|p| p.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    fail(FailureKind::Assertion, message, details)
}
