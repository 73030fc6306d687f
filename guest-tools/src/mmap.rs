//! The mmap channel: /proc/kchan/mmap mapped MAP_SHARED (the module's own mmap, not /dev/mem)
//! or read with read(2); /proc/memshare/phymem_size gives the size.

use crate::abi;
use crate::args::{parse_buflen, parse_u64, parse_usize, MsgArg};
use crate::error::{Error, Result};
use crate::escape::{escape, until_nul};
use crate::output;
use crate::procfs::{open_path, read_all};
use clap::{Args, Subcommand};
use nix::fcntl::OFlag;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct MmapCmd {
    #[command(subcommand)]
    pub op: MmapOp,
}

#[derive(Subcommand, Debug)]
pub enum MmapOp {
    /// Map the pages holding [OFFSET, OFFSET+len] MAP_SHARED and copy MSG plus a NUL there
    Write {
        #[command(flatten)]
        msg: MsgArg,
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        offset: u64,
        /// Do not append the NUL
        #[arg(long)]
        no_nul: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Read up to LEN bytes at OFFSET with pread(2) (--map: through a mapping)
    Read {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        offset: u64,
        #[arg(long, default_value = "4096", value_parser = parse_buflen)]
        len: usize,
        #[arg(long)]
        map: bool,
        /// With --map: seconds to keep the pages mapped (file closed) before reading them
        #[arg(long, default_value = "0", requires = "map")]
        hold: u64,
        /// With --map: madvise(MADV_DONTNEED) the pages before reading, so the read faults
        /// them in again
        #[arg(long, requires = "map")]
        dontneed: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Only try mmap(OFFSET, LEN) and report
    Map {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        offset: u64,
        #[arg(long, value_parser = parse_usize)]
        len: usize,
        /// MAP_PRIVATE instead of MAP_SHARED
        #[arg(long)]
        private: bool,
        #[arg(long, value_enum, default_value_t = Prot::Rw)]
        prot: Prot,
        /// Access one byte of every page (a failing fault kills kchanctl with SIGBUS)
        #[arg(long)]
        touch: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Write a deterministic per-page pattern over the whole area (size from phymem_size)
    Fill {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        seed: u64,
        /// Area size in bytes instead of /proc/memshare/phymem_size
        #[arg(long, value_parser = parse_u64)]
        size: Option<u64>,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Check the pattern written by fill (through a mapping, or read(2) with --via-read)
    Verify {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        seed: u64,
        #[arg(long, value_parser = parse_u64)]
        size: Option<u64>,
        #[arg(long)]
        via_read: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
}

/// `kchanctl mmap ...`.
pub fn run(cmd: MmapCmd) -> Result<()> {
    match cmd.op {
        MmapOp::Write {
            msg,
            offset,
            no_nul,
            path,
        } => cmd_write(&path, &msg.bytes()?, offset, !no_nul),
        MmapOp::Read {
            offset,
            len,
            map,
            hold,
            dontneed,
            path,
        } => cmd_read(
            &path,
            offset,
            len,
            ReadVia {
                map,
                hold: Duration::from_secs(hold),
                dontneed,
            },
        ),
        MmapOp::Map {
            offset,
            len,
            private,
            prot,
            touch,
            path,
        } => cmd_map(&path, offset, len, private, prot, touch),
        MmapOp::Fill { seed, size, path } => cmd_fill(&path, seed, size),
        MmapOp::Verify {
            seed,
            size,
            via_read,
            path,
        } => cmd_verify(&path, seed, size, via_read),
    }
}

/// A mapping, unmapped on drop: what every mapping kchanctl keeps (the commands, bench and
/// the fuzzer) is held by. libc::mmap directly: nix's wrapper takes a NonZeroUsize length,
/// and `mmap map --len 0` must reach the kernel.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    pub fn new(fd: &OwnedFd, offset: u64, len: usize, prot: i32, flags: i32) -> Result<Self> {
        let off = libc::off_t::try_from(offset).map_err(|_| Error::raw("mmap", libc::EINVAL))?;
        Mapping::raw(0, len, prot, flags, fd.as_raw_fd(), off).map_err(|e| Error::raw("mmap", e))
    }

    /// mmap(2) with the arguments as they are (an address hint, any descriptor, a negative
    /// offset: the fuzzer's), Err the errno. MAP_FIXED is refused with EINVAL, as it could
    /// replace memory that is not ours (MAP_FIXED_NOREPLACE cannot).
    pub fn raw(
        addr: usize,
        len: usize,
        prot: i32,
        flags: i32,
        fd: RawFd,
        offset: libc::off_t,
    ) -> std::result::Result<Self, i32> {
        if flags & libc::MAP_FIXED != 0 {
            return Err(libc::EINVAL);
        }
        // SAFETY: without MAP_FIXED the kernel only maps where nothing is mapped.
        let p = unsafe { libc::mmap(addr as *mut libc::c_void, len, prot, flags, fd, offset) };
        if p == libc::MAP_FAILED {
            return Err(nix::errno::Errno::last_raw());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    /// mprotect(2) of [at, at + len) (bounds-checked), Err the errno.
    pub fn protect(&self, at: usize, len: usize, prot: i32) -> std::result::Result<(), i32> {
        if at.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(libc::EINVAL);
        }
        // SAFETY: a range of this mapping, which no Rust reference points into.
        if unsafe { libc::mprotect(self.ptr.add(at).cast(), len, prot) } != 0 {
            return Err(nix::errno::Errno::last_raw());
        }
        Ok(())
    }

    /// Copy `src` to `at` (bounds-checked).
    pub fn write(&mut self, at: usize, src: &[u8]) -> Result<()> {
        at.checked_add(src.len())
            .filter(|&e| e <= self.len)
            .ok_or_else(|| Error::msg("mmap", "write beyond the mapping"))?;
        // SAFETY: [at, at+len) is inside the live mapping; src does not overlap it.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len()) };
        Ok(())
    }

    /// madvise(MADV_DONTNEED): drop the pages from this mapping (the next access faults).
    pub fn dontneed(&self) -> Result<()> {
        // SAFETY: the whole live mapping; DONTNEED only unmaps its pages.
        let r = unsafe { libc::madvise(self.ptr.cast(), self.len, libc::MADV_DONTNEED) };
        if r != 0 {
            return Err(Error::last("madvise"));
        }
        Ok(())
    }

    /// Copy `dst.len()` bytes from `at` (bounds-checked).
    pub fn read(&self, at: usize, dst: &mut [u8]) -> Result<()> {
        at.checked_add(dst.len())
            .filter(|&e| e <= self.len)
            .ok_or_else(|| Error::msg("mmap", "read beyond the mapping"))?;
        // SAFETY: [at, at+len) is inside the live mapping; dst does not overlap it.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(at), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The shared area's size in bytes, from /proc/memshare/phymem_size ("<bytes>\n").
pub fn shared_size() -> Result<u64> {
    let op = format!("read {}", abi::MEMSHARE_SIZE);
    let fd = open_path(abi::MEMSHARE_SIZE, OFlag::O_RDONLY)?;
    let text = read_all(&fd, 0, 64, Some(4096))?;
    let s = std::str::from_utf8(&text).map_err(|_| Error::msg(op.as_str(), "not text"))?;
    s.trim().parse::<u64>().map_err(|_| {
        Error::msg(
            op.as_str(),
            format!("not a size: {:?}", escape(s.as_bytes())),
        )
    })
}

/// `mmap write`: map the page range holding [offset, offset+len(+1)), copy, unmap.
fn cmd_write(path: &str, data: &[u8], offset: u64, nul: bool) -> Result<()> {
    let ps = page_size() as u64;
    let map_off = offset - offset % ps;
    let delta = (offset - map_off) as usize;
    let mut bytes = data.to_vec();
    if nul {
        bytes.push(0);
    }
    let len = delta
        .checked_add(bytes.len())
        .ok_or_else(|| Error::raw("mmap", libc::EINVAL))?;
    let fd = open_path(path, OFlag::O_RDWR)?;
    let mut m = Mapping::new(
        &fd,
        map_off,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )?;
    m.write(delta, &bytes)?;
    drop(m);
    output::line(&format!("mmap write: {} bytes at {offset}", data.len()))
}

/// How `mmap read` reads: read(2), or a mapping (held a while, dropped with MADV_DONTNEED).
struct ReadVia {
    map: bool,
    hold: Duration,
    dontneed: bool,
}

/// `mmap read`: up to `len` bytes from `offset` (read(2), or a mapping with `via.map`),
/// printed up to the first NUL, escaped, on one line. With a mapping, `via.hold` waits that
/// long between mapping and reading (the file closed meanwhile), so a spec can unload the
/// module while the pages are mapped.
fn cmd_read(path: &str, offset: u64, len: usize, via: ReadVia) -> Result<()> {
    let fd = open_path(path, OFlag::O_RDONLY)?;
    let data = if via.map {
        let ps = page_size() as u64;
        let map_off = offset - offset % ps;
        let delta = (offset - map_off) as usize;
        let total = delta
            .checked_add(len)
            .ok_or_else(|| Error::raw("mmap", libc::EINVAL))?;
        let m = Mapping::new(&fd, map_off, total, libc::PROT_READ, libc::MAP_SHARED)?;
        drop(fd);
        std::thread::sleep(via.hold);
        if via.dontneed {
            m.dontneed()?;
        }
        let mut v = vec![0u8; len];
        m.read(delta, &mut v)?;
        v
    } else {
        read_all(&fd, offset, 4096, Some(len))?
    };
    output::line(&escape(until_nul(&data)))
}

/// Protection for `mmap map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Prot {
    /// PROT_READ (the file is opened O_RDONLY)
    R,
    /// PROT_READ|PROT_WRITE (the file is opened O_RDWR)
    Rw,
}

/// `mmap map`: just try the mapping; `touch` also reads (and with rw writes back) one byte of
/// every page, which faults the pages in.
fn cmd_map(
    path: &str,
    offset: u64,
    len: usize,
    private: bool,
    prot: Prot,
    touch: bool,
) -> Result<()> {
    let (oflag, p) = match prot {
        Prot::R => (OFlag::O_RDONLY, libc::PROT_READ),
        Prot::Rw => (OFlag::O_RDWR, libc::PROT_READ | libc::PROT_WRITE),
    };
    let flags = if private {
        libc::MAP_PRIVATE
    } else {
        libc::MAP_SHARED
    };
    let fd = open_path(path, oflag)?;
    let mut m = Mapping::new(&fd, offset, len, p, flags)?;
    if touch {
        let ps = page_size();
        let base = m.as_mut_ptr();
        for at in (0..m.len()).step_by(ps) {
            // SAFETY: `at` is inside the mapping; volatile so the access really happens.
            unsafe {
                let v = std::ptr::read_volatile(base.add(at));
                if prot == Prot::Rw {
                    std::ptr::write_volatile(base.add(at), v);
                }
            }
        }
    }
    drop(m);
    output::line("mmap: ok")
}

/// The deterministic fill pattern: the u64 at word `index` of page `page`.
pub fn pattern(seed: u64, page: u64, index: u64) -> u64 {
    // splitmix64 of a mix of the three.
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(page << 32 | index)
        .wrapping_add(0x632b_e59b_d9b4_e019);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The area to fill/verify: `size` bytes (override or phymem_size) and its page count.
fn area(size: Option<u64>) -> Result<(usize, usize)> {
    let size = match size {
        Some(s) => s,
        None => shared_size()?,
    };
    let size = usize::try_from(size).map_err(|_| Error::raw("mmap", libc::EINVAL))?;
    let ps = page_size();
    Ok((size, size.div_ceil(ps)))
}

/// One page worth of pattern words as bytes.
fn page_bytes(seed: u64, page: usize, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut i = 0u64;
    while v.len() < len {
        let w = pattern(seed, page as u64, i).to_ne_bytes();
        let take = (len - v.len()).min(8);
        v.extend_from_slice(&w[..take]);
        i += 1;
    }
    v
}

/// `mmap fill`: write the pattern over the whole area through a shared mapping.
fn cmd_fill(path: &str, seed: u64, size: Option<u64>) -> Result<()> {
    let (size, pages) = area(size)?;
    let ps = page_size();
    let fd = open_path(path, OFlag::O_RDWR)?;
    let mut m = Mapping::new(
        &fd,
        0,
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )?;
    for page in 0..pages {
        let at = page * ps;
        let n = ps.min(size - at);
        m.write(at, &page_bytes(seed, page, n))?;
    }
    drop(m);
    output::line(&format!("mmap fill: {pages} pages"))
}

/// Compare one page; Err names the first differing u64 word.
fn check_page(seed: u64, page: usize, got: &[u8]) -> Result<()> {
    let want = page_bytes(seed, page, got.len());
    for (w, (g, e)) in got.chunks(8).zip(want.chunks(8)).enumerate() {
        if g != e {
            let num = |b: &[u8]| {
                let mut a = [0u8; 8];
                a[..b.len()].copy_from_slice(b);
                u64::from_ne_bytes(a)
            };
            return Err(Error::msg(
                "mmap verify",
                format!(
                    "page {page} offset {}: expected {:#018x} got {:#018x}",
                    w * 8,
                    num(e),
                    num(g)
                ),
            ));
        }
    }
    Ok(())
}

/// `mmap verify`: check the pattern, through a mapping or (`via_read`) read(2).
fn cmd_verify(path: &str, seed: u64, size: Option<u64>, via_read: bool) -> Result<()> {
    let (size, pages) = area(size)?;
    let ps = page_size();
    let fd = open_path(path, OFlag::O_RDONLY)?;
    if via_read {
        let data = read_all(&fd, 0, ps, Some(size))?;
        if data.len() < size {
            return Err(Error::msg(
                "mmap verify",
                format!("read returned {} of {size} bytes", data.len()),
            ));
        }
        for (page, chunk) in data.chunks(ps).enumerate() {
            check_page(seed, page, chunk)?;
        }
    } else {
        let m = Mapping::new(&fd, 0, size, libc::PROT_READ, libc::MAP_SHARED)?;
        let mut buf = vec![0u8; ps];
        for page in 0..pages {
            let at = page * ps;
            let n = ps.min(size - at);
            m.read(at, &mut buf[..n])?;
            check_page(seed, page, &buf[..n])?;
        }
    }
    output::line(&format!("mmap verify: {pages} pages ok"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_distinct() {
        assert_eq!(pattern(1, 2, 3), pattern(1, 2, 3));
        assert_ne!(pattern(1, 2, 3), pattern(1, 3, 3));
        assert_ne!(pattern(1, 2, 3), pattern(1, 2, 4));
        assert_ne!(pattern(1, 2, 3), pattern(2, 2, 3));
        assert_eq!(page_bytes(0, 0, 4096).len(), 4096);
        assert_eq!(page_bytes(0, 0, 13).len(), 13);
    }

    #[test]
    fn verify_names_first_bad_word() {
        let mut p = page_bytes(7, 17, 4096);
        assert!(check_page(7, 17, &p).is_ok());
        p[24] ^= 1;
        p[100] ^= 1;
        let e = check_page(7, 17, &p).unwrap_err().to_string();
        assert!(
            e.starts_with("mmap verify: page 17 offset 24: expected 0x"),
            "{e}"
        );
        assert!(check_page(7, 16, &page_bytes(7, 17, 4096)).is_err());
    }

    #[test]
    fn anonymous_mapping_roundtrip() {
        // /dev/zero gives a private mapping: exercises Mapping without the module.
        let fd = open_path("/dev/zero", OFlag::O_RDWR).unwrap();
        let mut m = Mapping::new(
            &fd,
            0,
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
        )
        .unwrap();
        m.write(4090, b"hello!\0").unwrap();
        let mut b = [0u8; 7];
        m.read(4090, &mut b).unwrap();
        assert_eq!(&b, b"hello!\0");
        assert!(m.write(8190, b"abc").is_err());
        assert!(m.read(usize::MAX, &mut b).is_err());
        assert!(Mapping::new(&fd, 0, 0, libc::PROT_READ, libc::MAP_SHARED).is_err());
    }
}
