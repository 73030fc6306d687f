//! What a step does, decided from its YAML keys when the file is loaded.

use super::model::Step;

/// What a step does. Decided once, when its file is loaded ([`Action::of`]): a loaded spec
/// holds one for every step, so nothing past loading meets an invalid step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run {
        cmd: String,
    },
    /// Start `cmd` in the background under `name`.
    Start {
        cmd: String,
        name: String,
    },
    Wait {
        name: String,
    },
    /// Send `signal` (a name without SIG, e.g. "TERM") to `name`, then wait for it.
    Kill {
        name: String,
        signal: String,
    },
}

impl Action {
    /// The action a YAML step describes, or why it describes none: (the key at fault, as a
    /// path suffix such as ".signal" or "" for the step, message).
    pub fn of(step: &Step) -> Result<Action, (&'static str, String)> {
        let signal = step.signal.as_deref().map(|s| s.trim_start_matches("SIG"));
        if let Some(sig) = signal {
            if step.kill.is_none() {
                return Err((".signal", "`signal` goes with `kill`".into()));
            }
            if !SIGNALS.contains(&sig) {
                let known = SIGNALS.join(", ");
                return Err((
                    ".signal",
                    format!("unknown signal {sig:?}, expected one of {known}"),
                ));
            }
        }
        match (&step.run, &step.background, &step.wait, &step.kill) {
            (Some(cmd), _, None, None) if cmd.trim().is_empty() => {
                Err((".run", "`run` is empty".into()))
            }
            (Some(cmd), Some(bg), None, None) => Ok(Action::Start {
                cmd: cmd.clone(),
                name: bg.clone(),
            }),
            (Some(cmd), None, None, None) => Ok(Action::Run { cmd: cmd.clone() }),
            (None, None, Some(name), None) => Ok(Action::Wait { name: name.clone() }),
            (None, None, None, Some(name)) => Ok(Action::Kill {
                name: name.clone(),
                signal: signal.unwrap_or("TERM").to_owned(),
            }),
            _ => Err((
                "",
                "a step needs exactly one of `run`, `wait` or `kill` (`background` goes with `run`)"
                    .into(),
            )),
        }
    }

    /// How reports name a step without a `name`.
    pub fn label(&self) -> String {
        let first = |cmd: &str| cmd.lines().next().unwrap_or("").to_owned();
        match self {
            Action::Run { cmd } => first(cmd),
            Action::Start { cmd, name } => format!("start {name}: {}", first(cmd)),
            Action::Wait { name } => format!("wait {name}"),
            Action::Kill { name, .. } => format!("kill {name}"),
        }
    }
}

/// Signals a `kill` step may send.
pub const SIGNALS: &[&str] = &["TERM", "INT", "KILL", "HUP", "USR1", "USR2", "QUIT"];
