// SPDX-License-Identifier: GPL-2.0
//! The sockopt channel: IPPROTO_IP options `[base, base + 2)` on any AF_INET socket (UDP,
//! raw, ...), reached because ip_setsockopt()/ip_getsockopt() hand unknown option numbers to
//! nf_setsockopt()/nf_getsockopt().
//!
//! - set(base): store a message (CAP_NET_ADMIN of the system: the state is global).
//! - Only sockets of the initial network namespace reach the options; others get
//!   ENOPROTOOPT, as if kchan were not loaded there (its netlink socket is init_net's too).
//! - set(base + 1): EINVAL, the read-back option is read-only.
//! - get(base): the seed's kernel message; get(base + 1): the last message stored.

use core::ffi::{c_int, c_uint, c_void};
use kernel::prelude::*;
use kernel::sync::{new_mutex, Mutex};

use crate::abi::{SOCKOPT_COUNT, SOCKOPT_KERNEL_MSG, SOCKOPT_LAST, SOCKOPT_MAX_MSG, SOCKOPT_MSG};
use crate::compat::errno;
use crate::ratelimit::{pr_info_limited, Budget};
use crate::stats::STATS;
use crate::text::{strip_newline, until_nul, Esc};
use crate::{compat, glue, state};

/// A stored message: exactly the bytes that were set, at most SOCKOPT_MAX_MSG.
#[derive(Clone, Copy)]
struct Message {
    len: usize,
    bytes: [u8; SOCKOPT_MAX_MSG],
}

impl Message {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The last message set, shared by set and get (process context only: a mutex).
#[pin_data]
pub(crate) struct LastMessage {
    #[pin]
    msg: Mutex<Message>,
}

impl LastMessage {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(LastMessage {
            msg <- new_mutex!(Message { len: 0, bytes: [0; SOCKOPT_MAX_MSG] }, "kchan_sockopt"),
        })
    }
}

/// The nf_sockopt_ops registration; unregistered on drop.
pub(crate) struct Registration(());

impl Registration {
    pub(crate) fn new(base: i32) -> Result<Self> {
        // No overflow: Params::read() checked base.
        let end = base + SOCKOPT_COUNT;
        // SAFETY: Plain call; glue.c owns the ops struct, the handlers need the state, which
        // exists already.
        let ret = unsafe { glue::kchan_glue_sockopt_register(base, end) };
        if ret == EBUSY.to_errno() {
            // ebtables owns 128..131, the seed's default: say how to get out of the way.
            pr_err!(
                "socket options {}..{} are taken by another module (ebtables uses 128..131): load kchan with sockopt_base=N for a free range\n",
                base,
                end - 1
            );
        } else if ret < 0 {
            pr_err!("nf_register_sockopt failed ({})\n", ret);
        }
        kernel::error::to_result(ret)?;
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`. nf_unregister_sockopt() takes the sockopt mutex, and
        // the ops' .owner reference keeps the module alive while a handler runs.
        unsafe { glue::kchan_glue_sockopt_unregister() };
    }
}

/// nf_sockopt_ops.set (via glue.c). `arg` points at the caller's `sockptr_t`.
#[no_mangle]
extern "C" fn kchan_sockopt_set(
    sk: *mut c_void,
    optval: c_int,
    arg: *const c_void,
    len: c_uint,
) -> c_int {
    match set(sk, optval, arg, len) {
        Ok(()) => {
            STATS.sockopt_set.inc();
            0
        }
        Err(e) => {
            STATS.sockopt_errors.inc();
            e.to_errno()
        }
    }
}

/// ENOPROTOOPT unless `sk` lives in the initial network namespace.
fn init_net_only(sk: *mut c_void) -> Result {
    // SAFETY: `sk` is the socket the call is made on, valid for the call.
    if unsafe { glue::kchan_glue_sk_init_net(sk) } {
        Ok(())
    } else {
        Err(errno::enoprotoopt())
    }
}

fn set(sk: *mut c_void, optval: c_int, arg: *const c_void, len: c_uint) -> Result {
    let st = state()?;
    init_net_only(sk)?;
    if optval.wrapping_sub(st.params.sockopt_base) != SOCKOPT_MSG {
        return Err(EINVAL); // base + SOCKOPT_LAST is read-only
    }
    // SAFETY: Plain call about the current task.
    if !unsafe { glue::kchan_glue_net_admin() } {
        return Err(EPERM);
    }
    let len = len as usize;
    if len > SOCKOPT_MAX_MSG {
        return Err(EINVAL);
    }
    let mut msg = Message {
        len,
        bytes: [0; SOCKOPT_MAX_MSG],
    };
    // Exactly `len` bytes, never past optlen (the seed always read 64).
    // SAFETY: `msg.bytes` has room for `len` bytes; `arg` is the sockptr_t of this call.
    let ret =
        unsafe { glue::kchan_glue_copy_from_sockptr(msg.bytes.as_mut_ptr().cast(), arg, len) };
    if ret != 0 {
        return Err(EFAULT);
    }
    *st.sockopt.msg.lock() = msg;
    pr_info_limited!(
        Budget::Admin,
        "sockopt set: {}\n",
        Esc(strip_newline(until_nul(msg.as_bytes())))
    );
    Ok(())
}

/// nf_sockopt_ops.get. `*len` is a kernel copy of the caller's optlen, written back by
/// ip_getsockopt() when we return success.
#[no_mangle]
extern "C" fn kchan_sockopt_get(
    sk: *mut c_void,
    optval: c_int,
    user: *mut u8,
    len: *mut c_int,
) -> c_int {
    match init_net_only(sk).and_then(|()| get(optval, user, len)) {
        Ok(()) => {
            STATS.sockopt_get.inc();
            0
        }
        Err(e) => {
            STATS.sockopt_errors.inc();
            e.to_errno()
        }
    }
}

fn get(optval: c_int, user: *mut u8, len: *mut c_int) -> Result {
    let st = state()?;
    // SAFETY: `len` points at ip_getsockopt()'s local int for the duration of the call.
    let room = unsafe { *len };
    let room = usize::try_from(room).map_err(|_| EINVAL)?;
    let last; // keeps the copy of the stored message alive for `data`
    let data: &[u8] = match optval.wrapping_sub(st.params.sockopt_base) {
        SOCKOPT_MSG => SOCKOPT_KERNEL_MSG,
        SOCKOPT_LAST => {
            last = *st.sockopt.msg.lock(); // copy out: no lock held across copy_to_user
            last.as_bytes()
        }
        _ => return Err(EINVAL),
    };
    // A buffer shorter than the data gets a truncated prefix and *len says how much was
    // copied (like getsockopt(SO_*) string options), instead of failing: callers with the
    // seed's 64-byte buffer and callers probing with small buffers both get defined results.
    let n = room.min(data.len());
    compat::user_slice(user, n)
        .writer()
        .write_slice(&data[..n])?;
    // SAFETY: As above; `n` <= SOCKOPT_MAX_MSG or SOCKOPT_KERNEL_MSG.len(), fits in c_int.
    unsafe { *len = n as c_int };
    Ok(())
}
