//! The sockopt channel: setsockopt/getsockopt on IPPROTO_IP with optnames `base + SOCKOPT_MSG`
//! / `base + SOCKOPT_LAST`, served by the module's nf_sockopt_ops.

use crate::abi;
use crate::args::{parse_buflen, MsgArg};
use crate::error::{Error, Result};
use crate::escape::{escape, until_nul};
use crate::output;
use clap::{Args, Subcommand};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[derive(Args, Debug)]
pub struct SockoptCmd {
    /// Use SOCK_RAW/IPPROTO_RAW like the seed (needs CAP_NET_RAW) instead of a UDP socket
    #[arg(long, global = true)]
    pub raw: bool,
    #[command(subcommand)]
    pub op: SockoptOp,
}

#[derive(Subcommand, Debug)]
pub enum SockoptOp {
    /// setsockopt(base+SOCKOPT_MSG, MSG)
    Set {
        #[command(flatten)]
        msg: MsgArg,
        /// Append a NUL (the seed sent UMSG with its NUL)
        #[arg(long)]
        nul: bool,
    },
    /// getsockopt(base+SOCKOPT_MSG) with a LEN-byte buffer: the kernel's message
    Get {
        #[arg(long, default_value_t = 64, value_parser = parse_buflen)]
        len: usize,
    },
    /// getsockopt(base+SOCKOPT_LAST): the last message set
    Last {
        #[arg(long, default_value_t = 64, value_parser = parse_buflen)]
        len: usize,
    },
    /// The seed's imp1_u: SOCK_RAW, set UMSG (26 bytes), get 64 bytes, print kmsg
    Seed,
}

/// `kchanctl sockopt ...`; `base` is the global --base.
pub fn run(cmd: SockoptCmd, base: i32) -> Result<()> {
    let kind = if cmd.raw {
        SockKind::Raw
    } else {
        SockKind::Udp
    };
    match cmd.op {
        SockoptOp::Set { msg, nul } => cmd_set(kind, base, msg.bytes()?, nul),
        SockoptOp::Get { len } => cmd_get(kind, base, len),
        SockoptOp::Last { len } => cmd_last(kind, base, len),
        SockoptOp::Seed => cmd_seed(base),
    }
}

/// Which socket carries the options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockKind {
    /// AF_INET SOCK_DGRAM: any user can open it.
    Udp,
    /// AF_INET SOCK_RAW IPPROTO_RAW, as the seed's user program (needs CAP_NET_RAW).
    Raw,
}

pub fn open(kind: SockKind) -> Result<OwnedFd> {
    let (ty, proto) = match kind {
        SockKind::Udp => (libc::SOCK_DGRAM, 0),
        SockKind::Raw => (libc::SOCK_RAW, libc::IPPROTO_RAW),
    };
    // SAFETY: plain socket(2) call; the returned fd is owned by nobody else.
    let fd = unsafe { libc::socket(libc::AF_INET, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(Error::last("socket"));
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt(fd, IPPROTO_IP, optname, bytes); nix has no wrapper for arbitrary optnames.
pub fn set(fd: &OwnedFd, optname: i32, bytes: &[u8]) -> Result<()> {
    let len = libc::socklen_t::try_from(bytes.len())
        .map_err(|_| Error::raw("setsockopt", libc::EINVAL))?;
    // SAFETY: the pointer and length describe `bytes`, which outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            optname,
            bytes.as_ptr().cast(),
            len,
        )
    };
    if r < 0 {
        return Err(Error::last("setsockopt"));
    }
    Ok(())
}

/// getsockopt(fd, IPPROTO_IP, optname) into a `len`-byte buffer. Returns the buffer (truncated
/// to what fits) and the optlen the kernel returned (which may be larger than the buffer).
pub fn get(fd: &OwnedFd, optname: i32, len: usize) -> Result<(Vec<u8>, usize)> {
    let mut buf = vec![0u8; len];
    let mut optlen =
        libc::socklen_t::try_from(len).map_err(|_| Error::raw("getsockopt", libc::EINVAL))?;
    // SAFETY: buf has `len` writable bytes, optlen says so.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            optname,
            buf.as_mut_ptr().cast(),
            &mut optlen,
        )
    };
    if r < 0 {
        return Err(Error::last("getsockopt"));
    }
    let returned = optlen as usize;
    buf.truncate(returned.min(len));
    Ok((buf, returned))
}

