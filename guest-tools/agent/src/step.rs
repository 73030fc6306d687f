//! One step: `sh -c SCRIPT` in its own session and cgroup, stdin /dev/null, stdout and stderr
//! through pipes made for it alone, streamed to the host up to a limit; at its end everything
//! left in its cgroup is killed and its figures are read.

use std::ffi::CString;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use kspec_protocol::{ExitStatus, Msg, RunRequest, StepResult, Stream};

use crate::cgroup::{Cgroup, Pool};
use crate::link::Link;
use crate::reap;

/// Largest data chunk in one Output frame (a frame is written in one blocking call).
const CHUNK: usize = 4 * 1024;

pub struct Pipe {
    file: Option<File>,
    stream: Stream,
    limit: u64,
    count: u64,
    exceeded: bool,
}

pub struct Step {
    pub id: u32,
    pub background: bool,
    pid: i32,
    cgroup: Option<Cgroup>,
    pub pipes: [Pipe; 2],
    started: Instant,
    /// When the agent kills it: a foreground step's timeout, or a wait's.
    pub deadline: Option<Instant>,
    status: Option<ExitStatus>,
    elapsed: Duration,
    timed_out: bool,
    taint_before: u64,
    busy_before: Vec<u64>,
    /// The wait step that answers for this background step.
    pub waiter: Option<u32>,
}

/// Busy time of each CPU so far (/proc/stat: all but idle and iowait), in clock ticks.
fn cpu_busy_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let get = |i: usize| f.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            get(0) + get(1) + get(2) + get(5) + get(6) + get(7)
        })
        .collect()
}

pub fn read_taint() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/tainted")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn cstring(b: &[u8], what: &str) -> Result<CString, String> {
    CString::new(b).map_err(|_| format!("{what} contains a NUL byte"))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both are fresh descriptors we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) };
    Ok((r, w))
}

