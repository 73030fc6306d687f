// SPDX-License-Identifier: GPL-2.0
//! Bursts (the seed's "asynchronous concurrent netlink model", done right): KCHAN_BURST asks
//! for `count` KCHAN_BURST_DATA messages of `size` payload bytes, sent from a workqueue to
//! the requesting port, followed by one KCHAN_BURST_END { sent, dropped }.
//!
//! Unlike the seed: the payload is fully initialised (LE u32 sequence number, then the
//! filler byte `offset & 0xff`), there is no sleep per message, a full receive queue
//! (-EAGAIN) is retried with exponential back-off within a bounded budget before the
//! message counts as dropped (the end marker, which carries the drop count, waits longer), a
//! burst whose requester stopped reading
//! (MAX_DROPS_IN_A_ROW drops in a row) gives up the rest, a burst stops when its requester's
//! socket is released, and unload stops and drains every burst before the socket goes. So a
//! requester that never reads holds a worker and a slot for a bounded time only.
//! Header of every DATA/END message: the request's seq, flags 0, pid 0.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, Mutex};
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

use crate::abi::{
    burst_data_fill, BurstEnd, BurstRequest, BURST_FIRST_SEQ, BURST_MAX_COUNT, BURST_MAX_INFLIGHT,
    BURST_MAX_SIZE, BURST_MIN_SIZE, KCHAN_BURST_DATA, KCHAN_BURST_END,
};
use crate::compat::errno;
use crate::nl_transport::{self, Request};
use crate::stats::STATS;
use crate::{glue, state};

/// Back-off while the receiver's queue is full: the first sleep, doubled up to the cap.
const BACKOFF_FIRST_US: u32 = 100;
const BACKOFF_MAX_US: u32 = 2_000;
// The time a message may wait for room before it counts as dropped is the `burst_stall_ms`
// parameter (default 2 s, so at most ~1000 attempts). Once a netlink socket overflows it stays
// "congested" until its queue is completely empty, so a reader of several large queues may
// need a while to accept the next message; a reader that keeps reading stays well within this
// budget, one that stopped does not.
/// The end marker carries the count of what was dropped, so it waits this many stall budgets:
/// a reader that is still draining large queues (a debug kernel under emulation needs seconds
/// per queue) must learn of every loss. A requester that stopped reading holds its slot this
/// much longer.
const END_BUDGET_STALLS: u64 = 5;
/// Consecutive dropped messages after which the requester counts as not reading: the rest of
/// the burst is dropped at once (reported in the end marker).
const MAX_DROPS_IN_A_ROW: u32 = 3;

/// Shared burst bookkeeping (in the state).
#[pin_data]
pub(crate) struct Bursts {
    wq: AtomicPtr<c_void>,
    stop: AtomicBool,
    /// The bursts in flight, so that a closing socket can cancel its own (process context
    /// only: a mutex). A free slot is what BURST_MAX_INFLIGHT counts.
    #[pin]
    active: Mutex<[Option<Arc<Burst>>; BURST_MAX_INFLIGHT]>,
}

