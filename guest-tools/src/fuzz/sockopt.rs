//! Fuzzing the sockopt channel: setsockopt/getsockopt with fuzzed optnames, lengths and
//! pointers, on UDP and raw sockets.

use crate::abi;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::sockopt;
use std::os::fd::{AsRawFd, OwnedFd};

use super::arena::{gen_ptr, Arena, LenPtr, Ptr};
use super::rng::{gen_len, Rng};
use super::{errno, internal_errno, violation, Channel, Config};

/// Optnames are `base + which`, which in -2..=4 (kchan owns 0 and 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockOp {
    Set {
        raw: bool,
        which: i32,
        data: Vec<u8>,
        optlen: i32,
        ptr: Ptr,
    },
    Get {
        raw: bool,
        which: i32,
        optlen: i32,
        ptr: Ptr,
        lenptr: LenPtr,
    },
    /// Close and reopen the socket.
    Reopen { raw: bool },
}

fn gen_negative(rng: &mut Rng) -> i32 {
    match rng.below(4) {
        0 => -1,
        1 => i32::MIN,
        2 => -(rng.range(2, 4096) as i32),
        _ => -(rng.range(1, i32::MAX as u64) as i32),
    }
}

pub fn gen_sockopt(rng: &mut Rng) -> SockOp {
    let raw = rng.percent(30);
    if rng.one_in(100) {
        return SockOp::Reopen { raw };
    }
    let which = if rng.percent(60) {
        rng.below(2) as i32
    } else {
        rng.below(7) as i32 - 2
    };
    if rng.percent(50) {
        let len = gen_len(rng, 4096);
        let data = rng.bytes(len);
        let optlen = if rng.one_in(25) {
            gen_negative(rng)
        } else {
            len as i32
        };
        let ptr = gen_ptr(rng, len);
        SockOp::Set {
            raw,
            which,
            data,
            optlen,
            ptr,
        }
    } else {
        let optlen = match rng.below(20) {
            0 | 1 => gen_negative(rng),
            2 => rng.pick(&[i32::MAX, 0x7fff_f000, 1 << 20, 65536]),
            3 | 4 => rng.range(0, 40) as i32 * 2 + 1,
            _ => gen_len(rng, 4096) as i32,
        };
        let ptr = gen_ptr(rng, optlen.max(0) as usize);
        let lenptr = match rng.below(100) {
            0..=89 => LenPtr::Valid,
            90..=92 => LenPtr::Straddle(rng.range(1, 3) as usize),
            93..=95 => LenPtr::Null,
            96..=97 => LenPtr::Guard,
            _ => LenPtr::Kernel,
        };
        SockOp::Get {
            raw,
            which,
            optlen,
            ptr,
            lenptr,
        }
    }
}

pub(super) struct SockoptFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    udp: Option<OwnedFd>,
    raw: Option<OwnedFd>,
}

impl<'a> SockoptFuzzer<'a> {
    pub(super) fn new(cfg: &'a Config) -> Result<Self> {
        Ok(SockoptFuzzer {
            cfg,
            arena: Arena::new()?,
            udp: None,
            raw: None,
        })
    }

    /// The socket of that kind, opened if needed (None: socket() failed).
    fn sock(&mut self, raw: bool) -> Option<i32> {
        let slot = if raw { &mut self.raw } else { &mut self.udp };
        if slot.is_none() {
            let kind = if raw {
                sockopt::SockKind::Raw
            } else {
                sockopt::SockKind::Udp
            };
            *slot = sockopt::open(kind).ok();
        }
        slot.as_ref().map(|fd| fd.as_raw_fd())
    }

    pub(super) fn step(&mut self, op: &SockOp) -> Result<bool> {
        let raw = match *op {
            SockOp::Reopen { raw } => {
                *(if raw { &mut self.raw } else { &mut self.udp }) = None;
                return Ok(self.sock(raw).is_some());
            }
            SockOp::Set { raw, .. } | SockOp::Get { raw, .. } => raw,
        };
        let Some(fd) = self.sock(raw) else {
            return Ok(false);
        };
        match *op {
            SockOp::Set {
                which,
                ref data,
                optlen,
                ptr,
                ..
            } => self.set(fd, which, data, optlen, ptr),
            SockOp::Get {
                which,
                optlen,
                ptr,
                lenptr,
                ..
            } => self.get(fd, which, optlen, ptr, lenptr),
            SockOp::Reopen { .. } => unreachable!("handled above"),
        }
    }

