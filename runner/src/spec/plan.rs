//! A case as it runs: the file's `setup`, its own steps with every `include` replaced by the
//! named list, then the file's `teardown`; each step with its action, the YAML path it was
//! written at and its environment. Built once at load, after validation.

use std::collections::{BTreeMap, HashSet};

use super::action::Action;
use super::model::{Case, Spec, Step};

impl PlannedStep {
    /// How reports name it: its `name`, else what it does.
    pub fn label(&self) -> String {
        self.step
            .name
            .clone()
            .unwrap_or_else(|| self.action.label())
    }
}

/// One step ready to run.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub step: Step,
    pub action: Action,
    /// Where it is written: "cases[1].steps[0]", "setup[0]", "step_lists.load[2]".
    pub path: String,
    /// The file's, the case's and the step's `env`, the later on top.
    pub env: Vec<(String, String)>,
}

/// What one case runs.
#[derive(Debug, Clone, Default)]
pub struct CasePlan {
    /// `setup`, then the case's steps.
    pub steps: Vec<PlannedStep>,
    /// Run after `steps` even when one failed.
    pub teardown: Vec<PlannedStep>,
}

/// The plan of every case, or the problems that prevent one, as (YAML path, message).
pub fn plan(spec: &Spec) -> Result<Vec<CasePlan>, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let mut plans = Vec::new();
    for (ci, case) in spec.cases.iter().enumerate() {
        let mut steps = Vec::new();
        let setup = spec.setup.iter().enumerate();
        for (i, s) in setup {
            expand(
                spec,
                case,
                s,
                format!("setup[{i}]"),
                &mut steps,
                &mut errors,
            );
        }
        for (si, s) in case.steps.iter().enumerate() {
            let path = format!("cases[{ci}].steps[{si}]");
            expand(spec, case, s, path, &mut steps, &mut errors);
        }
        let mut teardown = Vec::new();
        for (i, s) in spec.teardown.iter().enumerate() {
            let path = format!("teardown[{i}]");
            expand(spec, case, s, path, &mut teardown, &mut errors);
        }
        // Teardown runs whatever happened before it: it cannot end what the case started.
        track_backgrounds(&steps, &format!("cases[{ci}].steps"), &mut errors);
        track_backgrounds(&teardown, "teardown", &mut errors);
        plans.push(CasePlan { steps, teardown });
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        errors.sort();
        errors.dedup();
        Err(errors)
    }
}

/// Push `step` (or the list it includes) onto `out`.
fn expand(
    spec: &Spec,
    case: &Case,
    step: &Step,
    path: String,
    out: &mut Vec<PlannedStep>,
    errors: &mut Vec<(String, String)>,
) {
    let Some(name) = &step.include else {
        if let Ok(action) = Action::of(step) {
            out.push(planned(spec, case, step, action, path));
        }
        return;
    };
    let Some(list) = spec.step_lists.get(name) else {
        let known: Vec<&str> = spec.step_lists.keys().map(String::as_str).collect();
        errors.push((
            format!("{path}.include"),
            format!(
                "no step list named {name:?} (step_lists has: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        ));
        return;
    };
    for (i, s) in list.iter().enumerate() {
        let inner = format!("step_lists.{name}[{i}]");
        if s.include.is_some() {
            errors.push((
                format!("{inner}.include"),
                "a step list cannot include another".into(),
            ));
        } else if let Ok(action) = Action::of(s) {
            out.push(planned(spec, case, s, action, inner));
        }
    }
}

fn planned(spec: &Spec, case: &Case, step: &Step, action: Action, path: String) -> PlannedStep {
    let mut env: BTreeMap<&str, &str> = BTreeMap::new();
    for m in [&spec.env, &case.env, &step.env] {
        env.extend(m.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    PlannedStep {
        step: step.clone(),
        action,
        path,
        env: env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// Each `wait`/`kill` ends a command started before it, none is started twice, all are ended.
fn track_backgrounds(steps: &[PlannedStep], list: &str, errors: &mut Vec<(String, String)>) {
    let mut running: HashSet<&str> = HashSet::new();
    for s in steps {
        match &s.action {
            Action::Start { name, .. } if !running.insert(name) => errors.push((
                format!("{}.background", s.path),
                format!("background {name:?} is already running"),
            )),
            Action::Wait { name } | Action::Kill { name, .. } if !running.remove(name.as_str()) => {
                errors.push((
                    s.path.clone(),
                    format!("no background command named {name:?} is running at this step"),
                ))
            }
            _ => {}
        }
    }
    let mut left: Vec<&str> = running.into_iter().collect();
    left.sort();
    for name in left {
        errors.push((
            list.to_owned(),
            format!("background {name:?} is never waited for or killed"),
        ));
    }
}
