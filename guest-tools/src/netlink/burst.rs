//! `netlink burst`: KCHAN_BURST on several sockets at once, with loss, duplicate and order
//! accounting (also what `kchanctl bench` measures).

use crate::abi;
use crate::error::{Error, Result};
use crate::output;
use std::time::{Duration, Instant};

use super::socket::{wait_any, NlSocket, Recv, POLL_SLICE, RECV_BUF};
use super::wire::{burst_end, parse, parse_error, Message, NLM_F_ACK, NLM_F_REQUEST};

/// Per-socket state of a burst.
struct BurstSock {
    sock: NlSocket,
    seen: Vec<u64>,
    highest: Option<u32>,
    ended: bool,
}

/// Counters of one `netlink burst` run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BurstStats {
    pub sockets: usize,
    pub size: u32,
    pub expected: u64,
    /// Data messages received, duplicates included.
    pub messages: u64,
    pub unique: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
    /// Data messages with a short payload, a wrong size or a sequence number >= count, and
    /// messages of unexpected types.
    pub invalid: u64,
    /// ENOBUFS seen on our sockets.
    pub overruns: u64,
    pub kernel_sent: u64,
    pub kernel_dropped: u64,
    /// Sockets that got their KCHAN_BURST_END.
    pub ended: usize,
    pub seconds: f64,
}

impl BurstStats {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.unique)
    }
    pub fn msgs_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.messages as f64 / self.seconds
        } else {
            0.0
        }
    }
    /// Payload megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.msgs_per_sec() * f64::from(self.size) / 1e6
    }

    /// The reported fields in output order, values already formatted: one list for the line
    /// and the JSON. The JSON adds `extra_json`.
    fn fields(&self) -> [(&'static str, String); 11] {
        [
            ("sockets", self.sockets.to_string()),
            ("messages", self.messages.to_string()),
            ("expected", self.expected.to_string()),
            ("lost", self.lost().to_string()),
            ("kernel_dropped", self.kernel_dropped.to_string()),
            ("seconds", format!("{:.6}", self.seconds)),
            ("msgs_per_sec", format!("{:.1}", self.msgs_per_sec())),
            ("mb_per_sec", format!("{:.3}", self.mb_per_sec())),
            ("duplicate", self.duplicate.to_string()),
            ("out_of_order", self.out_of_order.to_string()),
            ("invalid", self.invalid.to_string()),
        ]
    }

    pub fn line(&self) -> String {
        let kv: Vec<String> = self
            .fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("burst: {}", kv.join(" "))
    }

    pub fn json(&self) -> String {
        let extra = [
            ("kernel_sent", self.kernel_sent.to_string()),
            ("overruns", self.overruns.to_string()),
            ("ended", self.ended.to_string()),
        ];
        let kv: Vec<String> = self
            .fields()
            .iter()
            .chain(extra.iter())
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", kv.join(","))
    }
}

/// Burst parameters.
#[derive(Clone, Copy, Debug)]
pub struct BurstParams {
    pub unit: i32,
    pub sockets: usize,
    pub count: u32,
    pub size: u32,
    pub rcvbuf: usize,
    /// Give up when nothing arrives for this long.
    pub idle: Duration,
}

const OP: &str = "netlink burst";

/// Run a burst. Err for local failures and kernel errors (NLMSG_ERROR), Ok with `ended <
/// sockets` when the idle timeout hit first.
pub fn run_burst(p: &BurstParams) -> Result<BurstStats> {
    let bits = (p.count.min(abi::BURST_MAX_COUNT) as usize).div_ceil(64);
    let mut socks = Vec::with_capacity(p.sockets);
    for _ in 0..p.sockets {
        let sock = NlSocket::open(p.unit)?;
        sock.set_rcvbuf(p.rcvbuf)?;
        socks.push(BurstSock {
            sock,
            seen: vec![0u64; bits],
            highest: None,
            ended: false,
        });
    }
    let mut st = BurstStats {
        sockets: p.sockets,
        size: p.size,
        expected: u64::from(p.count) * p.sockets as u64,
        ..Default::default()
    };
    let req = abi::BurstRequest {
        count: p.count,
        size: p.size,
    }
    .to_bytes();
    let start = Instant::now();
    for s in &mut socks {
        // With NLM_F_ACK: kchan reports EPERM/EINVAL/EBUSY only then; the ACK precedes the data.
        s.sock
            .send(abi::KCHAN_BURST, NLM_F_REQUEST | NLM_F_ACK, &req)?;
    }
    let mut buf = vec![0u8; RECV_BUF];
    let mut last_activity = Instant::now();
    let mut end_time = None;
    while st.ended < p.sockets {
        let idle_left = match p.idle.checked_sub(last_activity.elapsed()) {
            Some(d) if !d.is_zero() => d,
            _ => break,
        };
        let live: Vec<usize> = (0..socks.len()).filter(|&i| !socks[i].ended).collect();
        let refs: Vec<&NlSocket> = live.iter().map(|&i| &socks[i].sock).collect();
        let ready = wait_any(&refs, Some(idle_left.min(POLL_SLICE)))?;
        for r in ready {
            socks[live[r]].drain(&mut buf, p, &mut st, &mut last_activity)?;
        }
        if st.ended == p.sockets {
            end_time = Some(Instant::now());
        }
    }
    st.seconds = end_time
        .unwrap_or(last_activity)
        .duration_since(start)
        .as_secs_f64();
    Ok(st)
}

