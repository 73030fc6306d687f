// SPDX-License-Identifier: GPL-2.0
//! The kchan ABI: the one definition shared by the kernel module (`guest-kmod`, no_std) and the
//! userspace client (`guest-tools`, included by path). Only `core` items and no `unsafe`:
//! constants, `#[repr(C)]` layouts and their byte conversions, which both sides use instead of
//! reading fields at offsets of their own. Wire formats follow the seed demos (README.md maps
//! them to the channels) so their own user programs keep working; kchan-only additions start
//! at `NLMSG_MIN_TYPE`.

// ---- layouts ----------------------------------------------------------------------------------

/// Adds byte conversions to a struct of integer fields in native byte order:
/// `SIZE`, `from_bytes` (exactly `SIZE` bytes), `from_prefix` (the first `SIZE` bytes) and
/// `to_bytes`. The struct is written out as usual inside the invocation; field offsets come
/// from the compiler (`offset_of!`), and a layout with padding does not compile, so every
/// byte of the wire format belongs to a field.
macro_rules! wire_layout {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $($(#[$fattr:meta])* pub $field:ident: $ty:ty,)+
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $($(#[$fattr])* pub $field: $ty,)+
        }

        const _: () = assert!(
            core::mem::size_of::<$name>() == 0 $(+ core::mem::size_of::<$ty>())+,
            "wire layouts have no padding"
        );

        impl $name {
            /// Size of the layout in bytes.
            pub const SIZE: usize = core::mem::size_of::<Self>();

            /// Decodes exactly `SIZE` bytes; `None` for any other length.
            pub fn from_bytes(b: &[u8]) -> Option<Self> {
                if b.len() == Self::SIZE {
                    Self::from_prefix(b)
                } else {
                    None
                }
            }

            /// Decodes the first `SIZE` bytes of `b` (the rest is ignored); `None` if shorter.
            pub fn from_prefix(b: &[u8]) -> Option<Self> {
                Some($name {
                    $($field: <$ty>::from_ne_bytes(
                        bytes_at(b, core::mem::offset_of!($name, $field))?,
                    ),)+
                })
            }

            /// The `SIZE` bytes of the layout.
            pub fn to_bytes(self) -> [u8; Self::SIZE] {
                let mut b = [0u8; Self::SIZE];
                $(put_at(&mut b, core::mem::offset_of!($name, $field), &self.$field.to_ne_bytes());)+
                b
            }
        }
    };
}

/// The `N` bytes of `b` at `at`, if all are there.
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Copies `src` into `dst` at `at`; callers stay inside `dst` (offsets of the layout itself).
fn put_at(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = dst.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

// ---- sockopt (wire values of seed 000, "imp1") -----------------------------------------------

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

// ---- netlink (ICMP reports and echo: wire values of seeds 001/002 "imp2" and 004) ------------
//
// Requests: every message of a sendmsg() is handled on its own, in order. The sender is the
// socket's port (the kernel's NETLINK_CB portid), never the header's `nlmsg_pid`. Errors are
// reported ONLY when the request has NLM_F_ACK: then every request gets one NLMSG_ERROR ack
// (error 0 on success), sent after its reply if it has one. Without NLM_F_ACK a failed request
// is silently dropped (and counted as `netlink_errors` in /proc/kchan/stats). NLM_F_REQUEST is
// neither required nor checked.
//
// kchan's own kernel -> user messages (replies, ICMP reports, burst DATA/END) have `nlmsg_pid` 0
// and `nlmsg_flags` 0; replies, burst DATA and burst END carry the request's `nlmsg_seq`, ICMP
// reports (ICMP_REPORT_MSG) carry seq 0. Acks are the kernel's netlink_ack() (request's seq and
// port).

/// sizeof(struct nlmsghdr): the payload starts this many bytes into a message (NLMSG_HDRLEN).
pub const NLMSG_HDRLEN: usize = 16;

wire_layout! {
    /// `struct nlmsghdr`, native byte order: the first NLMSG_HDRLEN bytes of every message.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NlMsgHdr {
        /// nlmsg_len: header plus payload, without the padding after it.
        pub len: u32,
        /// nlmsg_type.
        pub ty: u16,
        /// nlmsg_flags (NLM_F_*).
        pub flags: u16,
        /// nlmsg_seq.
        pub seq: u32,
        /// nlmsg_pid: what the sender claims; kchan identifies senders by their socket instead.
        pub pid: u32,
    }
}

const _: () = assert!(NlMsgHdr::SIZE == NLMSG_HDRLEN);

wire_layout! {
    /// The start of an NLMSG_ERROR payload (`struct nlmsgerr`), native byte order: `error` is
    /// 0 for an ack, otherwise a negative errno. The request's `NlMsgHdr` follows at
    /// `NlMsgErr::SIZE` (netlink_ack() quotes at least the header).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NlMsgErr {
        pub error: i32,
    }
}

/// NLMSG_ALIGN: messages of one datagram start at multiples of 4 bytes.
pub const fn nlmsg_align(len: usize) -> usize {
    (len + 3) & !3
}
/// Header flag: "this is a request" (the kernel's NLM_F_REQUEST). Accepted, not required.
pub const NLM_F_REQUEST: u16 = 0x01;
/// Header flag: ask for an NLMSG_ERROR ack (the kernel's NLM_F_ACK). Without it kchan reports
/// no error at all: a refused or malformed request is dropped silently.
pub const NLM_F_ACK: u16 = 0x04;
/// Netlink units are 0..NETLINK_MAX_LINKS (the kernel's MAX_LINKS): `netlink_unit` must be < 32,
/// otherwise the module refuses to load (EINVAL).
pub const NETLINK_MAX_LINKS: i32 = 32;
/// Default netlink unit (`netlink_unit` module parameter): the seed's NL_IMP2 ==
/// NETLINK_MY_UNIT_PROTO == 31.
pub const NETLINK_UNIT_DEFAULT: i32 = 31;
/// User -> kernel, empty payload: register the sending port for ICMP reports
/// (ICMP_REPORT_MSG). The seed's IMP2_U_PID; with a payload, the same type is NETLINK_ECHO.
pub const ICMP_REPORT_REGISTER: u16 = 0;
/// User -> kernel, non-empty payload: the netlink echo (reply type NLMSG_DONE, payload
/// NETLINK_ECHO_REPLY). The same type as ICMP_REPORT_REGISTER: the payload tells them apart.
pub const NETLINK_ECHO: u16 = ICMP_REPORT_REGISTER;
/// Kernel -> user, payload `PacketInfo`, one per ICMP packet seen at PRE_ROUTING. The seed's
/// IMP2_K_MSG.
pub const ICMP_REPORT_MSG: u16 = 1;
/// User -> kernel, unregister the sending port (only the registered port itself can).
/// A port that is not registered gets ENOENT (in the ack, so only with NLM_F_ACK). The seed's
/// IMP2_CLOSE.
///
/// Same value as NLMSG_ERROR (2), inherited from the seed: the direction tells them apart.
/// User -> kernel, 2 is always ICMP_REPORT_UNREGISTER; kernel -> user, 2 is always an
/// NLMSG_ERROR ack (kchan never sends ICMP_REPORT_UNREGISTER).
pub const ICMP_REPORT_UNREGISTER: u16 = 2;
/// Standard netlink control type: the ack (`struct nlmsgerr`), kernel -> user only. Equal to
/// ICMP_REPORT_UNREGISTER, see there.
pub const NLMSG_ERROR: u16 = 2;
/// Standard netlink control type: the reply to NETLINK_ECHO.
pub const NLMSG_DONE: u16 = 3;
/// First type free for kchan's own messages (the kernel's NLMSG_MIN_TYPE).
pub const NLMSG_MIN_TYPE: u16 = 0x10;
/// Echo: the kernel answers with the same type, seq and payload. Open to every user.
pub const KCHAN_ECHO: u16 = 0x10;
/// Burst request, payload `BurstRequest`: the kernel sends `count` KCHAN_BURST_DATA messages of
/// `size` payload bytes to the requesting port from a workqueue, then one KCHAN_BURST_END.
/// Needs CAP_NET_ADMIN. With NLM_F_ACK the ack comes before the first DATA message.
/// `count` 0 is allowed: no DATA, just KCHAN_BURST_END { sent: 0, dropped: 0 }.
/// Every DATA and END message carries the request's `nlmsg_seq` in its header.
pub const KCHAN_BURST: u16 = 0x11;
/// Burst data, `size` payload bytes: bytes 0..4 are the message's sequence number within the
/// burst as a LITTLE-endian u32 (whatever the host's byte order), 0 for the first message and
/// counting up by one; every later byte at payload offset `i` (i >= 4) is `burst_filler(i)`,
/// i.e. `i & 0xff`. A dropped message leaves a gap in the sequence numbers.
pub const KCHAN_BURST_DATA: u16 = 0x12;
/// End of a burst, payload `BurstEnd`. Not sent when the requesting socket is closed.
pub const KCHAN_BURST_END: u16 = 0x13;
/// Sequence number of the first KCHAN_BURST_DATA message of a burst.
pub const BURST_FIRST_SEQ: u32 = 0;
/// Length of the little-endian u32 sequence number that starts a KCHAN_BURST_DATA payload
/// (hence BURST_MIN_SIZE).
pub const BURST_SEQ_LEN: usize = 4;

/// The filler byte at payload offset `offset` (>= BURST_SEQ_LEN) of a KCHAN_BURST_DATA message:
/// the offset's low byte (`offset & 0xff`).
pub const fn burst_filler(offset: usize) -> u8 {
    (offset & 0xff) as u8
}

/// Writes a whole KCHAN_BURST_DATA payload: `seq` little-endian in its first BURST_SEQ_LEN
/// bytes, `burst_filler(i)` at every later offset `i` (a shorter payload gets a prefix of
/// the sequence number).
pub fn burst_data_fill(seq: u32, payload: &mut [u8]) {
    let (head, filler) = payload.split_at_mut(BURST_SEQ_LEN.min(payload.len()));
    head.copy_from_slice(&seq.to_le_bytes()[..head.len()]);
    for (i, b) in filler.iter_mut().enumerate() {
        *b = burst_filler(BURST_SEQ_LEN + i);
    }
}

/// The sequence number a KCHAN_BURST_DATA payload starts with; `None` if it is shorter than
/// BURST_SEQ_LEN.
pub fn burst_data_seq(payload: &[u8]) -> Option<u32> {
    bytes_at(payload, 0).map(u32::from_le_bytes)
}

/// The payload of the NETLINK_ECHO reply: the seed's string, sent without a NUL as the seed did.
pub const NETLINK_ECHO_REPLY: &[u8] = b"Reply from kernel netlink";
/// Largest echo payload kchan accepts (KCHAN_ECHO, NETLINK_ECHO); larger gets EMSGSIZE / is
/// dropped.
pub const NETLINK_MAX_PAYLOAD: usize = 4096;
/// Most ports registered for ICMP events at once; one more gets ENOSPC.
pub const NETLINK_MAX_LISTENERS: usize = 256;
/// Bounds of a burst request (count 0..=BURST_MAX_COUNT, size BURST_MIN_SIZE..=BURST_MAX_SIZE);
/// outside them the request gets EINVAL.
pub const BURST_MAX_COUNT: u32 = 10_000_000;
pub const BURST_MIN_SIZE: u32 = 4;
pub const BURST_MAX_SIZE: u32 = 65_536;
/// Most bursts in flight at once; one more gets EBUSY.
pub const BURST_MAX_INFLIGHT: usize = 64;

wire_layout! {
    /// Payload of ICMP_REPORT_MSG, the seed's `struct packet_info`: addresses in network byte
    /// order, as `iph->saddr`/`daddr` (the fields hold those bytes in memory order, so
    /// `to_ne_bytes()` gives the address).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PacketInfo {
        pub src: u32,
        pub dest: u32,
    }
}

