// SPDX-License-Identifier: GPL-2.0
//! The netlink channel: a kernel socket on `netlink_unit` in init_net. Requests arrive in
//! the sender's process context (`kchan_netlink_input`); every message of the skb is
//! validated and dispatched:
//!
//! | type            | payload          | who             | effect                          |
//! |-----------------|------------------|-----------------|---------------------------------|
//! | IMP2_U_PID (0)  | empty            | CAP_NET_ADMIN   | register for ICMP events        |
//! | IMP2_U_PID (0)  | 1..=4096 bytes   | anyone          | seed 004 echo: NLMSG_DONE reply |
//! | IMP2_CLOSE (2)  | any              | the port itself | unregister                      |
//! | KCHAN_ECHO      | 0..=4096 bytes   | anyone          | same type, seq and payload back |
//! | KCHAN_BURST     | BurstRequest     | CAP_NET_ADMIN   | queue a burst (burst.rs)        |
//! | anything else   |                  |                 | EOPNOTSUPP                      |
//!
//! The sender is identified by the skb's NETLINK_CB portid, never by the spoofable
//! `nlmsg_pid`. With NLM_F_ACK every request gets an ack (0 or the error), after its reply.
//! Without it, failures are counted (netlink_errors) and dropped.

use core::ffi::{c_int, c_void};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

use crate::ratelimit::{pr_info_limited, Budget};
use crate::abi::{
    IMP2_CLOSE, IMP2_U_PID, KCHAN_BURST, KCHAN_ECHO, NETLINK_ECHO_REPLY, NETLINK_MAX_PAYLOAD,
    NLMSG_DONE, NLMSG_HDRLEN, NLM_F_ACK,
};
use crate::compat::errno;
use crate::stats::STATS;
use crate::text::{until_nul, Esc};
use crate::{burst, glue, icmp, state};

/// The kernel socket as seen by callbacks (null while not registered).
pub(crate) struct Endpoint(AtomicPtr<c_void>);

impl Endpoint {
    pub(crate) fn new() -> Self {
        Endpoint(AtomicPtr::new(ptr::null_mut()))
    }
}

/// The netlink channel: the burst workqueue and the kernel socket. Fields drop in order:
/// bursts are stopped and drained before the socket they send on is released.
pub(crate) struct Registration {
    _bursts: burst::Workqueue,
    _socket: Socket,
}

impl Registration {
    pub(crate) fn new(unit: i32) -> Result<Self> {
        let bursts = burst::Workqueue::new()?;
        let socket = Socket::new(unit)?;
        Ok(Registration {
            _bursts: bursts,
            _socket: socket,
        })
    }
}

struct Socket(NonNull<c_void>);

// SAFETY: A kernel socket may be used and released from any thread.
unsafe impl Send for Socket {}
// SAFETY: `Socket` has no `&self` methods.
unsafe impl Sync for Socket {}

impl Socket {
    fn new(unit: i32) -> Result<Self> {
        let st = state()?;
        // SAFETY: Plain call; the input callback needs the state, which exists.
        let sk = unsafe { glue::kchan_glue_netlink_create(unit) };
        let Some(sk) = NonNull::new(sk) else {
            // netlink_kernel_create() returns NULL without a reason; a unit already
            // registered by another kernel socket is by far the likeliest.
            pr_err!(
                "netlink unit {} is taken or could not be created (EBUSY)\n",
                unit
            );
            return Err(EBUSY); // not 0 like the seed's PTR_ERR(NULL)
        };
        st.netlink.0.store(sk.as_ptr(), Ordering::Release);
        Ok(Socket(sk))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Ok(st) = state() {
            st.netlink.0.store(ptr::null_mut(), Ordering::Release);
        }
        // SAFETY: Created in `new`. No request can be in flight: user sockets of this unit
        // hold a module reference, and hook and bursts are gone already.
        unsafe { glue::kchan_glue_netlink_release(self.0.as_ptr()) };
    }
}

