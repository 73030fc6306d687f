//! Physical references for `kchanctl bench`: the same class of kernel work as each channel,
//! done by code the kernel already has, in the same guest. A channel is judged against these
//! (a null syscall says only what any syscall costs).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

use crate::error::{Error, Result};
use crate::procfs::open_path;

/// The reference file for a proc read: generated on each read by the kernel, like kchan's.
pub const PROC_REFERENCE: &str = "/proc/version";

/// A UNIX datagram socket pair.
pub fn pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair", e))
}

/// One UNIX datagram round trip of `msg`: a -> b, then b -> a (two skbs, two queues and four
/// syscalls in one thread, as a netlink echo is two skbs and a queue behind two syscalls).
pub fn unix_round_trip(a: &OwnedFd, b: &OwnedFd, msg: &[u8], buf: &mut [u8]) -> Result<()> {
    send(a.as_raw_fd(), msg, MsgFlags::empty()).map_err(|e| Error::sys("send", e))?;
    let n = recv(b.as_raw_fd(), buf, MsgFlags::empty()).map_err(|e| Error::sys("recv", e))?;
    send(b.as_raw_fd(), &buf[..n], MsgFlags::empty()).map_err(|e| Error::sys("send", e))?;
    let m = recv(a.as_raw_fd(), buf, MsgFlags::empty()).map_err(|e| Error::sys("recv", e))?;
    if m != msg.len() {
        return Err(Error::msg(
            "unix round trip",
            format!("{m} bytes back, sent {}", msg.len()),
        ));
    }
    Ok(())
}

/// getsockopt(IP_TTL) on `fd`: an option the IP layer answers itself.
pub fn ip_ttl(fd: &OwnedFd) -> Result<()> {
    let ttl = nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::Ipv4Ttl)
        .map_err(|e| Error::sys("getsockopt(IP_TTL)", e))?;
    std::hint::black_box(ttl);
    Ok(())
}

/// The reference file, open for preads.
pub fn proc_reference() -> Result<OwnedFd> {
    open_path(PROC_REFERENCE, nix::fcntl::OFlag::O_RDONLY)
}

/// Nanoseconds per message for `count` datagrams of `len` bytes sent by one thread through a
/// UNIX socket pair and received by another (a netlink burst is a kernel worker sending to a
/// reader): the time from the first send to the last receive.
pub fn unix_burst(count: u32, len: usize) -> Result<f64> {
    let (tx, rx) = pair()?;
    let started = Instant::now();
    let sender = std::thread::spawn(move || -> Result<()> {
        let msg = vec![0x5au8; len];
        for _ in 0..count {
            send(tx.as_raw_fd(), &msg, MsgFlags::empty()).map_err(|e| Error::sys("send", e))?;
        }
        Ok(())
    });
    let mut buf = vec![0u8; len + 64];
    for _ in 0..count {
        recv(rx.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| Error::sys("recv", e))?;
    }
    let elapsed = started.elapsed();
    sender
        .join()
        .map_err(|_| Error::msg("unix burst", "sender panicked"))??;
    Ok(elapsed.as_nanos() as f64 / f64::from(count.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_brings_the_message_back() {
        let (a, b) = pair().unwrap();
        let mut buf = [0u8; 256];
        unix_round_trip(&a, &b, &[7u8; 80], &mut buf).unwrap();
        assert_eq!(&buf[..80], &[7u8; 80]);
    }

    #[test]
    fn a_burst_receives_every_message() {
        // More than a UNIX datagram queue holds (max_dgram_qlen): the sender must block.
        let ns = unix_burst(2000, 80).unwrap();
        assert!(ns > 0.0 && ns.is_finite(), "{ns}");
    }

    #[test]
    fn ip_ttl_is_answered_by_the_ip_layer() {
        let fd = crate::sockopt::open(crate::sockopt::SockKind::Udp).unwrap();
        ip_ttl(&fd).unwrap();
    }
}
