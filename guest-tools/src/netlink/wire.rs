//! The netlink wire format: headers, messages and kchan's payloads, encoded and decoded
//! without a socket.

use crate::abi::{self, BurstEnd, NlMsgErr, PacketInfo};
use crate::error::errno_name;
use std::fmt;
use std::net::Ipv4Addr;

pub use crate::abi::{nlmsg_align, NlMsgHdr, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_REQUEST};

pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ECHO: u16 = 0x08;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP_FILTERED: u16 = 0x20;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_ATOMIC: u16 = 0x400;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;

/// NLMSG_NOOP and NLMSG_OVERRUN (the other control types are in the ABI).
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_OVERRUN: u16 = 4;

pub const fn nlmsg_length(len: usize) -> usize {
    len + NLMSG_HDRLEN
}
pub const fn nlmsg_space(len: usize) -> usize {
    nlmsg_align(nlmsg_length(len))
}

/// Why a received datagram could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer than 16 bytes left for a header at `offset`.
    Short { offset: usize, have: usize },
    /// nlmsg_len below 16 or beyond the datagram.
    BadLen {
        offset: usize,
        len: u32,
        have: usize,
    },
    /// A payload too short for what its type requires.
    Payload { ty: u16, need: usize, have: usize },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParseError::Short { offset, have } => {
                write!(f, "truncated header at offset {offset} ({have} bytes left)")
            }
            ParseError::BadLen { offset, len, have } => write!(
                f,
                "bad nlmsg_len {len} at offset {offset} ({have} bytes left)"
            ),
            ParseError::Payload { ty, need, have } => {
                write!(f, "type {ty} payload of {have} bytes, need {need}")
            }
        }
    }
}

/// One decoded message, borrowing its payload from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: NlMsgHdr,
    pub payload: &'a [u8],
}

/// Build a well-formed message: nlmsg_len = NLMSG_LENGTH(payload), zero padding to
/// NLMSG_ALIGN. Fails only when the payload does not fit a u32 length.
pub fn encode(ty: u16, flags: u16, seq: u32, pid: u32, payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(nlmsg_length(payload.len())).ok()?;
    let mut v = Vec::with_capacity(nlmsg_space(payload.len()));
    v.extend_from_slice(
        &NlMsgHdr {
            len,
            ty,
            flags,
            seq,
            pid,
        }
        .to_bytes(),
    );
    v.extend_from_slice(payload);
    v.resize(nlmsg_align(v.len()), 0);
    Some(v)
}

/// Split a datagram into messages (the NLMSG_OK / NLMSG_NEXT walk). Anything malformed is an
/// error, never a panic.
pub fn parse(buf: &[u8]) -> std::result::Result<Vec<Message<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < buf.len() {
        let rest = &buf[off..];
        let header = NlMsgHdr::from_prefix(rest).ok_or(ParseError::Short {
            offset: off,
            have: rest.len(),
        })?;
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(ParseError::BadLen {
                offset: off,
                len: header.len,
                have: rest.len(),
            });
        }
        out.push(Message {
            header,
            payload: &rest[NLMSG_HDRLEN..len],
        });
        off += nlmsg_align(len).min(rest.len());
    }
    Ok(out)
}

/// The payload of NLMSG_ERROR: the (negative) error, and the echoed request header if present.
pub fn parse_error(payload: &[u8]) -> std::result::Result<(i32, Option<NlMsgHdr>), ParseError> {
    let e = decode(
        abi::NLMSG_ERROR,
        payload,
        NlMsgErr::SIZE,
        NlMsgErr::from_prefix,
    )?;
    let orig = NlMsgHdr::from_prefix(&payload[NlMsgErr::SIZE..]);
    Ok((e.error, orig))
}

/// `0` for an ACK, the errno name for a negative error, the number otherwise.
pub fn error_text(err: i32) -> String {
    if err == 0 {
        "0".to_string()
    } else if err < 0 && err != i32::MIN {
        errno_name(-err)
    } else {
        err.to_string()
    }
}

/// A payload of message type `ty` decoded by the ABI's `from_prefix` (`need` bytes or more).
fn decode<T>(
    ty: u16,
    payload: &[u8],
    need: usize,
    from_prefix: fn(&[u8]) -> Option<T>,
) -> std::result::Result<T, ParseError> {
    from_prefix(payload).ok_or(ParseError::Payload {
        ty,
        need,
        have: payload.len(),
    })
}

/// ICMP_REPORT_MSG payload.
pub fn packet_info(payload: &[u8]) -> std::result::Result<PacketInfo, ParseError> {
    decode(
        abi::ICMP_REPORT_MSG,
        payload,
        PacketInfo::SIZE,
        PacketInfo::from_prefix,
    )
}

/// The address in a PacketInfo field (network byte order in memory).
pub fn ipv4(field: u32) -> Ipv4Addr {
    Ipv4Addr::from(field.to_ne_bytes())
}

pub fn format_icmp(p: &PacketInfo) -> String {
    format!("icmp src={} dst={}", ipv4(p.src), ipv4(p.dest))
}

