//! The netlink channel (seeds 001/002 "imp2", seed 004 echo, kchan's echo and burst): message
//! encoding/decoding (pure, unit-tested) and the `kchanctl netlink ...` commands.
//!
//! Sockets are AF_NETLINK SOCK_RAW on the kchan unit, bound with nl_pid 0 so the kernel assigns
//! the port, and send to nl_pid 0 (the kernel). Outgoing headers carry our port in nlmsg_pid,
//! as the seed programs did with getpid().

use crate::abi;
use crate::args::{
    parse_buflen, parse_hex_arg, parse_secs, parse_sockets, parse_u32, parse_u64, HexBytes, MsgArg,
};
use crate::error::{errno_name, Error, Result};
use crate::escape::{escape, until_nul};
use crate::output;
use clap::{Args, Subcommand};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self as nixsock, NetlinkAddr};
use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// ---- the subcommand ---------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct NetlinkCmd {
    #[command(subcommand)]
    pub op: NetlinkOp,
}

#[derive(Subcommand, Debug)]
pub enum NetlinkOp {
    /// Seed 004 echo: type 0 (IMP2_U_PID), flags 0, payload MSG + NUL; --kchan: KCHAN_ECHO
    Echo {
        #[command(flatten)]
        msg: MsgArg,
        /// Send KCHAN_ECHO (payload MSG, no NUL, NLM_F_ACK) and check the reply's type, seq and payload
        #[arg(long)]
        kchan: bool,
        /// Set NLM_F_ACK (kchan reports errors such as EMSGSIZE only then; default: flags 0 as the seed)
        #[arg(long)]
        ack: bool,
        /// Seconds to wait for the reply
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        timeout: Duration,
    },
    /// Same as `echo --kchan`
    Kecho {
        #[command(flatten)]
        msg: MsgArg,
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        timeout: Duration,
    },
    /// Register for ICMP events (IMP2_U_PID + ACK), print them, IMP2_CLOSE on exit/SIGINT/SIGTERM
    Listen {
        /// Stop after N events (not reached before --timeout: exit 1, ETIMEDOUT)
        #[arg(long, value_parser = parse_u64)]
        count: Option<u64>,
        /// Stop after SECS seconds (exit 0 unless --count was given and not reached)
        #[arg(long, value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
    /// KCHAN_BURST on K sockets; count lost/duplicate/out-of-order messages
    Burst {
        /// Messages per socket
        #[arg(long, value_parser = parse_u32)]
        count: u32,
        /// Payload bytes per message
        #[arg(long, value_parser = parse_u32)]
        size: u32,
        /// Number of sockets, each with its own burst
        #[arg(long, default_value_t = 1, value_parser = parse_sockets)]
        sockets: usize,
        /// Print a JSON object instead of the burst: line
        #[arg(long)]
        json: bool,
        /// Receive buffer per socket (SO_RCVBUFFORCE if allowed, else SO_RCVBUF)
        #[arg(long, default_value = "16777216", value_parser = parse_buflen)]
        rcvbuf: usize,
        /// Give up after SECS seconds without any message (then exit 1, ETIMEDOUT)
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        timeout: Duration,
    },
    /// Send a raw, possibly malformed message and print whatever comes back
    Send {
        /// nlmsg_type: number or name (register, close, done, error, echo, burst, ...)
        #[arg(long = "type", value_name = "T", value_parser = parse_type)]
        ty: u16,
        /// nlmsg_flags: numbers or names joined by ',' (request, ack, echo, dump, ...)
        #[arg(long, default_value = "0", value_parser = parse_flags)]
        flags: u16,
        /// nlmsg_len (default: 16 + payload length)
        #[arg(long, value_parser = parse_u32)]
        len: Option<u32>,
        /// Payload bytes in hex
        #[arg(long, value_name = "HEX", value_parser = parse_hex_arg)]
        payload: Option<HexBytes>,
        /// Send only the first N bytes of the message
        #[arg(long, value_name = "N", value_parser = parse_u64)]
        truncate: Option<u64>,
        /// nlmsg_seq
        #[arg(long, default_value = "1", value_parser = parse_u32)]
        seq: u32,
        /// nlmsg_pid (default: our port id)
        #[arg(long, value_parser = parse_u32)]
        pid: Option<u32>,
        /// Milliseconds to wait for replies
        #[arg(long, value_name = "MS", default_value = "500", value_parser = parse_u64)]
        wait: u64,
        /// Also print each reply's payload
        #[arg(long)]
        show_payload: bool,
        /// After the replies of --wait, hold the socket open SECS seconds without reading
        /// anything more, then exit 0 (a requester that stops reading)
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        stall: Option<Duration>,
    },
    /// Only socket() on the unit: is the module's netlink socket there?
    PingUnit,
}

/// `kchanctl netlink ...`; `unit` and `verbose` are the global options.
pub fn run(cmd: NetlinkCmd, unit: i32, verbose: bool) -> Result<()> {
    match cmd.op {
        NetlinkOp::Echo {
            msg,
            kchan,
            ack,
            timeout,
        } => {
            if kchan {
                cmd_kecho(unit, &msg.bytes()?, timeout, verbose)
            } else {
                cmd_echo(unit, &msg.bytes()?, ack, timeout, verbose)
            }
        }
        NetlinkOp::Kecho { msg, timeout } => cmd_kecho(unit, &msg.bytes()?, timeout, verbose),
        NetlinkOp::Listen { count, timeout } => cmd_listen(unit, count, timeout, verbose),
        NetlinkOp::Burst {
            count,
            size,
            sockets,
            json,
            rcvbuf,
            timeout,
        } => cmd_burst(
            &BurstParams {
                unit,
                sockets,
                count,
                size,
                rcvbuf,
                idle: timeout,
            },
            json,
        ),
        NetlinkOp::Send {
            ty,
            flags,
            len,
            payload,
            truncate,
            seq,
            pid,
            wait,
            show_payload,
            stall,
        } => cmd_send(
            unit,
            &Craft {
                ty,
                flags,
                len,
                seq,
                pid,
                payload: payload.map(|p| p.0).unwrap_or_default(),
                truncate: truncate.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
                wait: Duration::from_millis(wait),
                show_payload,
                stall,
            },
            verbose,
        ),
        NetlinkOp::PingUnit => cmd_ping_unit(unit),
    }
}

// ---- wire format ------------------------------------------------------------------------------

/// sizeof(struct nlmsghdr) == NLMSG_HDRLEN.
pub const NLMSG_HDRLEN: usize = 16;

pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_ECHO: u16 = 0x08;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP_FILTERED: u16 = 0x20;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_ATOMIC: u16 = 0x400;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;

/// NLMSG_NOOP and NLMSG_OVERRUN (the other control types are in the ABI).
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_OVERRUN: u16 = 4;

pub const fn nlmsg_align(len: usize) -> usize {
    (len + 3) & !3
}
pub const fn nlmsg_length(len: usize) -> usize {
    len + NLMSG_HDRLEN
}
pub const fn nlmsg_space(len: usize) -> usize {
    nlmsg_align(nlmsg_length(len))
}

/// struct nlmsghdr, host byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl Header {
    pub fn to_bytes(self) -> [u8; NLMSG_HDRLEN] {
        let mut b = [0u8; NLMSG_HDRLEN];
        b[0..4].copy_from_slice(&self.len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.ty.to_ne_bytes());
        b[6..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        b[12..16].copy_from_slice(&self.pid.to_ne_bytes());
        b
    }

    /// Decode the first 16 bytes of `b`.
    pub fn from_bytes(b: &[u8]) -> std::result::Result<Header, ParseError> {
        let h = b.get(..NLMSG_HDRLEN).ok_or(ParseError::Short {
            offset: 0,
            have: b.len(),
        })?;
        Ok(Header {
            len: u32::from_ne_bytes([h[0], h[1], h[2], h[3]]),
            ty: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            pid: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        })
    }
}

/// Why a received datagram could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer than 16 bytes left for a header at `offset`.
    Short { offset: usize, have: usize },
    /// nlmsg_len below 16 or beyond the datagram.
    BadLen {
        offset: usize,
        len: u32,
        have: usize,
    },
    /// A payload too short for what its type requires.
    Payload { ty: u16, need: usize, have: usize },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParseError::Short { offset, have } => {
                write!(f, "truncated header at offset {offset} ({have} bytes left)")
            }
            ParseError::BadLen { offset, len, have } => write!(
                f,
                "bad nlmsg_len {len} at offset {offset} ({have} bytes left)"
            ),
            ParseError::Payload { ty, need, have } => {
                write!(f, "type {ty} payload of {have} bytes, need {need}")
            }
        }
    }
}

