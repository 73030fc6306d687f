// SPDX-License-Identifier: GPL-2.0
//! Counters shown by /proc/kchan/stats, one `key: value` line each.
//!
//! Plain atomics in a static: they are touched from every context (softirq included), need no
//! initialisation and start from zero on every load (a new module image each time).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// One monotonic counter (or, for `netlink_listeners`, a gauge).
pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// All counters; the field names are the keys printed in /proc/kchan/stats.
        pub(crate) struct Stats {
            $($(#[$doc])* pub(crate) $name: Counter,)*
        }

        impl Stats {
            const fn new() -> Self {
                Stats { $($name: Counter::new(),)* }
            }

            /// Writes every counter as `name: value\n`, in declaration order.
            pub(crate) fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
                $(writeln!(w, concat!(stringify!($name), ": {}"), self.$name.get())?;)*
                Ok(())
            }
        }
    };
}

stats! {
    /// Successful setsockopt(base).
    sockopt_set,
    /// Successful getsockopt(base) and getsockopt(base + 1).
    sockopt_get,
    /// Failed sockopt calls (EPERM, EINVAL, EFAULT).
    sockopt_errors,
    /// Well-formed netlink requests received.
    netlink_rx,
    /// Netlink messages queued to a user socket (replies, ICMP events, burst messages, ends).
    netlink_tx,
    /// Requests refused or malformed (answered with an error ack when NLM_F_ACK was set).
    netlink_errors,
    /// Outgoing netlink messages that could not be queued (full receiver, no memory, gone).
    netlink_drops,
    /// Ports currently registered for ICMP events (a gauge).
    netlink_listeners,
    /// ICMP packets seen at PRE_ROUTING (one per packet, whatever the number of listeners).
    icmp_events,
    /// Burst data messages queued.
    burst_messages,
    /// Burst data messages dropped after the bounded retries.
    burst_drops,
    /// read() calls on /proc/kchan/buffer.
    proc_reads,
    /// Successful writes to /proc/kchan/buffer.
    proc_writes,
    /// Failed reads and writes of /proc/kchan/buffer.
    proc_errors,
    /// Successful mmap() of /proc/kchan/mmap.
    mmap_maps,
    /// Refused or failed mmap() of /proc/kchan/mmap.
    mmap_errors,
    /// Pages served again by the fault handler (after madvise(MADV_DONTNEED)).
    mmap_faults,
}

/// The module's counters.
pub(crate) static STATS: Stats = Stats::new();
