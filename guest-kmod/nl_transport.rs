// SPDX-License-Identifier: GPL-2.0
//! The netlink transport, the bottom of the netlink channel: the kernel socket, sending one
//! message to one port (never blocking), cutting a request skb into messages, and acks. It
//! knows no message types: netlink.rs dispatches requests to icmp.rs and burst.rs, which
//! answer through here.

use core::ffi::{c_int, c_void};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

use crate::abi::{nlmsg_align, NlMsgHdr, NLMSG_HDRLEN, NLM_F_ACK};
use crate::compat::errno;
use crate::stats::STATS;
use crate::{glue, state};

/// The kernel socket as seen by callbacks (null while not registered).
pub(crate) struct Endpoint(AtomicPtr<c_void>);

impl Endpoint {
    pub(crate) fn new() -> Self {
        Endpoint(AtomicPtr::new(ptr::null_mut()))
    }
}

/// The kernel socket on `netlink_unit` in init_net; released on drop.
pub(crate) struct Socket(NonNull<c_void>);

// SAFETY: A kernel socket may be used and released from any thread.
unsafe impl Send for Socket {}
// SAFETY: `Socket` has no `&self` methods.
unsafe impl Sync for Socket {}

impl Socket {
    pub(crate) fn new(unit: i32) -> Result<Self> {
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

/// One well-framed request: the whole message (header + payload) inside the skb.
pub(crate) struct Request<'a> {
    skb: *mut c_void,
    /// The sender's port (NETLINK_CB(skb).portid), never the spoofable `nlmsg_pid`.
    pub(crate) port: u32,
    pub(crate) hdr: NlMsgHdr,
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

    pub(crate) fn wants_ack(&self) -> bool {
        self.hdr.flags & NLM_F_ACK != 0
    }

    /// Replies with one message of `data` to the sender (same seq), GFP_KERNEL.
    pub(crate) fn reply(&self, ty: u16, data: &[u8]) -> Result {
        send(self.port, ty, self.hdr.seq, data.len(), false, |p| {
            p.copy_from_slice(data)
        })
        .inspect_err(|_| STATS.netlink_drops.inc())
    }

    /// Acks the request with `err` (0: success) to the sender; the kernel quotes the header.
    pub(crate) fn ack(&self, err: c_int) {
        ack(self.skb, self.msg.as_ptr(), err);
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

/// Calls `each` for every well-framed message of a request skb, in order. Broken framing
/// (nlmsg_len below the header or past the data) ends the walk with an EINVAL ack when the
/// header asks for one; bytes too short for a header are counted, not acked.
///
/// # Safety
///
/// `skb` must be the skb of the running netlink input callback.
pub(crate) unsafe fn for_each_request(skb: *mut c_void, mut each: impl FnMut(&Request<'_>)) {
    let mut len = 0u32;
    // SAFETY: Per the function's contract `skb` is valid for the callback; the data pointer
    // and length describe its linear part, which stays valid and unchanged until we return.
    let data = unsafe { glue::kchan_glue_skb_data(skb, &mut len) };
    // SAFETY: See above.
    let mut rest = unsafe { core::slice::from_raw_parts(data, len as usize) };
    // SAFETY: As above.
    let port = unsafe { glue::kchan_glue_skb_portid(skb) };

    if rest.len() < NLMSG_HDRLEN {
        STATS.netlink_errors.inc(); // not even a header: nothing to ack
        return;
    }
    while let Some(hdr) = NlMsgHdr::from_prefix(rest) {
        let mlen = hdr.len as usize;
        if mlen < NLMSG_HDRLEN || mlen > rest.len() {
            // Stop here. The ack quotes a copy of the header with its length clamped to the
            // header alone, as netlink_ack() would otherwise copy `nlmsg_len` bytes.
            STATS.netlink_errors.inc();
            if hdr.flags & NLM_F_ACK != 0 {
                let clamped = NlMsgHdr {
                    len: NLMSG_HDRLEN as u32,
                    ..hdr
                };
                let copy = HeaderCopy(clamped.to_bytes());
                ack(skb, copy.0.as_ptr(), EINVAL.to_errno());
            }
            return;
        }
        each(&Request {
            skb,
            port,
            hdr,
            msg: &rest[..mlen],
        });
        // The last message may lack its padding.
        rest = &rest[nlmsg_align(mlen).min(rest.len())..];
    }
    if !rest.is_empty() {
        STATS.netlink_errors.inc(); // trailing bytes too short for a header
    }
}