/// One decoded message, borrowing its payload from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: Header,
    pub payload: &'a [u8],
}

/// Build a well-formed message: nlmsg_len = NLMSG_LENGTH(payload), zero padding to
/// NLMSG_ALIGN. Fails only when the payload does not fit a u32 length.
pub fn encode(ty: u16, flags: u16, seq: u32, pid: u32, payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(nlmsg_length(payload.len())).ok()?;
    let mut v = Vec::with_capacity(nlmsg_space(payload.len()));
    v.extend_from_slice(
        &Header {
            len,
            ty,
            flags,
            seq,
            pid,
        }
        .to_bytes(),
    );
    v.extend_from_slice(payload);
    v.resize(nlmsg_align(v.len()), 0);
    Some(v)
}

/// Split a datagram into messages (the NLMSG_OK / NLMSG_NEXT walk). Anything malformed is an
/// error, never a panic.
pub fn parse(buf: &[u8]) -> std::result::Result<Vec<Message<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        let rest = &buf[off..];
        let header = Header::from_bytes(rest).map_err(|_| ParseError::Short {
            offset: off,
            have: rest.len(),
        })?;
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(ParseError::BadLen {
                offset: off,
                len: header.len,
                have: rest.len(),
            });
        }
        out.push(Message {
            header,
            payload: &rest[NLMSG_HDRLEN..len],
        });
        off += nlmsg_align(len).min(rest.len());
    }
    Ok(out)
}

/// The payload of NLMSG_ERROR: the (negative) error, and the echoed request header if present.
pub fn parse_error(payload: &[u8]) -> std::result::Result<(i32, Option<Header>), ParseError> {
    let e = payload.get(..4).ok_or(ParseError::Payload {
        ty: abi::NLMSG_ERROR,
        need: 4,
        have: payload.len(),
    })?;
    let err = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
    let orig = Header::from_bytes(&payload[4..]).ok();
    Ok((err, orig))
}

/// `0` for an ACK, the errno name for a negative error, the number otherwise.
pub fn error_text(err: i32) -> String {
    if err == 0 {
        "0".to_string()
    } else if err < 0 && err != i32::MIN {
        errno_name(-err)
    } else {
        err.to_string()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// IMP2_K_MSG payload.
pub fn packet_info(payload: &[u8]) -> std::result::Result<abi::PacketInfo, ParseError> {
    let err = ParseError::Payload {
        ty: abi::IMP2_K_MSG,
        need: std::mem::size_of::<abi::PacketInfo>(),
        have: payload.len(),
    };
    Ok(abi::PacketInfo {
        src: u32_at(payload, 0).ok_or(err)?,
        dest: u32_at(payload, 4).ok_or(err)?,
    })
}

/// The address in a PacketInfo field (network byte order in memory).
pub fn ipv4(field: u32) -> Ipv4Addr {
    Ipv4Addr::from(field.to_ne_bytes())
}

pub fn format_icmp(p: &abi::PacketInfo) -> String {
    format!("icmp src={} dst={}", ipv4(p.src), ipv4(p.dest))
}

pub fn burst_request(r: abi::BurstRequest) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0..4].copy_from_slice(&r.count.to_ne_bytes());
    b[4..8].copy_from_slice(&r.size.to_ne_bytes());
    b
}

