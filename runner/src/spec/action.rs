//! What a step does, decided from its YAML keys when the file is loaded.

use super::model::Step;

/// What a step does. Decided once, when its file is loaded ([`Action::of`]): a loaded spec
/// holds one for every step, so nothing past loading meets an invalid step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run {
        cmd: String,
    },
    /// Run `cmd` until the step's expectations hold or its timeout is spent.
    WaitUntil {
        cmd: String,
        interval: std::time::Duration,
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
        if let Some(cmd) = &step.wait_until {
            let alone = step.run.is_none()
                && step.background.is_none()
                && step.wait.is_none()
                && step.kill.is_none();
            if !alone {
                return Err((
                    "",
                    "`wait_until` is a step of its own (no `run`, `wait` or `kill` with it)".into(),
                ));
            }
            if cmd.trim().is_empty() {
                return Err((".wait_until", "`wait_until` is empty".into()));
            }
            let interval = step.interval.map_or(DEFAULT_INTERVAL, |i| i.0);
            return Ok(Action::WaitUntil {
                cmd: cmd.clone(),
                interval,
            });
        }
        if step.interval.is_some() {
            return Err((".interval", "`interval` goes with `wait_until`".into()));
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
            Action::WaitUntil { cmd, .. } => format!("wait until: {}", first(cmd)),
            Action::Start { cmd, name } => format!("start {name}: {}", first(cmd)),
            Action::Wait { name } => format!("wait {name}"),
            Action::Kill { name, .. } => format!("kill {name}"),
        }
    }
}

/// The pause between `wait_until` attempts unless a step says.
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Signals a `kill` step may send.
pub const SIGNALS: &[&str] = &["TERM", "INT", "KILL", "HUP", "USR1", "USR2", "QUIT"];
