//! The messages and their payloads: fixed little-endian fields, byte strings with a u32 length.
//! Decoding is strict: every field present, no bytes left over, flags and enums in range.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    // host -> guest
    /// Start a step (the frame's step id names it from now on).
    Run(RunRequest),
    /// Wait for background step `target` to end (after sending `signal`, 0 = none), at most
    /// `timeout_ms`; answered by `Finished` for the frame's step id.
    Wait {
        target: u32,
        signal: u8,
        timeout_ms: u64,
    },
    /// Wait until the kernel log has been quiet for `quiet_ms` (at most `max_ms`).
    Settle {
        quiet_ms: u32,
        max_ms: u32,
    },
    /// The VM was restored from a snapshot: mix `entropy` into the kernel's pool and reseed its
    /// CRNG, set the wall clock to `wall_clock_ns` (Unix time), then answer with `Ready`.
    Resume {
        entropy: Vec<u8>,
        wall_clock_ns: u64,
    },

    // guest -> host
    Ready {
        uptime_ms: u64,
        cpus: u32,
        taint: u64,
    },
    /// The step's process runs; kernel log records sent before this belong to earlier steps.
    Started {
        taint: u64,
    },
    Output {
        stream: Stream,
        data: Vec<u8>,
    },
    /// One /dev/kmsg record as the kernel wrote it (`pri,seq,ts,flags;text`).
    Kmsg {
        record: Vec<u8>,
    },
    Finished(StepResult),
    Settled {
        taint: u64,
        waited_ms: u64,
    },
    /// The agent could not do what the frame's step asked.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub background: bool,
    pub timeout_ms: u64,
    pub stdout_limit: u64,
    pub stderr_limit: u64,
    pub script: Vec<u8>,
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The shell's convention: 128 + signal for a killed process.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub status: ExitStatus,
    pub timed_out: bool,
    pub stdout_exceeded: bool,
    pub stderr_exceeded: bool,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub taint_before: u64,
    pub taint_after: u64,
    pub elapsed_us: u64,
    /// CPU time of the step's cgroup (user + system).
    pub cpu_us: u64,
    /// memory.peak of the step's cgroup, bytes.
    pub memory_peak: u64,
    /// Processes still in the step's cgroup when its command ended, killed by the agent.
    pub survivors: u32,
    /// Busy time of each CPU while the step ran (whole system, kernel threads included), ms.
    pub cpu_busy_ms: Vec<u64>,
}

const T_RUN: u8 = 1;
const T_WAIT: u8 = 2;
const T_SETTLE: u8 = 3;
const T_RESUME: u8 = 4;
const T_READY: u8 = 0x81;
const T_STARTED: u8 = 0x82;
const T_OUTPUT: u8 = 0x83;
const T_KMSG: u8 = 0x84;
const T_FINISHED: u8 = 0x85;
const T_SETTLED: u8 = 0x86;
const T_ERROR: u8 = 0x87;

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("payload ends inside a field".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(format!("flag byte {v} is neither 0 nor 1")),
        }
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the last field", self.0.len()))
        }
    }
}

impl Msg {
    pub(crate) fn encode(&self) -> (u8, Vec<u8>) {
        let mut w = W::default();
        let ty = match self {
            Msg::Run(r) => {
                w.u8(r.background as u8)
                    .u64(r.timeout_ms)
                    .u64(r.stdout_limit)
                    .u64(r.stderr_limit)
                    .bytes(&r.script)
                    .u32(r.env.len() as u32);
                for (k, v) in &r.env {
                    w.bytes(k).bytes(v);
                }
                T_RUN
            }
            Msg::Wait {
                target,
                signal,
                timeout_ms,
            } => {
                w.u32(*target).u8(*signal).u64(*timeout_ms);
                T_WAIT
            }
            Msg::Settle { quiet_ms, max_ms } => {
                w.u32(*quiet_ms).u32(*max_ms);
                T_SETTLE
            }
            Msg::Resume {
                entropy,
                wall_clock_ns,
            } => {
                w.bytes(entropy).u64(*wall_clock_ns);
                T_RESUME
            }
            Msg::Ready {
                uptime_ms,
                cpus,
                taint,
            } => {
                w.u64(*uptime_ms).u32(*cpus).u64(*taint);
                T_READY
            }
            Msg::Started { taint } => {
                w.u64(*taint);
                T_STARTED
            }
            Msg::Output { stream, data } => {
                w.u8(match stream {
                    Stream::Stdout => 1,
                    Stream::Stderr => 2,
                })
                .bytes(data);
                T_OUTPUT
            }
            Msg::Kmsg { record } => {
                w.bytes(record);
                T_KMSG
            }
            Msg::Finished(r) => {
                let (kind, value) = match r.status {
                    ExitStatus::Code(c) => (1, c),
                    ExitStatus::Signal(s) => (2, s),
                };
                w.u8(kind)
                    .u32(value as u32)
                    .u8(r.timed_out as u8)
                    .u8(r.stdout_exceeded as u8)
                    .u8(r.stderr_exceeded as u8)
                    .u64(r.stdout_bytes)
                    .u64(r.stderr_bytes)
                    .u64(r.taint_before)
                    .u64(r.taint_after)
                    .u64(r.elapsed_us)
                    .u64(r.cpu_us)
                    .u64(r.memory_peak)
                    .u32(r.survivors)
                    .u32(r.cpu_busy_ms.len() as u32);
                for b in &r.cpu_busy_ms {
                    w.u64(*b);
                }
                T_FINISHED
            }
            Msg::Settled { taint, waited_ms } => {
                w.u64(*taint).u64(*waited_ms);
                T_SETTLED
            }
            Msg::Error { message } => {
                w.bytes(message.as_bytes());
                T_ERROR
            }
        };
        (ty, w.0)
    }

