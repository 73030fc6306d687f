// SPDX-License-Identifier: GPL-2.0
//! The kchan ABI: the one definition shared by the kernel module (`guest-kmod`, no_std) and the
//! userspace client (`guest-tools`, included by path). Only `core` items: constants and `#[repr(C)]`
//! layouts. Wire formats follow the seed demos (imp1, imp2, netlink echo, memshare) so their own
//! user programs keep working; kchan-only additions start at `NLMSG_MIN_TYPE`.

// ---- sockopt (seed 000, "imp1") ---------------------------------------------------------------

/// Default first optname (`sockopt_base` module parameter); the seed's IMP1_SET == IMP1_GET == 128.
pub const SOCKOPT_BASE_DEFAULT: i32 = 128;
/// setsockopt(base + SOCKOPT_MSG): store a message; getsockopt(base + SOCKOPT_MSG): the kernel's message.
pub const SOCKOPT_MSG: i32 = 0;
/// getsockopt(base + SOCKOPT_LAST): the last message stored by a set (read-back without dmesg).
pub const SOCKOPT_LAST: i32 = 1;
/// Number of optnames kchan registers: [base, base + SOCKOPT_COUNT).
pub const SOCKOPT_COUNT: i32 = 2;
/// Longest message setsockopt accepts (the seed's `char umsg[64]`); longer gives EINVAL.
pub const SOCKOPT_MAX_MSG: usize = 64;
/// What getsockopt(base) returns: the seed's KMSG including its NUL (KMSG_LEN == 23).
pub const SOCKOPT_KERNEL_MSG: &[u8] = b"a message from kernel\n\0";
/// The seed's user message (UMSG, 26 bytes with its NUL).
pub const SOCKOPT_USER_MSG: &[u8] = b"a message from userspace\n\0";

// ---- netlink (seeds 001/002 "imp2", 004 echo) -----------------------------------------------

/// Default netlink unit (`netlink_unit` module parameter): NL_IMP2 == NETLINK_MY_UNIT_PROTO == 31.
pub const NETLINK_UNIT_DEFAULT: i32 = 31;
/// imp2: user -> kernel. Empty payload: register the sending port for ICMP events.
/// Non-empty payload: the seed 004 echo (reply type NLMSG_DONE, payload NETLINK_ECHO_REPLY).
pub const IMP2_U_PID: u16 = 0;
/// imp2: kernel -> user, payload `PacketInfo`, one per ICMP packet seen at PRE_ROUTING.
pub const IMP2_K_MSG: u16 = 1;
/// imp2: user -> kernel, unregister the sending port (only the registered port itself can).
pub const IMP2_CLOSE: u16 = 2;
/// Standard netlink control types used by kchan replies.
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
/// First type free for kchan's own messages (the kernel's NLMSG_MIN_TYPE).
pub const NLMSG_MIN_TYPE: u16 = 0x10;
/// Echo: the kernel answers with the same type, seq and payload. Open to every user.
pub const KCHAN_ECHO: u16 = 0x10;
/// Burst request, payload `BurstRequest`: the kernel sends `count` KCHAN_BURST_DATA messages of
/// `size` payload bytes to the requesting port from a workqueue, then one KCHAN_BURST_END.
/// Needs CAP_NET_ADMIN.
pub const KCHAN_BURST: u16 = 0x11;
/// Burst data: payload starts with a little-endian u32 sequence number, then filler bytes.
pub const KCHAN_BURST_DATA: u16 = 0x12;
/// End of a burst, payload `BurstEnd`.
pub const KCHAN_BURST_END: u16 = 0x13;
/// The seed 004 reply payload (sent without a NUL, as the seed did).
pub const NETLINK_ECHO_REPLY: &[u8] = b"Reply from kernel netlink";
/// Largest payload kchan accepts in one message (echo and imp2); larger gets EMSGSIZE / is dropped.
pub const NETLINK_MAX_PAYLOAD: usize = 4096;
/// Most ports registered for ICMP events at once; one more gets ENOSPC.
pub const NETLINK_MAX_LISTENERS: usize = 256;
/// Bounds of a burst request; outside them the request gets EINVAL.
pub const BURST_MAX_COUNT: u32 = 10_000_000;
pub const BURST_MIN_SIZE: u32 = 4;
pub const BURST_MAX_SIZE: u32 = 65_536;
/// Most bursts in flight at once; one more gets EBUSY.
pub const BURST_MAX_INFLIGHT: usize = 64;

/// imp2's `struct packet_info`: addresses in network byte order, as `iph->saddr`/`daddr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketInfo {
    pub src: u32,
    pub dest: u32,
}

/// Payload of KCHAN_BURST, native byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstRequest {
    pub count: u32,
    pub size: u32,
}

/// Payload of KCHAN_BURST_END, native byte order: how many data messages were queued to the
/// socket and how many were dropped because its receive queue stayed full.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstEnd {
    pub sent: u32,
    pub dropped: u32,
}

// ---- procfs (seed 002) -----------------------------------------------------------------------

pub const PROC_DIR: &str = "kchan";
/// Read/write buffer, mode 0644: root writes, everyone reads. A write replaces the content.
pub const PROC_BUFFER: &str = "/proc/kchan/buffer";
/// Capacity of /proc/kchan/buffer; a longer write gets EINVAL and changes nothing.
pub const PROC_BUFFER_CAPACITY: usize = 128;
/// Counters, one `key: value` line each.
pub const PROC_STATS: &str = "/proc/kchan/stats";

// ---- mmap (seed 003, "memshare") ---------------------------------------------------------------

/// The shared pages, mode 0600: mmap(MAP_SHARED) at any page-aligned offset/length inside, or read().
pub const PROC_MMAP: &str = "/proc/kchan/mmap";
/// The seed's size file, kept for compatibility: "<bytes>\n". The seed's phymem_addr is NOT
/// provided: a physical address leaks kernel layout and /dev/mem cannot map RAM anyway.
pub const MEMSHARE_SIZE: &str = "/proc/memshare/phymem_size";
/// Default and largest `mmap_pages` module parameter (1024 pages = 4 MiB, the seed's follow-up).
pub const MMAP_PAGES_DEFAULT: u32 = 1;
pub const MMAP_PAGES_MAX: u32 = 4096;
