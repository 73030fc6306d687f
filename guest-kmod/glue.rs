// SPDX-License-Identifier: GPL-2.0
//! The functions glue.c provides to Rust (mirror of the second half of glue.h).
//!
//! Kernel structs cross this boundary as opaque `c_void` pointers: Rust never reads their
//! layout, so these declarations do not depend on generated bindings (and stay the same on
//! 6.12 and 7.3).

use core::ffi::{c_int, c_uint, c_void};

extern "C" {
    pub(crate) fn kchan_glue_proc_register() -> c_int;
    pub(crate) fn kchan_glue_proc_unregister();
    pub(crate) fn kchan_glue_sockopt_register(optmin: c_int, optmax: c_int) -> c_int;
    pub(crate) fn kchan_glue_sockopt_unregister();
    pub(crate) fn kchan_glue_netlink_create(unit: c_int) -> *mut c_void;
    pub(crate) fn kchan_glue_netlink_release(sk: *mut c_void);
    pub(crate) fn kchan_glue_notifier_register() -> c_int;
    pub(crate) fn kchan_glue_notifier_unregister();
    pub(crate) fn kchan_glue_hook_register() -> c_int;
    pub(crate) fn kchan_glue_hook_unregister();
    pub(crate) fn kchan_glue_wq_create() -> *mut c_void;
    pub(crate) fn kchan_glue_wq_destroy(wq: *mut c_void);

    pub(crate) fn kchan_glue_sk_init_net(sk: *mut c_void) -> bool;
    pub(crate) fn kchan_glue_net_admin() -> bool;
    pub(crate) fn kchan_glue_set_log_period(ms: c_uint);
    pub(crate) fn kchan_glue_log_echo() -> bool;
    pub(crate) fn kchan_glue_log_admin() -> bool;
    pub(crate) fn kchan_glue_copy_from_sockptr(
        dst: *mut c_void,
        src: *const c_void,
        len: usize,
    ) -> c_int;
    pub(crate) fn kchan_glue_skb_data(skb: *mut c_void, len: *mut u32) -> *const u8;
    pub(crate) fn kchan_glue_skb_portid(skb: *mut c_void) -> u32;
    pub(crate) fn kchan_glue_skb_net_admin(skb: *mut c_void) -> bool;
    pub(crate) fn kchan_glue_ack(in_skb: *mut c_void, nlh: *const u8, err: c_int);
    pub(crate) fn kchan_glue_nlmsg_new(
        ty: u16,
        seq: u32,
        len: u32,
        atomic: bool,
        payload: *mut *mut c_void,
    ) -> *mut c_void;
    pub(crate) fn kchan_glue_unicast(sk: *mut c_void, skb: *mut c_void, portid: u32) -> c_int;
    pub(crate) fn kchan_glue_bh_disable();
    pub(crate) fn kchan_glue_bh_enable();
    pub(crate) fn kchan_glue_backoff(us: c_uint);
    pub(crate) fn kchan_glue_cond_resched();
    pub(crate) fn kchan_glue_now_us() -> u64;
    pub(crate) fn kchan_glue_copy_from_page(
        dst: *mut c_void,
        page: *mut c_void,
        offset: usize,
        len: usize,
    );

    /// Exported by fs/seq_file.c; -1 when the buffer is full (seq_file retries with more room).
    pub(crate) fn seq_write(m: *mut c_void, data: *const c_void, len: usize) -> c_int;
}

/// Softirqs off on this CPU while alive: process context takes a spinlock that the netfilter
/// hook (softirq) also takes. The 6.12 kernel crate has no `spin_lock_bh` flavour.
pub(crate) struct BhOff(());

impl BhOff {
    pub(crate) fn new() -> Self {
        // SAFETY: local_bh_disable() may be called in any non-hardirq context and nests.
        unsafe { kchan_glue_bh_disable() };
        BhOff(())
    }
}

impl Drop for BhOff {
    fn drop(&mut self) {
        // SAFETY: Paired with the local_bh_disable() in `new` on the same CPU (no sleeping
        // happens in between, so the task is not migrated).
        unsafe { kchan_glue_bh_enable() };
    }
}
