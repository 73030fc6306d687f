//! As PID 1 the agent inherits every orphan: it reaps them all, and keeps the exit status of
//! the processes it waits for (the steps' shells).

use std::collections::BTreeMap;
use std::sync::Mutex;

use kspec_protocol::ExitStatus;

static WATCHED: Mutex<BTreeMap<i32, Option<ExitStatus>>> = Mutex::new(BTreeMap::new());

pub fn watch(pid: i32) {
    WATCHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid, None);
}

/// The exit status of a watched process once it has been reaped (then it is forgotten).
pub fn take(pid: i32) -> Option<ExitStatus> {
    let mut w = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    let status = (*w.get(&pid)?)?;
    w.remove(&pid);
    Some(status)
}

/// Reap every child that has ended.
pub fn reap_orphans() {
    loop {
        let mut st = 0;
        // SAFETY: waitpid with a valid pointer.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let status = if libc::WIFEXITED(st) {
            ExitStatus::Code(libc::WEXITSTATUS(st))
        } else {
            ExitStatus::Signal(libc::WTERMSIG(st))
        };
        let mut w = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = w.get_mut(&pid) {
            *slot = Some(status);
        }
    }
}
