//! The kchan netlink socket: open, send, non-blocking receive with deadlines, poll.

use crate::abi;
use crate::error::{Error, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self as nixsock, NetlinkAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::wire::{encode, parse, parse_error, Message, NlMsgHdr};

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

    /// Receive one datagram, waiting at most until `deadline`. Ok(None) on timeout; ENOBUFS
    /// is reported as an error.
    pub fn recv_until(&self, buf: &mut [u8], deadline: Instant) -> Result<Option<usize>> {
        loop {
            match self.recv(buf)? {
                Recv::Data(n) => return Ok(Some(n)),
                Recv::Overrun => return Err(Error::raw("recv", libc::ENOBUFS)),
                Recv::WouldBlock => {}
            }
            let now = Instant::now();
            if now >= deadline {
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
pub(super) const POLL_SLICE: Duration = Duration::from_millis(100);

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

/// What a request being answered receives: a message, or an ACK.
pub enum Answer<'a> {
    Msg(Message<'a>),
    Ack(Ack),
}

/// An NLMSG_ERROR with error 0.
pub struct Ack {
    seq: u32,
    request: Option<NlMsgHdr>,
}

impl Ack {
    /// Whether it acknowledges the request sent with `seq` (its own seq, or the request
    /// header it quotes, says so).
    pub fn is_for(&self, seq: u32) -> bool {
        self.seq == seq || self.request.is_some_and(|h| h.seq == seq)
    }
}

/// Receive for at most `timeout` until `take` has what it waits for (the reply, the ACK, ...)
/// and returns it. An NLMSG_ERROR with an error ends the wait as `op: <errno>`: a socket
/// here waits for one request at a time, so the error is that request's. A timeout is
/// `op: ETIMEDOUT`, a malformed datagram `op: <what is wrong>`.
pub fn await_answer<T>(
    sock: &NlSocket,
    buf: &mut [u8],
    op: &str,
    timeout: Duration,
    mut take: impl FnMut(Answer<'_>) -> Result<Option<T>>,
) -> Result<T> {
    let deadline = deadline_after(timeout);
    loop {
        let n = sock
            .recv_until(buf, deadline)?
            .ok_or_else(|| Error::raw(op, libc::ETIMEDOUT))?;
        for m in parse(&buf[..n]).map_err(|e| Error::msg(op, e.to_string()))? {
            let answer = if m.header.ty == abi::NLMSG_ERROR {
                let (err, request) =
                    parse_error(m.payload).map_err(|e| Error::msg(op, e.to_string()))?;
                if err != 0 {
                    return Err(Error::raw(op, err.checked_neg().unwrap_or(libc::EINVAL)));
                }
                Answer::Ack(Ack {
                    seq: m.header.seq,
                    request,
                })
            } else {
                Answer::Msg(m)
            };
            if let Some(t) = take(answer)? {
                return Ok(t);
            }
        }
    }
}

/// Default wait for a reply before ETIMEDOUT.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

    /// A datagram socket pair stands in for the kernel: what its other end sends is what
    /// await_answer receives.
    #[test]
    fn answers_end_the_wait() {
        let (ours, kernel) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let sock = NlSocket {
            fd: ours,
            port: 1,
            seq: 0,
        };
        let put = |m: &[u8]| {
            send(kernel.as_raw_fd(), m, MsgFlags::empty()).unwrap();
        };
        // An NLMSG_ERROR of `err` in a message with `seq`, quoting a request with `quoted`.
        let error = |seq: u32, quoted: u32, err: i32| {
            let mut p = abi::NlMsgErr { error: err }.to_bytes().to_vec();
            let request = NlMsgHdr {
                len: 16,
                ty: 0,
                flags: 4,
                seq: quoted,
                pid: 1,
            };
            p.extend_from_slice(&request.to_bytes());
            encode(abi::NLMSG_ERROR, 0, seq, 0, &p).unwrap()
        };
        let mut buf = vec![0u8; RECV_BUF];
        let t = Duration::from_secs(5);
        put(&encode(abi::ICMP_REPORT_MSG, 0, 0, 0, &[1; 8]).unwrap());
        put(&error(6, 6, 0));
        put(&error(0, 7, 0));
        let mut seen = Vec::new();
        await_answer(&sock, &mut buf, "op", t, |a| {
            Ok(match a {
                Answer::Msg(m) => {
                    seen.push(m.header.ty);
                    None
                }
                Answer::Ack(ack) => ack.is_for(7).then_some(()),
            })
        })
        .unwrap();
        assert_eq!(seen, vec![abi::ICMP_REPORT_MSG]);
        let wait = |t: Duration| {
            let mut buf = vec![0u8; RECV_BUF];
            await_answer(&sock, &mut buf, "op", t, |_| Ok(None::<()>)).unwrap_err()
        };
        // Whichever request an error quotes, it ends the wait.
        put(&error(9, 9, -libc::EPERM));
        assert_eq!(wait(t).to_string(), "op: EPERM (Operation not permitted)");
        assert_eq!(
            wait(Duration::from_millis(10)).errno(),
            Some(libc::ETIMEDOUT)
        );
        put(&[1, 2, 3]);
        assert!(matches!(wait(t), Error::Msg { .. }));
    }

    #[test]
    fn deadlines_do_not_overflow() {
        assert!(deadline_after(Duration::MAX) > Instant::now());
        assert!(deadline_after(Duration::from_millis(u64::MAX)) > Instant::now());
    }
}