pub fn burst_end(payload: &[u8]) -> std::result::Result<abi::BurstEnd, ParseError> {
    let err = ParseError::Payload {
        ty: abi::KCHAN_BURST_END,
        need: std::mem::size_of::<abi::BurstEnd>(),
        have: payload.len(),
    };
    Ok(abi::BurstEnd {
        sent: u32_at(payload, 0).ok_or(err)?,
        dropped: u32_at(payload, 4).ok_or(err)?,
    })
}

/// The sequence number at the start of a KCHAN_BURST_DATA payload (little-endian).
pub fn burst_seq(payload: &[u8]) -> Option<u32> {
    let s = payload.get(..4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// `--type`: a number or a name.
pub fn parse_type(s: &str) -> std::result::Result<u16, String> {
    let v = match s.to_ascii_lowercase().replace('-', "_").as_str() {
        "u_pid" | "imp2_u_pid" | "register" => abi::IMP2_U_PID,
        "k_msg" | "imp2_k_msg" => abi::IMP2_K_MSG,
        "close" | "imp2_close" => abi::IMP2_CLOSE,
        "noop" => NLMSG_NOOP,
        "error" => abi::NLMSG_ERROR,
        "done" => abi::NLMSG_DONE,
        "overrun" => NLMSG_OVERRUN,
        "echo" | "kchan_echo" => abi::KCHAN_ECHO,
        "burst" | "kchan_burst" => abi::KCHAN_BURST,
        "burst_data" | "kchan_burst_data" => abi::KCHAN_BURST_DATA,
        "burst_end" | "kchan_burst_end" => abi::KCHAN_BURST_END,
        _ => {
            let n = crate::escape::parse_u64(s)?;
            return u16::try_from(n).map_err(|_| format!("type {s:?} does not fit 16 bits"));
        }
    };
    Ok(v)
}

/// `--flags`: numbers and/or names joined by `,` or `|`.
pub fn parse_flags(s: &str) -> std::result::Result<u16, String> {
    let mut v: u16 = 0;
    for part in s.split([',', '|']).map(str::trim) {
        let f = match part.to_ascii_lowercase().replace('-', "_").as_str() {
            "" | "none" => 0,
            "request" => NLM_F_REQUEST,
            "multi" => NLM_F_MULTI,
            "ack" => NLM_F_ACK,
            "echo" => NLM_F_ECHO,
            "dump_intr" => NLM_F_DUMP_INTR,
            "dump_filtered" => NLM_F_DUMP_FILTERED,
            "root" => NLM_F_ROOT,
            "match" => NLM_F_MATCH,
            "atomic" => NLM_F_ATOMIC,
            "dump" => NLM_F_DUMP,
            "replace" => NLM_F_REPLACE,
            "excl" => NLM_F_EXCL,
            "create" => NLM_F_CREATE,
            "append" => NLM_F_APPEND,
            _ => {
                let n = crate::escape::parse_u64(part)?;
                u16::try_from(n).map_err(|_| format!("flags {part:?} do not fit 16 bits"))?
            }
        };
        v |= f;
    }
    Ok(v)
}

// ---- socket -----------------------------------------------------------------------------------

/// Big enough for any kchan message (BURST_MAX_SIZE payload + header) with room to spare.
pub const RECV_BUF: usize = 128 * 1024;

/// What a non-blocking receive got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    Data(usize),
    WouldBlock,
    /// ENOBUFS: the socket's receive queue overflowed and messages were lost.
    Overrun,
}

pub struct NlSocket {
    fd: OwnedFd,
    /// The kernel-assigned port id (nl_pid).
    pub port: u32,
    seq: u32,
}

impl AsRawFd for NlSocket {
    /// The socket, for system calls the wrappers here do not make (the fuzzer's sendto from
    /// arbitrary user pointers).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl NlSocket {
    /// socket(AF_NETLINK, SOCK_RAW, unit) only.
    pub fn raw_socket(unit: i32) -> Result<OwnedFd> {
        // SAFETY: plain socket(2); nix's SockProtocol cannot name an arbitrary netlink unit.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, unit) };
        if fd < 0 {
            return Err(Error::last("socket"));
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Open and bind (nl_pid 0: the kernel assigns the port).
    pub fn open(unit: i32) -> Result<Self> {
        let fd = Self::raw_socket(unit)?;
        nixsock::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| Error::sys("bind", e))?;
        let addr: NetlinkAddr =
            nixsock::getsockname(fd.as_raw_fd()).map_err(|e| Error::sys("getsockname", e))?;
        Ok(NlSocket {
            fd,
            port: addr.pid(),
            seq: 0,
        })
    }

    /// Ask for a receive buffer of `bytes`: SO_RCVBUFFORCE (needs CAP_NET_ADMIN), else
    /// SO_RCVBUF (capped by net.core.rmem_max). Returns the size the kernel reports.
    pub fn set_rcvbuf(&self, bytes: usize) -> Result<usize> {
        if nixsock::setsockopt(&self.fd, nixsock::sockopt::RcvBufForce, &bytes).is_err() {
            nixsock::setsockopt(&self.fd, nixsock::sockopt::RcvBuf, &bytes)
                .map_err(|e| Error::sys("setsockopt SO_RCVBUF", e))?;
        }
        nixsock::getsockopt(&self.fd, nixsock::sockopt::RcvBuf)
            .map_err(|e| Error::sys("getsockopt SO_RCVBUF", e))
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// sendto(nl_pid 0) of exactly these bytes.
    pub fn send_raw(&self, bytes: &[u8]) -> Result<usize> {
        nixsock::sendto(
            self.fd.as_raw_fd(),
            bytes,
            &NetlinkAddr::new(0, 0),
            nixsock::MsgFlags::empty(),
        )
        .map_err(|e| Error::sys("sendto", e))
    }

    /// Send a well-formed message from our port; returns its sequence number.
    pub fn send(&mut self, ty: u16, flags: u16, payload: &[u8]) -> Result<u32> {
        let seq = self.next_seq();
        let msg = encode(ty, flags, seq, self.port, payload)
            .ok_or_else(|| Error::raw("sendto", libc::EMSGSIZE))?;
        self.send_raw(&msg)?;
        Ok(seq)
    }

    /// Non-blocking receive of one datagram into `buf`. A datagram larger than `buf` is an error.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Recv> {
        // SAFETY: buf is writable for buf.len() bytes. MSG_TRUNC makes netlink return the real
        // datagram length so truncation is detected (nix's recv would hide it).
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = nix::errno::Errno::last();
            return match e {
                nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR => Ok(Recv::WouldBlock),
                nix::errno::Errno::ENOBUFS => Ok(Recv::Overrun),
                e => Err(Error::sys("recv", e)),
            };
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(Error::msg(
                "recv",
                format!("{n}-byte message truncated to {} bytes", buf.len()),
            ));
        }
        Ok(Recv::Data(n))
    }

    /// Wait until readable or `timeout` passes (None: forever). EINTR counts as not ready.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        wait_any(&[self], timeout).map(|r| !r.is_empty())
    }

    /// Receive one datagram, waiting at most until `deadline`. Ok(None) on timeout or when
    /// `stop` says so; ENOBUFS is reported as an error.
    pub fn recv_until(
        &self,
        buf: &mut [u8],
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<usize>> {
        loop {
            match self.recv(buf)? {
                Recv::Data(n) => return Ok(Some(n)),
                Recv::Overrun => return Err(Error::raw("recv", libc::ENOBUFS)),
                Recv::WouldBlock => {}
            }
            let now = Instant::now();
            if now >= deadline || stop() {
                return Ok(None);
            }
            self.wait_readable(Some((deadline - now).min(POLL_SLICE)))?;
        }
    }
}

/// `now + d`, saturating at a far but representable instant instead of panicking.
pub fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Longest single poll, so signals and deadlines are noticed promptly.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// poll() the sockets for input; returns the indexes that are readable.
pub fn wait_any(socks: &[&NlSocket], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let mut fds: Vec<PollFd> = socks
        .iter()
        .map(|s| PollFd::new(s.fd.as_fd(), PollFlags::POLLIN))
        .collect();
    let t = match timeout {
        None => PollTimeout::NONE,
        Some(d) => {
            // Round up so a short remaining time does not become a busy 0 ms poll.
            let ms = d.as_micros().div_ceil(1000).min(i32::MAX as u128);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    };
    match nix::poll::poll(&mut fds, t) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
        Err(e) => return Err(Error::sys("poll", e)),
    }
    Ok(fds
        .iter()
        .enumerate()
        .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
        .map(|(i, _)| i)
        .collect())
}

// ---- signals ----------------------------------------------------------------------------------

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// SIGINT/SIGTERM only set a flag; the loops poll in short slices and check it.
fn install_stop_handlers() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }.map_err(|e| Error::sys("sigaction", e))?;
    }
    Ok(())
}

