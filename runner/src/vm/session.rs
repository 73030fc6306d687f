//! A running test VM: QEMU in a pty (rexpect), the step protocol on its console, the kernel log
//! from ttyS1. QEMU dies with the `Vm` (and with the runner, through the parent-death signal).

use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rexpect::process::PtyProcess;

use super::kmsg::{KmsgLog, KmsgRecord};
use super::protocol::{self, Reply};
use super::qemu::{self, VmConfig};

/// What a step produced.
#[derive(Debug, Clone)]
pub struct StepOutput {
    pub reply: Reply,
    pub kmsg: Vec<KmsgRecord>,
    pub elapsed: Duration,
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
            VmError::Session(m) => write!(f, "VM session error: {m}"),
        }
    }
}

impl VmError {
    pub fn console_tail(&self) -> &[String] {
        match self {
            VmError::Boot { console_tail, .. }
            | VmError::Crashed { console_tail, .. }
            | VmError::Hung { console_tail, .. } => console_tail,
            VmError::Session(_) => &[],
        }
    }
}

/// Console lines kept for crash reports.
const TAIL_LINES: usize = 40;
/// Extra time a foreground step gets beyond its own timeout before the VM is declared hung
/// (the guest enforces the timeout itself; this only catches a dead guest).
const GRACE: Duration = Duration::from_secs(15);

pub struct Vm {
    process: PtyProcess,
    writer: std::fs::File,
    rx: Receiver<Vec<u8>>,
    eof: bool,
    buf: Vec<u8>,
    history: Vec<u8>,
    kmsg: KmsgLog,
    nonce_prefix: String,
    counter: u64,
    _dir: tempfile::TempDir,
    /// Host time from spawning QEMU to the agent's ready line.
    pub boot_time: Duration,
    /// Guest uptime when the agent became ready (seconds).
    pub guest_ready_uptime: f64,
}