impl BurstSock {
    /// Receive and count what the socket has queued, a bounded number of datagrams so one
    /// socket cannot starve the others. `last_activity` becomes the time of the last one.
    fn drain(
        &mut self,
        buf: &mut [u8],
        p: &BurstParams,
        st: &mut BurstStats,
        last_activity: &mut Instant,
    ) -> Result<()> {
        for _ in 0..256 {
            let n = match self.sock.recv(buf)? {
                Recv::Data(n) => n,
                Recv::WouldBlock => break,
                Recv::Overrun => {
                    st.overruns += 1;
                    continue;
                }
            };
            *last_activity = Instant::now();
            let Ok(msgs) = parse(&buf[..n]) else {
                st.invalid += 1;
                continue;
            };
            for m in msgs {
                self.count(&m, p, st)?;
            }
            if self.ended {
                break;
            }
        }
        Ok(())
    }

    fn count(&mut self, m: &Message<'_>, p: &BurstParams, st: &mut BurstStats) -> Result<()> {
        match m.header.ty {
            abi::KCHAN_BURST_DATA => self.count_data(m.payload, p, st),
            abi::KCHAN_BURST_END => {
                let e = burst_end(m.payload).map_err(|e| Error::msg(OP, e.to_string()))?;
                st.kernel_sent += u64::from(e.sent);
                st.kernel_dropped += u64::from(e.dropped);
                if !self.ended {
                    self.ended = true;
                    st.ended += 1;
                }
            }
            abi::NLMSG_ERROR => {
                let (err, _) = parse_error(m.payload).map_err(|e| Error::msg(OP, e.to_string()))?;
                if err != 0 {
                    return Err(Error::raw(OP, err.checked_neg().unwrap_or(libc::EINVAL)));
                }
            }
            _ => st.invalid += 1,
        }
        Ok(())
    }

    fn count_data(&mut self, payload: &[u8], p: &BurstParams, st: &mut BurstStats) {
        st.messages += 1;
        let seq = match abi::burst_data_seq(payload) {
            Some(q) if q < p.count && (q as usize) < self.seen.len() * 64 => q,
            _ => {
                st.invalid += 1;
                return;
            }
        };
        if payload.len() != p.size as usize {
            st.invalid += 1;
        }
        let (w, b) = (seq as usize / 64, seq % 64);
        if self.seen[w] & (1 << b) != 0 {
            st.duplicate += 1;
            return;
        }
        self.seen[w] |= 1 << b;
        st.unique += 1;
        match self.highest {
            Some(h) if seq < h => st.out_of_order += 1,
            _ => self.highest = Some(seq),
        }
    }
}

/// `netlink burst`: prints the `burst:` line (or JSON); exit 1 if some socket got no END.
pub(super) fn cmd_burst(p: &BurstParams, json: bool) -> Result<()> {
    let st = run_burst(p)?;
    output::line(&if json { st.json() } else { st.line() })?;
    if st.ended < st.sockets {
        return Err(Error::raw(OP, libc::ETIMEDOUT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_stats_output() {
        let st = BurstStats {
            sockets: 2,
            size: 64,
            expected: 200,
            messages: 190,
            unique: 190,
            kernel_dropped: 10,
            ended: 2,
            seconds: 0.5,
            ..Default::default()
        };
        assert_eq!(
            st.line(),
            "burst: sockets=2 messages=190 expected=200 lost=10 kernel_dropped=10 seconds=0.500000 msgs_per_sec=380.0 mb_per_sec=0.024 duplicate=0 out_of_order=0 invalid=0"
        );
        assert!(st.json().starts_with("{\"sockets\":2,\"messages\":190,"));
        let zero = BurstStats::default();
        assert_eq!(zero.msgs_per_sec(), 0.0);
    }
}