    fn set(&mut self, fd: i32, which: i32, data: &[u8], optlen: i32, ptr: Ptr) -> Result<bool> {
        self.arena.put(ptr, data);
        let (addr, _) = self.arena.resolve(ptr);
        let optname = self.cfg.base.wrapping_add(which);
        // SAFETY: the kernel only reads from addr (arena or invalid on purpose).
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                optname,
                addr as *const libc::c_void,
                optlen as libc::socklen_t,
            )
        };
        if r != 0 {
            return self.refused();
        }
        if self.cfg.strict && which == abi::SOCKOPT_MSG && optlen as usize > abi::SOCKOPT_MAX_MSG {
            return Err(violation(
                Channel::Sockopt,
                format!(
                    "setsockopt({optname}) accepted {optlen} bytes (at most {} allowed)",
                    abi::SOCKOPT_MAX_MSG
                ),
            ));
        }
        Ok(true)
    }

    fn get(&mut self, fd: i32, which: i32, optlen: i32, ptr: Ptr, lenptr: LenPtr) -> Result<bool> {
        let (addr, room) = self.arena.resolve(ptr);
        let (laddr, lroom) = self.arena.resolve_len(lenptr);
        self.arena
            .put_addr(laddr, lroom, &optlen.to_ne_bytes()[..lroom.min(4)]);
        let optname = self.cfg.base.wrapping_add(which);
        // SAFETY: the kernel writes at most optlen bytes at addr and 4 at laddr: both inside
        // the arena (faulting on its guard page) or invalid on purpose.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_IP,
                optname,
                addr as *mut libc::c_void,
                laddr as *mut libc::socklen_t,
            )
        };
        if r != 0 {
            return self.refused();
        }
        if self.cfg.strict && lenptr == LenPtr::Valid {
            self.check_get(optname, which, optlen, ptr, room)?;
        }
        Ok(true)
    }

    /// A failed call: counted, unless the descriptor itself was bad (a bug here).
    fn refused(&self) -> Result<bool> {
        let e = errno();
        if internal_errno(e) {
            return Err(Error::raw("sockopt", e));
        }
        Ok(false)
    }

    /// What a successful getsockopt returned must fit the buffer and, for kchan's optnames,
    /// the ABI.
    fn check_get(
        &self,
        optname: i32,
        which: i32,
        optlen: i32,
        ptr: Ptr,
        room: usize,
    ) -> Result<()> {
        let ret = self.arena.get_len();
        let bad = |what: String| Err(violation(Channel::Sockopt, what));
        if optlen >= 0 && !(0..=optlen).contains(&ret) {
            return bad(format!(
                "getsockopt({optname}) returned optlen {ret} for a {optlen}-byte buffer"
            ));
        }
        let ours = which == abi::SOCKOPT_MSG || which == abi::SOCKOPT_LAST;
        if ours && ret as usize > abi::SOCKOPT_MAX_MSG {
            return bad(format!(
                "getsockopt({optname}) returned optlen {ret} (messages have at most {} bytes)",
                abi::SOCKOPT_MAX_MSG
            ));
        }
        if which == abi::SOCKOPT_MSG && optlen >= 0 {
            let want = (optlen as usize).min(abi::SOCKOPT_KERNEL_MSG.len());
            if room >= want {
                let got = self.arena.get(ptr, ret.max(0) as usize);
                if ret as usize != want || got != abi::SOCKOPT_KERNEL_MSG[..want] {
                    return bad(format!(
                        "getsockopt({optname}) with a {optlen}-byte buffer returned {ret} bytes \"{}\", expected {want} bytes \"{}\"",
                        escape(&got),
                        escape(&abi::SOCKOPT_KERNEL_MSG[..want])
                    ));
                }
            }
        }
        Ok(())
    }
}