impl Vm {
    /// Boot `cfg.initramfs` with `extra_initramfs` (an archive of spec files) appended.
    pub fn boot(cfg: &VmConfig, extra_initramfs: Option<&[u8]>) -> Result<Vm, VmError> {
        let boot_err = |m: String| VmError::Boot {
            message: m,
            console_tail: vec![],
        };
        let dir = tempfile::Builder::new()
            .prefix("kspec-vm-")
            .tempdir()
            .map_err(|e| boot_err(format!("tempdir: {e}")))?;
        let mut cfg = cfg.clone();
        if let Some(extra) = extra_initramfs {
            // The kernel unpacks concatenated cpio archives in order.
            let mut data = std::fs::read(&cfg.initramfs)
                .map_err(|e| boot_err(format!("{}: {e}", cfg.initramfs.display())))?;
            data.extend_from_slice(extra);
            let p = dir.path().join("initramfs.cpio");
            std::fs::write(&p, data).map_err(|e| boot_err(format!("{}: {e}", p.display())))?;
            cfg.initramfs = p;
        }
        let kmsg_path = dir.path().join("kmsg");
        std::fs::write(&kmsg_path, b"")
            .map_err(|e| boot_err(format!("{}: {e}", kmsg_path.display())))?;
        let started = Instant::now();
        let process = PtyProcess::new(qemu::agent_command(&cfg, &kmsg_path))
            .map_err(|e| boot_err(format!("cannot start qemu-system-x86_64: {e}")))?;
        let file = process
            .get_file_handle()
            .map_err(|e| boot_err(format!("pty: {e}")))?;
        let mut reader = file
            .try_clone()
            .map_err(|e| boot_err(format!("pty: {e}")))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("kspec-console".into())
            .spawn(move || {
                let mut chunk = [0u8; 8192];
                // EIO when QEMU closes the pty: the channel closing tells the session.
                while let Ok(n) = reader.read(&mut chunk) {
                    if n == 0 || tx.send(chunk[..n].to_vec()).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| boot_err(format!("thread: {e}")))?;
        let mut vm = Vm {
            process,
            writer: file,
            rx,
            eof: false,
            buf: Vec::new(),
            history: Vec::new(),
            kmsg: KmsgLog::new(kmsg_path),
            nonce_prefix: nonce_prefix(),
            counter: 0,
            _dir: dir,
            boot_time: Duration::ZERO,
            guest_ready_uptime: 0.0,
        };
        let line = match vm.read_through(b"KSPEC-READY", b"\n", Instant::now() + cfg.boot_timeout) {
            Ok(l) => l,
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
        };
        vm.boot_time = started.elapsed();
        vm.guest_ready_uptime = String::from_utf8_lossy(&line)
            .split_whitespace()
            .nth(1)
            .and_then(|u| u.parse().ok())
            .unwrap_or(0.0);
        vm.send(protocol::GUEST_FUNCTIONS)?;
        Ok(vm)
    }

    fn send(&mut self, text: &str) -> Result<(), VmError> {
        self.writer
            .write_all(text.as_bytes())
            .and_then(|_| self.writer.flush())
            .map_err(|e| VmError::Session(format!("writing to the console: {e}")))
    }

    /// The script as `__kc` lines, then the call that runs it.
    fn send_command(&mut self, script: &str, call: &str) -> Result<(), VmError> {
        let mut text = protocol::encode_command(script).join("\n");
        text.push('\n');
        text.push_str(call);
        text.push('\n');
        self.send(&text)
    }

    fn next_nonce(&mut self) -> String {
        self.counter += 1;
        format!("{}{}", self.nonce_prefix, self.counter)
    }

    /// Read the console until `start` followed by `end` has arrived; returns the bytes from the
    /// start of `start` through `end`, dropping what came before.
    fn read_through(
        &mut self,
        start: &[u8],
        end: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, VmError> {
        let begun = Instant::now();
        loop {
            if let Some(s) = find(&self.buf, start) {
                if let Some(e) = find(&self.buf[s + start.len()..], end) {
                    let stop = s + start.len() + e + end.len();
                    let out = self.buf[s..stop].to_vec();
                    self.buf.drain(..stop);
                    return Ok(out);
                }
            }
            if self.eof {
                return Err(self.crashed());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(VmError::Hung {
                    waited: now - begun,
                    console_tail: self.console_tail(),
                });
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(chunk) => {
                    self.history.extend_from_slice(&chunk);
                    if self.history.len() > 64 * 1024 {
                        self.history.drain(..self.history.len() - 32 * 1024);
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
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

    /// The last console lines, CRLF-normalised, with the guest's kernel log tail appended.
    pub fn console_tail(&mut self) -> Vec<String> {
        let text =
            String::from_utf8_lossy(&protocol::normalise_newlines(&self.history)).into_owned();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('\x1e') && !l.is_empty())
            .map(|l| {
                l.chars()
                    .filter(|c| !c.is_control() || *c == '\t')
                    .collect()
            })
            .collect();
        let start = lines.len().saturating_sub(TAIL_LINES);
        lines.drain(..start);
        lines
    }

    /// The guest kernel log's last lines (crash reports).
    pub fn kmsg_tail(&mut self, n: usize) -> Vec<KmsgRecord> {
        self.kmsg.tail(n)
    }

    fn exchange(
        &mut self,
        script: &str,
        call: String,
        nonce: &str,
        begin: &str,
        bound: Duration,
    ) -> Result<StepOutput, VmError> {
        let started = Instant::now();
        self.send_command(script, &call)?;
        let marker = protocol::result_marker(nonce);
        let data = self.read_through(
            format!("\x1eKS:{nonce}:").as_bytes(),
            marker.as_bytes(),
            started + bound + GRACE,
        )?;
        let rest = self.read_through(b"", b"\n", Instant::now() + GRACE)?;
        let mut all = data;
        all.extend_from_slice(&rest);
        let reply = protocol::parse_reply(&all, nonce).map_err(VmError::Session)?;
        let kmsg = self
            .kmsg
            .between(begin, nonce, Duration::from_secs(5))
            .ok_or_else(|| {
                VmError::Session("the step's kernel log end marker never arrived on ttyS1".into())
            })?;
        Ok(StepOutput {
            reply,
            kmsg,
            elapsed: started.elapsed(),
        })
    }

    /// Run `script` with /bin/sh in the foreground; the guest kills it after `timeout`.
    pub fn run(&mut self, script: &str, timeout: Duration) -> Result<StepOutput, VmError> {
        let nonce = self.next_nonce();
        let call = format!("__kx {nonce} {:.3}", timeout.as_secs_f64());
        let mut out = self.exchange(script, call, &nonce.clone(), &nonce, timeout)?;
        // `timeout -s KILL` gives 137; a program killed earlier by someone else is not a timeout.
        out.reply.timed_out = out.reply.exit == 137 && out.elapsed >= timeout;
        Ok(out)
    }

    /// Start `script` in the background as `name`. Returns the nonce that starts its log range.
    pub fn start_background(&mut self, name: &str, script: &str) -> Result<String, VmError> {
        let nonce = self.next_nonce();
        let call = format!("__kb {nonce} {}", shell_word(name));
        let started = Instant::now();
        self.send_command(script, &call)?;
        let marker = protocol::result_marker(&nonce);
        self.read_through(marker.as_bytes(), b"\n", started + GRACE)?;
        Ok(nonce)
    }

    /// Wait for background `name` (after sending `signal`, e.g. "TERM", if given); kernel lines
    /// since `begin` (its start nonce).
    pub fn finish_background(
        &mut self,
        name: &str,
        begin: &str,
        signal: Option<&str>,
        timeout: Duration,
    ) -> Result<StepOutput, VmError> {
        let nonce = self.next_nonce();
        let call = format!(
            "__kw {nonce} {} {} {}",
            shell_word(name),
            timeout.as_millis(),
            signal.unwrap_or("-")
        );
        self.exchange("", call, &nonce.clone(), begin, timeout)
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Background names are validated by the spec layer; quote anyway.
fn shell_word(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

fn nonce_prefix() -> String {
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    format!("{:08x}-", u32::from_le_bytes(b))
}