/// Builds one message (type `ty`, `seq`, flags 0, pid 0, `len` payload bytes written by
/// `fill` over a zeroed area) and queues it to `port`, never blocking. `atomic` selects
/// GFP_ATOMIC (softirq) instead of GFP_KERNEL. Counts netlink_tx on success; the callers
/// decide what a failure means.
pub(crate) fn send(
    port: u32,
    ty: u16,
    seq: u32,
    len: usize,
    atomic: bool,
    fill: impl FnOnce(&mut [u8]),
) -> Result {
    let sk = state()?.netlink.0.load(Ordering::Acquire);
    if sk.is_null() {
        return Err(errno::enotconn());
    }
    let len32 = u32::try_from(len).map_err(|_| errno::emsgsize())?;
    let mut payload: *mut c_void = ptr::null_mut();
    // SAFETY: Plain call; on success `payload` points at `len` zeroed bytes inside the skb.
    let skb = unsafe { glue::kchan_glue_nlmsg_new(ty, seq, len32, atomic, &mut payload) };
    if skb.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: See above; the skb is ours until it is handed to unicast below.
    fill(unsafe { core::slice::from_raw_parts_mut(payload.cast::<u8>(), len) });
    // SAFETY: `sk` is the live kernel socket (see `Socket::drop`); unicast consumes `skb`.
    let ret = unsafe { glue::kchan_glue_unicast(sk, skb, port) };
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    STATS.netlink_tx.inc();
    Ok(())
}

/// NETLINK_URELEASE of a bound netlink socket in init_net (glue.c's notifier, process
/// context): a released port stops receiving ICMP events and its bursts.
#[no_mangle]
extern "C" fn kchan_netlink_release(protocol: c_int, portid: u32) {
    let Ok(st) = state() else { return };
    if protocol == st.params.netlink_unit {
        icmp::forget(portid);
        st.bursts.cancel(portid);
    }
}

/// A netlink message header, read field by field (native byte order) from untrusted bytes.
#[derive(Clone, Copy)]
pub(crate) struct Header {
    len: u32,
    ty: u16,
    flags: u16,
    pub(crate) seq: u32,
}

impl Header {
    /// `b` holds at least NLMSG_HDRLEN bytes.
    fn parse(b: &[u8]) -> Self {
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Header {
            len: u32_at(0),
            ty: u16_at(4),
            flags: u16_at(6),
            seq: u32_at(8),
        }
    }
}

/// One validated request: the whole message (header + payload) inside the skb.
pub(crate) struct Request<'a> {
    skb: *mut c_void,
    /// The sender's port (NETLINK_CB(skb).portid).
    pub(crate) port: u32,
    pub(crate) hdr: Header,
    msg: &'a [u8],
}

impl Request<'_> {
    pub(crate) fn payload(&self) -> &[u8] {
        &self.msg[NLMSG_HDRLEN..]
    }

    /// CAP_NET_ADMIN of the sending socket's opener (netlink_capable()).
    pub(crate) fn net_admin(&self) -> bool {
        // SAFETY: `skb` is the request skb, valid during the input callback.
        unsafe { glue::kchan_glue_skb_net_admin(self.skb) }
    }

    /// Replies with one message of `data` to the sender (same seq), GFP_KERNEL.
    fn reply(&self, ty: u16, data: &[u8]) -> Result {
        send(self.port, ty, self.hdr.seq, data.len(), false, |p| {
            p.copy_from_slice(data)
        })
        .inspect_err(|_| STATS.netlink_drops.inc())
    }
}

/// Acks `nlh` (a header inside the skb, or a sanitised copy) with `err` to the sender.
fn ack(skb: *mut c_void, nlh: *const u8, err: c_int) {
    // SAFETY: `skb` is the request skb; `nlh` points at NLMSG_HDRLEN readable bytes whose
    // nlmsg_len covers only readable bytes (netlink_ack() copies the payload on errors).
    unsafe { glue::kchan_glue_ack(skb, nlh, err) };
}

/// A header handed to C as a `struct nlmsghdr *`: aligned like one (its fields are u32/u16).
#[repr(C, align(4))]
struct HeaderCopy([u8; NLMSG_HDRLEN]);

/// What a handled request leaves to do after its ack.
enum Outcome {
    Done,
    /// Started after the ack, so the requester sees the ack before the first data message.
    Burst(Arc<burst::Burst>),
}