impl Step {
    pub fn spawn(id: u32, req: &RunRequest, cgroups: Option<&mut Pool>) -> Result<Step, String> {
        let sh = cstring(b"/bin/sh", "shell")?;
        let argv_owned = [
            cstring(b"sh", "argv")?,
            cstring(b"-c", "argv")?,
            cstring(&req.script, "the command")?,
        ];
        let mut env_owned = vec![
            cstring(b"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "env")?,
            cstring(b"HOME=/root", "env")?,
        ];
        for (k, v) in &req.env {
            let mut kv = k.clone();
            kv.push(b'=');
            kv.extend_from_slice(v);
            env_owned.push(cstring(&kv, "an environment variable")?);
        }
        let argv: Vec<*const libc::c_char> = argv_owned
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp: Vec<*const libc::c_char> = env_owned
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let cgroup = match cgroups {
            Some(pool) => Some(
                pool.acquire()
                    .map_err(|e| format!("cgroup for step {id}: {e}"))?,
            ),
            None => None,
        };
        let procs = match &cgroup {
            Some(cg) => Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(cg.procs_path())
                    .map_err(|e| format!("{}: {e}", cg.procs_path().display()))?,
            ),
            None => None,
        };
        let procs_fd = procs.as_ref().map_or(-1, |f| f.as_raw_fd());
        let devnull = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let fds = (devnull.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd());
        let started = Instant::now();
        // SAFETY: the agent is single-threaded; the child only makes async-signal-safe calls
        // with memory prepared before the fork, then execs or exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; nothing here allocates.
            unsafe { child(procs_fd, fds, sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) }
        }
        reap::watch(pid);
        drop((out_w, err_w, procs, devnull));
        let to_file = |fd: OwnedFd| Some(File::from(fd));
        Ok(Step {
            id,
            background: req.background,
            pid,
            cgroup,
            pipes: [
                Pipe {
                    file: to_file(out_r),
                    stream: Stream::Stdout,
                    limit: req.stdout_limit,
                    count: 0,
                    exceeded: false,
                },
                Pipe {
                    file: to_file(err_r),
                    stream: Stream::Stderr,
                    limit: req.stderr_limit,
                    count: 0,
                    exceeded: false,
                },
            ],
            started,
            deadline: (!req.background).then(|| started + Duration::from_millis(req.timeout_ms)),
            status: None,
            elapsed: Duration::ZERO,
            timed_out: false,
            taint_before: read_taint(),
            busy_before: cpu_busy_ticks(),
            waiter: None,
        })
    }

    pub fn pipe_fds(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.pipes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.file.as_ref().map(|f| (i, f.as_fd())))
    }

    /// Forward what pipe `i` holds now; past its limit the step is killed at once.
    pub fn read_pipe(&mut self, i: usize, link: &mut Link) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let p = &mut self.pipes[i];
            let Some(f) = p.file.as_mut() else { return };
            match f.read(&mut buf) {
                Ok(0) => {
                    p.file = None;
                    return;
                }
                Ok(n) => {
                    let room = p.limit.saturating_sub(p.count) as usize;
                    p.count += n as u64;
                    for c in buf[..n.min(room)].chunks(CHUNK) {
                        link.send(
                            self.id,
                            Msg::Output {
                                stream: p.stream,
                                data: c.to_vec(),
                            },
                        );
                    }
                    if p.count > p.limit && !p.exceeded {
                        p.exceeded = true;
                        self.kill_all();
                        // Fail at once: the host need not wait for megabytes on a slow port.
                        link.drop_unsent_output(self.id);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_pipes(&mut self, link: &mut Link) {
        for i in 0..2 {
            self.read_pipe(i, link);
        }
    }

    fn kill_all(&self) {
        match &self.cgroup {
            Some(cg) => cg.kill(),
            // SAFETY: signalling the step's process group.
            None => unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
            },
        }
    }

    /// Signal the step's process group (a `kill:` step).
    pub fn signal(&self, sig: i32) {
        if self.status.is_none() {
            // SAFETY: signalling the step's process group.
            unsafe { libc::kill(-self.pid, sig) };
        }
    }

    /// Has its shell ended? (Collects the status once reaped.)
    pub fn ended(&mut self) -> bool {
        if self.status.is_none() {
            if let Some(s) = reap::take(self.pid) {
                self.status = Some(s);
                self.elapsed = self.started.elapsed();
            }
        }
        self.status.is_some()
    }

    /// Past its deadline: kill it; it ends as timed out.
    pub fn expire(&mut self) {
        self.timed_out = true;
        self.deadline = None;
        self.kill_all();
    }

    /// The shell has ended: kill what it left, take the last output and the figures.
    pub fn finish(mut self, link: &mut Link, pool: Option<&mut Pool>) -> StepResult {
        self.read_pipes(link);
        let survivors = self.cgroup.as_ref().map_or(0, |c| c.members());
        self.kill_all();
        // Every writer is gone now: read to EOF (bounded, in case one escaped the cgroup).
        let until = Instant::now() + Duration::from_millis(200);
        while self.pipes.iter().any(|p| p.file.is_some()) && Instant::now() < until {
            self.read_pipes(link);
            if self.pipes.iter().any(|p| p.file.is_some()) {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        let (cpu_us, memory_peak) = self.cgroup.as_mut().map_or((0, 0), |c| c.usage());
        // SAFETY: sysconf has no preconditions.
        let tick_ms = 1000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let cpu_busy_ms = cpu_busy_ticks()
            .iter()
            .zip(&self.busy_before)
            .map(|(a, b)| a.saturating_sub(*b) * tick_ms)
            .collect();
        if let (Some(cg), Some(pool)) = (self.cgroup.take(), pool) {
            pool.release(cg);
        }
        StepResult {
            status: self.status.unwrap_or(ExitStatus::Signal(libc::SIGKILL)),
            timed_out: self.timed_out,
            stdout_exceeded: self.pipes[0].exceeded,
            stderr_exceeded: self.pipes[1].exceeded,
            stdout_bytes: self.pipes[0].count,
            stderr_bytes: self.pipes[1].count,
            taint_before: self.taint_before,
            taint_after: read_taint(),
            elapsed_us: self.elapsed.as_micros() as u64,
            cpu_us,
            memory_peak,
            survivors,
            cpu_busy_ms,
        }
    }
}

/// The forked child: default signals, own session, into the step's cgroup, stdio, exec.
unsafe fn child(
    procs_fd: i32,
    (stdin, stdout, stderr): (i32, i32, i32),
    sh: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> ! {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    for sig in 1..32 {
        libc::signal(sig, libc::SIG_DFL);
    }
    libc::setsid();
    if procs_fd >= 0 {
        libc::write(procs_fd, b"0".as_ptr().cast(), 1);
    }
    libc::dup2(stdin, 0);
    libc::dup2(stdout, 1);
    libc::dup2(stderr, 2);
    libc::chdir(c"/".as_ptr());
    libc::execve(sh, argv, envp);
    libc::_exit(127)
}
