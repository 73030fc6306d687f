//! Mapping helpers shared by mmap.rs and racer.rs, so racer.rs never imports mmap.rs (no cycle).

use crate::mmap::page_size;
use crate::procfs::open_path;
use nix::fcntl::OFlag;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::rng::Rng;
use super::Config;

/// Page size the generated offsets and lengths are expressed in (x86-64).
pub const PAGE: u64 = 4096;

pub(super) fn gen_prot(rng: &mut Rng) -> i32 {
    match rng.below(10) {
        0 => libc::PROT_NONE,
        1..=3 => libc::PROT_READ,
        4 => libc::PROT_WRITE,
        _ => libc::PROT_READ | libc::PROT_WRITE,
    }
}

/// Read and/or write a few bytes (the first and last page, some random ones) of
/// [addr, addr + touchable), as `prot` allows.
///
/// # Safety
///
/// [addr, addr + touchable) must be mapped with at least `prot`, backed (no fault can fail),
/// and stay mapped for the call.
pub(super) unsafe fn touch(addr: usize, touchable: usize, prot: i32, seed: u64) {
    if touchable == 0 || prot & (libc::PROT_READ | libc::PROT_WRITE) == 0 {
        return;
    }
    let mut rng = Rng::new(seed);
    let ps = page_size();
    let pages = touchable.div_ceil(ps);
    for k in 0..pages.min(6) {
        let page = match k {
            0 => 0,
            1 => pages - 1,
            _ => rng.below(pages as u64) as usize,
        };
        let at = (page * ps + rng.below(ps as u64) as usize).min(touchable - 1);
        let p = (addr + at) as *mut u8;
        // SAFETY: per the function's contract, `p` is inside the mapping; volatile so the
        // access really happens.
        unsafe {
            if prot & libc::PROT_READ != 0 {
                std::ptr::read_volatile(p);
            }
            if prot & libc::PROT_WRITE != 0 {
                std::ptr::write_volatile(p, rng.byte());
            }
        }
    }
}

/// The part of a mapping of `len` bytes at file `offset` that the area of `area` bytes backs.
pub(super) fn backed(area: Option<u64>, offset: u64, len: usize) -> usize {
    match area {
        Some(a) if offset < a => (a - offset).min(len as u64) as usize,
        _ => 0,
    }
}

/// phymem_size (the shared area's size), None while it cannot be read.
pub(super) fn read_area(path: &str) -> Option<u64> {
    let fd = open_path(path, OFlag::O_RDONLY).ok()?;
    let text = crate::procfs::read_all(&fd, 0, 64, Some(64)).ok()?;
    std::str::from_utf8(&text).ok()?.trim().parse().ok()
}

/// A mapping of the shared area succeeded: beyond the area or MAP_PRIVATE, that breaks the
/// ABI (re-reading the area size first, in case the module was reloaded with more pages).
pub(super) fn check_mapping(
    cfg: &Config,
    shared: &RaceShared,
    offset: u64,
    len: usize,
    private: bool,
) -> std::result::Result<(), String> {
    if !cfg.strict {
        return Ok(());
    }
    if private {
        return Err(format!(
            "MAP_PRIVATE mapping of {len} bytes at offset {offset} was accepted"
        ));
    }
    let end = offset.saturating_add((len as u64).div_ceil(PAGE) * PAGE);
    let fits = |a: Option<u64>| a.is_some_and(|a| end <= a);
    if fits(shared.area()) {
        return Ok(());
    }
    let now = read_area(&cfg.mmap_size);
    if let Some(a) = now {
        shared.set_area(a);
    }
    if fits(now) || now.is_none() {
        // Unknown size (the module is being reloaded): cannot judge, and nothing is touched.
        return Ok(());
    }
    Err(format!(
        "mapping of {len} bytes at offset {offset} was accepted beyond the {}-byte area",
        now.unwrap_or(0)
    ))
}

/// State shared by the main thread and the racer.
pub(super) struct RaceShared {
    stop: AtomicBool,
    /// The area size (0: unknown).
    area: AtomicU64,
    violation: Mutex<Option<String>>,
}

impl RaceShared {
    pub(super) fn new() -> Self {
        RaceShared {
            stop: AtomicBool::new(false),
            area: AtomicU64::new(0),
            violation: Mutex::new(None),
        }
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub(super) fn area(&self) -> Option<u64> {
        match self.area.load(Ordering::Relaxed) {
            0 => None,
            a => Some(a),
        }
    }

    pub(super) fn set_area(&self, a: u64) {
        self.area.store(a, Ordering::Relaxed);
    }

    /// Record a violation (the first one counts) and stop both threads.
    pub(super) fn report(&self, what: String) {
        if let Ok(mut v) = self.violation.lock() {
            v.get_or_insert(what);
        }
        self.stop();
    }

    pub(super) fn violation(&self) -> Option<String> {
        self.violation.lock().ok().and_then(|v| v.clone())
    }
}
