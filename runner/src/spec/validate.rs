//! Checks that need more than the types: names, ranges, regexes, which keys go together, the
//! background commands a case starts and ends. Each problem is located by its YAML path.

use std::collections::HashMap;

use regex::Regex;

use super::action::Action;
use super::load::{LoadedSpec, SpecError};
use super::model::Step;
use super::values::{format_size, OneOrMany, TextExpect};
use super::version::parse_version_req;

/// What a step may `allow`: the kernel report classes, plus `taint` (any new taint flag),
/// `kmsg_lost` (kernel log records overwritten before they were read) and `all`.
pub const ALLOW_KINDS: &[&str] = &[
    "all",
    "warning",
    "bug",
    "oops",
    "call_trace",
    "kasan",
    "ubsan",
    "kfence",
    "lockdep",
    "hung_task",
    "rcu_stall",
    "soft_lockup",
    "kmemleak",
    "panic",
    "taint",
    "kmsg_lost",
];

pub(super) fn validate(l: &LoadedSpec) -> Vec<SpecError> {
    let mut errs = Vec::new();
    let mut at = |path: &str, message: String| {
        errs.push(SpecError {
            file: l.path.clone(),
            pos: l.locator.find(path),
            message,
        });
    };
    let s = &l.spec;
    if l.name.is_empty() || l.name.contains("::") {
        at(
            "name",
            format!(
                "invalid spec name {:?}: must be non-empty and not contain '::'",
                l.name
            ),
        );
    }
    if s.cases.is_empty() {
        at(
            "cases",
            "`cases` is empty: a spec needs at least one case".into(),
        );
    }
    for (i, k) in s.requires.kconfig.iter().enumerate() {
        let sym = k.strip_prefix("CONFIG_").unwrap_or(k);
        if sym.is_empty() || !sym.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            at(
                &format!("requires.kconfig[{i}]"),
                format!("invalid Kconfig symbol {k:?}"),
            );
        }
    }
    if let Some(r) = &s.requires.kernel {
        if let Err(e) = parse_version_req(r) {
            at("requires.kernel", e);
        }
    }
    if let Some(m) = &s.module {
        for k in m.params.keys() {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                at(
                    &format!("module.params.{k}"),
                    format!("invalid module parameter name {k:?}"),
                );
            }
        }
    }
    if let Some(t) = s.timeout {
        if t.0.is_zero() {
            at("timeout", "timeout must be greater than zero".into());
        }
    }
    if let Some(c) = s.cpus {
        if !(1..=16).contains(&c) {
            at("cpus", format!("cpus must be 1..=16, not {c}"));
        }
    }
    if let Some(m) = s.memory {
        if !(64 << 20..=16 << 30).contains(&m.0) {
            at(
                "memory",
                format!("memory must be 64MiB..=16GiB, not {}", format_size(m.0)),
            );
        }
    }
    if s.cmdline.as_deref().is_some_and(|c| c.contains('\n')) {
        at("cmdline", "cmdline is one line".into());
    }
    if let Some(t) = s.settle {
        if t.0 > std::time::Duration::from_secs(10) {
            at("settle", "settle must be at most 10s".into());
        }
    }
    if s.output_limit.is_some_and(|l| l.0 == 0) {
        at(
            "output_limit",
            "output_limit must be greater than zero".into(),
        );
    }
    for (i, f) in s.files.iter().enumerate() {
        if !f.dest.starts_with('/') || f.dest.split('/').any(|c| c == "..") {
            at(
                &format!("files[{i}].dest"),
                format!("guest path {:?} must be absolute without '..'", f.dest),
            );
        }
        if !l.dir().join(&f.src).is_file() {
            at(
                &format!("files[{i}].src"),
                format!(
                    "host file {:?} not found (relative to {})",
                    f.src,
                    l.dir().display()
                ),
            );
        }
        if let Some(m) = &f.mode {
            if u32::from_str_radix(m.trim_start_matches("0o"), 8).map_or(true, |v| v > 0o7777) {
                at(
                    &format!("files[{i}].mode"),
                    format!("invalid octal mode {m:?}"),
                );
            }
        }
    }
    let mut names = HashMap::new();
    for (ci, case) in s.cases.iter().enumerate() {
        let cp = format!("cases[{ci}]");
        if case.name.trim().is_empty() || case.name.contains("::") {
            at(
                &format!("{cp}.name"),
                format!(
                    "invalid case name {:?}: must be non-empty and not contain '::'",
                    case.name
                ),
            );
        }
        if let Some(prev) = names.insert(case.name.clone(), ci) {
            at(
                &format!("{cp}.name"),
                format!(
                    "duplicate case name {:?} (first used by case {})",
                    case.name,
                    prev + 1
                ),
            );
        }
        if case.steps.is_empty() {
            at(
                &format!("{cp}.steps"),
                "a case needs at least one step".into(),
            );
        }
        if let Some(t) = case.timeout {
            if t.0.is_zero() {
                at(
                    &format!("{cp}.timeout"),
                    "timeout must be greater than zero".into(),
                );
            }
        }
        for (si, step) in case.steps.iter().enumerate() {
            for e in validate_step(step) {
                at(&format!("{cp}.steps[{si}]{}", e.0), e.1);
            }
        }
        if let Some(r) = &case.requires.kernel {
            if let Err(e) = parse_version_req(r) {
                at(&format!("{cp}.requires.kernel"), e);
            }
        }
        if case.xfail.as_deref().is_some_and(|r| r.trim().is_empty()) {
            at(
                &format!("{cp}.xfail"),
                "`xfail` needs the reason the case is expected to fail".into(),
            );
        }
        for k in case.env.keys() {
            if let Some(m) = bad_env_name(k) {
                at(&format!("{cp}.env.{k}"), m);
            }
        }
    }
    let lists = [("setup", &s.setup), ("teardown", &s.teardown)];
    for (key, steps) in lists {
        for (i, step) in steps.iter().enumerate() {
            for e in validate_step(step) {
                at(&format!("{key}[{i}]{}", e.0), e.1);
            }
        }
    }
    for (name, steps) in &s.step_lists {
        for (i, step) in steps.iter().enumerate() {
            for e in validate_step(step) {
                at(&format!("step_lists.{name}[{i}]{}", e.0), e.1);
            }
        }
    }
    for k in s.env.keys() {
        if let Some(m) = bad_env_name(k) {
            at(&format!("env.{k}"), m);
        }
    }
    errs
}

