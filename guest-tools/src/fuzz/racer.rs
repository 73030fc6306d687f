//! The munmap racer: a thread that remaps, blanks and unmaps the slots of a reserved region
//! while the main thread makes the kernel copy to and from them.

use crate::mmap::{page_size, Mapping};
use crate::procfs::open_path;
use nix::fcntl::OFlag;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::mapping::{backed, check_mapping, gen_prot, touch, RaceShared, PAGE};
use super::rng::{mix64, Rng};
use super::{errno, Config};

/// The racer's region: RACE_SLOTS slots of SLOT_PAGES pages, at a fixed low address.
const RACE_HINT: usize = 0x2000_0000_0000;

pub const RACE_SLOTS: usize = 8;

pub const SLOT_PAGES: usize = 2;

/// What the racer thread does, in a loop, while the main thread runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaceOp {
    /// MAP_FIXED a kchan mapping over the slot (replacing what is there).
    Remap {
        slot: usize,
        pages: usize,
        offset: u64,
        prot: i32,
    },
    /// MAP_FIXED an anonymous PROT_NONE mapping over the slot (unmaps the kchan pages).
    Blank { slot: usize },
    /// munmap the slot, then reserve it again at once.
    Unmap { slot: usize },
    /// mprotect the slot.
    Protect { slot: usize, prot: i32 },
    /// Map at an address the kernel picks, touch, unmap.
    Churn {
        offset: u64,
        len: usize,
        prot: i32,
        touch: u64,
    },
}

pub fn gen_race(rng: &mut Rng) -> RaceOp {
    let slot = rng.below(RACE_SLOTS as u64) as usize;
    match rng.below(100) {
        0..=39 => RaceOp::Remap {
            slot,
            pages: rng.range(1, SLOT_PAGES as u64) as usize,
            offset: PAGE * rng.below(3),
            prot: gen_prot(rng),
        },
        40..=54 => RaceOp::Blank { slot },
        55..=69 => RaceOp::Unmap { slot },
        70..=79 => RaceOp::Protect {
            slot,
            prot: gen_prot(rng),
        },
        _ => RaceOp::Churn {
            offset: PAGE * rng.below(3),
            len: (PAGE * rng.range(1, 2)) as usize,
            prot: gen_prot(rng),
            touch: rng.next_u64(),
        },
    }
}

/// The racer's slots: a region reserved PROT_NONE at RACE_HINT (where no kernel-chosen
/// address lands: those go top-down from the top of the address space). Unmapped on drop.
pub(super) struct RaceRegion {
    map: Mapping,
}

/// Where the region is, for the racer thread (the main thread keeps the region, so it stays
/// reserved until the racer is joined).
#[derive(Clone, Copy, Debug)]
pub(super) struct Slots {
    pub(super) base: usize,
    pub(super) len: usize,
}

impl RaceRegion {
    pub(super) fn new() -> Option<RaceRegion> {
        let len = RACE_SLOTS * SLOT_PAGES * page_size();
        let map = Mapping::raw(
            RACE_HINT,
            len,
            libc::PROT_NONE,
            RESERVE | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
        .ok()?;
        // A kernel without MAP_FIXED_NOREPLACE takes it as a hint (dropping `map` unmaps it).
        (map.addr() == RACE_HINT).then_some(RaceRegion { map })
    }

    pub(super) fn slots(&self) -> Slots {
        Slots {
            base: self.map.addr(),
            len: self.map.len(),
        }
    }
}

/// Anonymous PROT_NONE reservations (MAP_NORESERVE: nothing is committed).
const RESERVE: i32 = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;

impl Slots {
    fn slot_len() -> usize {
        SLOT_PAGES * page_size()
    }

    fn addr(&self, slot: usize) -> usize {
        self.base + (slot % RACE_SLOTS) * Self::slot_len()
    }

