//! One cgroup v2 per step: the step's whole process tree, however it forks or detaches, can be
//! counted, measured and killed at once. Creating and removing a memory cgroup costs about as
//! much as the step's fork and exec under TCG, so emptied cgroups are reused: CPU time is taken
//! as a difference and memory.peak is reset through the descriptor that reads it (Linux 6.12+;
//! where the reset is refused, every step gets a new cgroup). Without cgroup v2 the agent falls
//! back to the step's process group (no figures, and a process that leaves the group escapes).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

const ROOT: &str = "/sys/fs/cgroup";

pub struct Pool {
    idle: Vec<PathBuf>,
    next: u32,
    reuse: bool,
}

pub struct Cgroup {
    dir: PathBuf,
    /// memory.peak, reset at the step's start when `resettable`.
    peak: Option<File>,
    resettable: bool,
    cpu_start: u64,
}

impl Pool {
    /// None when there is no cgroup v2; enables the memory controller for step cgroups.
    pub fn new() -> Option<Pool> {
        std::fs::metadata(format!("{ROOT}/cgroup.procs")).ok()?;
        let _ = std::fs::write(format!("{ROOT}/cgroup.subtree_control"), "+memory");
        Some(Pool {
            idle: Vec::new(),
            next: 0,
            reuse: true,
        })
    }

    pub fn acquire(&mut self) -> std::io::Result<Cgroup> {
        let dir = match self.idle.pop() {
            Some(d) => d,
            None => {
                self.next += 1;
                let d = PathBuf::from(format!("{ROOT}/kspec-step-{}", self.next));
                match std::fs::create_dir(&d) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                    _ => d,
                }
            }
        };
        let mut peak = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("memory.peak"))
            .ok();
        let resettable = peak
            .as_mut()
            .is_some_and(|f| f.write_all(b"reset\n").is_ok());
        let cg = Cgroup {
            cpu_start: 0,
            dir,
            peak,
            resettable,
        };
        Ok(Cgroup {
            cpu_start: cg.cpu_usage(),
            ..cg
        })
    }

    /// The step is over and its cgroup killed (Step::finish): keep it for the next step if
    /// it is empty.
    pub fn release(&mut self, cg: Cgroup) {
        if self.reuse && cg.resettable && !cg.populated() {
            self.idle.push(cg.dir.clone());
        } else {
            self.reuse &= cg.resettable;
            let _ = std::fs::remove_dir(&cg.dir);
        }
    }
}

impl Cgroup {
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

    fn cpu_usage(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("cpu.stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// (CPU time in µs, peak memory in bytes) since the step began.
    pub fn usage(&mut self) -> (u64, u64) {
        let cpu = self.cpu_usage().saturating_sub(self.cpu_start);
        let mut text = String::new();
        let mem = self
            .peak
            .as_mut()
            .and_then(|f| {
                f.seek(SeekFrom::Start(0)).ok()?;
                f.read_to_string(&mut text).ok()?;
                text.trim().parse().ok()
            })
            .unwrap_or(0);
        (cpu, mem)
    }
}