impl Bursts {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Bursts {
            wq: AtomicPtr::new(ptr::null_mut()),
            stop: AtomicBool::new(false),
            active <- new_mutex!(core::array::from_fn(|_| None), "kchan_bursts"),
        })
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes a free slot for `burst`, or EBUSY.
    fn track(&self, burst: &Arc<Burst>) -> Result {
        let mut active = self.active.lock();
        let slot = active.iter_mut().find(|s| s.is_none()).ok_or(EBUSY)?;
        *slot = Some(burst.clone());
        Ok(())
    }

    /// Frees the slot of `burst`.
    fn untrack(&self, burst: &Arc<Burst>) {
        let mut active = self.active.lock();
        if let Some(slot) = active
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|b| Arc::ptr_eq(b, burst)))
        {
            *slot = None;
        }
    }

    /// The socket of `port` is being released: its bursts stop before the next message, so a
    /// later socket that reuses the port id never receives their rest.
    pub(crate) fn cancel(&self, port: u32) {
        for b in self.active.lock().iter().flatten() {
            if b.port == port {
                b.cancelled.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The dedicated workqueue; on drop: stop flag, then destroy_workqueue(), which waits for
/// every queued or running burst. Own queue rather than system_unbound_wq so that unload
/// can wait for exactly our work.
pub(crate) struct Workqueue(NonNull<c_void>);

// SAFETY: A workqueue pointer may be used and destroyed from any thread.
unsafe impl Send for Workqueue {}
// SAFETY: `Workqueue` has no `&self` methods.
unsafe impl Sync for Workqueue {}

impl Workqueue {
    pub(crate) fn new() -> Result<Self> {
        let st = state()?;
        // SAFETY: Plain call.
        let wq = NonNull::new(unsafe { glue::kchan_glue_wq_create() }).ok_or(ENOMEM)?;
        st.bursts.stop.store(false, Ordering::Relaxed);
        st.bursts.wq.store(wq.as_ptr(), Ordering::Release);
        Ok(Workqueue(wq))
    }
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        if let Ok(st) = state() {
            st.bursts.stop.store(true, Ordering::Relaxed);
        }
        // SAFETY: Created in `new`; no new burst can be queued (requests need a user socket,
        // which pins the module), and this waits for the running ones.
        unsafe { glue::kchan_glue_wq_destroy(self.0.as_ptr()) };
        if let Ok(st) = state() {
            st.bursts.wq.store(ptr::null_mut(), Ordering::Release);
        }
    }
}

/// One accepted burst request.
#[pin_data]
pub(crate) struct Burst {
    #[pin]
    work: Work<Burst>,
    port: u32,
    seq: u32,
    count: u32,
    size: u32,
    cancelled: AtomicBool,
}

impl_has_work! {
    impl HasWork<Self> for Burst { self.work }
}

/// Validates a KCHAN_BURST request and takes an in-flight slot (freed when the burst
/// ends). EPERM without CAP_NET_ADMIN, EINVAL for a bad payload or bounds, EBUSY when
/// BURST_MAX_INFLIGHT bursts are running.
pub(crate) fn prepare(req: &Request<'_>) -> Result<Arc<Burst>> {
    let st = state()?;
    if !req.net_admin() {
        return Err(EPERM);
    }
    let BurstRequest { count, size } = BurstRequest::from_bytes(req.payload()).ok_or(EINVAL)?;
    if count > BURST_MAX_COUNT || !(BURST_MIN_SIZE..=BURST_MAX_SIZE).contains(&size) {
        return Err(EINVAL);
    }
    if st.bursts.stopping() {
        return Err(errno::eshutdown());
    }
    let init = pin_init!(Burst {
        work <- new_work!("kchan_burst"),
        port: req.port,
        seq: req.hdr.seq,
        count,
        size,
        cancelled: AtomicBool::new(false),
    });
    let burst = Arc::pin_init(init, GFP_KERNEL)?;
    st.bursts.track(&burst)?;
    Ok(burst)
}

/// Queues a prepared burst.
pub(crate) fn start(burst: Arc<Burst>) {
    let Ok(st) = state() else { return };
    let wq = st.bursts.wq.load(Ordering::Acquire);
    if wq.is_null() {
        st.bursts.untrack(&burst);
        return;
    }
    // SAFETY: The workqueue lives until `Workqueue::drop`, which cannot run while a request
    // is being handled (the requester's socket pins the module).
    let queue = unsafe { workqueue::Queue::from_raw(wq.cast()) };
    if let Err(burst) = queue.enqueue(burst) {
        st.bursts.untrack(&burst); // cannot happen for a fresh work item
    }
}

impl WorkItem for Burst {
    type Pointer = Arc<Burst>;

    fn run(this: Arc<Burst>) {
        let Ok(st) = state() else { return };
        let mut end = BurstEnd::default();
        let mut gone = false;
        let mut drops_in_a_row = 0;
        let stall_us = u64::from(st.params.burst_stall_ms) * 1000;
        for n in 0..this.count {
            if this.stopped(st) {
                break;
            }
            // n < count <= BURST_MAX_COUNT: no overflow.
            let seq = BURST_FIRST_SEQ + n;
            let fill = |p: &mut [u8]| burst_data_fill(seq, p);
            let size = this.size as usize;
            match this.send_retrying(st, KCHAN_BURST_DATA, size, stall_us, fill) {
                Ok(()) => {
                    end.sent += 1;
                    drops_in_a_row = 0;
                    STATS.burst_messages.inc();
                }
                Err(e) if e == errno::eshutdown() => break,
                Err(e) => {
                    end.dropped += 1;
                    drops_in_a_row += 1;
                    STATS.burst_drops.inc();
                    STATS.netlink_drops.inc();
                    if e == errno::econnrefused() {
                        gone = true; // the requester's socket is closed: nobody to send to
                        break;
                    }
                    if drops_in_a_row >= MAX_DROPS_IN_A_ROW {
                        // Not reading: the rest of the burst is dropped without trying.
                        end.dropped += this.count - n - 1;
                        break;
                    }
                }
            }
            // SAFETY: Process context (worker), no locks held.
            unsafe { glue::kchan_glue_cond_resched() };
        }
        if !gone && !this.cancelled.load(Ordering::Relaxed) {
            // The end marker gets a longer, still bounded, budget.
            let payload = end.to_bytes();
            let fill = |p: &mut [u8]| p.copy_from_slice(&payload);
            let end_us = stall_us * END_BUDGET_STALLS;
            if this
                .send_retrying(st, KCHAN_BURST_END, payload.len(), end_us, fill)
                .is_err()
            {
                STATS.netlink_drops.inc();
            }
        }
        st.bursts.untrack(&this);
    }
}

impl Burst {
    /// Unload, or the requester's socket is being released.
    fn stopped(&self, st: &crate::State) -> bool {
        st.bursts.stopping() || self.cancelled.load(Ordering::Relaxed)
    }

    /// Sends one message to the requester, retrying on EAGAIN with exponential back-off
    /// within `budget_us`. ESHUTDOWN once the burst is stopped (unload, or the requester's
    /// socket is being released).
    fn send_retrying(
        &self,
        st: &crate::State,
        ty: u16,
        len: usize,
        budget_us: u64,
        fill: impl Fn(&mut [u8]),
    ) -> Result {
        // Real time, not the sum of the requested sleeps (which may last twice as long).
        // SAFETY: Plain call.
        let started = unsafe { glue::kchan_glue_now_us() };
        let mut delay = BACKOFF_FIRST_US;
        loop {
            match nl_transport::send(self.port, ty, self.seq, len, false, &fill) {
                Err(e) if e == EAGAIN => {
                    // SAFETY: Plain call.
                    if unsafe { glue::kchan_glue_now_us() } - started >= budget_us {
                        return Err(e);
                    }
                    // SAFETY: Process context (worker), no locks held.
                    unsafe { glue::kchan_glue_backoff(delay) };
                    delay = (delay * 2).min(BACKOFF_MAX_US);
                    // Checked after the sleep: the port may have been released meanwhile
                    // and even reused by a new socket, which must not get our messages.
                    if self.stopped(st) {
                        return Err(errno::eshutdown());
                    }
                }
                r => return r,
            }
        }
    }
}
