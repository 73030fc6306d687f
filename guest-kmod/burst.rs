// SPDX-License-Identifier: GPL-2.0
//! Bursts (the seed's "asynchronous concurrent netlink model", done right): KCHAN_BURST asks
//! for `count` KCHAN_BURST_DATA messages of `size` payload bytes, sent from a workqueue to
//! the requesting port, followed by one KCHAN_BURST_END { sent, dropped }.
//!
//! Unlike the seed: the payload is fully initialised (LE u32 sequence number, then the
//! filler byte `offset & 0xff`), there is no sleep per message, a full receive queue
//! (-EAGAIN) is retried with a short back-off a bounded number of times before the message
//! counts as dropped, and unload stops and drains every burst before the socket goes.
//! Header of every DATA/END message: the request's seq, flags 0, pid 0.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

use crate::abi::{
    BurstEnd, BURST_MAX_COUNT, BURST_MAX_INFLIGHT, BURST_MAX_SIZE, BURST_MIN_SIZE,
    KCHAN_BURST_DATA, KCHAN_BURST_END,
};
use crate::netlink::{self, Request};
use crate::stats::STATS;
use crate::compat::errno;
use crate::{glue, state};

/// Attempts per data message while the receiver's queue is full (each followed by a
/// 200..500 us sleep): a reader that keeps up never loses a message, a stalled one costs
/// at most ~0.1 s per message before it is counted as dropped.
const SEND_ATTEMPTS: u32 = 256;

/// Shared burst bookkeeping (in the state).
pub(crate) struct Bursts {
    wq: AtomicPtr<c_void>,
    stop: AtomicBool,
    inflight: AtomicUsize,
}

impl Bursts {
    pub(crate) fn new() -> Self {
        Bursts {
            wq: AtomicPtr::new(ptr::null_mut()),
            stop: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes one of the BURST_MAX_INFLIGHT slots.
    fn reserve(&self) -> Result {
        self.inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < BURST_MAX_INFLIGHT).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| EBUSY)
    }

    fn release(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
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
}

impl_has_work! {
    impl HasWork<Self> for Burst { self.work }
}

/// Validates a KCHAN_BURST request and takes an in-flight slot (released when the burst
/// ends). EPERM without CAP_NET_ADMIN, EINVAL for a bad payload or bounds, EBUSY when
/// BURST_MAX_INFLIGHT bursts are running.
pub(crate) fn prepare(req: &Request<'_>) -> Result<Arc<Burst>> {
    let st = state()?;
    if !req.net_admin() {
        return Err(EPERM);
    }
    let p = req.payload();
    if p.len() != core::mem::size_of::<crate::abi::BurstRequest>() {
        return Err(EINVAL);
    }
    let count = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
    let size = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
    if count > BURST_MAX_COUNT || !(BURST_MIN_SIZE..=BURST_MAX_SIZE).contains(&size) {
        return Err(EINVAL);
    }
    if st.bursts.stopping() {
        return Err(errno::eshutdown());
    }
    st.bursts.reserve()?;
    let init = pin_init!(Burst {
        work <- new_work!("kchan_burst"),
        port: req.port,
        seq: req.hdr.seq,
        count,
        size,
    });
    Arc::pin_init(init, GFP_KERNEL).inspect_err(|_| st.bursts.release())
}

/// Queues a prepared burst.
pub(crate) fn start(burst: Arc<Burst>) {
    let Ok(st) = state() else { return };
    let wq = st.bursts.wq.load(Ordering::Acquire);
    if wq.is_null() {
        st.bursts.release();
        return;
    }
    // SAFETY: The workqueue lives until `Workqueue::drop`, which cannot run while a request
    // is being handled (the requester's socket pins the module).
    let queue = unsafe { workqueue::Queue::from_raw(wq.cast()) };
    if queue.enqueue(burst).is_err() {
        st.bursts.release(); // cannot happen for a fresh work item
    }
}

impl WorkItem for Burst {
    type Pointer = Arc<Burst>;

    fn run(this: Arc<Burst>) {
        let Ok(st) = state() else { return };
        let mut end = BurstEnd::default();
        let mut gone = false;
        for n in 0..this.count {
            if st.bursts.stopping() {
                break;
            }
            let fill = |p: &mut [u8]| {
                p[..4].copy_from_slice(&n.to_le_bytes());
                for (i, b) in p.iter_mut().enumerate().skip(4) {
                    *b = i as u8;
                }
            };
            match this.send_retrying(st, KCHAN_BURST_DATA, this.size as usize, fill) {
                Ok(()) => {
                    end.sent += 1;
                    STATS.burst_messages.inc();
                }
                Err(e) => {
                    end.dropped += 1;
                    STATS.burst_drops.inc();
                    STATS.netlink_drops.inc();
                    if e == errno::econnrefused() {
                        gone = true; // the requester's socket is closed: nobody to send to
                        break;
                    }
                }
            }
            // SAFETY: Process context (worker), no locks held.
            unsafe { glue::kchan_glue_cond_resched() };
        }
        if !gone {
            // The end marker is retried until delivered, the port is gone or unload.
            let mut payload = [0u8; 8];
            payload[..4].copy_from_slice(&end.sent.to_ne_bytes());
            payload[4..].copy_from_slice(&end.dropped.to_ne_bytes());
            let fill = |p: &mut [u8]| p.copy_from_slice(&payload);
            if this.send_retrying(st, KCHAN_BURST_END, payload.len(), fill).is_err() {
                STATS.netlink_drops.inc();
            }
        }
        st.bursts.release();
    }
}

impl Burst {
    /// Sends one message to the requester, retrying on EAGAIN: up to SEND_ATTEMPTS times for
    /// data, without bound for the end marker. Stops early on unload.
    fn send_retrying(
        &self,
        st: &crate::State,
        ty: u16,
        len: usize,
        fill: impl Fn(&mut [u8]),
    ) -> Result {
        let mut attempts = 0u32;
        loop {
            match netlink::send(self.port, ty, self.seq, len, false, &fill) {
                Err(e) if e == EAGAIN && !st.bursts.stopping() => {
                    attempts += 1;
                    if ty == KCHAN_BURST_DATA && attempts >= SEND_ATTEMPTS {
                        return Err(e);
                    }
                    // SAFETY: Process context, no locks held.
                    unsafe { glue::kchan_glue_backoff() };
                }
                r => return r,
            }
        }
    }
}
