// SPDX-License-Identifier: GPL-2.0
//! The mmap channel: `mmap_pages` zeroed pages shared with user space through /proc/kchan/mmap
//! (mmap MAP_SHARED or read()), and /proc/memshare/phymem_size.
//!
//! The seed exported the physical address (/proc/memshare/phymem_addr) for /dev/mem. kchan
//! does not: it leaks the kernel's memory layout, and /dev/mem cannot map RAM anyway under
//! CONFIG_STRICT_DEVMEM. The driver's own mmap() replaces it.
//!
//! Pages are allocated one by one (order 0): nothing needs physical contiguity since no
//! physical address is exported, and each page is inserted into a mapping on its own (the
//! seed's 4 MiB variant reserved only the first page of an order-10 block and so mapped only
//! that one).
//!
//! The pages are inserted at mmap() time, and served again by the fault handler (glue.c)
//! after user space dropped them with madvise(MADV_DONTNEED). Each mapping holds a module
//! reference, so unloading is refused while one lives (never a fault into freed code).

use core::ffi::{c_int, c_ulong, c_void};
use kernel::page::{Page, PAGE_SIZE};
use kernel::prelude::*;

use crate::procfs::{offset, ssize, SeqWriter};
use crate::stats::STATS;
use crate::text::{until_nul, Esc};
use crate::{compat, glue, state};

/// The shared pages; freed (our references dropped) with the state.
pub(crate) struct Pages {
    pages: KVec<Page>,
}

impl Pages {
    pub(crate) fn new(count: usize) -> Result<Self> {
        let mut pages = KVec::with_capacity(count, GFP_KERNEL)?;
        for _ in 0..count {
            pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        Ok(Pages { pages })
    }

    fn len_bytes(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Copies `dst.len()` bytes starting at byte `pos` (in bounds).
    fn read(&self, pos: usize, dst: &mut [u8]) -> Result {
        let mut done = 0;
        while done < dst.len() {
            let at = pos + done;
            let chunk = (dst.len() - done).min(PAGE_SIZE - at % PAGE_SIZE);
            let page = self.pages.get(at / PAGE_SIZE).ok_or(EINVAL)?;
            // SAFETY: `dst[done..]` has room for `chunk` bytes and `at % PAGE_SIZE + chunk`
            // stays inside the page. The glue copies with memcpy_from_page(), not through a
            // Rust view of the page, so user space writing it meanwhile is allowed.
            unsafe {
                glue::kchan_glue_copy_from_page(
                    dst[done..].as_mut_ptr().cast(),
                    page.as_ptr().cast(),
                    at % PAGE_SIZE,
                    chunk,
                )
            };
            done += chunk;
        }
        Ok(())
    }

    /// The seed's unload line: the first page up to its first NUL (at most one page).
    pub(crate) fn log_content(&self) {
        let Ok(mut first) = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL) else {
            return;
        };
        if self.read(0, &mut first).is_ok() {
            pr_info!(
                "The content written by user is: {}\n",
                Esc(until_nul(&first))
            );
        }
    }
}

/// proc_mmap of /proc/kchan/mmap (glue.c extracts the vma fields and sets VM_DONTEXPAND).
#[no_mangle]
extern "C" fn kchan_mmap(
    vma: *mut c_void,
    start: c_ulong,
    end: c_ulong,
    pgoff: c_ulong,
    shared: bool,
) -> c_int {
    match map(vma, start as usize, end as usize, pgoff as usize, shared) {
        Ok(()) => {
            STATS.mmap_maps.inc();
            0
        }
        Err(e) => {
            STATS.mmap_errors.inc();
            e.to_errno()
        }
    }
}

fn map(vma: *mut c_void, start: usize, end: usize, first: usize, shared: bool) -> Result {
    let st = state()?;
    // MAP_PRIVATE is refused: writes would go to private copy-on-write copies, never to the
    // shared pages, which defeats the purpose and only invites confusion.
    if !shared {
        return Err(EINVAL);
    }
    // The mm core hands us a page-aligned, non-empty range; checked arithmetic regardless.
    let count = end.checked_sub(start).ok_or(EINVAL)? / PAGE_SIZE;
    let last = first.checked_add(count).ok_or(EINVAL)?;
    let pages = st.pages.pages.get(first..last).ok_or(EINVAL)?;
    for (i, page) in pages.iter().enumerate() {
        let addr = start + i * PAGE_SIZE;
        // SAFETY: `vma` is the area being set up by mmap() (mmap lock held for writing),
        // `addr` lies inside it, and `page` is an order-0 page we hold a reference to.
        let ret = unsafe { kernel::bindings::vm_insert_page(vma.cast(), addr as _, page.as_ptr()) };
        // On failure mmap() unmaps whatever was inserted already.
        kernel::error::to_result(ret)?;
    }
    Ok(())
}

/// vm_ops.fault of a mapping (glue.c takes the page reference): the page at file offset
/// `pgoff`, or null (SIGBUS) past the buffer.
#[no_mangle]
extern "C" fn kchan_mmap_page(pgoff: c_ulong) -> *mut kernel::bindings::page {
    let page = state()
        .ok()
        .and_then(|st| st.pages.pages.get(pgoff as usize))
        .map_or(core::ptr::null_mut(), |p| p.as_ptr());
    if !page.is_null() {
        STATS.mmap_faults.inc();
    }
    page
}

#[no_mangle]
extern "C" fn kchan_mmap_read(
    _file: *mut c_void,
    buf: *mut u8,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: The VFS passes its position pointer, valid for the call.
    ssize(unsafe { mmap_read(buf, count, ppos) })
}

/// # Safety
///
/// `ppos` must be the VFS's position pointer for this call.
unsafe fn mmap_read(buf: *mut u8, count: usize, ppos: *mut i64) -> Result<usize> {
    let st = state()?;
    // SAFETY: Per the function's contract.
    let pos = unsafe { offset(ppos) }?;
    let total = st.pages.len_bytes();
    if pos >= total {
        return Ok(0);
    }
    let n = count.min(total - pos);
    let mut writer = compat::user_slice(buf, n).writer();
    // Bounce through a kernel buffer, one page at a time at most.
    let mut bounce = KVec::from_elem(0u8, n.min(PAGE_SIZE), GFP_KERNEL)?;
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(bounce.len());
        st.pages.read(pos + done, &mut bounce[..chunk])?;
        writer.write_slice(&bounce[..chunk])?;
        done += chunk;
    }
    // SAFETY: Per the function's contract; pos + n <= 16 MiB.
    unsafe { *ppos = (pos + n) as i64 };
    Ok(n)
}

/// /proc/memshare/phymem_size: "<bytes>\n", as the seed printed it.
#[no_mangle]
extern "C" fn kchan_memshare_size_show(m: *mut c_void) -> c_int {
    if let Ok(st) = state() {
        let _ = core::fmt::Write::write_fmt(
            &mut SeqWriter(m),
            format_args!("{}\n", st.pages.len_bytes()),
        );
    }
    0
}