// ---- commands ---------------------------------------------------------------------------------

fn open_verbose(unit: i32, verbose: bool) -> Result<NlSocket> {
    let s = NlSocket::open(unit)?;
    if verbose {
        output::diag(&format!("netlink unit {unit} port={}", s.port));
    }
    Ok(s)
}

/// Default wait for a reply before ETIMEDOUT.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Receive until a message with sequence `seq` (or any non-control message when `seq` is None)
/// arrives; a non-zero NLMSG_ERROR for our request is the error `op: <errno>`.
fn await_reply(
    sock: &NlSocket,
    op: &str,
    seq: Option<u32>,
    timeout: Duration,
) -> Result<(Header, Vec<u8>)> {
    let mut buf = vec![0u8; RECV_BUF];
    let deadline = deadline_after(timeout);
    loop {
        let n = sock
            .recv_until(&mut buf, deadline, &|| false)?
            .ok_or_else(|| Error::raw(op, libc::ETIMEDOUT))?;
        let msgs = parse(&buf[..n]).map_err(|e| Error::msg(op, e.to_string()))?;
        for m in msgs {
            if m.header.ty == abi::NLMSG_ERROR {
                let (err, _) = parse_error(m.payload).map_err(|e| Error::msg(op, e.to_string()))?;
                if err != 0 {
                    return Err(Error::raw(op, err.checked_neg().unwrap_or(libc::EINVAL)));
                }
                continue; // an ACK
            }
            if seq.is_none_or(|s| s == m.header.seq) {
                return Ok((m.header, m.payload.to_vec()));
            }
        }
    }
}

/// `netlink echo MSG`: the seed 004 echo (type IMP2_U_PID, flags 0, payload MSG + NUL).
/// kchan drops failed requests silently unless NLM_F_ACK is set: `ack` sets it so an error
/// (e.g. EMSGSIZE) is reported instead of a timeout.
fn cmd_echo(unit: i32, msg: &[u8], ack: bool, timeout: Duration, verbose: bool) -> Result<()> {
    let mut sock = open_verbose(unit, verbose)?;
    let mut payload = msg.to_vec();
    payload.push(0);
    let flags = if ack { NLM_F_ACK } else { 0 };
    let seq = sock.send(abi::IMP2_U_PID, flags, &payload)?;
    let (h, p) = await_reply(&sock, "netlink echo", ack.then_some(seq), timeout)?;
    output::line(&format!("reply: {}", escape(until_nul(&p))))?;
    output::line(&format!("type: {}", h.ty))
}

/// `netlink echo --kchan MSG` / `netlink kecho MSG`: KCHAN_ECHO with NLM_F_ACK (so errors are
/// reported; the reply comes before the ACK), checks type, seq and payload.
fn cmd_kecho(unit: i32, msg: &[u8], timeout: Duration, verbose: bool) -> Result<()> {
    let mut sock = open_verbose(unit, verbose)?;
    let seq = sock.send(abi::KCHAN_ECHO, NLM_F_REQUEST | NLM_F_ACK, msg)?;
    let (h, p) = await_reply(&sock, "netlink echo", Some(seq), timeout)?;
    if h.ty != abi::KCHAN_ECHO || p != msg {
        return Err(Error::msg(
            "netlink echo",
            format!(
                "reply mismatch: type={} seq={} payload={}",
                h.ty,
                h.seq,
                escape(&p)
            ),
        ));
    }
    output::line(&format!("echo: {}", escape(&p)))
}

