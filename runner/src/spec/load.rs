//! Loading and validating spec files. Every problem becomes a `SpecError` with file:line:column;
//! nothing here panics on bad input.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;

use super::locate::{Locator, Pos};
use super::action::Action;
use super::model::{Spec, Step};
use super::values::{OneOrMany, TextExpect};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

impl std::error::Error for SpecError {}

/// A validated spec with what reports need to point back at it.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub path: PathBuf,
    /// `name:` or the file stem.
    pub name: String,
    pub spec: Spec,
    pub locator: Locator,
    /// The action of each step, by case: every step has one.
    actions: Vec<Vec<Action>>,
}

impl LoadedSpec {
    /// What step `step` of case `case` does.
    pub fn action(&self, case: usize, step: usize) -> &Action {
        &self.actions[case][step]
    }

    /// How reports name that step: its `name`, else what it does.
    pub fn step_label(&self, case: usize, step: usize) -> String {
        self.spec.cases[case].steps[step]
            .name
            .clone()
            .unwrap_or_else(|| self.action(case, step).label())
    }

    pub fn case_pos(&self, case: usize) -> Pos {
        self.locator.find(&format!("cases[{case}]"))
    }
    pub fn step_pos(&self, case: usize, step: usize) -> Pos {
        self.locator.find(&format!("cases[{case}].steps[{step}]"))
    }
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

pub fn load_file(path: &Path) -> Result<LoadedSpec, Vec<SpecError>> {
    let err = |m: String| {
        vec![SpecError {
            file: path.to_owned(),
            pos: Pos { line: 1, col: 1 },
            message: m,
        }]
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let off = e.utf8_error().valid_up_to();
        let mut pos = Pos { line: 1, col: 1 };
        for b in &e.as_bytes()[..off] {
            if *b == b'\n' {
                pos.line += 1;
                pos.col = 1;
            } else {
                pos.col += 1;
            }
        }
        vec![SpecError {
            file: path.to_owned(),
            pos,
            message: "not UTF-8 text".into(),
        }]
    })?;
    load_str(path, &text)
}

pub fn load_str(path: &Path, text: &str) -> Result<LoadedSpec, Vec<SpecError>> {
    let file = path.to_owned();
    if text.trim().is_empty() {
        return Err(vec![SpecError {
            file,
            pos: Pos { line: 1, col: 1 },
            message: "empty spec file: expected a mapping with `cases`".into(),
        }]);
    }
    let spec: Spec = serde_yaml::from_str(text).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                col: l.column(),
            })
            .unwrap_or(Pos { line: 1, col: 1 });
        vec![SpecError {
            file: file.clone(),
            pos,
            message: strip_location(&e.to_string()),
        }]
    })?;
    let locator = Locator::new(text);
    let name = spec.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "spec".into())
    });
    let mut loaded = LoadedSpec {
        path: file,
        name,
        spec,
        locator,
        actions: Vec::new(),
    };
    let errors = validate(&loaded);
    if !errors.is_empty() {
        return Err(errors);
    }
    // validate() has checked every step has an action.
    loaded.actions = loaded
        .spec
        .cases
        .iter()
        .map(|c| c.steps.iter().filter_map(|s| Action::of(s).ok()).collect())
        .collect();
    Ok(loaded)
}

/// serde_yaml appends " at line L column C"; we print the position up front instead.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn validate(l: &LoadedSpec) -> Vec<SpecError> {
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
        if let Err(e) = crate::spec::load::parse_version_req(r) {
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
        let mut running: HashSet<String> = HashSet::new();
        for (si, step) in case.steps.iter().enumerate() {
            let sp = format!("{cp}.steps[{si}]");
            for e in validate_step(step) {
                at(&format!("{sp}{}", e.0), e.1);
            }
            // The guards update the set of running background names as they test it.
            match Action::of(step) {
                Ok(Action::Start { name, .. }) if !running.insert(name.clone()) => at(
                    &format!("{sp}.background"),
                    format!("background {name:?} is already running"),
                ),
                Ok(Action::Wait { name } | Action::Kill { name, .. }) if !running.remove(&name) => {
                    at(
                        &sp,
                        format!("no background command named {name:?} is running at this step"),
                    )
                }
                _ => {}
            }
        }
        let mut left: Vec<_> = running.into_iter().collect();
        left.sort();
        for name in left {
            at(
                &format!("{cp}.steps"),
                format!("background {name:?} is never waited for or killed"),
            );
        }
    }
    errs
}

