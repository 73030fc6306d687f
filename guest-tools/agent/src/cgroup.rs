//! One cgroup v2 per step: the step's whole process tree, however it forks or detaches, can be
//! counted, measured and killed at once. Without cgroup v2 the agent falls back to the step's
//! process group (no figures, and a process that leaves the group escapes).

use std::path::PathBuf;

const ROOT: &str = "/sys/fs/cgroup";

pub struct Cgroup {
    dir: PathBuf,
}

/// Enable the memory controller for step cgroups; false when there is no cgroup v2.
pub fn init() -> bool {
    if std::fs::metadata(format!("{ROOT}/cgroup.procs")).is_err() {
        return false;
    }
    let _ = std::fs::write(format!("{ROOT}/cgroup.subtree_control"), "+memory");
    true
}

impl Cgroup {
    pub fn create(step: u32) -> std::io::Result<Cgroup> {
        let dir = PathBuf::from(format!("{ROOT}/kspec-step-{step}"));
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        Ok(Cgroup { dir })
    }

    /// Path of cgroup.procs: the child writes "0" there before exec.
    pub fn procs_path(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn members(&self) -> u32 {
        std::fs::read_to_string(self.procs_path())
            .map(|s| s.lines().count() as u32)
            .unwrap_or(0)
    }

    fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|s| s.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }

    /// SIGKILL everything in the cgroup and wait (bounded) until it is empty.
    pub fn kill(&self) {
        if !self.populated() {
            return;
        }
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.populated() && std::time::Instant::now() < deadline {
            crate::reap::reap_orphans();
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// (CPU time in µs, peak memory in bytes).
    pub fn usage(&self) -> (u64, u64) {
        let cpu = std::fs::read_to_string(self.dir.join("cpu.stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
            })
            .unwrap_or(0);
        let mem = std::fs::read_to_string(self.dir.join("memory.peak"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        (cpu, mem)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
