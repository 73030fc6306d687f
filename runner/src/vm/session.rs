//! A running test VM: QEMU in a pty (rexpect) whose first serial port carries the agent's framed
//! protocol; the second is the kernel console, written to a file for crash reports. QEMU dies
//! with the `Vm` (and with the runner, through the parent-death signal).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use kspec_protocol::{encode, Frame, Msg, RunRequest};
use rexpect::process::PtyProcess;

use super::inbox::{End, Inbox, Settled, Start};
use super::kmsg::KmsgRecord;
use super::qemu::{self, VmConfig};
use super::qmp::Qmp;
use super::snapshot;

/// What a finished step produced.
#[derive(Debug, Clone)]
pub struct StepOutput {
    pub start: Start,
    pub end: End,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Host time from sending the request to the end frame.
    pub elapsed: Duration,
}

impl StepOutput {
    /// The exit status as a shell reports it (128 + signal for a killed command).
    pub fn exit(&self) -> i32 {
        self.end.result.status.shell_code()
    }
}

/// What one step asks of the agent.
#[derive(Debug, Clone)]
pub struct StepRequest<'a> {
    pub script: &'a str,
    pub timeout: Duration,
    pub stdout_limit: u64,
    pub stderr_limit: u64,
    pub env: &'a [(String, String)],
}

impl<'a> StepRequest<'a> {
    /// `script` with `timeout` and 16 MiB output limits (kspec's own steps).
    pub fn new(script: &'a str, timeout: Duration) -> Self {
        StepRequest {
            script,
            timeout,
            stdout_limit: 16 << 20,
            stderr_limit: 16 << 20,
            env: &[],
        }
    }
}

#[derive(Debug, Clone)]
pub enum VmError {
    /// QEMU could not be started or the guest never became ready.
    Boot {
        message: String,
        console_tail: Vec<String>,
    },
    /// The guest died (kernel panic, triple fault, QEMU killed from outside).
    Crashed {
        reason: String,
        console_tail: Vec<String>,
    },
    /// No answer from the guest within the step's bound plus grace: the VM is unusable.
    Hung {
        waited: Duration,
        console_tail: Vec<String>,
    },
    /// The protocol stream cannot be trusted (corrupt or missing frame), or the agent refused.
    Protocol(String),
    /// Anything else that breaks the session.
    Session(String),
}

impl std::fmt::Display for VmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmError::Boot { message, .. } => write!(f, "boot failed: {message}"),
            VmError::Crashed { reason, .. } => write!(f, "{reason}"),
            VmError::Hung { waited, .. } => {
                write!(f, "guest unresponsive for {:.1}s", waited.as_secs_f64())
            }
            VmError::Protocol(m) => write!(f, "step protocol: {m}"),
            VmError::Session(m) => write!(f, "VM session error: {m}"),
        }
    }
}

impl VmError {
    /// A boot failure before the guest could say anything.
    fn boot(message: impl std::fmt::Display) -> VmError {
        VmError::Boot {
            message: message.to_string(),
            console_tail: vec![],
        }
    }

    pub fn console_tail(&self) -> &[String] {
        match self {
            VmError::Boot { console_tail, .. }
            | VmError::Crashed { console_tail, .. }
            | VmError::Hung { console_tail, .. } => console_tail,
            VmError::Protocol(_) | VmError::Session(_) => &[],
        }
    }
}

/// How long the kernel log must stay quiet after boot before a snapshot is saved.
const SNAPSHOT_QUIET: Duration = Duration::from_secs(1);

/// Console lines kept for crash reports.
const TAIL_LINES: usize = 40;
/// How long the guest may stay silent beyond a step's own bound before it is declared hung
/// (the agent enforces the bound itself; this only catches a dead guest).
const GRACE: Duration = Duration::from_secs(15);

