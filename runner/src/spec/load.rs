//! Loading and validating spec files. Every problem becomes a `SpecError` with file:line:column;
//! nothing here panics on bad input.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{Locator, Pos};
use super::model::Spec;
use super::plan::{plan, CasePlan, PlannedStep};
use super::validate::validate;

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
    /// What each case runs, by case index.
    plans: Vec<CasePlan>,
}

impl LoadedSpec {
    /// What case `case` runs: setup, its steps (includes expanded), teardown.
    pub fn plan(&self, case: usize) -> &CasePlan {
        &self.plans[case]
    }

    /// Where `step` is written.
    pub fn planned_pos(&self, step: &PlannedStep) -> Pos {
        self.locator.find(&step.path)
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
        plans: Vec::new(),
    };
    let mut errors = validate(&loaded);
    match plan(&loaded.spec) {
        Ok(plans) => loaded.plans = plans,
        Err(problems) => errors.extend(problems.into_iter().map(|(path, message)| SpecError {
            file: loaded.path.clone(),
            pos: loaded.locator.find(&path),
            message,
        })),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(loaded)
}

/// serde_yaml appends " at line L column C"; we print the position up front instead.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
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
}