/// KCHAN_BURST_END payload.
pub fn burst_end(payload: &[u8]) -> std::result::Result<BurstEnd, ParseError> {
    decode(
        abi::KCHAN_BURST_END,
        payload,
        BurstEnd::SIZE,
        BurstEnd::from_prefix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escape::{escape, until_nul};
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn abi_layouts() {
        assert_eq!(size_of::<abi::PacketInfo>(), 8);
        assert_eq!(align_of::<abi::PacketInfo>(), 4);
        assert_eq!(offset_of!(abi::PacketInfo, src), 0);
        assert_eq!(offset_of!(abi::PacketInfo, dest), 4);
        assert_eq!(size_of::<abi::BurstRequest>(), 8);
        assert_eq!(align_of::<abi::BurstRequest>(), 4);
        assert_eq!(offset_of!(abi::BurstRequest, count), 0);
        assert_eq!(offset_of!(abi::BurstRequest, size), 4);
        assert_eq!(size_of::<abi::BurstEnd>(), 8);
        assert_eq!(offset_of!(abi::BurstEnd, sent), 0);
        assert_eq!(offset_of!(abi::BurstEnd, dropped), 4);
        assert_eq!(size_of::<libc::nlmsghdr>(), NLMSG_HDRLEN);
        assert_eq!(offset_of!(libc::nlmsghdr, nlmsg_type), 4);
        assert_eq!(offset_of!(libc::nlmsghdr, nlmsg_seq), 8);
        assert_eq!(offset_of!(libc::nlmsghdr, nlmsg_pid), 12);
        assert_eq!(offset_of!(libc::nlmsgerr, msg), NlMsgErr::SIZE);
        assert_eq!(size_of::<libc::nlmsgerr>(), NlMsgErr::SIZE + NLMSG_HDRLEN);
    }

    #[test]
    fn seed_constants() {
        assert_eq!(nlmsg_length(0), 16);
        assert_eq!(nlmsg_space(size_of::<abi::PacketInfo>()), 24);
        assert_eq!(nlmsg_space(1024), 1040);
        assert_eq!(nlmsg_length(abi::NETLINK_ECHO_REPLY.len()), 41);
        assert_eq!(nlmsg_space(abi::NETLINK_ECHO_REPLY.len()), 44);
        assert_eq!(abi::NETLINK_UNIT_DEFAULT, 31);
        assert_eq!(
            (
                abi::ICMP_REPORT_REGISTER,
                abi::NETLINK_ECHO,
                abi::ICMP_REPORT_MSG,
                abi::ICMP_REPORT_UNREGISTER
            ),
            (0, 0, 1, 2)
        );
        assert_eq!(abi::NLMSG_ERROR as i32, libc::NLMSG_ERROR);
        assert_eq!(abi::NLMSG_DONE as i32, libc::NLMSG_DONE);
        assert_eq!(abi::NLMSG_MIN_TYPE as i32, libc::NLMSG_MIN_TYPE);
        assert_eq!(NLM_F_ACK as i32, libc::NLM_F_ACK);
        assert_eq!(NLM_F_REQUEST as i32, libc::NLM_F_REQUEST);
        assert_eq!(NLM_F_DUMP as i32, libc::NLM_F_DUMP);
    }

    #[test]
    fn encode_request_byte_exact() {
        // A netlink echo request for "hi": type 0, flags 0, seq 7, pid 0x1234, "hi\0".
        let m = encode(abi::NETLINK_ECHO, 0, 7, 0x1234, b"hi\0").unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&19u32.to_ne_bytes());
        want.extend_from_slice(&0u16.to_ne_bytes());
        want.extend_from_slice(&0u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0x1234u32.to_ne_bytes());
        want.extend_from_slice(b"hi\0\0");
        assert_eq!(m, want);
        // ICMP report register / unregister: a bare 16-byte header, as the seed's NLMSG_LENGTH(0).
        let c = encode(abi::ICMP_REPORT_UNREGISTER, 0, 0, 42, &[]).unwrap();
        assert_eq!(c.len(), 16);
        assert_eq!(&c[0..4], &16u32.to_ne_bytes());
        assert_eq!(&c[4..6], &2u16.to_ne_bytes());
        // The libc struct agrees with our layout.
        let h = libc::nlmsghdr {
            nlmsg_len: 19,
            nlmsg_type: 0,
            nlmsg_flags: 0,
            nlmsg_seq: 7,
            nlmsg_pid: 0x1234,
        };
        // SAFETY: nlmsghdr is plain old data of 16 bytes.
        let raw: [u8; 16] = unsafe { std::mem::transmute(h) };
        assert_eq!(&raw[..], &want[..16]);
    }

    fn netlink_echo_reply() -> Vec<u8> {
        // What the seed's kernel sends for a netlink echo: nlmsg_put(skb, 0, 0, NLMSG_DONE, 25, 0)
        // + strncpy.
        let mut v = Vec::new();
        v.extend_from_slice(&41u32.to_ne_bytes());
        v.extend_from_slice(&abi::NLMSG_DONE.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(abi::NETLINK_ECHO_REPLY);
        v.extend_from_slice(&[0, 0, 0]);
        v
    }

    #[test]
    fn parse_reply_byte_exact() {
        let v = netlink_echo_reply();
        assert_eq!(v.len(), 44);
        let msgs = parse(&v).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0].header,
            NlMsgHdr {
                len: 41,
                ty: 3,
                flags: 0,
                seq: 0,
                pid: 0
            }
        );
        assert_eq!(msgs[0].payload, abi::NETLINK_ECHO_REPLY);
        assert_eq!(
            escape(until_nul(msgs[0].payload)),
            "Reply from kernel netlink"
        );
        // Unpadded last message is fine too.
        assert_eq!(parse(&v[..41]).unwrap()[0].payload.len(), 25);
    }

    #[test]
    fn parse_multi_and_roundtrip() {
        let mut v = encode(1, 2, 3, 4, b"abcde").unwrap();
        v.extend(encode(5, 6, 7, 8, b"").unwrap());
        let msgs = parse(&v).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].payload, b"abcde");
        assert_eq!(msgs[1].header.ty, 5);
        assert_eq!(msgs[1].header.len, 16);
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn parse_garbage_is_error() {
        let v = netlink_echo_reply();
        for cut in 1..16 {
            assert!(matches!(parse(&v[..cut]), Err(ParseError::Short { .. })));
        }
        for cut in 16..41 {
            assert!(matches!(parse(&v[..cut]), Err(ParseError::BadLen { .. })));
        }
        let mut bad = v.clone();
        bad[0..4].copy_from_slice(&15u32.to_ne_bytes());
        assert!(matches!(
            parse(&bad),
            Err(ParseError::BadLen { len: 15, .. })
        ));
        bad[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse(&bad).is_err());
        // Pseudo-random garbage never panics.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let g: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            if let Ok(msgs) = parse(&g) {
                for m in msgs {
                    let _ = parse_error(m.payload);
                    let _ = packet_info(m.payload);
                    let _ = burst_end(m.payload);
                    let _ = abi::burst_data_seq(m.payload);
                }
            }
        }
    }

    #[test]
    fn error_payloads() {
        let mut p = (-libc::EPERM).to_ne_bytes().to_vec();
        p.extend_from_slice(
            &NlMsgHdr {
                len: 16,
                ty: 0,
                flags: 4,
                seq: 9,
                pid: 1,
            }
            .to_bytes(),
        );
        let m = encode(abi::NLMSG_ERROR, 0, 9, 1, &p).unwrap();
        let msgs = parse(&m).unwrap();
        assert_eq!(msgs[0].header.len, 36);
        let (err, orig) = parse_error(msgs[0].payload).unwrap();
        assert_eq!(err, -1);
        assert_eq!(orig.unwrap().seq, 9);
        assert_eq!(error_text(err), "EPERM");
        assert_eq!(error_text(0), "0");
        assert_eq!(error_text(-libc::EINVAL), "EINVAL");
        assert_eq!(error_text(-524), "E524");
        assert_eq!(error_text(5), "5");
        assert_eq!(error_text(i32::MIN), i32::MIN.to_string());
        assert_eq!(parse_error(&0i32.to_ne_bytes()).unwrap(), (0, None));
        assert!(parse_error(&[0, 0]).is_err());
    }

    #[test]
    fn icmp_event() {
        // struct packet_info { src = 10.0.2.2, dest = 10.0.2.15 } as iph->saddr/daddr.
        let payload = [10, 0, 2, 2, 10, 0, 2, 15];
        let m = {
            let mut v = NlMsgHdr {
                len: 24,
                ty: abi::ICMP_REPORT_MSG,
                flags: 0,
                seq: 0,
                pid: 0,
            }
            .to_bytes()
            .to_vec();
            v.extend_from_slice(&payload);
            v
        };
        assert_eq!(m.len(), nlmsg_space(8));
        let msgs = parse(&m).unwrap();
        let p = packet_info(msgs[0].payload).unwrap();
        assert_eq!(format_icmp(&p), "icmp src=10.0.2.2 dst=10.0.2.15");
        assert!(packet_info(&payload[..7]).is_err());
    }

    #[test]
    fn burst_payloads() {
        let r = abi::BurstRequest {
            count: 100_000,
            size: 64,
        }
        .to_bytes();
        assert_eq!(&r[0..4], &100_000u32.to_ne_bytes());
        assert_eq!(&r[4..8], &64u32.to_ne_bytes());
        let mut e = 5u32.to_ne_bytes().to_vec();
        e.extend_from_slice(&2u32.to_ne_bytes());
        assert_eq!(
            burst_end(&e).unwrap(),
            abi::BurstEnd {
                sent: 5,
                dropped: 2
            }
        );
        assert!(burst_end(&e[..7]).is_err());
        assert_eq!(abi::burst_data_seq(&[1, 0, 0, 0, 0xaa]), Some(1));
        assert_eq!(abi::burst_data_seq(&[1, 0, 0]), None);
    }
}
