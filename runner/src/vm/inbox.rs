//! What the agent sent, sorted by step: the frame stream decoded and checked (sequence, checksum,
//! fields), kernel log records cut into windows at the step boundaries the frames mark. Pure
//! state, no I/O: the session feeds it bytes.

use std::collections::{HashMap, VecDeque};

use kspec_protocol::{Decoded, Decoder, Msg, StepResult, Stream};

use super::kmsg::{parse_record, KmsgRecord};

/// Kernel log records of one window, and how many the kernel overwrote before they were read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KmsgBatch {
    pub records: Vec<KmsgRecord>,
    pub lost: u64,
}

impl KmsgBatch {
    pub fn append(&mut self, other: KmsgBatch) {
        self.records.extend(other.records);
        self.lost += other.lost;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub uptime_ms: u64,
    pub cpus: u32,
    pub taint: u64,
}

/// A step's start: the records logged since the previous boundary, and the taint then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub before: KmsgBatch,
    pub taint: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub result: StepResult,
    pub during: KmsgBatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub records: KmsgBatch,
    pub taint: u64,
    pub waited_ms: u64,
}

/// Kernel log records kept for crash reports and artifacts (a few MiB at most).
const HISTORY: usize = 20_000;

#[derive(Debug, Default)]
pub struct Inbox {
    decoder: Decoder,
    seq: Option<u32>,
    last_kmsg: Option<u64>,
    pending: KmsgBatch,
    pub ready: Option<Ready>,
    starts: HashMap<u32, Start>,
    ends: HashMap<u32, End>,
    settled: HashMap<u32, Settled>,
    errors: HashMap<u32, String>,
    outputs: HashMap<u32, [Vec<u8>; 2]>,
    history: VecDeque<KmsgRecord>,
    /// Set once the stream cannot be trusted (a corrupt or missing frame); stays set.
    pub broken: Option<String>,
    /// The first frame's sequence number is accepted as it is (a restored agent's).
    resync: bool,
}

