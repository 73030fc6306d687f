//! Fuzzing the procfs channel: reads, writes and seeks of /proc/kchan/buffer at fuzzed
//! offsets, lengths and pointers, and /proc/kchan/stats read in odd chunks.

use crate::abi;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::procfs::open_path;
use nix::fcntl::OFlag;
use std::os::fd::{AsRawFd, OwnedFd};

use super::arena::{gen_ptr, Arena, Ptr};
use super::rng::{gen_len, Rng};
use super::{errno, internal_errno, violation, Channel, Config};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcOp {
    /// pwrite(2) of /proc/kchan/buffer.
    Write {
        offset: u64,
        data: Vec<u8>,
        ptr: Ptr,
    },
    /// pread(2) of /proc/kchan/buffer.
    Read { offset: u64, len: usize, ptr: Ptr },
    /// write(2) at the descriptor's position.
    WriteFd { data: Vec<u8>, ptr: Ptr },
    /// read(2) at the descriptor's position.
    ReadFd { len: usize, ptr: Ptr },
    /// lseek(2) of the descriptor.
    Seek { offset: i64, whence: i32 },
    /// Read /proc/kchan/stats in `chunk`-byte preads and check its format.
    Stats { chunk: usize },
    /// Close and reopen the buffer's descriptor.
    Reopen,
}

/// A file offset: mostly 0..=300, sometimes huge or negative as an off_t.
fn gen_offset(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=39 => 0,
        40..=79 => rng.range(0, 300),
        80..=89 => rng.pick(&[1, 127, 128, 129, 255, 256]),
        90..=94 => rng.pick(&[1 << 31, 1 << 40, i64::MAX as u64]),
        _ => rng.next_u64() | 1 << 63,
    }
}

pub fn gen_proc(rng: &mut Rng) -> ProcOp {
    let data = |rng: &mut Rng| {
        let n = gen_len(rng, 300);
        rng.bytes(n)
    };
    match rng.below(100) {
        0..=29 => {
            let offset = gen_offset(rng);
            let data = data(rng);
            let ptr = gen_ptr(rng, data.len());
            ProcOp::Write { offset, data, ptr }
        }
        30..=59 => {
            let offset = gen_offset(rng);
            let len = gen_len(rng, 300);
            let ptr = gen_ptr(rng, len);
            ProcOp::Read { offset, len, ptr }
        }
        60..=69 => {
            let data = data(rng);
            let ptr = gen_ptr(rng, data.len());
            ProcOp::WriteFd { data, ptr }
        }
        70..=79 => {
            let len = gen_len(rng, 300);
            let ptr = gen_ptr(rng, len);
            ProcOp::ReadFd { len, ptr }
        }
        80..=87 => ProcOp::Seek {
            offset: gen_offset(rng) as i64,
            whence: rng.pick(&[libc::SEEK_SET, libc::SEEK_CUR, libc::SEEK_END, 3, 42]),
        },
        88..=95 => ProcOp::Stats {
            chunk: rng.pick(&[1, 7, 64, 4096]),
        },
        _ => ProcOp::Reopen,
    }
}

/// /proc/kchan/stats: `name: value` lines, names lowercase, values decimal.
pub fn check_stats(text: &[u8]) -> std::result::Result<(), String> {
    let s = std::str::from_utf8(text).map_err(|_| "stats are not text".to_string())?;
    if !s.ends_with('\n') {
        return Err(format!(
            "stats do not end with a newline: \"{}\"",
            escape(text)
        ));
    }
    for line in s.lines() {
        let ok = line.split_once(": ").is_some_and(|(k, v)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit())
        });
        if !ok {
            return Err(format!("stats line \"{}\"", escape(line.as_bytes())));
        }
    }
    Ok(())
}

pub(super) struct ProcFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    fd: Option<OwnedFd>,
}

impl<'a> ProcFuzzer<'a> {
    pub(super) fn new(cfg: &'a Config) -> Result<Self> {
        Ok(ProcFuzzer {
            cfg,
            arena: Arena::new()?,
            fd: None,
        })
    }