pub struct Vm {
    process: PtyProcess,
    writer: std::fs::File,
    rx: Receiver<Vec<u8>>,
    eof: bool,
    inbox: Inbox,
    seq_out: u32,
    next_step: u32,
    console: PathBuf,
    qmp_path: PathBuf,
    last_rx: Instant,
    _live: super::live::Registration,
    _dir: tempfile::TempDir,
    /// Host time from spawning QEMU to the agent's ready frame.
    pub boot_time: Duration,
    /// Guest uptime when the agent became ready (seconds).
    pub guest_ready_uptime: f64,
    /// CPUs the guest has online.
    pub cpus: u32,
    /// Started from a snapshot rather than booted.
    pub restored: bool,
    /// This cold boot saved the image's snapshot, taking this long.
    pub snapshot_saved: Option<Duration>,
    /// Why a snapshot was not used or not saved, if that happened.
    pub boot_note: Option<String>,
    /// Where the boot time went: (phase, time since the previous phase).
    pub boot_phases: Vec<(&'static str, Duration)>,
}

impl Vm {
    /// Boot `cfg.initramfs` with `extra_initramfs` (an archive of spec files) appended: from
    /// the image's snapshot when there is one (see snapshot.rs), else cold, saving a snapshot
    /// for the next VM. A snapshot that fails to restore is removed and the VM boots cold.
    pub fn boot(cfg: &VmConfig, extra_initramfs: Option<&[u8]>) -> Result<Vm, VmError> {
        let snapshot = cfg
            .snapshots
            .as_deref()
            .map(|d| snapshot::path_for(d, cfg, extra_initramfs));
        let mut note = None;
        if let Some(snap) = snapshot.as_deref().filter(|p| p.is_file()) {
            match Vm::start(cfg, extra_initramfs, Some(snap)) {
                Ok(vm) => return Ok(vm),
                Err(e) => {
                    let _ = std::fs::remove_file(snap);
                    note = Some(format!("snapshot not restored ({e}): booted cold"));
                }
            }
        }
        let mut vm = Vm::start(cfg, extra_initramfs, None)?;
        vm.boot_note = note;
        if let Some(snap) = snapshot.filter(|p| !p.is_file()) {
            // Boot leaves delayed work behind (the TSC's refined calibration switches the
            // clocksource about a second in): let it land first, or every restored VM would
            // replay it into one of its steps. What it logs stays for the first step's window.
            let settled = vm.settle(SNAPSHOT_QUIET, SNAPSHOT_QUIET * 10)?;
            vm.inbox.requeue(settled.records);
            let deadline = Instant::now() + GRACE;
            let saved = if vm.seq_out != snapshot::HOST_FRAMES {
                Err(format!("the host sent {} frames before it", vm.seq_out))
            } else {
                Qmp::connect(&vm.qmp_path, deadline)
                    .and_then(|mut q| snapshot::save(&mut q, &snap))
                    .map_err(|e| e.to_string())
            };
            match saved {
                Ok(took) => vm.snapshot_saved = Some(took),
                Err(e) => vm.boot_note = Some(format!("snapshot not saved: {e}")),
            }
        }
        Ok(vm)
    }