wire_layout! {
    /// Payload of KCHAN_BURST, native byte order.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BurstRequest {
        pub count: u32,
        pub size: u32,
    }
}

wire_layout! {
    /// Payload of KCHAN_BURST_END, native byte order: how many data messages were queued to
    /// the socket and how many were dropped because its receive queue stayed full.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BurstEnd {
        pub sent: u32,
        pub dropped: u32,
    }
}

// ---- procfs ----------------------------------------------------------------------------------

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

// Run in userspace by `cargo test -p kchanctl`, which includes this file; the kernel build never
// sets cfg(test).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nlmsghdr_round_trip_and_layout() {
        let h = NlMsgHdr {
            len: 0x0102_0304,
            ty: 0x0506,
            flags: 0x0708,
            seq: 0x090a_0b0c,
            pid: 0x0d0e_0f10,
        };
        let b = h.to_bytes();
        let mut want = [0u8; NLMSG_HDRLEN];
        want[0..4].copy_from_slice(&h.len.to_ne_bytes());
        want[4..6].copy_from_slice(&h.ty.to_ne_bytes());
        want[6..8].copy_from_slice(&h.flags.to_ne_bytes());
        want[8..12].copy_from_slice(&h.seq.to_ne_bytes());
        want[12..16].copy_from_slice(&h.pid.to_ne_bytes());
        assert_eq!(b, want);
        assert_eq!(NlMsgHdr::from_bytes(&b), Some(h));
        let mut longer = b.to_vec();
        longer.extend_from_slice(b"payload");
        assert_eq!(NlMsgHdr::from_prefix(&longer), Some(h));
        assert_eq!(NlMsgHdr::from_bytes(&longer), None);
        assert_eq!(NlMsgHdr::from_prefix(&b[..NLMSG_HDRLEN - 1]), None);
    }

    #[test]
    fn payloads_round_trip() {
        let p = PacketInfo {
            src: u32::from_ne_bytes([10, 0, 2, 15]),
            dest: u32::from_ne_bytes([10, 0, 2, 2]),
        };
        assert_eq!(p.to_bytes(), [10, 0, 2, 15, 10, 0, 2, 2]);
        assert_eq!(PacketInfo::from_bytes(&p.to_bytes()), Some(p));

        let r = BurstRequest {
            count: 1000,
            size: 64,
        };
        let b = r.to_bytes();
        assert_eq!(&b[..4], &1000u32.to_ne_bytes());
        assert_eq!(&b[4..], &64u32.to_ne_bytes());
        assert_eq!(BurstRequest::from_bytes(&b), Some(r));

        let e = BurstEnd {
            sent: 7,
            dropped: u32::MAX,
        };
        assert_eq!(BurstEnd::from_prefix(&e.to_bytes()), Some(e));

        let a = NlMsgErr { error: -13 };
        assert_eq!(a.to_bytes(), (-13i32).to_ne_bytes());
        let mut ack = a.to_bytes().to_vec();
        ack.extend_from_slice(&NlMsgHdr::default().to_bytes());
        assert_eq!(NlMsgErr::from_prefix(&ack), Some(a));
        assert_eq!(
            NlMsgHdr::from_bytes(&ack[NlMsgErr::SIZE..]),
            Some(NlMsgHdr::default())
        );
    }

    #[test]
    fn wrong_lengths_are_refused() {
        for n in [0, 1, 7, 9, 16] {
            let b = vec![0xa5u8; n];
            assert_eq!(BurstRequest::from_bytes(&b).is_some(), n == 8, "{n} bytes");
            assert_eq!(BurstEnd::from_prefix(&b).is_some(), n >= 8, "{n} bytes");
            assert_eq!(PacketInfo::from_prefix(&b).is_some(), n >= 8, "{n} bytes");
        }
        assert_eq!(PacketInfo::SIZE, 8);
        assert_eq!(BurstRequest::SIZE, 8);
        assert_eq!(BurstEnd::SIZE, 8);
        assert_eq!(NlMsgErr::SIZE, 4);
        assert_eq!(NlMsgErr::from_prefix(&[0; 3]), None);
    }

    #[test]
    fn burst_data() {
        let mut p = [0u8; 300];
        burst_data_fill(0x0403_0201, &mut p);
        assert_eq!(&p[..BURST_SEQ_LEN], &[1, 2, 3, 4]);
        assert!((BURST_SEQ_LEN..p.len()).all(|i| p[i] == burst_filler(i)));
        assert_eq!(p[256], 0);
        assert_eq!(burst_data_seq(&p), Some(0x0403_0201));
        assert_eq!(burst_data_seq(&p[..3]), None);
        let mut short = [0u8; 2];
        burst_data_fill(0x0403_0201, &mut short);
        assert_eq!(short, [1, 2]);
    }

    #[test]
    fn align() {
        assert_eq!(nlmsg_align(0), 0);
        assert_eq!(nlmsg_align(17), 20);
        assert_eq!(nlmsg_align(20), 20);
    }
}
