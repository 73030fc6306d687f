//! Fuzzing the netlink channel: malformed datagrams, echoes, bursts, registrations and small
//! receive buffers on a few sockets per worker; every reply is checked (replies.rs).

use crate::abi;
use crate::error::{Error, Result};
use crate::netlink::{
    self, nlmsg_align, NlMsgHdr, NlSocket, Recv, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_ECHO,
    NLM_F_MULTI, NLM_F_REQUEST,
};
use std::os::fd::AsRawFd;

use super::arena::{Arena, Ptr};
use super::replies::{expect, Pending};
use super::rng::Rng;
use super::{errno, internal_errno, violation, Channel, Config};

/// Sockets per worker, used in turn by the operations.
pub const NL_SOCKETS: usize = 8;

/// Largest datagram generated (a 64 KiB payload plus headers); its error ack still fits the
/// receive buffer.
pub const NL_MAX_DATAGRAM: usize = 72 * 1024;

/// Largest valid burst the fuzzer asks for, so a run stays short.
pub const FUZZ_BURST_MAX_COUNT: u32 = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NlOp {
    /// One datagram of fuzzed messages (wrong lengths, random types and flags, several per
    /// datagram, truncated, oversized) sent from `ptr` (the arena start, or cut short/invalid).
    Send {
        sock: usize,
        bytes: Vec<u8>,
        ptr: Ptr,
    },
    /// A well-formed KCHAN_ECHO, or a NETLINK_ECHO (type 0 with a payload).
    Echo {
        sock: usize,
        seq: u32,
        payload: Vec<u8>,
        netlink_echo: bool,
        ack: bool,
    },
    /// A KCHAN_BURST (small, or with out-of-bounds count/size).
    Burst {
        sock: usize,
        seq: u32,
        count: u32,
        size: u32,
        ack: bool,
    },
    /// ICMP_REPORT_REGISTER (no payload): register for ICMP reports.
    Register { sock: usize, seq: u32, ack: bool },
    /// ICMP_REPORT_UNREGISTER.
    Unregister { sock: usize, seq: u32, ack: bool },
    /// Close the socket (cancels its bursts and registration) and open a new one.
    Reopen { sock: usize },
    /// SO_RCVBUF(FORCE): small buffers make the kernel drop replies.
    Rcvbuf { sock: usize, bytes: u32 },
    /// Receive whatever is queued on every socket.
    Drain,
}

impl NlOp {
    pub(super) fn sock(&self) -> Option<usize> {
        match *self {
            NlOp::Send { sock, .. }
            | NlOp::Echo { sock, .. }
            | NlOp::Burst { sock, .. }
            | NlOp::Register { sock, .. }
            | NlOp::Unregister { sock, .. }
            | NlOp::Reopen { sock }
            | NlOp::Rcvbuf { sock, .. } => Some(sock),
            NlOp::Drain => None,
        }
    }

    /// The datagram this operation sends, and from where.
    pub fn datagram(&self) -> Option<(Vec<u8>, Ptr)> {
        let ack = |a: bool| if a { NLM_F_ACK } else { 0 };
        let msg = |ty, flags, seq, payload: &[u8]| {
            netlink::encode(ty, NLM_F_REQUEST | flags, seq, 0, payload).unwrap_or_default()
        };
        let bytes = match *self {
            NlOp::Send { ref bytes, ptr, .. } => return Some((bytes.clone(), ptr)),
            NlOp::Echo {
                seq,
                ref payload,
                netlink_echo,
                ack: a,
                ..
            } => {
                let ty = if netlink_echo {
                    abi::NETLINK_ECHO
                } else {
                    abi::KCHAN_ECHO
                };
                msg(ty, ack(a), seq, payload)
            }
            NlOp::Burst {
                seq,
                count,
                size,
                ack: a,
                ..
            } => msg(
                abi::KCHAN_BURST,
                ack(a),
                seq,
                &abi::BurstRequest { count, size }.to_bytes(),
            ),
            NlOp::Register { seq, ack: a, .. } => msg(abi::ICMP_REPORT_REGISTER, ack(a), seq, &[]),
            NlOp::Unregister { seq, ack: a, .. } => {
                msg(abi::ICMP_REPORT_UNREGISTER, ack(a), seq, &[])
            }
            NlOp::Reopen { .. } | NlOp::Rcvbuf { .. } | NlOp::Drain => return None,
        };
        Some((bytes, Ptr::Start))
    }
}

