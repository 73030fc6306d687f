//! Progress of long builds. The image layer reports through this trait; the CLI decides how to
//! show it (a live status line on a terminal, periodic lines in CI logs).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub trait Progress: Sync {
    /// A phase starts or finishes ("6.12: kernel up to date").
    fn message(&self, msg: &str);
    /// A line of build output from a long phase; may be shown or summarised.
    fn tick(&self, phase: &str, line: &str);
}

/// Writes to stderr: a rewritten status line on a TTY, otherwise a line every 30 s.
pub struct StderrProgress {
    state: Mutex<TickState>,
    tty: bool,
}

struct TickState {
    count: u64,
    started: Instant,
    last_print: Instant,
    phase: String,
}

impl Default for StderrProgress {
    fn default() -> Self {
        let now = Instant::now();
        StderrProgress {
            state: Mutex::new(TickState {
                count: 0,
                started: now,
                last_print: now,
                phase: String::new(),
            }),
            tty: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for StderrProgress {
    fn message(&self, msg: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.phase.clear();
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("kspec: {msg}");
    }

    fn tick(&self, phase: &str, line: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.phase != phase {
            st.phase = phase.to_owned();
            st.count = 0;
            st.started = Instant::now();
        }
        st.count += 1;
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(30)
        };
        if st.last_print.elapsed() < every {
            return;
        }
        st.last_print = Instant::now();
        let secs = st.started.elapsed().as_secs();
        let mut line: String = line.trim().chars().take(60).collect();
        line.retain(|c| !c.is_control());
        let text = format!(
            "kspec: {phase}: {} steps, {}m{:02}s  {line}",
            st.count,
            secs / 60,
            secs % 60
        );
        if self.tty {
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{text}");
        }
    }
}

/// Discards everything (tests that only want the result).
pub struct Quiet;

impl Progress for Quiet {
    fn message(&self, _: &str) {}
    fn tick(&self, _: &str, _: &str) {}
}
