// SPDX-License-Identifier: GPL-2.0
//! @name@: a minimal kernel module in Rust with one file, /proc/@name@ (mode 0644).
//!
//! Reading it returns its content: a greeting until someone writes. A write (root only, by
//! the mode) replaces the content with at most `CAPACITY` bytes; a longer one, or one at a
//! nonzero offset, fails with EINVAL and changes nothing.
//!
//! The kernel's Rust crate has no procfs abstraction (6.12, still none on 7.3), so glue.c holds
//! the `proc_ops` table and one-line wrappers; every decision is taken here.

use core::ffi::c_void;
use core::ptr;
use kernel::prelude::*;
use kernel::sync::{new_mutex, Mutex};

module! {
    type: ProcModule,
    name: "@name@",
    description: "A minimal module with one /proc file",
    license: "GPL",
}

/// What /proc/@name@ holds after loading.
const GREETING: &[u8] = b"Hello from @name@!\n";
/// The most a write may store.
const CAPACITY: usize = 128;
const _: () = assert!(GREETING.len() <= CAPACITY);

// Implemented in glue.c.
extern "C" {
    fn @name@_glue_proc_create(state: *mut c_void) -> bool;
    fn @name@_glue_proc_remove();
    fn @name@_glue_copy_to_user(to: *mut u8, from: *const u8, n: usize) -> usize;
    fn @name@_glue_copy_from_user(to: *mut u8, from: *const u8, n: usize) -> usize;
}

/// The file's content: `len` valid bytes.
#[derive(Clone, Copy)]
struct Content {
    len: usize,
    bytes: [u8; CAPACITY],
}

impl Content {
    fn greeting() -> Self {
        let mut bytes = [0; CAPACITY];
        bytes[..GREETING.len()].copy_from_slice(GREETING);
        Content {
            len: GREETING.len(),
            bytes,
        }
    }
}

/// What the /proc handlers share (process context only, so a mutex).
#[pin_data]
struct Shared {
    #[pin]
    content: Mutex<Content>,
}

/// The module: its state lives from `init` to unload; dropping it removes the /proc file.
struct ProcModule {
    shared: Pin<KBox<Shared>>,
}

impl kernel::Module for ProcModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let shared = KBox::pin_init(
            pin_init!(Shared {
                content <- new_mutex!(Content::greeting(), "@name@_content"),
            }),
            GFP_KERNEL,
        )?;
        let data = ptr::from_ref::<Shared>(&shared).cast_mut().cast::<c_void>();
        // SAFETY: `data` points at the pinned state, which outlives the file: `drop` removes
        // the file (and waits for running handlers) before the state is freed.
        if !unsafe { @name@_glue_proc_create(data) } {
            return Err(ENOMEM);
        }
        pr_info!("loaded: /proc/@name@\n");
        Ok(ProcModule { shared })
    }
}

impl Drop for ProcModule {
    fn drop(&mut self) {
        // SAFETY: Created in `init`. proc_remove() waits for running handlers; afterwards no
        // handler can reach `self.shared`, which is freed after this function returns.
        unsafe { @name@_glue_proc_remove() };
        let len = self.shared.content.lock().len;
        pr_info!("unloaded ({} bytes stored)\n", len);
    }
}

/// A handler's result as the ssize_t the VFS expects.
fn ssize(r: Result<usize>) -> isize {
    match r {
        Ok(n) => n as isize, // n <= the requested count, which the VFS caps at MAX_RW_COUNT
        Err(e) => e.to_errno() as isize,
    }
}

/// The file offset; a negative one is invalid.
fn offset(pos: i64) -> Result<usize> {
    usize::try_from(pos).map_err(|_| EINVAL)
}

/// read(): the content from the file offset on.
///
/// # Safety
///
/// `state` is the pointer given to `@name@_glue_proc_create`, `ppos` the VFS's file position
/// for this call; `buf` is a user address (checked by copy_to_user).
#[no_mangle]
unsafe extern "C" fn @name@_read(
    state: *const c_void,
    buf: *mut u8,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: Per the function's contract: the state is alive while the file exists.
    let shared = unsafe { &*state.cast::<Shared>() };
    // SAFETY: Per the function's contract.
    let ppos = unsafe { &mut *ppos };
    ssize(read(shared, buf, count, ppos))
}

fn read(shared: &Shared, buf: *mut u8, count: usize, ppos: &mut i64) -> Result<usize> {
    let pos = offset(*ppos)?;
    // A snapshot: copy_to_user() may fault and sleep, so no lock is held across it.
    let content = *shared.content.lock();
    if pos >= content.len {
        return Ok(0); // end of file
    }
    let n = count.min(content.len - pos);
    // SAFETY: The source is `n` valid bytes of the snapshot; copy_to_user checks `buf`.
    let left = unsafe { @name@_glue_copy_to_user(buf, content.bytes[pos..].as_ptr(), n) };
    if left != 0 {
        return Err(EFAULT);
    }
    *ppos = (pos + n) as i64; // pos + n <= CAPACITY
    Ok(n)
}

/// write(): replaces the content with the `count` bytes at `buf`.
///
/// # Safety
///
/// As for [`@name@_read`]; `buf` is a user address (checked by copy_from_user).
#[no_mangle]
unsafe extern "C" fn @name@_write(
    state: *const c_void,
    buf: *const u8,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: Per the function's contract: the state is alive while the file exists.
    let shared = unsafe { &*state.cast::<Shared>() };
    // SAFETY: Per the function's contract.
    let ppos = unsafe { &mut *ppos };
    ssize(write(shared, buf, count, ppos))
}

/// Every byte from user space is untrusted: the length is checked before anything is copied,
/// and the copy goes into a local buffer first, so a fault leaves the old content unchanged.
fn write(shared: &Shared, buf: *const u8, count: usize, ppos: &mut i64) -> Result<usize> {
    if offset(*ppos)? != 0 || count > CAPACITY {
        return Err(EINVAL);
    }
    let mut new = Content {
        len: count,
        bytes: [0; CAPACITY],
    };
    // SAFETY: The destination has room for `count <= CAPACITY` bytes; copy_from_user checks
    // `buf`.
    let left = unsafe { @name@_glue_copy_from_user(new.bytes.as_mut_ptr(), buf, count) };
    if left != 0 {
        return Err(EFAULT);
    }
    *shared.content.lock() = new;
    *ppos = count as i64;
    pr_info!("stored {} bytes\n", count);
    Ok(count)
}
