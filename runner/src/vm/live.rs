//! Every VM this process runs, so that an interrupted run (Ctrl-C, a CI job's cancel) can stop
//! each QEMU and remove its directory before exiting, instead of leaving them behind.

use std::path::PathBuf;
use std::sync::Mutex;

struct Live {
    id: u64,
    pid: i32,
    dir: PathBuf,
}

static LIVE: Mutex<(u64, Vec<Live>)> = Mutex::new((0, Vec::new()));

/// A VM's entry in the registry, removed when dropped.
pub struct Registration(u64);

pub fn register(pid: i32, dir: PathBuf) -> Registration {
    let mut l = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    l.0 += 1;
    let id = l.0;
    l.1.push(Live { id, pid, dir });
    Registration(id)
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut l = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        l.1.retain(|v| v.id != self.0);
    }
}

/// Kill every registered QEMU and remove its directory; how many there were. The registry is
/// left locked empty-handed afterwards, so no VM that starts meanwhile is missed: its
/// registration waits, and the caller exits.
pub fn stop_all() -> usize {
    let mut l = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let n = l.1.len();
    let stopped: Vec<Live> = l.1.drain(..).collect();
    for v in &stopped {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(v.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Reap them (they are this process's children), so none outlives the exit even briefly;
    // a SIGKILLed process is gone within milliseconds, the bound only stops a hang.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for v in &stopped {
        let pid = nix::unistd::Pid::from_raw(v.pid);
        while std::time::Instant::now() < deadline {
            match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                _ => break,
            }
        }
        let _ = std::fs::remove_dir_all(&v.dir);
    }
    std::mem::forget(l);
    n
}

/// On SIGINT, SIGTERM or SIGHUP (Ctrl-C, a cancelled CI job): stop every VM, remove their
/// directories and exit 128+signal. Reports written so far (JUnit, JSON file) stay complete:
/// they are rewritten after every case.
pub fn stop_all_on_interrupt() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let n = stop_all();
            eprintln!("kspec: interrupted (signal {sig}): stopped {n} VM(s) and removed their directories");
            std::process::exit(128 + sig);
        }
    });
}
