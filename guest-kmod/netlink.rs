// SPDX-License-Identifier: GPL-2.0
//! The netlink channel: a kernel socket on `netlink_unit` in init_net. Requests arrive in
//! the sender's process context (`kchan_netlink_input`); nl_transport.rs cuts the skb into
//! messages and this file dispatches each one:
//!
//! | type                       | payload        | who             | effect                       |
//! |----------------------------|----------------|-----------------|------------------------------|
//! | ICMP_REPORT_REGISTER (0)   | empty          | CAP_NET_ADMIN   | register for ICMP reports    |
//! | NETLINK_ECHO (0)           | 1..=4096 bytes | anyone          | NLMSG_DONE reply             |
//! | ICMP_REPORT_UNREGISTER (2) | any            | the port itself | unregister                   |
//! | KCHAN_ECHO                 | 0..=4096 bytes | anyone          | same type, seq, payload back |
//! | KCHAN_BURST                | BurstRequest   | CAP_NET_ADMIN   | queue a burst (burst.rs)     |
//! | anything else              |                |                 | EOPNOTSUPP                   |
//!
//! The sender is identified by the skb's NETLINK_CB portid, never by the spoofable
//! `nlmsg_pid`. With NLM_F_ACK every request gets an ack (0 or the error), after its reply.
//! Without it, failures are counted (netlink_errors) and dropped.
//!
//! Layers, imports one way: nl_transport.rs <- icmp.rs, burst.rs <- this file.

use core::ffi::{c_int, c_void};
use kernel::prelude::*;
use kernel::sync::Arc;

use crate::abi::{
    ICMP_REPORT_REGISTER, ICMP_REPORT_UNREGISTER, KCHAN_BURST, KCHAN_ECHO, NETLINK_ECHO,
    NETLINK_ECHO_REPLY, NETLINK_MAX_PAYLOAD, NLMSG_DONE,
};
use crate::compat::errno;
use crate::nl_transport::{self, Request};
use crate::ratelimit::{pr_info_limited, Budget};
use crate::stats::STATS;
use crate::text::{until_nul, Esc};
use crate::{burst, icmp, state};

/// The netlink channel: the burst workqueue and the kernel socket. Fields drop in order:
/// bursts are stopped and drained before the socket they send on is released.
pub(crate) struct Registration {
    _bursts: burst::Workqueue,
    _socket: nl_transport::Socket,
}

impl Registration {
    pub(crate) fn new(unit: i32) -> Result<Self> {
        let bursts = burst::Workqueue::new()?;
        let socket = nl_transport::Socket::new(unit)?;
        Ok(Registration {
            _bursts: bursts,
            _socket: socket,
        })
    }
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

/// What a handled request leaves to do after its ack.
enum Outcome {
    Done,
    /// Started after the ack, so the requester sees the ack before the first data message.
    Burst(Arc<burst::Burst>),
}

/// netlink_kernel_cfg.input: the sender's process context.
#[no_mangle]
extern "C" fn kchan_netlink_input(skb: *mut c_void) {
    // Dropped on return, after every message was handled: starts what the datagram asked for.
    let mut bursts = Deferred(KVec::new());
    let each = |req: &Request<'_>| {
        if let Some(b) = handle(req) {
            bursts.add(b);
        }
    };
    // SAFETY: `skb` is the skb of this input callback.
    unsafe { nl_transport::for_each_request(skb, each) };
}

/// Handles one message and acks it; a burst it prepared is returned, to be started once the
/// whole datagram is handled.
fn handle(req: &Request<'_>) -> Option<Arc<burst::Burst>> {
    STATS.netlink_rx.inc();
    match dispatch(req) {
        Ok(outcome) => {
            if req.wants_ack() {
                req.ack(0);
            }
            match outcome {
                Outcome::Burst(b) => Some(b),
                Outcome::Done => None,
            }
        }
        Err(e) => {
            STATS.netlink_errors.inc();
            if req.wants_ack() {
                req.ack(e.to_errno());
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
        ICMP_REPORT_REGISTER if payload.is_empty() => icmp::register(req)?,
        NETLINK_ECHO => netlink_echo(req)?,
        ICMP_REPORT_UNREGISTER => icmp::unregister(req)?,
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

/// NETLINK_ECHO: log the payload (up to its first NUL) and answer "Reply from kernel netlink"
/// (no NUL) as NLMSG_DONE, to the real sender and with the request's seq.
fn netlink_echo(req: &Request<'_>) -> Result {
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