/// Why `name` cannot be an environment variable's name, if it cannot.
fn bad_env_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!ok).then(|| format!("invalid environment variable name {name:?}"))
}

/// Problems in one step as (path suffix, message).
fn validate_step(step: &Step) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if step.include.is_some() {
        let alone = step.run.is_none()
            && step.wait_until.is_none()
            && step.background.is_none()
            && step.wait.is_none()
            && step.kill.is_none()
            && step.exit.is_none()
            && step.stdout.is_none()
            && step.stderr.is_none()
            && step.kmsg.is_none()
            && step.allow.is_empty()
            && step.env.is_empty();
        if !alone {
            v.push((
                ".include".into(),
                "`include` stands for its list's steps: no other key goes with it".into(),
            ));
        }
        return v;
    }
    for k in step.env.keys() {
        if let Some(m) = bad_env_name(k) {
            v.push((format!(".env.{k}"), m));
        }
    }
    let action = Action::of(step);
    match &action {
        Err((key, message)) => v.push(((*key).to_owned(), message.clone())),
        Ok(Action::Start { .. })
            if step.exit.is_some()
                || step.stdout.is_some()
                || step.stderr.is_some()
                || step.kmsg.is_some() =>
        {
            v.push((
                String::new(),
                "expectations of a background command belong on its `wait` or `kill` step".into(),
            ));
        }
        _ => {}
    }
    if let Some(t) = step.timeout {
        if t.0.is_zero() {
            v.push((
                ".timeout".into(),
                "timeout must be greater than zero".into(),
            ));
        }
    }
    if step.output_limit.is_some_and(|l| l.0 == 0) {
        v.push((
            ".output_limit".into(),
            "output_limit must be greater than zero".into(),
        ));
    }
    if let Some(p) = step.min_parallelism {
        if !(p > 0.0 && p.is_finite()) {
            v.push((
                ".min_parallelism".into(),
                "min_parallelism must be a positive number (CPU time / wall time)".into(),
            ));
        }
    }
    if matches!(action, Ok(Action::Start { .. })) {
        for (key, set) in [
            ("max_memory", step.max_memory.is_some()),
            ("min_parallelism", step.min_parallelism.is_some()),
            ("min_busy_cpus", step.min_busy_cpus.is_some()),
        ] {
            if set {
                v.push((
                    format!(".{key}"),
                    format!("`{key}` of a background command belongs on its `wait` or `kill` step"),
                ));
            }
        }
    }
    for (i, a) in step.allow.iter().enumerate() {
        if !ALLOW_KINDS.contains(&a.as_str()) {
            v.push((
                format!(".allow[{i}]"),
                format!(
                    "unknown report kind {a:?}, expected one of {}",
                    ALLOW_KINDS.join(", ")
                ),
            ));
        }
    }
    for (field, exp) in [
        ("stdout", &step.stdout),
        ("stderr", &step.stderr),
        ("kmsg", &step.kmsg),
    ] {
        let Some(TextExpect::Rules(r)) = exp else {
            continue;
        };
        for (i, re) in r.regex.items().iter().enumerate() {
            if let Err(e) = Regex::new(re) {
                let idx = if matches!(r.regex, OneOrMany::Many(_)) {
                    format!("[{i}]")
                } else {
                    String::new()
                };
                v.push((
                    format!(".{field}.regex{idx}"),
                    format!("invalid regex: {}", one_line(&e.to_string())),
                ));
            }
        }
        if let Some(c) = &r.count {
            if let Err(e) = Regex::new(&c.regex) {
                v.push((
                    format!(".{field}.count.regex"),
                    format!("invalid regex: {}", one_line(&e.to_string())),
                ));
            }
        }
        if r.equals.is_none()
            && r.contains.items().is_empty()
            && r.regex.items().is_empty()
            && r.absent.items().is_empty()
            && r.lines.is_none()
            && r.count.is_none()
        {
            v.push((
                format!(".{field}"),
                "empty expectation: give equals, contains, regex, absent, lines or count".into(),
            ));
        }
    }
    v
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