/// (count, size) of a burst request: mostly small and valid, sometimes out of bounds.
fn gen_burst(rng: &mut Rng) -> (u32, u32) {
    match rng.below(100) {
        0..=79 => (
            rng.range(0, u64::from(FUZZ_BURST_MAX_COUNT)) as u32,
            rng.range(4, 2048) as u32,
        ),
        80..=84 => (rng.range(1, 2) as u32, rng.range(2049, 65536) as u32),
        85..=89 => (
            rng.range(u64::from(abi::BURST_MAX_COUNT) + 1, u64::from(u32::MAX)) as u32,
            64,
        ),
        90..=94 => (4, rng.below(4) as u32),
        _ => (
            4,
            rng.range(u64::from(abi::BURST_MAX_SIZE) + 1, u64::from(u32::MAX)) as u32,
        ),
    }
}

fn gen_payload_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=24 => 0,
        25..=59 => rng.range(1, 32) as usize,
        60..=84 => rng.range(33, 512) as usize,
        85..=96 => rng.range(513, abi::NETLINK_MAX_PAYLOAD as u64) as usize,
        _ => rng.range(
            abi::NETLINK_MAX_PAYLOAD as u64 + 1,
            abi::NETLINK_MAX_PAYLOAD as u64 + 64,
        ) as usize,
    }
}

fn gen_flags(rng: &mut Rng) -> u16 {
    if rng.one_in(10) {
        return rng.u32() as u16;
    }
    let mut f = 0;
    for (p, bit) in [
        (50, NLM_F_REQUEST),
        (40, NLM_F_ACK),
        (10, NLM_F_DUMP),
        (5, NLM_F_MULTI),
        (5, NLM_F_ECHO),
    ] {
        if rng.percent(p) {
            f |= bit;
        }
    }
    f
}

/// One message (header, payload, usually its padding) appended to `out`.
fn gen_message(rng: &mut Rng, out: &mut Vec<u8>) {
    let ty = match rng.below(100) {
        0..=49 => rng.below(0x21) as u16,
        50..=79 => rng.pick(&[
            abi::ICMP_REPORT_REGISTER,
            abi::NETLINK_ECHO,
            abi::ICMP_REPORT_UNREGISTER,
            abi::KCHAN_ECHO,
            abi::KCHAN_ECHO,
            abi::KCHAN_BURST,
        ]),
        _ => rng.u32() as u16,
    };
    let flags = gen_flags(rng);
    let seq = rng.u32();
    let pid = match rng.below(4) {
        0 => 0,
        1 => u32::MAX,
        _ => rng.u32(),
    };
    // A burst request is always bounded (see gen_burst): never a 10-million message burst.
    let payload = if ty == abi::KCHAN_BURST && rng.percent(80) {
        let (count, size) = gen_burst(rng);
        abi::BurstRequest { count, size }.to_bytes().to_vec()
    } else {
        let n = gen_payload_len(rng);
        rng.bytes(n)
    };
    let correct = (NLMSG_HDRLEN + payload.len()) as u32;
    let len = match rng.below(100) {
        0..=69 => correct,
        70..=73 => 0,
        74..=77 => rng.range(1, 15) as u32,
        78..=81 => NLMSG_HDRLEN as u32,
        82..=86 => correct + rng.range(1, 64) as u32,
        87..=91 => correct.saturating_sub(rng.range(1, 8) as u32).max(16),
        92..=95 => u32::MAX,
        _ => rng.u32(),
    };
    out.extend_from_slice(
        &NlMsgHdr {
            len,
            ty,
            flags,
            seq,
            pid,
        }
        .to_bytes(),
    );
    out.extend_from_slice(&payload);
    if rng.percent(85) {
        out.resize(nlmsg_align(out.len()), 0);
    }
}