    /// Start QEMU and wait for the ready agent: booting, or restoring `snapshot`.
    fn start(
        cfg: &VmConfig,
        extra_initramfs: Option<&[u8]>,
        snapshot: Option<&Path>,
    ) -> Result<Vm, VmError> {
        let dir = tempfile::Builder::new()
            .prefix("kspec-vm-")
            .tempdir()
            .map_err(|e| VmError::boot(format!("tempdir: {e}")))?;
        let mut cfg = cfg.clone();
        if let Some(extra) = extra_initramfs {
            // The kernel unpacks concatenated cpio archives in order.
            let mut data = std::fs::read(&cfg.initramfs)
                .map_err(|e| VmError::boot(format!("{}: {e}", cfg.initramfs.display())))?;
            data.extend_from_slice(extra);
            let p = dir.path().join("initramfs.cpio");
            std::fs::write(&p, data).map_err(|e| VmError::boot(format!("{}: {e}", p.display())))?;
            cfg.initramfs = p;
        }
        let console = dir.path().join("console");
        std::fs::write(&console, b"")
            .map_err(|e| VmError::boot(format!("{}: {e}", console.display())))?;
        let qmp_path = dir.path().join("qmp");
        let incoming = snapshot.map(snapshot::incoming);
        let started = Instant::now();
        let command = qemu::agent_command(&cfg, &console, &qmp_path, incoming.as_deref());
        let process = PtyProcess::new(command)
            .map_err(|e| VmError::boot(format!("cannot start qemu-system-x86_64: {e}")))?;
        let file = process
            .get_file_handle()
            .map_err(|e| VmError::boot(format!("pty: {e}")))?;
        // Non-blocking, so that a write to a guest that stopped reading has a deadline.
        set_nonblocking(&file);
        let reader = file
            .try_clone()
            .map_err(|e| VmError::boot(format!("pty: {e}")))?;
        let live = super::live::register(process.child_pid.as_raw(), dir.path().to_owned());
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("kspec-console".into())
            .spawn(move || read_port(reader, tx))
            .map_err(|e| VmError::boot(format!("thread: {e}")))?;
        let mut vm = Vm {
            process,
            writer: file,
            rx,
            eof: false,
            inbox: Inbox::new(),
            seq_out: 0,
            next_step: 1,
            console,
            qmp_path,
            last_rx: Instant::now(),
            _live: live,
            _dir: dir,
            boot_time: Duration::ZERO,
            guest_ready_uptime: 0.0,
            cpus: 0,
            restored: snapshot.is_some(),
            snapshot_saved: None,
            boot_note: None,
            boot_phases: vec![("QEMU started", started.elapsed())],
        };
        if snapshot.is_some() {
            // The saved agent has taken the host's frames before the snapshot (and their ids).
            vm.seq_out = snapshot::HOST_FRAMES;
            vm.next_step = snapshot::HOST_FRAMES + 1;
            vm.resume(cfg.boot_timeout, started)?;
        }
        match vm.pump(Instant::now() + cfg.boot_timeout, |i| i.ready.is_some()) {
            Ok(()) => {}
            Err(VmError::Hung { console_tail, .. }) => {
                return Err(VmError::Boot {
                    message: format!("guest not ready after {}s", cfg.boot_timeout.as_secs()),
                    console_tail,
                })
            }
            Err(VmError::Crashed {
                reason,
                console_tail,
            }) => {
                return Err(VmError::Boot {
                    message: format!("guest died during boot: {reason}"),
                    console_tail,
                })
            }
            Err(e) => return Err(e),
        }
        let ready = vm.inbox.ready.expect("pumped until ready");
        vm.boot_time = started.elapsed();
        vm.phase("agent ready", started);
        vm.guest_ready_uptime = ready.uptime_ms as f64 / 1000.0;
        vm.cpus = ready.cpus;
        Ok(vm)
    }

    /// A restored guest: once QEMU runs it (bytes sent earlier are lost in the restore), tell
    /// the agent, with fresh entropy and the wall clock, so that no two restored VMs share
    /// their random numbers or a stale time; it answers with a new ready frame.
    fn resume(&mut self, bound: Duration, started: Instant) -> Result<(), VmError> {
        let deadline = Instant::now() + bound;
        let mut qmp = Qmp::connect(&self.qmp_path, deadline).map_err(VmError::boot)?;
        self.phase("QMP connected", started);
        qmp.wait_running(deadline).map_err(VmError::boot)?;
        self.phase("state loaded, running", started);
        let resume = snapshot::resume_message().map_err(VmError::boot)?;
        // The agent numbers its frames on from where the snapshot left it.
        self.inbox = Inbox::resumed();
        self.send(0, resume)
    }

    fn phase(&mut self, name: &'static str, started: Instant) {
        let so_far: Duration = self.boot_phases.iter().map(|p| p.1).sum();
        self.boot_phases
            .push((name, started.elapsed().saturating_sub(so_far)));
    }

