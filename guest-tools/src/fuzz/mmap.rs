//! Fuzzing the mmap channel: mappings of /proc/kchan/mmap at fuzzed offsets, lengths,
//! protections and flags, touched where backed, while the racer (racer.rs) remaps and unmaps
//! slots the kernel copies to and from.

use crate::abi;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::mmap::Mapping;
use crate::procfs::open_path;
use nix::fcntl::OFlag;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::arena::{gen_ptr, Arena, Ptr, ARENA_SIZE};
use super::mapping::{backed, check_mapping, gen_prot, read_area, touch, RaceShared, PAGE};
use super::racer::{racer, RaceRegion, RACE_SLOTS, SLOT_PAGES};
use super::rng::{gen_len, Rng};
use super::{errno, violation, Channel, Config, Counts};

/// Most mappings the main thread keeps at once.
const POOL: usize = 8;

/// mmap(NULL, len, prot, shared ? MAP_SHARED : MAP_PRIVATE, fd (O_RDWR or O_RDONLY), offset);
/// on success touch a few bytes (seeded by `touch`) and keep or unmap it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapOp {
    offset: u64,
    len: usize,
    prot: i32,
    shared: bool,
    rdwr: bool,
    keep: bool,
    touch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MmapOp {
    Map(MapOp),
    /// munmap a kept mapping (pick modulo how many there are).
    Unmap {
        pick: u32,
    },
    /// Touch a kept mapping again.
    Touch {
        pick: u32,
        seed: u64,
    },
    /// pread(2) of /proc/kchan/mmap into the arena.
    Read {
        offset: u64,
        len: usize,
        ptr: Ptr,
    },
    /// The kernel copies to (`into_user`: pread of /proc/kchan/mmap) or from (write of
    /// /proc/kchan/buffer) the racer's slots while they are remapped and unmapped.
    RaceCopy {
        at: usize,
        len: usize,
        into_user: bool,
        offset: u64,
    },
    /// Read /proc/memshare/phymem_size.
    Size,
}

fn gen_map_offset(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=49 => 0,
        50..=74 => PAGE * rng.below(5),
        75..=84 => rng.range(1, 3 * PAGE),
        85..=89 => rng.pick(&[
            1 << 40,
            (i64::MAX as u64) & !(PAGE - 1),
            1 << 63,
            !(PAGE - 1),
        ]),
        _ => PAGE * rng.below(u64::from(abi::MMAP_PAGES_MAX) + 2),
    }
}

fn gen_map_len(rng: &mut Rng) -> usize {
    (match rng.below(100) {
        0..=9 => 0,
        10..=59 => PAGE * rng.range(1, 3),
        60..=74 => rng.range(1, 3 * PAGE),
        75..=84 => rng.pick(&[1 << 30, 1 << 40, u64::MAX / 2, !(PAGE - 1)]),
        _ => PAGE * rng.range(1, 64),
    }) as usize
}

pub fn gen_mmap(rng: &mut Rng) -> MmapOp {
    match rng.below(100) {
        0..=49 => MmapOp::Map(MapOp {
            offset: gen_map_offset(rng),
            len: gen_map_len(rng),
            prot: gen_prot(rng),
            shared: rng.percent(85),
            rdwr: rng.percent(80),
            keep: rng.percent(50),
            touch: rng.next_u64(),
        }),
        50..=59 => MmapOp::Unmap { pick: rng.u32() },
        60..=69 => MmapOp::Touch {
            pick: rng.u32(),
            seed: rng.next_u64(),
        },
        70..=79 => {
            let len = gen_len(rng, 3 * PAGE as usize);
            MmapOp::Read {
                offset: gen_map_offset(rng),
                len,
                ptr: gen_ptr(rng, len),
            }
        }
        80..=96 => {
            let into_user = rng.percent(75);
            MmapOp::RaceCopy {
                at: rng.below((RACE_SLOTS * SLOT_PAGES) as u64 * PAGE) as usize,
                len: if into_user {
                    gen_len(rng, 3 * PAGE as usize)
                } else {
                    gen_len(rng, 200)
                },
                into_user,
                offset: PAGE * rng.below(2) + rng.below(PAGE),
            }
        }
        _ => MmapOp::Size,
    }
}