/// A fuzzed datagram, at most NL_MAX_DATAGRAM bytes.
pub fn gen_datagram(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        // Not even a header.
        0..=7 => {
            let n = rng.below(16) as usize;
            if rng.percent(50) {
                let mut v = Vec::new();
                gen_message(rng, &mut v);
                v.truncate(n);
                v
            } else {
                rng.bytes(n)
            }
        }
        // One oversized message (the module takes at most NETLINK_MAX_PAYLOAD).
        8..=11 => {
            let n = rng.range(
                abi::NETLINK_MAX_PAYLOAD as u64 + 1,
                abi::BURST_MAX_SIZE as u64,
            ) as usize;
            let ty = rng.pick(&[
                abi::NETLINK_ECHO,
                abi::KCHAN_ECHO,
                abi::ICMP_REPORT_UNREGISTER,
                0x20,
            ]);
            let flags = gen_flags(rng);
            let seq = rng.u32();
            let payload = rng.bytes(n);
            let mut v = netlink::encode(ty, flags, seq, 0, &payload).unwrap_or_default();
            if rng.percent(30) {
                let wrong = rng.u32();
                if let Some(h) = NlMsgHdr::from_prefix(&v) {
                    v[..NLMSG_HDRLEN].copy_from_slice(&NlMsgHdr { len: wrong, ..h }.to_bytes());
                }
            }
            v
        }
        // Several messages, sometimes cut anywhere.
        _ => {
            let k = match rng.below(10) {
                0..=5 => 1,
                6..=8 => rng.range(2, 4),
                _ => rng.range(5, 16),
            };
            let mut v = Vec::new();
            for _ in 0..k {
                gen_message(rng, &mut v);
            }
            if rng.one_in(10) {
                let cut = rng.below(v.len() as u64 + 1) as usize;
                v.truncate(cut);
            }
            v.truncate(NL_MAX_DATAGRAM);
            v
        }
    }
}

pub fn gen_netlink(rng: &mut Rng) -> NlOp {
    let sock = rng.below(NL_SOCKETS as u64) as usize;
    match rng.below(100) {
        0..=61 => {
            let bytes = gen_datagram(rng);
            let ptr = match rng.below(100) {
                0..=93 => Ptr::Start,
                94..=96 => Ptr::Tail(bytes.len()),
                97 => Ptr::Tail(rng.below(bytes.len() as u64) as usize),
                98 => Ptr::Null,
                _ => Ptr::Guard,
            };
            NlOp::Send { sock, bytes, ptr }
        }
        62..=71 => {
            let netlink_echo = rng.percent(20);
            let n = match rng.below(100) {
                0..=89 => rng.range(u64::from(netlink_echo), 512),
                90..=97 => abi::NETLINK_MAX_PAYLOAD as u64,
                _ => abi::NETLINK_MAX_PAYLOAD as u64 + 1,
            } as usize;
            NlOp::Echo {
                sock,
                seq: rng.u32(),
                payload: rng.bytes(n),
                netlink_echo,
                ack: rng.percent(70),
            }
        }
        72..=76 => {
            let (count, size) = gen_burst(rng);
            NlOp::Burst {
                sock,
                seq: rng.u32(),
                count,
                size,
                ack: rng.percent(70),
            }
        }
        77..=78 => NlOp::Register {
            sock,
            seq: rng.u32(),
            ack: rng.percent(70),
        },
        79..=81 => NlOp::Unregister {
            sock,
            seq: rng.u32(),
            ack: rng.percent(70),
        },
        82..=85 => NlOp::Reopen { sock },
        86..=87 => NlOp::Rcvbuf {
            sock,
            bytes: rng.pick(&[0, 256, 1024, 4096, 16384, 65536, 1 << 20]),
        },
        _ => NlOp::Drain,
    }
}

struct NlSlot {
    sock: Option<NlSocket>,
    pending: Pending,
}

pub(super) struct NetlinkFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    slots: Vec<NlSlot>,
    buf: Vec<u8>,
}