    fn fd(&mut self) -> Option<i32> {
        if self.fd.is_none() {
            self.fd = open_path(&self.cfg.buffer, OFlag::O_RDWR).ok();
        }
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    pub(super) fn step(&mut self, op: &ProcOp) -> Result<bool> {
        if let ProcOp::Stats { chunk } = *op {
            return self.stats(chunk);
        }
        if *op == ProcOp::Reopen {
            self.fd = None;
            return Ok(self.fd().is_some());
        }
        let Some(fd) = self.fd() else {
            return Ok(false);
        };
        let r: isize = match *op {
            ProcOp::Write {
                offset,
                ref data,
                ptr,
            } => self.write(fd, Some(offset), data, ptr)?,
            ProcOp::WriteFd { ref data, ptr } => self.write(fd, None, data, ptr)?,
            ProcOp::Read { offset, len, ptr } => self.read(fd, Some(offset), len, ptr)?,
            ProcOp::ReadFd { len, ptr } => self.read(fd, None, len, ptr)?,
            // SAFETY: plain lseek(2).
            ProcOp::Seek { offset, whence } => unsafe { libc::lseek(fd, offset, whence) as isize },
            ProcOp::Stats { .. } | ProcOp::Reopen => unreachable!("handled above"),
        };
        if r < 0 {
            let e = errno();
            if internal_errno(e) {
                return Err(Error::raw("proc", e));
            }
            // A stale descriptor (the module was reloaded) stays stale: start afresh.
            if e != libc::EINVAL && e != libc::EFAULT {
                self.fd = None;
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// pwrite(2) at `offset`, or write(2) at the descriptor's position.
    fn write(&mut self, fd: i32, offset: Option<u64>, data: &[u8], ptr: Ptr) -> Result<isize> {
        let cap = abi::PROC_BUFFER_CAPACITY;
        self.arena.put(ptr, data);
        let (addr, _) = self.arena.resolve(ptr);
        let addr = addr as *const libc::c_void;
        // SAFETY: the kernel only reads data.len() bytes at addr.
        let r = unsafe {
            match offset {
                Some(o) => libc::pwrite(fd, addr, data.len(), o as libc::off_t),
                None => libc::write(fd, addr, data.len()),
            }
        };
        if r >= 0 && self.cfg.strict && (r as usize > data.len() || data.len() > cap) {
            return Err(violation(
                Channel::Proc,
                format!(
                    "a {}-byte write was accepted as {r} bytes (capacity {cap})",
                    data.len()
                ),
            ));
        }
        Ok(r)
    }

    /// pread(2) at `offset`, or read(2) at the descriptor's position.
    fn read(&mut self, fd: i32, offset: Option<u64>, len: usize, ptr: Ptr) -> Result<isize> {
        let cap = abi::PROC_BUFFER_CAPACITY as u64;
        let (addr, _) = self.arena.resolve(ptr);
        let addr = addr as *mut libc::c_void;
        // SAFETY: the kernel writes at most len bytes at addr: inside the arena (faulting on
        // the guard page) or invalid on purpose.
        let r = unsafe {
            match offset {
                Some(o) => libc::pread(fd, addr, len, o as libc::off_t),
                None => libc::read(fd, addr, len),
            }
        };
        let pos = offset.unwrap_or(0);
        if r > 0 && self.cfg.strict && (r as usize > len || pos.saturating_add(r as u64) > cap) {
            return Err(violation(
                Channel::Proc,
                format!("a {len}-byte read at offset {pos} returned {r} bytes (capacity {cap})"),
            ));
        }
        Ok(r)
    }

    fn stats(&mut self, chunk: usize) -> Result<bool> {
        let Ok(fd) = open_path(&self.cfg.stats, OFlag::O_RDONLY) else {
            return Ok(false);
        };
        let Ok(text) = crate::procfs::read_all(&fd, 0, chunk, Some(64 * 1024)) else {
            return Ok(false);
        };
        if self.cfg.strict {
            check_stats(&text).map_err(|w| violation(Channel::Proc, w))?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_format() {
        check_stats(b"netlink_rx: 5\nproc_reads: 0\n").unwrap();
        assert!(check_stats(b"netlink_rx: 5").is_err());
        assert!(check_stats(b"netlink_rx 5\n").is_err());
        assert!(check_stats(b"netlink_rx: x\n").is_err());
        assert!(check_stats(b"\xff: 1\n").is_err());
    }
}
