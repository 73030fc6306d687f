//! The user memory fuzzed pointers point into: read-write pages and a guard page.

use crate::error::{Error, Result};
use crate::mmap::{page_size, Mapping};

use super::rng::Rng;

/// Read-write bytes of the arena; the guard page follows.
pub const ARENA_SIZE: usize = 128 * 1024;

/// Where a getsockopt optlen is kept (well away from the optval buffers at either end).
const LEN_AT: usize = 96 * 1024;

/// A kernel address (the x86-64 direct map): access_ok() refuses it.
const KERNEL_ADDR: usize = 0xffff_8880_0000_0000;

/// A user pointer as generated: resolved against the arena at execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ptr {
    /// The start of the arena: ARENA_SIZE accessible bytes.
    Start,
    /// This many bytes before the guard page: a longer access faults part-way.
    Tail(usize),
    Null,
    One,
    /// Inside the PROT_NONE guard page.
    Guard,
    Kernel,
}

/// An optlen pointer for getsockopt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LenPtr {
    Valid,
    /// An int starting this many (1..=3) bytes before the guard page.
    Straddle(usize),
    Null,
    Guard,
    Kernel,
}

/// Read-write pages followed by a PROT_NONE guard page. Only ever accessed through raw copies
/// at checked offsets (no Rust reference into it lives across a system call).
pub struct Arena {
    map: Mapping,
}

impl Arena {
    pub fn new() -> Result<Arena> {
        let ps = page_size();
        let map = Mapping::raw(
            0,
            ARENA_SIZE + ps,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
        .map_err(|e| Error::raw("mmap arena", e))?;
        map.protect(ARENA_SIZE, ps, libc::PROT_NONE)
            .map_err(|e| Error::raw("mprotect arena", e))?;
        Ok(Arena { map })
    }

    /// The address `p` stands for and how many bytes from it are accessible.
    pub fn resolve(&self, p: Ptr) -> (usize, usize) {
        let base = self.map.addr();
        match p {
            Ptr::Start => (base, ARENA_SIZE),
            Ptr::Tail(room) => {
                let room = room.min(ARENA_SIZE);
                (base + ARENA_SIZE - room, room)
            }
            Ptr::Null => (0, 0),
            Ptr::One => (1, 0),
            Ptr::Guard => (base + ARENA_SIZE, 0),
            Ptr::Kernel => (KERNEL_ADDR, 0),
        }
    }

    pub(super) fn resolve_len(&self, p: LenPtr) -> (usize, usize) {
        let base = self.map.addr();
        match p {
            LenPtr::Valid => (base + LEN_AT, 4),
            LenPtr::Straddle(k) => {
                let k = k.clamp(1, 3);
                (base + ARENA_SIZE - k, k)
            }
            LenPtr::Null => (0, 0),
            LenPtr::Guard => (base + ARENA_SIZE, 0),
            LenPtr::Kernel => (KERNEL_ADDR, 0),
        }
    }

    /// Copy what fits of `data` to the accessible bytes at `addr` (an address from `resolve`).
    pub(super) fn put_addr(&mut self, addr: usize, room: usize, data: &[u8]) {
        let n = data.len().min(room);
        if n > 0 {
            // SAFETY: [addr, addr + n) lies inside the read-write part (resolve's `room`).
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, n) };
        }
    }

    /// Copy `data` to where `p` points, as much of it as is accessible.
    pub fn put(&mut self, p: Ptr, data: &[u8]) {
        let (addr, room) = self.resolve(p);
        self.put_addr(addr, room, data);
    }

    /// Up to `n` bytes from where `p` points (fewer if less is accessible).
    pub fn get(&self, p: Ptr, n: usize) -> Vec<u8> {
        let (addr, room) = self.resolve(p);
        let n = n.min(room);
        let mut v = vec![0u8; n];
        if n > 0 {
            // SAFETY: [addr, addr + n) lies inside the read-write part.
            unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, v.as_mut_ptr(), n) };
        }
        v
    }

    pub(super) fn get_len(&self) -> i32 {
        let mut b = [0u8; 4];
        // Cannot fail: LEN_AT + 4 <= ARENA_SIZE.
        let _ = self.map.read(LEN_AT, &mut b);
        i32::from_ne_bytes(b)
    }
}

/// A pointer for an access of `len` bytes: mostly valid, sometimes cut short or invalid.
pub(super) fn gen_ptr(rng: &mut Rng, len: usize) -> Ptr {
    match rng.below(100) {
        0..=74 => Ptr::Start,
        75..=82 => Ptr::Tail(len.min(ARENA_SIZE)),
        83..=87 => Ptr::Tail(rng.below(len.min(ARENA_SIZE) as u64) as usize),
        88..=90 => Ptr::Null,
        91..=93 => Ptr::One,
        94..=96 => Ptr::Guard,
        _ => Ptr::Kernel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::errno;
    use crate::procfs::open_path;
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;

    #[test]
    fn arena_pointers() {
        let mut a = Arena::new().unwrap();
        let (start, room) = a.resolve(Ptr::Start);
        assert_eq!(room, ARENA_SIZE);
        let (tail, room) = a.resolve(Ptr::Tail(10));
        assert_eq!((tail - start, room), (ARENA_SIZE - 10, 10));
        assert_eq!(a.resolve(Ptr::Tail(usize::MAX)).1, ARENA_SIZE);
        a.put(Ptr::Tail(3), b"abcdef");
        assert_eq!(a.get(Ptr::Tail(3), 100), b"abc");
        a.put(Ptr::Guard, b"x");
        a.put(Ptr::Null, b"x");
        assert!(a.get(Ptr::Kernel, 4).is_empty());
        // The guard page really faults: the kernel says EFAULT.
        let (g, _) = a.resolve(Ptr::Guard);
        let fd = open_path("/dev/zero", OFlag::O_RDONLY).unwrap();
        // SAFETY: reading into the guard page; the kernel refuses.
        let r = unsafe { libc::read(fd.as_raw_fd(), g as *mut libc::c_void, 1) };
        assert_eq!((r, errno()), (-1, libc::EFAULT));
    }
}