impl<'a> NetlinkFuzzer<'a> {
    pub(super) fn new(cfg: &'a Config) -> Result<Self> {
        Ok(NetlinkFuzzer {
            cfg,
            arena: Arena::new()?,
            slots: (0..NL_SOCKETS)
                .map(|_| NlSlot {
                    sock: None,
                    pending: Pending::default(),
                })
                .collect(),
            buf: vec![0u8; netlink::RECV_BUF],
        })
    }

    /// Slot `i`'s socket, opened if needed (false: the unit has no kernel socket right now).
    fn ensure(&mut self, i: usize) -> bool {
        let slot = &mut self.slots[i];
        if slot.sock.is_none() {
            if let Ok(s) = NlSocket::open(self.cfg.unit) {
                slot.sock = Some(s);
                slot.pending = Pending::default();
            }
        }
        slot.sock.is_some()
    }

    pub(super) fn step(&mut self, op: &NlOp) -> Result<bool> {
        let ok = match op {
            NlOp::Drain => {
                let mut ok = true;
                for i in 0..NL_SOCKETS {
                    ok &= self.drain(i)?;
                }
                return Ok(ok);
            }
            NlOp::Reopen { sock } => {
                self.slots[*sock].sock = None;
                self.ensure(*sock)
            }
            NlOp::Rcvbuf { sock, bytes } => {
                self.ensure(*sock)
                    && self.slots[*sock]
                        .sock
                        .as_ref()
                        .is_some_and(|s| s.set_rcvbuf(*bytes as usize).is_ok())
            }
            _ => {
                let (Some(i), Some((bytes, ptr))) = (op.sock(), op.datagram()) else {
                    return Ok(false);
                };
                self.ensure(i) && self.send(i, &bytes, ptr)?
            }
        };
        if let Some(i) = op.sock() {
            self.drain(i)?;
        }
        Ok(ok)
    }

    /// sendto(kernel) of `bytes` placed at `ptr`; expectations recorded when it went through.
    fn send(&mut self, i: usize, bytes: &[u8], ptr: Ptr) -> Result<bool> {
        let Some(fd) = self.slots[i].sock.as_ref().map(|s| s.as_raw_fd()) else {
            return Ok(false);
        };
        self.arena.put(ptr, bytes);
        let (addr, _) = self.arena.resolve(ptr);
        // SAFETY: sockaddr_nl is plain data; all-zero is nl_pid 0 (the kernel), no groups.
        let mut dst: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        dst.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the kernel only reads `bytes.len()` bytes from addr (arena or invalid on
        // purpose) and the address structure.
        let r = unsafe {
            libc::sendto(
                fd,
                addr as *const libc::c_void,
                bytes.len(),
                libc::MSG_DONTWAIT,
                (&dst as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = errno();
            if internal_errno(e) {
                return Err(Error::raw("sendto", e));
            }
            return Ok(false);
        }
        // The module handled the whole datagram during sendto (it was copied in full, or
        // sendto would have failed with EFAULT).
        self.slots[i].pending.add(expect(bytes));
        Ok(true)
    }

    /// Receive (without blocking) what slot `i` has queued, checking every datagram.
    fn drain(&mut self, i: usize) -> Result<bool> {
        let slot = &mut self.slots[i];
        let Some(sock) = slot.sock.as_ref() else {
            return Ok(true);
        };
        for _ in 0..256 {
            match sock.recv(&mut self.buf) {
                Ok(Recv::Data(n)) => {
                    if self.cfg.strict {
                        slot.pending
                            .check(&self.buf[..n])
                            .map_err(|w| violation(Channel::Netlink, w))?;
                    }
                }
                Ok(Recv::WouldBlock) => return Ok(true),
                // Replies were dropped for a full receive queue (expected with small buffers):
                // their expectations stay pending, nothing unexpected can come of it.
                Ok(Recv::Overrun) => {}
                Err(Error::Sys { errno, .. }) if !internal_errno(errno) => return Ok(false),
                Err(e) => {
                    return Err(match e {
                        Error::Msg { msg, .. } => violation(Channel::Netlink, msg),
                        e => e,
                    })
                }
            }
        }
        Ok(true)
    }
}
