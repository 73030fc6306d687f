// SPDX-License-Identifier: GPL-2.0
//! The procfs channel and the /proc registration of every kchan file:
//!
//! - /proc/kchan/buffer (0644): 128-byte buffer. read() honours the file offset; a write
//!   replaces the whole content. Root writes (the mode and the VFS permission check are the
//!   access control), everyone reads.
//! - /proc/kchan/stats (0444): the counters (seq_file, one snapshot per open).
//! - /proc/kchan/mmap (0600) and /proc/memshare/phymem_size (0444): see mmap.rs.

use core::ffi::c_void;
use core::fmt;
use kernel::prelude::*;
use kernel::sync::{new_mutex, Mutex};

use crate::abi::PROC_BUFFER_CAPACITY;
use crate::ratelimit::{pr_info_limited, Budget};
use crate::stats::STATS;
use crate::text::{strip_newline, Esc};
use crate::{compat, glue, state};

/// The buffer content: `len` valid bytes.
#[derive(Clone, Copy)]
struct Content {
    len: usize,
    bytes: [u8; PROC_BUFFER_CAPACITY],
}

/// /proc/kchan/buffer's storage (process context only: a mutex).
#[pin_data]
pub(crate) struct Buffer {
    #[pin]
    content: Mutex<Content>,
}

impl Buffer {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Buffer {
            content <- new_mutex!(
                Content { len: 0, bytes: [0; PROC_BUFFER_CAPACITY] },
                "kchan_buffer"
            ),
        })
    }
}

/// All kchan /proc entries; removed on drop.
pub(crate) struct Registration(());

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Plain call; the handlers need the state, which exists already.
        kernel::error::to_result(unsafe { glue::kchan_glue_proc_register() })?;
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`. proc_remove() waits for running handlers; files still
        // open afterwards no longer reach our proc_ops.
        unsafe { glue::kchan_glue_proc_unregister() };
    }
}

/// Converts a handler result into the ssize_t the VFS expects.
pub(crate) fn ssize(r: Result<usize>) -> isize {
    match r {
        Ok(n) => n as isize, // n <= the requested count, which the VFS caps at MAX_RW_COUNT
        Err(e) => e.to_errno() as isize,
    }
}

/// Reads the file offset; negative offsets are invalid.
///
/// # Safety
///
/// `ppos` must be the VFS's position pointer for this call.
pub(crate) unsafe fn offset(ppos: *const i64) -> Result<usize> {
    // SAFETY: Per the function's contract.
    usize::try_from(unsafe { *ppos }).map_err(|_| EINVAL)
}

#[no_mangle]
extern "C" fn kchan_buffer_read(
    _file: *mut c_void,
    buf: *mut u8,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: The VFS passes its position pointer, valid for the call.
    let r = unsafe { buffer_read(buf, count, ppos) };
    match r {
        Ok(_) => STATS.proc_reads.inc(),
        Err(_) => STATS.proc_errors.inc(),
    }
    ssize(r)
}

/// # Safety
///
/// `ppos` must be the VFS's position pointer for this call.
unsafe fn buffer_read(buf: *mut u8, count: usize, ppos: *mut i64) -> Result<usize> {
    let st = state()?;
    // SAFETY: Per the function's contract.
    let pos = unsafe { offset(ppos) }?;
    // A snapshot: copy_to_user() may fault and sleep, so no lock is held across it.
    let content = *st.buffer.content.lock();
    if pos >= content.len {
        return Ok(0); // EOF
    }
    let n = count.min(content.len - pos);
    compat::user_slice(buf, n)
        .writer()
        .write_slice(&content.bytes[pos..pos + n])?;
    // SAFETY: Per the function's contract; pos + n <= 128.
    unsafe { *ppos = (pos + n) as i64 };
    Ok(n)
}

#[no_mangle]
extern "C" fn kchan_buffer_write(
    _file: *mut c_void,
    buf: *const u8,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: The VFS passes its position pointer, valid for the call.
    let r = unsafe { buffer_write(buf, count, ppos) };
    match r {
        Ok(_) => STATS.proc_writes.inc(),
        Err(_) => STATS.proc_errors.inc(),
    }
    ssize(r)
}

/// A write replaces the whole content, so it must start at offset 0: a second write() on
/// the same descriptor (offset > 0) gets EINVAL rather than silently dropping the first
/// part. Longer than the capacity: EINVAL. Fault: EFAULT. On any error nothing changes.
///
/// # Safety
///
/// `ppos` must be the VFS's position pointer for this call.
unsafe fn buffer_write(buf: *const u8, count: usize, ppos: *mut i64) -> Result<usize> {
    let st = state()?;
    // SAFETY: Per the function's contract.
    if unsafe { offset(ppos) }? != 0 || count > PROC_BUFFER_CAPACITY {
        return Err(EINVAL);
    }
    let mut new = Content {
        len: count,
        bytes: [0; PROC_BUFFER_CAPACITY],
    };
    // Copied in full before the lock is taken: a fault leaves the old content untouched.
    compat::user_slice(buf, count)
        .reader()
        .read_slice(&mut new.bytes[..count])?;
    *st.buffer.content.lock() = new;
    pr_info_limited!(
        Budget::Admin,
        "proc write: {}\n",
        Esc(strip_newline(&new.bytes[..count]))
    );
    // SAFETY: Per the function's contract; count <= 128.
    unsafe { *ppos = count as i64 };
    Ok(count)
}

/// fmt::Write into a seq_file (the seq_file core retries `show` with a larger buffer when
/// this overflows, so errors are not ours to handle).
pub(crate) struct SeqWriter(pub(crate) *mut c_void);

impl fmt::Write for SeqWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: `self.0` is the seq_file of the running show callback.
        unsafe { glue::seq_write(self.0, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// /proc/kchan/stats show callback (single_open via proc_create_single in glue.c).
#[no_mangle]
extern "C" fn kchan_stats_show(m: *mut c_void) -> core::ffi::c_int {
    let _ = STATS.write_to(&mut SeqWriter(m));
    0
}