/// The `kmsg:` text: bytes up to the first NUL, one trailing newline removed, escaped.
pub fn kmsg_text(bytes: &[u8]) -> String {
    let t = until_nul(bytes);
    let t = t.strip_suffix(b"\n").unwrap_or(t);
    escape(t)
}

/// `sockopt set`: prints `sockopt set: <N> bytes`.
fn cmd_set(kind: SockKind, base: i32, mut msg: Vec<u8>, nul: bool) -> Result<()> {
    if nul {
        msg.push(0);
    }
    let fd = open(kind)?;
    set(&fd, optname(base, abi::SOCKOPT_MSG)?, &msg)?;
    output::line(&format!("sockopt set: {} bytes", msg.len()))
}

/// `sockopt get`: prints `kmsg: <text>` and `len: <optlen>`.
fn cmd_get(kind: SockKind, base: i32, len: usize) -> Result<()> {
    let fd = open(kind)?;
    let (buf, optlen) = get(&fd, optname(base, abi::SOCKOPT_MSG)?, len)?;
    output::line(&format!("kmsg: {}", kmsg_text(&buf)))?;
    output::line(&format!("len: {optlen}"))
}

/// `sockopt last`: prints `last: <all returned bytes, escaped>` and `len: <optlen>`.
fn cmd_last(kind: SockKind, base: i32, len: usize) -> Result<()> {
    let fd = open(kind)?;
    let (buf, optlen) = get(&fd, optname(base, abi::SOCKOPT_LAST)?, len)?;
    output::line(&format!("last: {}", escape(&buf)))?;
    output::line(&format!("len: {optlen}"))
}

/// `sockopt seed`: the seed's imp1_u: SOCK_RAW, set UMSG (26 bytes with its NUL), get 64 bytes,
/// print `kmsg: a message from kernel`. Unlike the seed, failures are reported.
fn cmd_seed(base: i32) -> Result<()> {
    let fd = open(SockKind::Raw)?;
    set(&fd, optname(base, abi::SOCKOPT_MSG)?, abi::SOCKOPT_USER_MSG)?;
    let (buf, _) = get(&fd, optname(base, abi::SOCKOPT_MSG)?, SEED_KMSG_BUF)?;
    output::line(&format!("kmsg: {}", kmsg_text(&buf)))
}

/// The seed's `char kmsg[64]`.
pub const SEED_KMSG_BUF: usize = 64;

pub fn optname(base: i32, which: i32) -> Result<i32> {
    base.checked_add(which)
        .ok_or_else(|| Error::msg("sockopt", format!("optname {base} + {which} overflows")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_constants() {
        assert_eq!(abi::SOCKOPT_KERNEL_MSG.len(), 23); // KMSG_LEN
        assert_eq!(abi::SOCKOPT_USER_MSG.len(), 26); // UMSG_LEN
        assert_eq!(abi::SOCKOPT_BASE_DEFAULT, 128);
        assert!(abi::SOCKOPT_USER_MSG.len() <= abi::SOCKOPT_MAX_MSG);
    }

    #[test]
    fn kmsg_format() {
        assert_eq!(kmsg_text(abi::SOCKOPT_KERNEL_MSG), "a message from kernel");
        let mut seedbuf = [0u8; SEED_KMSG_BUF];
        seedbuf[..23].copy_from_slice(abi::SOCKOPT_KERNEL_MSG);
        assert_eq!(kmsg_text(&seedbuf), "a message from kernel");
        assert_eq!(kmsg_text(b"two\n\n"), "two\\x0a");
        assert_eq!(kmsg_text(b"\xff"), "\\xff");
    }

    #[test]
    fn optnames() {
        assert_eq!(optname(128, abi::SOCKOPT_LAST).unwrap(), 129);
        assert!(optname(i32::MAX, 1).is_err());
    }
}
