// SPDX-License-Identifier: GPL-2.0
//! Netlink ICMP reports: ports registered with an empty ICMP_REPORT_REGISTER message receive
//! one ICMP_REPORT_MSG with a `PacketInfo` for every IPv4 ICMP packet seen at
//! NF_INET_PRE_ROUTING. Ports are forgotten on ICMP_REPORT_UNREGISTER, when their socket is
//! released (NETLINK_URELEASE) and when unicast says the port is gone (ECONNREFUSED).
//!
//! The hook runs in softirq context, so the listener set is a spinlock taken with softirqs
//! disabled from process context, nothing in the hook sleeps (GFP_ATOMIC, non-blocking
//! unicast), and the hook always accepts the packet.

use kernel::prelude::*;
use kernel::sync::{new_spinlock, SpinLock};

use crate::abi::{PacketInfo, ICMP_REPORT_MSG, NETLINK_MAX_LISTENERS};
use crate::compat::errno;
use crate::glue::{self, BhOff};
use crate::nl_transport::{self, Request};
use crate::ratelimit::{pr_info_limited, Budget};
use crate::state;
use crate::stats::STATS;

const IPPROTO_ICMP: u8 = 1;

/// Registered ports, in a fixed array: no allocation under the lock, in softirq.
struct PortSet {
    len: usize,
    ports: [u32; NETLINK_MAX_LISTENERS],
}

impl PortSet {
    fn find(&self, port: u32) -> Option<usize> {
        self.ports[..self.len].iter().position(|&p| p == port)
    }

    fn remove_at(&mut self, i: usize) {
        self.len -= 1;
        self.ports[i] = self.ports[self.len];
        STATS.netlink_listeners.set(self.len as u64);
    }
}

/// The listener set.
#[pin_data]
pub(crate) struct Listeners {
    #[pin]
    set: SpinLock<PortSet>,
}

impl Listeners {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Listeners {
            set <- new_spinlock!(
                PortSet { len: 0, ports: [0; NETLINK_MAX_LISTENERS] },
                "kchan_listeners"
            ),
        })
    }

    /// Adds `port`; true if it was not registered yet.
    fn add(&self, port: u32) -> Result<bool> {
        let _bh = BhOff::new();
        let mut set = self.set.lock();
        if set.find(port).is_some() {
            return Ok(false);
        }
        if set.len == NETLINK_MAX_LISTENERS {
            return Err(ENOSPC);
        }
        let len = set.len;
        set.ports[len] = port;
        set.len += 1;
        STATS.netlink_listeners.set(set.len as u64);
        Ok(true)
    }

    /// Removes `port`; true if it was registered.
    fn remove(&self, port: u32) -> bool {
        let _bh = BhOff::new();
        let mut set = self.set.lock();
        match set.find(port) {
            Some(i) => {
                set.remove_at(i);
                true
            }
            None => false,
        }
    }
}

/// ICMP_REPORT_REGISTER with an empty payload: register the sender (CAP_NET_ADMIN). Idempotent.
pub(crate) fn register(req: &Request<'_>) -> Result {
    if !req.net_admin() {
        return Err(EPERM);
    }
    if state()?.listeners.add(req.port)? {
        pr_info_limited!(Budget::Admin, "netlink: listener {} registered\n", req.port);
    }
    Ok(())
}

/// ICMP_REPORT_UNREGISTER: unregister the sender itself (identity is the socket's port, so one port
/// cannot unregister another). ENOENT if it was not registered.
pub(crate) fn unregister(req: &Request<'_>) -> Result {
    if !state()?.listeners.remove(req.port) {
        return Err(ENOENT);
    }
    pr_info_limited!(
        Budget::Admin,
        "netlink: listener {} unregistered\n",
        req.port
    );
    Ok(())
}

/// The socket of `port` is being released (NETLINK_URELEASE): forget it.
pub(crate) fn forget(port: u32) {
    if let Ok(st) = state() {
        if st.listeners.remove(port) {
            pr_info_limited!(Budget::Admin, "netlink: listener {} gone\n", port);
        }
    }
}

/// Every IPv4 packet at PRE_ROUTING (softirq). Addresses are in network byte order and are
/// passed on as they are (`iph->saddr`/`iph->daddr`, as PacketInfo documents).
#[no_mangle]
extern "C" fn kchan_ipv4_packet(protocol: u8, saddr: u32, daddr: u32) {
    if protocol != IPPROTO_ICMP {
        return;
    }
    STATS.icmp_events.inc();
    let Ok(st) = state() else { return };
    let info = PacketInfo {
        src: saddr,
        dest: daddr,
    }
    .to_bytes();

    let _bh = BhOff::new(); // already off in softirq; keeps the locking rule uniform
    let mut set = st.listeners.set.lock();
    let mut i = 0;
    while i < set.len {
        let port = set.ports[i];
        match nl_transport::send(port, ICMP_REPORT_MSG, 0, info.len(), true, |p| {
            p.copy_from_slice(&info)
        }) {
            Ok(()) => i += 1,
            Err(e) => {
                STATS.netlink_drops.inc();
                if e == errno::econnrefused() {
                    set.remove_at(i); // the port is gone; same index now holds another
                    pr_info_limited!(Budget::Admin, "netlink: listener {} gone\n", port);
                } else {
                    i += 1;
                }
            }
        }
    }
}

/// The PRE_ROUTING hook on init_net; unregistered (and waited for) on drop.
pub(crate) struct Hook(());

impl Hook {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Plain call; the hook needs the state and the netlink socket, which exist.
        kernel::error::to_result(unsafe { glue::kchan_glue_hook_register() })?;
        Ok(Hook(()))
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`; the glue waits for a grace period after unregistering,
        // so no hook still runs on another CPU when this returns.
        unsafe { glue::kchan_glue_hook_unregister() };
    }
}

/// The netlink notifier (NETLINK_URELEASE); unregistered on drop.
pub(crate) struct ReleaseNotifier(());

impl ReleaseNotifier {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Plain call; the callback needs the state, which exists.
        kernel::error::to_result(unsafe { glue::kchan_glue_notifier_register() })?;
        Ok(ReleaseNotifier(()))
    }
}

impl Drop for ReleaseNotifier {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`; netlink's notifier chain is an atomic one, whose
        // unregister waits (synchronize_rcu) for callbacks running on other CPUs.
        unsafe { glue::kchan_glue_notifier_unregister() };
    }
}