/// `netlink listen`: register for ICMP events, print them, unregister on exit.
fn cmd_listen(
    unit: i32,
    count: Option<u64>,
    timeout: Option<Duration>,
    verbose: bool,
) -> Result<()> {
    install_stop_handlers()?;
    let mut sock = open_verbose(unit, verbose)?;
    let mut buf = vec![0u8; RECV_BUF];
    // Register and wait for the ACK. Events may already be queued before the ACK (the hook
    // can fire between registration and the ACK being queued): keep them.
    let seq = sock.send(abi::IMP2_U_PID, NLM_F_ACK, &[])?;
    let mut early: Vec<abi::PacketInfo> = Vec::new();
    let deadline = deadline_after(REPLY_TIMEOUT);
    'ack: loop {
        let n = sock
            .recv_until(&mut buf, deadline, &|| false)?
            .ok_or_else(|| Error::raw("netlink register", libc::ETIMEDOUT))?;
        let msgs = parse(&buf[..n]).map_err(|e| Error::msg("netlink register", e.to_string()))?;
        for m in msgs {
            match m.header.ty {
                abi::NLMSG_ERROR => {
                    let (err, _) = parse_error(m.payload)
                        .map_err(|e| Error::msg("netlink register", e.to_string()))?;
                    if err != 0 {
                        return Err(Error::raw(
                            "netlink register",
                            err.checked_neg().unwrap_or(libc::EINVAL),
                        ));
                    }
                    if m.header.seq == seq {
                        break 'ack;
                    }
                }
                abi::IMP2_K_MSG => {
                    if let Ok(p) = packet_info(m.payload) {
                        early.push(p);
                    }
                }
                _ => {}
            }
        }
    }
    output::line(&format!("listening port={}", sock.port))?;

    let started = Instant::now();
    let mut seen: u64 = 0;
    let done = |seen: u64| count.is_some_and(|c| seen >= c);
    let mut result = Ok(());
    for p in early {
        if done(seen) {
            break;
        }
        output::line(&format_icmp(&p))?;
        seen += 1;
    }
    'events: while !done(seen) && !stop_requested() {
        let remaining = match timeout {
            Some(t) => match t.checked_sub(started.elapsed()) {
                Some(r) if !r.is_zero() => Some(r),
                _ => {
                    if count.is_some() {
                        result = Err(Error::raw("netlink listen", libc::ETIMEDOUT));
                    }
                    break;
                }
            },
            None => None,
        };
        let slice = remaining.map_or(POLL_SLICE, |r| r.min(POLL_SLICE));
        sock.wait_readable(Some(slice))?;
        loop {
            let n = match sock.recv(&mut buf)? {
                Recv::Data(n) => n,
                Recv::WouldBlock => break,
                Recv::Overrun => {
                    output::diag("netlink listen: ENOBUFS (receive queue overrun, events lost)");
                    continue;
                }
            };
            let msgs = match parse(&buf[..n]) {
                Ok(m) => m,
                Err(e) => {
                    output::line(&format!("malformed: {e}"))?;
                    continue;
                }
            };
            for m in msgs {
                match m.header.ty {
                    abi::IMP2_K_MSG => match packet_info(m.payload) {
                        Ok(p) => {
                            output::line(&format_icmp(&p))?;
                            seen += 1;
                            if done(seen) {
                                break 'events;
                            }
                        }
                        Err(e) => output::line(&format!("malformed: {e}"))?,
                    },
                    t => output::line(&format!("other: type={t} len={}", m.header.len))?,
                }
            }
        }
    }
    // Unregister (the seed's sig_int), with an ACK so a failure is visible.
    let close_seq = sock.send(abi::IMP2_CLOSE, NLM_F_ACK, &[])?;
    let deadline = deadline_after(REPLY_TIMEOUT);
    'close: loop {
        let n = sock
            .recv_until(&mut buf, deadline, &|| false)?
            .ok_or_else(|| Error::raw("netlink unregister", libc::ETIMEDOUT))?;
        let msgs = parse(&buf[..n]).map_err(|e| Error::msg("netlink unregister", e.to_string()))?;
        for m in msgs {
            if m.header.ty == abi::NLMSG_ERROR {
                let (err, orig) = parse_error(m.payload)
                    .map_err(|e| Error::msg("netlink unregister", e.to_string()))?;
                let ours = m.header.seq == close_seq || orig.is_some_and(|h| h.seq == close_seq);
                if err != 0 && ours {
                    return Err(Error::raw(
                        "netlink unregister",
                        err.checked_neg().unwrap_or(libc::EINVAL),
                    ));
                }
                if ours {
                    break 'close;
                }
            }
        }
    }
    output::line("unregistered")?;
    result
}

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