/// A mapping kept by the main thread.
struct Live {
    map: Mapping,
    prot: i32,
    touchable: usize,
}

pub(super) struct MmapFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    /// /proc/kchan/mmap opened O_RDONLY and O_RDWR.
    fds: [Option<OwnedFd>; 2],
    buffer: Option<OwnedFd>,
    pool: VecDeque<Live>,
    shared: Arc<RaceShared>,
    region: Option<RaceRegion>,
    steps: u64,
}

impl<'a> MmapFuzzer<'a> {
    pub(super) fn new(cfg: &'a Config) -> Result<Self> {
        Ok(MmapFuzzer {
            cfg,
            arena: Arena::new()?,
            fds: [None, None],
            buffer: None,
            pool: VecDeque::new(),
            shared: Arc::new(RaceShared::new()),
            region: RaceRegion::new(),
            steps: 0,
        })
    }

    fn fd(&mut self, rdwr: bool) -> i32 {
        let (i, flags) = if rdwr {
            (1, OFlag::O_RDWR)
        } else {
            (0, OFlag::O_RDONLY)
        };
        if self.fds[i].is_none() {
            self.fds[i] = open_path(&self.cfg.mmap, flags).ok();
        }
        self.fds[i].as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Run `ops` with the racer going; stops at the first violation of either thread.
    pub(super) fn run(&mut self, seed: u64, ops: impl Iterator<Item = MmapOp>) -> Result<Counts> {
        let racer_handle = {
            let cfg = self.cfg.clone();
            let shared = Arc::clone(&self.shared);
            let slots = self.region.as_ref().map(RaceRegion::slots);
            std::thread::Builder::new()
                .name("racer".into())
                .spawn(move || racer(cfg, seed, slots, shared))
                .map_err(|e| Error::io("spawn racer", &e))?
        };
        let mut counts = Counts::default();
        let mut result = Ok(());
        for op in ops {
            if self.shared.stopped() {
                break;
            }
            match self.step(&op) {
                Ok(ok) => counts.record(ok),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.shared.stop();
        let joined = racer_handle.join();
        self.pool.clear();
        result?;
        if joined.is_err() {
            return Err(violation(Channel::Mmap, "the racer thread panicked"));
        }
        if let Some(w) = self.shared.violation() {
            return Err(violation(Channel::Mmap, w));
        }
        Ok(counts)
    }

    pub(super) fn step(&mut self, op: &MmapOp) -> Result<bool> {
        self.steps += 1;
        if self.shared.area().is_none() || self.steps.is_multiple_of(256) {
            if let Some(a) = read_area(&self.cfg.mmap_size) {
                self.shared.set_area(a);
            }
        }
        match *op {
            MmapOp::Map(ref m) => self.map(m),
            MmapOp::Unmap { pick } => {
                if !self.pool.is_empty() {
                    let i = pick as usize % self.pool.len();
                    self.pool.remove(i);
                }
                Ok(true)
            }
            MmapOp::Touch { pick, seed } => {
                if !self.pool.is_empty() {
                    let l = &self.pool[pick as usize % self.pool.len()];
                    // SAFETY: a kept mapping, unmapped only by this thread.
                    unsafe { touch(l.map.addr(), l.touchable, l.prot, seed) };
                }
                Ok(true)
            }
            MmapOp::Read { offset, len, ptr } => self.read(offset, len, ptr),
            MmapOp::RaceCopy {
                at,
                len,
                into_user,
                offset,
            } => self.race_copy(at, len, into_user, offset),
            MmapOp::Size => self.size(),
        }
    }

    /// mmap the channel; a mapping the ABI forbids is a violation, any other is touched
    /// where backed and kept or unmapped.
    fn map(&mut self, op: &MapOp) -> Result<bool> {
        let MapOp {
            offset,
            len,
            prot,
            shared,
            rdwr,
            keep,
            touch: seed,
        } = *op;
        let fd = self.fd(rdwr);
        let flags = if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        let map = match Mapping::raw(0, len, prot, flags, fd, offset as libc::off_t) {
            Ok(m) => m,
            Err(e) => return self.refused(rdwr, e),
        };
        let live = Live {
            map,
            prot,
            touchable: backed(self.shared.area(), offset, len),
        };
        check_mapping(self.cfg, &self.shared, offset, len, !shared)
            .map_err(|w| violation(Channel::Mmap, w))?;
        // SAFETY: the backed part of a live mapping with `prot`.
        unsafe { touch(live.map.addr(), live.touchable, live.prot, seed) };
        if keep {
            if self.pool.len() >= POOL {
                self.pool.pop_front();
            }
            self.pool.push_back(live);
        }
        Ok(true)
    }

    /// pread(2) of the channel into the arena: never more than asked or than the area holds.
    fn read(&mut self, offset: u64, len: usize, ptr: Ptr) -> Result<bool> {
        let fd = self.fd(false);
        let (addr, _) = self.arena.resolve(ptr);
        // SAFETY: the kernel writes at most len bytes at addr: inside the arena (faulting on
        // the guard page) or invalid on purpose.
        let r = unsafe { libc::pread(fd, addr as *mut libc::c_void, len, offset as libc::off_t) };
        if r < 0 {
            return self.refused(false, errno());
        }
        let area = self.shared.area().unwrap_or(u64::MAX);
        if self.cfg.strict && r > 0 && (r as usize > len || offset.saturating_add(r as u64) > area)
        {
            return Err(violation(
                Channel::Mmap,
                format!(
                    "a {len}-byte read at offset {offset} returned {r} bytes (area {area} bytes)"
                ),
            ));
        }
        Ok(true)
    }

    /// The kernel copies into (pread of the channel) or out of (pwrite of the buffer) the
    /// racer's slots, or the arena when there is no region.
    fn race_copy(&mut self, at: usize, len: usize, into_user: bool, offset: u64) -> Result<bool> {
        let (addr, len) = match self.region.as_ref().map(RaceRegion::slots) {
            Some(r) => {
                let at = at % r.len;
                (r.base + at, len.min(r.len - at))
            }
            None => (self.arena.resolve(Ptr::Start).0, len.min(ARENA_SIZE)),
        };
        let r = if into_user {
            let fd = self.fd(false);
            // SAFETY: the kernel writes at most len bytes at addr, inside the racer's region
            // (which only ever holds kchan pages or PROT_NONE reservations, and which nothing
            // in this process reads) or the arena.
            unsafe { libc::pread(fd, addr as *mut libc::c_void, len, offset as libc::off_t) }
        } else {
            if self.buffer.is_none() {
                self.buffer = open_path(&self.cfg.buffer, OFlag::O_WRONLY).ok();
            }
            let fd = self.buffer.as_ref().map_or(-1, |f| f.as_raw_fd());
            // SAFETY: the kernel only reads len bytes at addr.
            unsafe { libc::pwrite(fd, addr as *const libc::c_void, len, 0) }
        };
        if r < 0 {
            let e = errno();
            if e != libc::EFAULT && e != libc::EINVAL {
                self.fds[0] = None;
                self.buffer = None;
            }
            return Ok(false);
        }
        if self.cfg.strict && r as usize > len {
            return Err(violation(
                Channel::Mmap,
                format!("a {len}-byte copy returned {r} bytes"),
            ));
        }
        Ok(true)
    }

    /// phymem_size must be a decimal number and a newline.
    fn size(&self) -> Result<bool> {
        let Ok(fd) = open_path(&self.cfg.mmap_size, OFlag::O_RDONLY) else {
            return Ok(false);
        };
        let Ok(text) = crate::procfs::read_all(&fd, 0, 64, Some(4096)) else {
            return Ok(false);
        };
        let good = text.len() > 1
            && text.ends_with(b"\n")
            && text[..text.len() - 1].iter().all(u8::is_ascii_digit);
        if self.cfg.strict && !good {
            return Err(violation(
                Channel::Mmap,
                format!("phymem_size is \"{}\"", escape(&text)),
            ));
        }
        Ok(true)
    }

    /// A refused mmap/pread: counted; a descriptor made stale by a reload is reopened later.
    fn refused(&mut self, rdwr: bool, e: i32) -> Result<bool> {
        if !matches!(
            e,
            libc::EINVAL | libc::EACCES | libc::ENOMEM | libc::EOVERFLOW | libc::EFAULT
        ) {
            self.fds[usize::from(rdwr)] = None;
        }
        Ok(false)
    }
}