/// netlink_kernel_cfg.input: the sender's process context.
#[no_mangle]
extern "C" fn kchan_netlink_input(skb: *mut c_void) {
    let mut len = 0u32;
    // SAFETY: `skb` is valid for the callback; the data pointer and length describe its
    // linear part, which stays valid and unchanged until we return.
    let data = unsafe { glue::kchan_glue_skb_data(skb, &mut len) };
    // SAFETY: See above.
    let mut rest = unsafe { core::slice::from_raw_parts(data, len as usize) };
    // SAFETY: As above.
    let port = unsafe { glue::kchan_glue_skb_portid(skb) };

    if rest.len() < NLMSG_HDRLEN {
        STATS.netlink_errors.inc(); // not even a header: nothing to ack
        return;
    }
    // Dropped at every return below: starts what the datagram asked for.
    let mut bursts = Deferred(KVec::new());
    while rest.len() >= NLMSG_HDRLEN {
        let hdr = Header::parse(rest);
        let mlen = hdr.len as usize;
        if mlen < NLMSG_HDRLEN || mlen > rest.len() {
            // Framing is broken: stop here. The ack quotes a copy of the header whose
            // length is clamped to the header alone, as netlink_ack() would otherwise copy
            // `nlmsg_len` bytes from the skb.
            STATS.netlink_errors.inc();
            if hdr.flags & NLM_F_ACK != 0 {
                let mut copy = HeaderCopy([0u8; NLMSG_HDRLEN]);
                copy.0.copy_from_slice(&rest[..NLMSG_HDRLEN]);
                copy.0[..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
                ack(skb, copy.0.as_ptr(), EINVAL.to_errno());
            }
            return;
        }
        if let Some(b) = handle(&Request {
            skb,
            port,
            hdr,
            msg: &rest[..mlen],
        }) {
            bursts.add(b);
        }
        // Messages are 4-byte aligned; the last one may lack its padding.
        let step = ((mlen + 3) & !3).min(rest.len());
        rest = &rest[step..];
    }
    if !rest.is_empty() {
        STATS.netlink_errors.inc(); // trailing bytes too short for a header
    }
}

/// Handles one message and acks it; a burst it prepared is returned, to be started once the
/// whole datagram is handled.
fn handle(req: &Request<'_>) -> Option<Arc<burst::Burst>> {
    STATS.netlink_rx.inc();
    let wants_ack = req.hdr.flags & NLM_F_ACK != 0;
    match dispatch(req) {
        Ok(outcome) => {
            if wants_ack {
                ack(req.skb, req.msg.as_ptr(), 0);
            }
            match outcome {
                Outcome::Burst(b) => Some(b),
                Outcome::Done => None,
            }
        }
        Err(e) => {
            STATS.netlink_errors.inc();
            if wants_ack {
                ack(req.skb, req.msg.as_ptr(), e.to_errno());
            }
            None
        }
    }
}

/// Bursts of one datagram, started after all its messages were handled: a burst started at
/// once could fill the requester's queue (on another CPU) before the acks of the messages
/// after it are queued, and those acks would be lost.
struct Deferred(KVec<Arc<burst::Burst>>);

impl Deferred {
    fn add(&mut self, b: Arc<burst::Burst>) {
        if self.0.reserve(1, GFP_KERNEL).is_err() {
            // No memory to defer it: start it now rather than leak its slot.
            burst::start(b);
            return;
        }
        // Within the capacity just reserved: this push does not allocate, so cannot fail.
        let _ = self.0.push(b, GFP_KERNEL);
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        for b in core::mem::replace(&mut self.0, KVec::new()) {
            burst::start(b);
        }
    }
}

fn dispatch(req: &Request<'_>) -> Result<Outcome> {
    let payload = req.payload();
    match req.hdr.ty {
        IMP2_U_PID if payload.is_empty() => icmp::register(req)?,
        IMP2_U_PID => seed_echo(req)?,
        IMP2_CLOSE => icmp::unregister(req)?,
        KCHAN_ECHO => {
            if payload.len() > NETLINK_MAX_PAYLOAD {
                return Err(errno::emsgsize());
            }
            req.reply(KCHAN_ECHO, payload)?;
        }
        KCHAN_BURST => return burst::prepare(req).map(Outcome::Burst),
        _ => return Err(errno::eopnotsupp()),
    }
    Ok(Outcome::Done)
}

/// Seed 004: log the payload (up to its first NUL) and answer "Reply from kernel netlink"
/// (no NUL) as NLMSG_DONE, to the real sender and with the request's seq.
fn seed_echo(req: &Request<'_>) -> Result {
    let payload = req.payload();
    if payload.len() > NETLINK_MAX_PAYLOAD {
        return Err(errno::emsgsize());
    }
    pr_info_limited!(
        Budget::Echo,
        "netlink: received from PID {}: \"{}\"\n",
        req.port,
        Esc(until_nul(payload))
    );
    req.reply(NLMSG_DONE, NETLINK_ECHO_REPLY)
}