    /// Do `op` (anything but Churn) to its slot. Some(errno) when mapping the channel failed.
    fn apply(&self, op: &RaceOp, fd: RawFd) -> Option<i32> {
        let slot_len = Self::slot_len();
        match *op {
            RaceOp::Remap {
                slot,
                pages,
                offset,
                prot,
            } => {
                let addr = self.addr(slot);
                let len = pages.min(SLOT_PAGES) * page_size();
                // SAFETY: MAP_FIXED inside our reserved region only.
                let p = unsafe {
                    libc::mmap(
                        addr as *mut libc::c_void,
                        len,
                        prot,
                        libc::MAP_SHARED | libc::MAP_FIXED,
                        fd,
                        offset as libc::off_t,
                    )
                };
                if p == libc::MAP_FAILED {
                    let e = errno();
                    refill(addr, slot_len);
                    return Some(e);
                }
            }
            RaceOp::Blank { slot } => {
                let addr = self.addr(slot);
                // SAFETY: MAP_FIXED inside our reserved region only.
                let p = unsafe {
                    libc::mmap(
                        addr as *mut libc::c_void,
                        slot_len,
                        libc::PROT_NONE,
                        RESERVE | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    refill(addr, slot_len);
                }
            }
            RaceOp::Unmap { slot } => {
                let addr = self.addr(slot);
                // SAFETY: our reserved region only; re-reserved right below.
                unsafe { libc::munmap(addr as *mut libc::c_void, slot_len) };
                refill(addr, slot_len);
            }
            RaceOp::Protect { slot, prot } => {
                // SAFETY: our reserved region only; nobody touches it from user space.
                unsafe { libc::mprotect(self.addr(slot) as *mut libc::c_void, slot_len, prot) };
            }
            RaceOp::Churn { .. } => {}
        }
        None
    }
}

/// Reserve whatever page of [addr, addr + len) is unmapped (after a munmap, or a failed
/// MAP_FIXED that may have left a hole), one page at a time so mapped pages stay.
fn refill(addr: usize, len: usize) {
    let ps = page_size();
    for at in (addr..addr + len).step_by(ps) {
        // SAFETY: MAP_FIXED_NOREPLACE only fills a hole (EEXIST when the page is mapped).
        unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                ps,
                libc::PROT_NONE,
                RESERVE | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
    }
}

struct Racer {
    cfg: Config,
    shared: Arc<RaceShared>,
    slots: Option<Slots>,
    /// /proc/kchan/mmap, O_RDWR.
    fd: Option<OwnedFd>,
}

/// The racer thread: remaps, blanks and unmaps the region's slots (and maps, touches and
/// unmaps mappings of its own) until told to stop.
pub(super) fn racer(cfg: Config, seed: u64, slots: Option<Slots>, shared: Arc<RaceShared>) {
    let mut rng = Rng::new(mix64(seed ^ 0x5ace_da7a));
    let mut r = Racer {
        cfg,
        shared,
        slots,
        fd: None,
    };
    while !r.shared.stopped() {
        let op = gen_race(&mut rng);
        r.step(&op);
        std::thread::yield_now();
    }
}

impl Racer {
    fn step(&mut self, op: &RaceOp) {
        if self.fd.is_none() {
            self.fd = open_path(&self.cfg.mmap, OFlag::O_RDWR).ok();
        }
        let fd = self.fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let failed = match (op, self.slots) {
            (
                &RaceOp::Churn {
                    offset,
                    len,
                    prot,
                    touch,
                },
                _,
            ) => self.churn(fd, offset, len, prot, touch),
            (op, Some(slots)) => slots.apply(op, fd),
            (_, None) => None,
        };
        if failed.is_some_and(|e| !matches!(e, libc::EINVAL | libc::EACCES | libc::ENOMEM)) {
            self.fd = None; // stale after a reload (EIO) or never opened (EBADF)
        }
    }

    /// Map at an address the kernel picks, touch what is backed, unmap. Some(errno) when the
    /// mapping failed.
    fn churn(&self, fd: RawFd, offset: u64, len: usize, prot: i32, seed: u64) -> Option<i32> {
        let map = match Mapping::raw(0, len, prot, libc::MAP_SHARED, fd, offset as libc::off_t) {
            Ok(m) => m,
            Err(e) => return Some(e),
        };
        match check_mapping(&self.cfg, &self.shared, offset, len, false) {
            // SAFETY: the backed part of a live mapping with `prot`.
            Ok(()) => unsafe {
                touch(
                    map.addr(),
                    backed(self.shared.area(), offset, len),
                    prot,
                    seed,
                )
            },
            Err(w) => self.shared.report(format!("racer: {w}")),
        }
        None
    }
}