impl Inbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// For a VM restored from a snapshot: the agent goes on numbering frames from where the
    /// saved state left it, so the first frame sets the sequence.
    pub fn resumed() -> Self {
        Inbox {
            resync: true,
            ..Self::default()
        }
    }

    /// Put records taken earlier (a settle of the host's own) back before the ones waiting,
    /// so that the next step's start still reports them.
    pub fn requeue(&mut self, mut earlier: KmsgBatch) {
        earlier.append(std::mem::take(&mut self.pending));
        self.pending = earlier;
    }

    pub fn garbage(&self) -> u64 {
        self.decoder.garbage
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let mut decoded = Vec::new();
        self.decoder.push(bytes, &mut decoded);
        for d in decoded {
            match d {
                Decoded::Corrupt(why) => {
                    self.break_with(format!("corrupt frame from the guest: {why}"))
                }
                Decoded::Frame(f) => {
                    let first = if self.resync { f.seq } else { 0 };
                    let expected = self.seq.map_or(first, |s| s.wrapping_add(1));
                    if f.seq != expected {
                        self.break_with(format!(
                            "guest frame {} arrived where {expected} was due: {} frames lost",
                            f.seq,
                            f.seq.wrapping_sub(expected)
                        ));
                    }
                    self.seq = Some(f.seq);
                    self.handle(f.step, f.msg);
                }
            }
        }
    }

    fn break_with(&mut self, why: String) {
        if self.broken.is_none() {
            self.broken = Some(why);
        }
    }

    fn handle(&mut self, step: u32, msg: Msg) {
        match msg {
            Msg::Ready {
                uptime_ms,
                cpus,
                taint,
            } => {
                self.ready = Some(Ready {
                    uptime_ms,
                    cpus,
                    taint,
                })
            }
            Msg::Kmsg { record } => self.record(&record),
            Msg::Started { taint } => {
                let before = std::mem::take(&mut self.pending);
                self.starts.insert(step, Start { before, taint });
            }
            Msg::Output { stream, data } => {
                let o = self.outputs.entry(step).or_default();
                o[match stream {
                    Stream::Stdout => 0,
                    Stream::Stderr => 1,
                }]
                .extend_from_slice(&data);
            }
            Msg::Finished(result) => {
                let during = std::mem::take(&mut self.pending);
                self.ends.insert(step, End { result, during });
            }
            Msg::Settled { taint, waited_ms } => {
                let records = std::mem::take(&mut self.pending);
                self.settled.insert(
                    step,
                    Settled {
                        records,
                        taint,
                        waited_ms,
                    },
                );
            }
            Msg::Error { message } => {
                self.errors.insert(step, message);
            }
            Msg::Run(_) | Msg::Wait { .. } | Msg::Settle { .. } | Msg::Resume { .. } => {
                self.break_with("the guest sent a host request".into())
            }
        }
    }

    fn record(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let Some(r) = parse_record(&text) else {
            self.break_with(format!("kernel log record does not parse: {text:?}"));
            return;
        };
        if let Some(last) = self.last_kmsg {
            if r.seq <= last {
                return;
            }
            self.pending.lost += r.seq - last - 1;
        }
        self.last_kmsg = Some(r.seq);
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(r.clone());
        self.pending.records.push(r);
    }

    pub fn has_start(&self, step: u32) -> bool {
        self.starts.contains_key(&step)
    }
    pub fn has_end(&self, step: u32) -> bool {
        self.ends.contains_key(&step)
    }
    pub fn has_settled(&self, step: u32) -> bool {
        self.settled.contains_key(&step)
    }
    pub fn take_start(&mut self, step: u32) -> Option<Start> {
        self.starts.remove(&step)
    }
    pub fn take_end(&mut self, step: u32) -> Option<End> {
        self.ends.remove(&step)
    }
    pub fn take_settled(&mut self, step: u32) -> Option<Settled> {
        self.settled.remove(&step)
    }
    pub fn error(&self, step: u32) -> Option<&str> {
        self.errors.get(&step).map(String::as_str)
    }
    /// Everything the step wrote, (stdout, stderr).
    pub fn take_output(&mut self, step: u32) -> (Vec<u8>, Vec<u8>) {
        let [o, e] = self.outputs.remove(&step).unwrap_or_default();
        (o, e)
    }
    pub fn history(&self, n: usize) -> Vec<KmsgRecord> {
        let skip = self.history.len().saturating_sub(n);
        self.history.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kspec_protocol::{encode, ExitStatus, Frame};

    struct Guest(u32);
    impl Guest {
        fn frame(&mut self, step: u32, msg: Msg) -> Vec<u8> {
            self.0 += 1;
            encode(&Frame {
                seq: self.0 - 1,
                step,
                msg,
            })
        }
        fn kmsg(&mut self, seq: u64, text: &str) -> Vec<u8> {
            self.frame(
                0,
                Msg::Kmsg {
                    record: format!("4,{seq},1000,-,caller=T1;{text}").into_bytes(),
                },
            )
        }
    }

    fn finished(exit: i32) -> Msg {
        Msg::Finished(StepResult {
            status: ExitStatus::Code(exit),
            timed_out: false,
            stdout_exceeded: false,
            stderr_exceeded: false,
            stdout_bytes: 3,
            stderr_bytes: 0,
            taint_before: 0,
            taint_after: 0,
            elapsed_us: 10,
            cpu_us: 5,
            memory_peak: 4096,
            survivors: 0,
            cpu_busy_ms: vec![],
        })
    }

    #[test]
    fn records_fall_into_the_window_they_arrived_in() {
        let mut g = Guest(0);
        let mut inbox = Inbox::new();
        let mut bytes = g.kmsg(1, "boot");
        bytes.extend(g.frame(1, Msg::Started { taint: 0 }));
        bytes.extend(b"console noise from a background step\r\n");
        bytes.extend(g.kmsg(2, "during"));
        bytes.extend(g.frame(
            1,
            Msg::Output {
                stream: Stream::Stdout,
                data: b"ok\n".to_vec(),
            },
        ));
        bytes.extend(g.kmsg(5, "during, after a gap"));
        bytes.extend(g.frame(1, finished(0)));
        bytes.extend(g.kmsg(6, "after"));
        // Byte by byte: frames split anywhere still land in order.
        for b in &bytes {
            inbox.push(std::slice::from_ref(b));
        }
        assert_eq!(inbox.broken, None);
        let start = inbox.take_start(1).unwrap();
        assert_eq!(start.before.records[0].text, "boot");
        let end = inbox.take_end(1).unwrap();
        let texts: Vec<_> = end.during.records.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["during", "during, after a gap"]);
        assert_eq!(end.during.lost, 2);
        assert_eq!(inbox.take_output(1).0, b"ok\n");
        assert!(inbox.garbage() > 20);
    }

    #[test]
    fn a_corrupted_result_frame_breaks_the_stream_and_never_ends_the_step() {
        let mut g = Guest(0);
        let mut inbox = Inbox::new();
        inbox.push(&g.frame(1, Msg::Started { taint: 0 }));
        let mut f = g.frame(1, finished(0));
        let n = f.len();
        f[n / 2] ^= 0x40;
        inbox.push(&f);
        assert!(inbox.take_end(1).is_none());
        assert!(inbox.broken.as_deref().unwrap().contains("corrupt frame"));
    }

    #[test]
    fn a_missing_frame_is_seen_in_the_sequence() {
        let mut g = Guest(0);
        let mut inbox = Inbox::new();
        inbox.push(&g.frame(1, Msg::Started { taint: 0 }));
        let _lost = g.kmsg(1, "never arrives");
        inbox.push(&g.frame(1, finished(0)));
        assert!(inbox.broken.as_deref().unwrap().contains("1 frames lost"));
    }
}