    pub(crate) fn decode(ty: u8, payload: &[u8]) -> Result<Msg, String> {
        let mut r = R(payload);
        let msg = match ty {
            T_RUN => {
                let background = r.bool()?;
                let timeout_ms = r.u64()?;
                let stdout_limit = r.u64()?;
                let stderr_limit = r.u64()?;
                let script = r.bytes()?;
                let n = r.u32()?;
                let mut env = Vec::new();
                for _ in 0..n {
                    env.push((r.bytes()?, r.bytes()?));
                }
                Msg::Run(RunRequest {
                    background,
                    timeout_ms,
                    stdout_limit,
                    stderr_limit,
                    script,
                    env,
                })
            }
            T_WAIT => Msg::Wait {
                target: r.u32()?,
                signal: r.u8()?,
                timeout_ms: r.u64()?,
            },
            T_SETTLE => Msg::Settle {
                quiet_ms: r.u32()?,
                max_ms: r.u32()?,
            },
            T_RESUME => Msg::Resume {
                entropy: r.bytes()?,
                wall_clock_ns: r.u64()?,
            },
            T_READY => Msg::Ready {
                uptime_ms: r.u64()?,
                cpus: r.u32()?,
                taint: r.u64()?,
            },
            T_STARTED => Msg::Started { taint: r.u64()? },
            T_OUTPUT => {
                let stream = match r.u8()? {
                    1 => Stream::Stdout,
                    2 => Stream::Stderr,
                    v => return Err(format!("unknown output stream {v}")),
                };
                Msg::Output {
                    stream,
                    data: r.bytes()?,
                }
            }
            T_KMSG => Msg::Kmsg { record: r.bytes()? },
            T_FINISHED => {
                let status = match (r.u8()?, r.i32()?) {
                    (1, c) => ExitStatus::Code(c),
                    (2, s) if (1..=64).contains(&s) => ExitStatus::Signal(s),
                    (k, v) => return Err(format!("invalid exit status (kind {k}, value {v})")),
                };
                Msg::Finished(StepResult {
                    status,
                    timed_out: r.bool()?,
                    stdout_exceeded: r.bool()?,
                    stderr_exceeded: r.bool()?,
                    stdout_bytes: r.u64()?,
                    stderr_bytes: r.u64()?,
                    taint_before: r.u64()?,
                    taint_after: r.u64()?,
                    elapsed_us: r.u64()?,
                    cpu_us: r.u64()?,
                    memory_peak: r.u64()?,
                    survivors: r.u32()?,
                    cpu_busy_ms: {
                        let n = r.u32()?;
                        if n > 4096 {
                            return Err(format!("{n} CPUs in a result"));
                        }
                        (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?
                    },
                })
            }
            T_SETTLED => Msg::Settled {
                taint: r.u64()?,
                waited_ms: r.u64()?,
            },
            T_ERROR => Msg::Error {
                message: String::from_utf8_lossy(&r.bytes()?).into_owned(),
            },
            t => return Err(format!("unknown frame type {t:#x}")),
        };
        r.end()?;
        Ok(msg)
    }
}