/// Problems in one step as (path suffix, message).
fn validate_step(step: &Step) -> Vec<(String, String)> {
    let mut v = Vec::new();
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

/// A version requirement like ">=6.12, <7.0": a list of (op, version) pairs.
pub fn parse_version_req(s: &str) -> Result<Vec<(String, Vec<u32>)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let op_len = part
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(part.len());
        let (op, ver) = part.split_at(op_len);
        let op = op.trim();
        if !["", "=", "==", ">=", "<=", ">", "<"].contains(&op) {
            return Err(format!("invalid version operator {op:?} in {s:?}"));
        }
        let nums: Result<Vec<u32>, _> = ver.trim().split('.').map(str::parse).collect();
        match nums {
            Ok(n) if !n.is_empty() => out.push((op.to_owned(), n)),
            _ => {
                return Err(format!(
                    "invalid version {ver:?} in {s:?} (expected e.g. \">=6.12, <7.0\")"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(format!("empty version requirement {s:?}"));
    }
    Ok(out)
}

/// Does kernel `version` ("6.12.117") satisfy `req`? Missing components compare as 0.
pub fn version_matches(req: &str, version: &str) -> bool {
    let Ok(req) = parse_version_req(req) else {
        return false;
    };
    let v: Vec<u32> = version
        .split(['.', '-'])
        .map_while(|p| p.parse().ok())
        .collect();
    req.iter().all(|(op, want)| {
        let n = want.len().max(v.len());
        let get = |x: &Vec<u32>, i: usize| x.get(i).copied().unwrap_or(0);
        // Compare only as many components as the requirement names: "=6.12" matches 6.12.117.
        let n_cmp = if op.is_empty() || op == "=" || op == "==" {
            want.len()
        } else {
            n
        };
        let ord = (0..n_cmp)
            .map(|i| get(&v, i).cmp(&get(want, i)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal);
        match op.as_str() {
            ">=" => ord.is_ge(),
            "<=" => ord.is_le(),
            ">" => ord.is_gt(),
            "<" => ord.is_lt(),
            _ => ord.is_eq(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match load_str(Path::new("t.yaml"), text) {
            Ok(_) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_spec_loads() {
        let s = load_str(
            Path::new("x/net.yaml"),
            "cases:\n  - name: a\n    steps:\n      - run: echo hi\n        stdout: \"hi\\n\"\n",
        )
        .unwrap();
        assert_eq!(s.name, "net");
        assert_eq!(s.spec.cases[0].steps.len(), 1);
    }

    #[test]
    fn unknown_key_has_position() {
        let e = errs("cases:\n  - name: a\n    steps:\n      - run: x\n        stdotu: y\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.yaml:5:9: "), "{}", e[0]);
        assert!(e[0].contains("unknown field `stdotu`"), "{}", e[0]);
    }

    #[test]
    fn bad_regex_points_at_it() {
        let e = errs("cases:\n  - name: a\n    steps:\n      - run: x\n        stdout:\n          regex: \"a(\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.yaml:6:11: invalid regex"), "{}", e[0]);
    }

    #[test]
    fn duplicate_case_and_dangling_background() {
        let e = errs("cases:\n  - name: a\n    steps: [{run: x, background: l}]\n  - name: a\n    steps: [{wait: m}]\n");
        assert!(e.iter().any(|m| m.contains("duplicate case name")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("never waited")), "{e:?}");
        assert!(
            e.iter()
                .any(|m| m.contains("no background command named \"m\"")),
            "{e:?}"
        );
    }

    #[test]
    fn wrong_types_and_empty() {
        assert!(errs("")[0].contains("empty spec file"));
        assert!(errs("cases: 3\n")[0].starts_with("t.yaml:1:8: cases: invalid type"));
        assert!(
            errs("cases:\n  - name: a\n    steps: [{run: x, exit: -1}]\n")[0].contains("exit code")
        );
        assert!(
            errs("cases:\n  - name: a\n    steps: [{run: x, timeout: soon}]\n")[0]
                .contains("duration")
        );
    }

    #[test]
    fn versions() {
        assert!(version_matches(">=6.12", "6.12.117"));
        assert!(version_matches(">=6.12, <7.0", "6.18.2"));
        assert!(!version_matches(">=6.12, <7.0", "7.3.4"));
        assert!(version_matches("=7.3", "7.3.4"));
        assert!(parse_version_req(">=six").is_err());
    }
}