    /// Send one frame; the guest must take it within `GRACE`.
    fn send(&mut self, step: u32, msg: Msg) -> Result<(), VmError> {
        let bytes = encode(&Frame {
            seq: self.seq_out,
            step,
            msg,
        });
        self.seq_out = self.seq_out.wrapping_add(1);
        let deadline = Instant::now() + GRACE;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match self.writer.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(VmError::Hung {
                            waited: GRACE,
                            console_tail: self.console_tail(),
                        });
                    }
                    wait_writable(self.writer.as_raw_fd(), Duration::from_millis(50));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VmError::Session(format!("writing to the guest: {e}"))),
            }
        }
        Ok(())
    }

    /// Receive until `done(inbox)`; hung once past `deadline` with nothing received for GRACE.
    fn pump(&mut self, deadline: Instant, done: impl Fn(&Inbox) -> bool) -> Result<(), VmError> {
        let begun = Instant::now();
        loop {
            if let Some(why) = &self.inbox.broken {
                return Err(VmError::Protocol(why.clone()));
            }
            if done(&self.inbox) {
                return Ok(());
            }
            if self.eof {
                return Err(self.crashed());
            }
            let now = Instant::now();
            let limit = deadline.max(self.last_rx + GRACE);
            if now >= limit {
                return Err(VmError::Hung {
                    waited: now - begun,
                    console_tail: self.console_tail(),
                });
            }
            match self.rx.recv_timeout(limit - now) {
                Ok(chunk) => {
                    self.last_rx = Instant::now();
                    self.inbox.push(&chunk);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
    }

    fn agent_error(&self, step: u32) -> Option<VmError> {
        self.inbox
            .error(step)
            .map(|m| VmError::Protocol(format!("the agent refused step {step}: {m}")))
    }

    fn wait_start(&mut self, id: u32) -> Result<Start, VmError> {
        let deadline = Instant::now() + GRACE;
        self.pump(deadline, |i| i.has_start(id) || i.error(id).is_some())?;
        if let Some(e) = self.agent_error(id) {
            return Err(e);
        }
        Ok(self.inbox.take_start(id).expect("pumped until started"))
    }

    fn wait_end(
        &mut self,
        id: u32,
        output_of: u32,
        bound: Duration,
    ) -> Result<(End, Vec<u8>, Vec<u8>), VmError> {
        let deadline = Instant::now() + bound + GRACE;
        self.pump(deadline, |i| i.has_end(id) || i.error(id).is_some())?;
        if let Some(e) = self.agent_error(id) {
            return Err(e);
        }
        let end = self.inbox.take_end(id).expect("pumped until finished");
        let (stdout, stderr) = self.inbox.take_output(output_of);
        Ok((end, stdout, stderr))
    }

    /// Send `msg` under a new step id.
    fn request(&mut self, msg: Msg) -> Result<u32, VmError> {
        let id = self.next_step;
        self.next_step += 1;
        self.send(id, msg)?;
        Ok(id)
    }

    fn request_run(&mut self, req: &StepRequest, background: bool) -> Result<u32, VmError> {
        let run = RunRequest {
            background,
            timeout_ms: req.timeout.as_millis() as u64,
            stdout_limit: req.stdout_limit,
            stderr_limit: req.stderr_limit,
            script: req.script.as_bytes().to_vec(),
            env: req
                .env
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        };
        self.request(Msg::Run(run))
    }

    /// The start and end frames of step `id`, with the output of step `output_of`.
    fn collect(
        &mut self,
        id: u32,
        output_of: u32,
        bound: Duration,
        started: Instant,
    ) -> Result<StepOutput, VmError> {
        let start = self.wait_start(id)?;
        let (end, stdout, stderr) = self.wait_end(id, output_of, bound)?;
        Ok(StepOutput {
            start,
            end,
            stdout,
            stderr,
            elapsed: started.elapsed(),
        })
    }

    /// Run a foreground step; the agent kills it after `req.timeout`.
    pub fn run(&mut self, req: &StepRequest) -> Result<StepOutput, VmError> {
        let started = Instant::now();
        let id = self.request_run(req, false)?;
        self.collect(id, id, req.timeout, started)
    }

    /// Start a background step; returns its id (for `finish_background`) and its start.
    pub fn start_background(&mut self, req: &StepRequest) -> Result<(u32, Start), VmError> {
        let id = self.request_run(req, true)?;
        let start = self.wait_start(id)?;
        Ok((id, start))
    }

    /// Wait for background step `target` (after sending `signal`, if any) at most `timeout`.
    pub fn finish_background(
        &mut self,
        target: u32,
        signal: Option<i32>,
        timeout: Duration,
    ) -> Result<StepOutput, VmError> {
        let started = Instant::now();
        let id = self.request(Msg::Wait {
            target,
            signal: signal.unwrap_or(0) as u8,
            timeout_ms: timeout.as_millis() as u64,
        })?;
        self.collect(id, target, timeout, started)
    }

    /// Wait until the kernel log has been quiet for `quiet` (at most `max`): deferred reports
    /// (work items, timers, RCU callbacks) land before a verdict.
    pub fn settle(&mut self, quiet: Duration, max: Duration) -> Result<Settled, VmError> {
        let id = self.request(Msg::Settle {
            quiet_ms: quiet.as_millis() as u32,
            max_ms: max.as_millis() as u32,
        })?;
        self.pump(Instant::now() + max + GRACE, |i| {
            i.has_settled(id) || i.error(id).is_some()
        })?;
        if let Some(e) = self.agent_error(id) {
            return Err(e);
        }
        Ok(self.inbox.take_settled(id).expect("pumped until settled"))
    }

    fn crashed(&mut self) -> VmError {
        let tail = self.console_tail();
        let reason = if let Some(l) = tail.iter().find(|l| l.contains("Kernel panic")) {
            format!("kernel panic: {}", l.trim())
        } else {
            let status = self.process.status();
            format!("QEMU exited unexpectedly ({status:?})")
        };
        VmError::Crashed {
            reason,
            console_tail: tail,
        }
    }

    /// The kernel console's last lines (the second serial port), control characters dropped.
    pub fn console_tail(&mut self) -> Vec<String> {
        let data = std::fs::read(&self.console).unwrap_or_default();
        let text = String::from_utf8_lossy(&data);
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                l.chars()
                    .filter(|c| !c.is_control() || *c == '\t')
                    .collect::<String>()
            })
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec()
    }

    /// The guest kernel log's last records (crash reports).
    pub fn kmsg_tail(&mut self, n: usize) -> Vec<KmsgRecord> {
        self.inbox.history(n)
    }

    /// The kernel console as QEMU wrote it (boot messages, panics), raw.
    pub fn console_log(&self) -> Vec<u8> {
        std::fs::read(&self.console).unwrap_or_default()
    }

    /// Kill QEMU now (the guest keeps no state worth a clean shutdown).
    pub fn shutdown(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.process.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.process.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The reader thread: forwards what QEMU writes until the pty closes (EIO when QEMU exits).
fn read_port(mut reader: std::fs::File, tx: mpsc::Sender<Vec<u8>>) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                if tx.send(chunk[..n].to_vec()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wait_readable(reader.as_raw_fd());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn poll_one(fd: i32, events: nix::poll::PollFlags, timeout: Duration) {
    use nix::poll::{poll, PollFd, PollTimeout};
    // SAFETY: fd stays open for the duration of the call (owned by the caller).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(bfd, events)];
    let ms =
        PollTimeout::try_from(timeout.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
    let _ = poll(&mut fds, ms);
}

fn wait_readable(fd: i32) {
    poll_one(fd, nix::poll::PollFlags::POLLIN, Duration::from_secs(1));
}

fn wait_writable(fd: i32, timeout: Duration) {
    poll_one(fd, nix::poll::PollFlags::POLLOUT, timeout);
}

fn set_nonblocking(f: &std::fs::File) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(f, FcntlArg::F_GETFL) {
        let _ = fcntl(
            f,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}