/// Run a burst. Err for local failures and kernel errors (NLMSG_ERROR), Ok with `ended <
/// sockets` when the idle timeout hit first.
pub fn run_burst(p: &BurstParams) -> Result<BurstStats> {
    const OP: &str = "netlink burst";
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
    let req = burst_request(abi::BurstRequest {
        count: p.count,
        size: p.size,
    });
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
            let s = &mut socks[live[r]];
            // Drain a bounded number per round so one socket cannot starve the others.
            for _ in 0..256 {
                let n = match s.sock.recv(&mut buf)? {
                    Recv::Data(n) => n,
                    Recv::WouldBlock => break,
                    Recv::Overrun => {
                        st.overruns += 1;
                        continue;
                    }
                };
                last_activity = Instant::now();
                let msgs = match parse(&buf[..n]) {
                    Ok(m) => m,
                    Err(_) => {
                        st.invalid += 1;
                        continue;
                    }
                };
                for m in msgs {
                    match m.header.ty {
                        abi::KCHAN_BURST_DATA => {
                            st.messages += 1;
                            let seq = match burst_seq(m.payload) {
                                Some(q) if q < p.count && (q as usize) < bits * 64 => q,
                                _ => {
                                    st.invalid += 1;
                                    continue;
                                }
                            };
                            if m.payload.len() != p.size as usize {
                                st.invalid += 1;
                            }
                            let (w, b) = (seq as usize / 64, seq % 64);
                            if s.seen[w] & (1 << b) != 0 {
                                st.duplicate += 1;
                                continue;
                            }
                            s.seen[w] |= 1 << b;
                            st.unique += 1;
                            match s.highest {
                                Some(h) if seq < h => st.out_of_order += 1,
                                _ => s.highest = Some(seq),
                            }
                        }
                        abi::KCHAN_BURST_END => {
                            let e =
                                burst_end(m.payload).map_err(|e| Error::msg(OP, e.to_string()))?;
                            st.kernel_sent += u64::from(e.sent);
                            st.kernel_dropped += u64::from(e.dropped);
                            if !s.ended {
                                s.ended = true;
                                st.ended += 1;
                            }
                        }
                        abi::NLMSG_ERROR => {
                            let (err, _) = parse_error(m.payload)
                                .map_err(|e| Error::msg(OP, e.to_string()))?;
                            if err != 0 {
                                return Err(Error::raw(
                                    OP,
                                    err.checked_neg().unwrap_or(libc::EINVAL),
                                ));
                            }
                        }
                        _ => st.invalid += 1,
                    }
                }
                if s.ended {
                    break;
                }
            }
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

/// `netlink burst`: prints the `burst:` line (or JSON); exit 1 if some socket got no END.
fn cmd_burst(p: &BurstParams, json: bool) -> Result<()> {
    let st = run_burst(p)?;
    output::line(&if json { st.json() } else { st.line() })?;
    if st.ended < st.sockets {
        return Err(Error::raw("netlink burst", libc::ETIMEDOUT));
    }
    Ok(())
}

/// What `netlink send` crafts.
#[derive(Clone, Debug)]
pub struct Craft {
    pub ty: u16,
    pub flags: u16,
    /// nlmsg_len; None: the correct NLMSG_LENGTH(payload).
    pub len: Option<u32>,
    pub seq: u32,
    /// nlmsg_pid; None: our port.
    pub pid: Option<u32>,
    pub payload: Vec<u8>,
    /// Send only the first N bytes (all of them when N is larger).
    pub truncate: Option<usize>,
    pub wait: Duration,
    pub show_payload: bool,
    /// After the wait, hold the socket this long without reading.
    pub stall: Option<Duration>,
}

/// The bytes `netlink send` puts on the wire (no alignment padding is added).
pub fn craft_bytes(c: &Craft, port: u32) -> Vec<u8> {
    let len = c
        .len
        .unwrap_or_else(|| u32::try_from(nlmsg_length(c.payload.len())).unwrap_or(u32::MAX));
    let mut v = Header {
        len,
        ty: c.ty,
        flags: c.flags,
        seq: c.seq,
        pid: c.pid.unwrap_or(port),
    }
    .to_bytes()
    .to_vec();
    v.extend_from_slice(&c.payload);
    if let Some(n) = c.truncate {
        v.truncate(n);
    }
    v
}

/// `netlink send`: craft, send, print every reply within the wait. Kernel errors are output.
fn cmd_send(unit: i32, c: &Craft, verbose: bool) -> Result<()> {
    let sock = open_verbose(unit, verbose)?;
    let bytes = craft_bytes(c, sock.port);
    let sent = sock.send_raw(&bytes)?;
    if verbose {
        output::diag(&format!("netlink send: sent {sent} bytes"));
    }
    let mut buf = vec![0u8; RECV_BUF];
    let deadline = deadline_after(c.wait);
    loop {
        let n = match sock.recv_until(&mut buf, deadline, &|| false) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(Error::Sys { errno, .. }) if errno == libc::ENOBUFS => {
                output::line("overrun")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        match parse(&buf[..n]) {
            Ok(msgs) => {
                for m in msgs {
                    output::line(&format!("reply: type={} len={}", m.header.ty, m.header.len))?;
                    if m.header.ty == abi::NLMSG_ERROR {
                        match parse_error(m.payload) {
                            Ok((err, _)) => output::line(&format!("error: {}", error_text(err)))?,
                            Err(e) => output::line(&format!("malformed: {e}"))?,
                        }
                    }
                    if c.show_payload {
                        output::line(&format!("payload: {}", escape(m.payload)))?;
                    }
                }
            }
            Err(e) => output::line(&format!("reply: malformed {n} bytes: {e}"))?,
        }
    }
    if let Some(hold) = c.stall {
        std::thread::sleep(hold);
    }
    Ok(())
}

/// `netlink ping-unit`: is there a kernel socket on the unit?
fn cmd_ping_unit(unit: i32) -> Result<()> {
    let _fd = NlSocket::raw_socket(unit)?;
    output::line(&format!("unit {unit}: available"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_args, Cmd};
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn netlink_args() {
        let c = parse_args(&[
            "netlink",
            "send",
            "--type",
            "echo",
            "--flags",
            "request,ack",
            "--payload",
            "00ff",
            "--truncate",
            "10",
            "--len",
            "1000",
        ])
        .unwrap();
        match c.cmd {
            Cmd::Netlink(NetlinkCmd {
                op:
                    NetlinkOp::Send {
                        ty: 0x10,
                        flags: 5,
                        len: Some(1000),
                        payload: Some(p),
                        truncate: Some(10),
                        wait: 500,
                        ..
                    },
            }) => assert_eq!(p, HexBytes(vec![0, 0xff])),
            other => panic!("{other:?}"),
        }
        let c = parse_args(&["netlink", "listen", "--count", "2", "--timeout", "1.5"]).unwrap();
        match c.cmd {
            Cmd::Netlink(NetlinkCmd {
                op:
                    NetlinkOp::Listen {
                        count: Some(2),
                        timeout: Some(t),
                    },
            }) => assert_eq!(t, Duration::from_millis(1500)),
            other => panic!("{other:?}"),
        }
        assert!(parse_args(&["netlink", "burst", "--count", "10"]).is_err());
        assert!(parse_args(&[
            "netlink",
            "burst",
            "--count",
            "10",
            "--size",
            "64",
            "--sockets",
            "0"
        ])
        .is_err());
        assert!(parse_args(&["netlink", "send", "--type", "70000"]).is_err());
        assert!(parse_args(&["netlink", "listen", "--timeout", "-1"]).is_err());
        assert!(parse_args(&["netlink", "listen", "--timeout", "nan"]).is_err());
        assert!(parse_args(&["netlink", "echo", "--kchan", "hi"]).is_ok());
    }

    #[test]
    fn abi_layouts() {
        assert_eq!(size_of::<abi::PacketInfo>(), 8);
        assert_eq!(align_of::<abi::PacketInfo>(), 4);
        assert_eq!(offset_of!(abi::PacketInfo, src), 0);
        assert_eq!(offset_of!(abi::PacketInfo, dest), 4);
        assert_eq!(size_of::<abi::BurstRequest>(), 8);
        assert_eq!(align_of::<abi::BurstRequest>(), 4);
        assert_eq!(offset_of!(abi::BurstRequest, count), 0);
        assert_eq!(offset_of!(abi::BurstRequest, size), 4);
        assert_eq!(size_of::<abi::BurstEnd>(), 8);
        assert_eq!(offset_of!(abi::BurstEnd, sent), 0);
        assert_eq!(offset_of!(abi::BurstEnd, dropped), 4);
        assert_eq!(size_of::<libc::nlmsghdr>(), NLMSG_HDRLEN);
        assert_eq!(offset_of!(libc::nlmsghdr, nlmsg_type), 4);
        assert_eq!(offset_of!(libc::nlmsghdr, nlmsg_seq), 8);
        assert_eq!(offset_of!(libc::nlmsghdr, nlmsg_pid), 12);
    }

    #[test]
    fn seed_constants() {
        assert_eq!(nlmsg_length(0), 16);
        assert_eq!(nlmsg_space(size_of::<abi::PacketInfo>()), 24);
        assert_eq!(nlmsg_space(1024), 1040);
        assert_eq!(nlmsg_length(abi::NETLINK_ECHO_REPLY.len()), 41);
        assert_eq!(nlmsg_space(abi::NETLINK_ECHO_REPLY.len()), 44);
        assert_eq!(abi::NETLINK_UNIT_DEFAULT, 31);
        assert_eq!(
            (abi::IMP2_U_PID, abi::IMP2_K_MSG, abi::IMP2_CLOSE),
            (0, 1, 2)
        );
        assert_eq!(abi::NLMSG_ERROR as i32, libc::NLMSG_ERROR);
        assert_eq!(abi::NLMSG_DONE as i32, libc::NLMSG_DONE);
        assert_eq!(abi::NLMSG_MIN_TYPE as i32, libc::NLMSG_MIN_TYPE);
        assert_eq!(NLM_F_ACK as i32, libc::NLM_F_ACK);
        assert_eq!(NLM_F_REQUEST as i32, libc::NLM_F_REQUEST);
        assert_eq!(NLM_F_DUMP as i32, libc::NLM_F_DUMP);
    }

    #[test]
    fn encode_request_byte_exact() {
        // The seed 004 echo request for "hi": type 0, flags 0, seq 7, pid 0x1234, "hi\0".
        let m = encode(abi::IMP2_U_PID, 0, 7, 0x1234, b"hi\0").unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&19u32.to_ne_bytes());
        want.extend_from_slice(&0u16.to_ne_bytes());
        want.extend_from_slice(&0u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0x1234u32.to_ne_bytes());
        want.extend_from_slice(b"hi\0\0");
        assert_eq!(m, want);
        // imp2 register / close: a bare 16-byte header, as the seed's NLMSG_LENGTH(0).
        let c = encode(abi::IMP2_CLOSE, 0, 0, 42, &[]).unwrap();
        assert_eq!(c.len(), 16);
        assert_eq!(&c[0..4], &16u32.to_ne_bytes());
        assert_eq!(&c[4..6], &2u16.to_ne_bytes());
        // The libc struct agrees with our layout.
        let h = libc::nlmsghdr {
            nlmsg_len: 19,
            nlmsg_type: 0,
            nlmsg_flags: 0,
            nlmsg_seq: 7,
            nlmsg_pid: 0x1234,
        };
        // SAFETY: nlmsghdr is plain old data of 16 bytes.
        let raw: [u8; 16] = unsafe { std::mem::transmute(h) };
        assert_eq!(&raw[..], &want[..16]);
    }

    fn seed_echo_reply() -> Vec<u8> {
        // What seed 004's kernel sends: nlmsg_put(skb, 0, 0, NLMSG_DONE, 25, 0) + strncpy.
        let mut v = Vec::new();
        v.extend_from_slice(&41u32.to_ne_bytes());
        v.extend_from_slice(&abi::NLMSG_DONE.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(abi::NETLINK_ECHO_REPLY);
        v.extend_from_slice(&[0, 0, 0]);
        v
    }

    #[test]
    fn parse_reply_byte_exact() {
        let v = seed_echo_reply();
        assert_eq!(v.len(), 44);
        let msgs = parse(&v).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0].header,
            Header {
                len: 41,
                ty: 3,
                flags: 0,
                seq: 0,
                pid: 0
            }
        );
        assert_eq!(msgs[0].payload, abi::NETLINK_ECHO_REPLY);
        assert_eq!(
            escape(until_nul(msgs[0].payload)),
            "Reply from kernel netlink"
        );
        // Unpadded last message is fine too.
        assert_eq!(parse(&v[..41]).unwrap()[0].payload.len(), 25);
    }

    #[test]
    fn parse_multi_and_roundtrip() {
        let mut v = encode(1, 2, 3, 4, b"abcde").unwrap();
        v.extend(encode(5, 6, 7, 8, b"").unwrap());
        let msgs = parse(&v).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].payload, b"abcde");
        assert_eq!(msgs[1].header.ty, 5);
        assert_eq!(msgs[1].header.len, 16);
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn parse_garbage_is_error() {
        let v = seed_echo_reply();
        for cut in 1..16 {
            assert!(matches!(parse(&v[..cut]), Err(ParseError::Short { .. })));
        }
        for cut in 16..41 {
            assert!(matches!(parse(&v[..cut]), Err(ParseError::BadLen { .. })));
        }
        let mut bad = v.clone();
        bad[0..4].copy_from_slice(&15u32.to_ne_bytes());
        assert!(matches!(
            parse(&bad),
            Err(ParseError::BadLen { len: 15, .. })
        ));
        bad[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse(&bad).is_err());
        // Pseudo-random garbage never panics.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let g: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            if let Ok(msgs) = parse(&g) {
                for m in msgs {
                    let _ = parse_error(m.payload);
                    let _ = packet_info(m.payload);
                    let _ = burst_end(m.payload);
                    let _ = burst_seq(m.payload);
                }
            }
        }
    }

    #[test]
    fn error_payloads() {
        let mut p = (-libc::EPERM).to_ne_bytes().to_vec();
        p.extend_from_slice(
            &Header {
                len: 16,
                ty: 0,
                flags: 4,
                seq: 9,
                pid: 1,
            }
            .to_bytes(),
        );
        let m = encode(abi::NLMSG_ERROR, 0, 9, 1, &p).unwrap();
        let msgs = parse(&m).unwrap();
        assert_eq!(msgs[0].header.len, 36);
        let (err, orig) = parse_error(msgs[0].payload).unwrap();
        assert_eq!(err, -1);
        assert_eq!(orig.unwrap().seq, 9);
        assert_eq!(error_text(err), "EPERM");
        assert_eq!(error_text(0), "0");
        assert_eq!(error_text(-libc::EINVAL), "EINVAL");
        assert_eq!(error_text(-524), "E524");
        assert_eq!(error_text(5), "5");
        assert_eq!(error_text(i32::MIN), i32::MIN.to_string());
        assert_eq!(parse_error(&0i32.to_ne_bytes()).unwrap(), (0, None));
        assert!(parse_error(&[0, 0]).is_err());
    }

    #[test]
    fn icmp_event() {
        // struct packet_info { src = 10.0.2.2, dest = 10.0.2.15 } as iph->saddr/daddr.
        let payload = [10, 0, 2, 2, 10, 0, 2, 15];
        let m = {
            let mut v = Header {
                len: 24,
                ty: abi::IMP2_K_MSG,
                flags: 0,
                seq: 0,
                pid: 0,
            }
            .to_bytes()
            .to_vec();
            v.extend_from_slice(&payload);
            v
        };
        assert_eq!(m.len(), nlmsg_space(8));
        let msgs = parse(&m).unwrap();
        let p = packet_info(msgs[0].payload).unwrap();
        assert_eq!(format_icmp(&p), "icmp src=10.0.2.2 dst=10.0.2.15");
        assert!(packet_info(&payload[..7]).is_err());
    }

    #[test]
    fn burst_payloads() {
        let r = burst_request(abi::BurstRequest {
            count: 100_000,
            size: 64,
        });
        assert_eq!(&r[0..4], &100_000u32.to_ne_bytes());
        assert_eq!(&r[4..8], &64u32.to_ne_bytes());
        let mut e = 5u32.to_ne_bytes().to_vec();
        e.extend_from_slice(&2u32.to_ne_bytes());
        assert_eq!(
            burst_end(&e).unwrap(),
            abi::BurstEnd {
                sent: 5,
                dropped: 2
            }
        );
        assert!(burst_end(&e[..7]).is_err());
        assert_eq!(burst_seq(&[1, 0, 0, 0, 0xaa]), Some(1));
        assert_eq!(burst_seq(&[1, 0, 0]), None);
    }

    #[test]
    fn type_and_flag_names() {
        assert_eq!(parse_type("close"), Ok(2));
        assert_eq!(parse_type("kchan-echo"), Ok(0x10));
        assert_eq!(parse_type("0x13"), Ok(0x13));
        assert_eq!(parse_type("65535"), Ok(65535));
        assert!(parse_type("65536").is_err());
        assert!(parse_type("bogus").is_err());
        assert_eq!(parse_flags("ack"), Ok(4));
        assert_eq!(parse_flags("request,ack"), Ok(5));
        assert_eq!(parse_flags("request|0x100"), Ok(0x101));
        assert_eq!(parse_flags("0"), Ok(0));
        assert!(parse_flags("nope").is_err());
    }

    #[test]
    fn deadlines_do_not_overflow() {
        assert!(deadline_after(Duration::MAX) > Instant::now());
        assert!(deadline_after(Duration::from_millis(u64::MAX)) > Instant::now());
    }

    #[test]
    fn crafted() {
        let c = Craft {
            ty: 0x10,
            flags: NLM_F_REQUEST,
            len: Some(1000),
            seq: 1,
            pid: None,
            payload: vec![1, 2, 3],
            truncate: None,
            wait: Duration::ZERO,
            show_payload: false,
            stall: None,
        };
        let b = craft_bytes(&c, 77);
        assert_eq!(b.len(), 19);
        assert_eq!(&b[0..4], &1000u32.to_ne_bytes());
        assert_eq!(&b[12..16], &77u32.to_ne_bytes());
        let t = craft_bytes(
            &Craft {
                truncate: Some(10),
                len: None,
                ..c.clone()
            },
            77,
        );
        assert_eq!(t.len(), 10);
        assert_eq!(&t[0..4], &19u32.to_ne_bytes());
        assert_eq!(
            craft_bytes(
                &Craft {
                    truncate: Some(99),
                    ..c
                },
                1
            )
            .len(),
            19
        );
    }

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
