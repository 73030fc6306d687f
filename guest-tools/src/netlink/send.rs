//! `netlink send` (a raw, possibly malformed message and whatever comes back) and
//! `netlink ping-unit`.

use crate::abi;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::output;
use std::time::Duration;

use super::open_verbose;
use super::socket::{deadline_after, NlSocket, RECV_BUF};
use super::wire::*;

/// What `netlink send` crafts.
#[derive(Clone, Debug)]
pub struct Craft {
    pub ty: u16,
    pub flags: u16,
    /// nlmsg_len; None: the correct NLMSG_LENGTH(payload).
    pub len: Option<u32>,
    pub seq: u32,
    /// nlmsg_pid; None: our port.
    pub pid: Option<u32>,
    pub payload: Vec<u8>,
    /// Send only the first N bytes (all of them when N is larger).
    pub truncate: Option<usize>,
    pub wait: Duration,
    pub show_payload: bool,
    /// After the wait, hold the socket this long without reading.
    pub stall: Option<Duration>,
}

/// The bytes `netlink send` puts on the wire (no alignment padding is added).
pub fn craft_bytes(c: &Craft, port: u32) -> Vec<u8> {
    let len = c
        .len
        .unwrap_or_else(|| u32::try_from(nlmsg_length(c.payload.len())).unwrap_or(u32::MAX));
    let mut v = NlMsgHdr {
        len,
        ty: c.ty,
        flags: c.flags,
        seq: c.seq,
        pid: c.pid.unwrap_or(port),
    }
    .to_bytes()
    .to_vec();
    v.extend_from_slice(&c.payload);
    if let Some(n) = c.truncate {
        v.truncate(n);
    }
    v
}

/// `netlink send`: craft, send, print every reply within the wait. Kernel errors are output.
pub(super) fn cmd_send(unit: i32, c: &Craft, verbose: bool) -> Result<()> {
    let sock = open_verbose(unit, verbose)?;
    let bytes = craft_bytes(c, sock.port);
    let sent = sock.send_raw(&bytes)?;
    if verbose {
        output::diag(&format!("netlink send: sent {sent} bytes"));
    }
    let mut buf = vec![0u8; RECV_BUF];
    let deadline = deadline_after(c.wait);
    loop {
        let n = match sock.recv_until(&mut buf, deadline) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(Error::Sys { errno, .. }) if errno == libc::ENOBUFS => {
                output::line("overrun")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        match parse(&buf[..n]) {
            Ok(msgs) => {
                for m in msgs {
                    output::line(&format!("reply: type={} len={}", m.header.ty, m.header.len))?;
                    if m.header.ty == abi::NLMSG_ERROR {
                        match parse_error(m.payload) {
                            Ok((err, _)) => output::line(&format!("error: {}", error_text(err)))?,
                            Err(e) => output::line(&format!("malformed: {e}"))?,
                        }
                    }
                    if c.show_payload {
                        output::line(&format!("payload: {}", escape(m.payload)))?;
                    }
                }
            }
            Err(e) => output::line(&format!("reply: malformed {n} bytes: {e}"))?,
        }
    }
    if let Some(hold) = c.stall {
        std::thread::sleep(hold);
    }
    Ok(())
}

/// `netlink ping-unit`: is there a kernel socket on the unit?
pub(super) fn cmd_ping_unit(unit: i32) -> Result<()> {
    let _fd = NlSocket::raw_socket(unit)?;
    output::line(&format!("unit {unit}: available"))
}

/// `--type`: a number or a name.
pub fn parse_type(s: &str) -> std::result::Result<u16, String> {
    let v = match s.to_ascii_lowercase().replace('-', "_").as_str() {
        "u_pid" | "imp2_u_pid" | "register" => abi::ICMP_REPORT_REGISTER,
        "k_msg" | "imp2_k_msg" => abi::ICMP_REPORT_MSG,
        "close" | "imp2_close" => abi::ICMP_REPORT_UNREGISTER,
        "noop" => NLMSG_NOOP,
        "error" => abi::NLMSG_ERROR,
        "done" => abi::NLMSG_DONE,
        "overrun" => NLMSG_OVERRUN,
        "echo" | "kchan_echo" => abi::KCHAN_ECHO,
        "burst" | "kchan_burst" => abi::KCHAN_BURST,
        "burst_data" | "kchan_burst_data" => abi::KCHAN_BURST_DATA,
        "burst_end" | "kchan_burst_end" => abi::KCHAN_BURST_END,
        _ => {
            let n = crate::escape::parse_u64(s)?;
            return u16::try_from(n).map_err(|_| format!("type {s:?} does not fit 16 bits"));
        }
    };
    Ok(v)
}

/// `--flags`: numbers and/or names joined by `,` or `|`.
pub fn parse_flags(s: &str) -> std::result::Result<u16, String> {
    let mut v: u16 = 0;
    for part in s.split([',', '|']).map(str::trim) {
        let f = match part.to_ascii_lowercase().replace('-', "_").as_str() {
            "" | "none" => 0,
            "request" => NLM_F_REQUEST,
            "multi" => NLM_F_MULTI,
            "ack" => NLM_F_ACK,
            "echo" => NLM_F_ECHO,
            "dump_intr" => NLM_F_DUMP_INTR,
            "dump_filtered" => NLM_F_DUMP_FILTERED,
            "root" => NLM_F_ROOT,
            "match" => NLM_F_MATCH,
            "atomic" => NLM_F_ATOMIC,
            "dump" => NLM_F_DUMP,
            "replace" => NLM_F_REPLACE,
            "excl" => NLM_F_EXCL,
            "create" => NLM_F_CREATE,
            "append" => NLM_F_APPEND,
            _ => {
                let n = crate::escape::parse_u64(part)?;
                u16::try_from(n).map_err(|_| format!("flags {part:?} do not fit 16 bits"))?
            }
        };
        v |= f;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_and_flag_names() {
        assert_eq!(parse_type("close"), Ok(2));
        assert_eq!(parse_type("kchan-echo"), Ok(0x10));
        assert_eq!(parse_type("0x13"), Ok(0x13));
        assert_eq!(parse_type("65535"), Ok(65535));
        assert!(parse_type("65536").is_err());
        assert!(parse_type("bogus").is_err());
        assert_eq!(parse_flags("ack"), Ok(4));
        assert_eq!(parse_flags("request,ack"), Ok(5));
        assert_eq!(parse_flags("request|0x100"), Ok(0x101));
        assert_eq!(parse_flags("0"), Ok(0));
        assert!(parse_flags("nope").is_err());
    }

    #[test]
    fn crafted() {
        let c = Craft {
            ty: 0x10,
            flags: NLM_F_REQUEST,
            len: Some(1000),
            seq: 1,
            pid: None,
            payload: vec![1, 2, 3],
            truncate: None,
            wait: Duration::ZERO,
            show_payload: false,
            stall: None,
        };
        let b = craft_bytes(&c, 77);
        assert_eq!(b.len(), 19);
        assert_eq!(&b[0..4], &1000u32.to_ne_bytes());
        assert_eq!(&b[12..16], &77u32.to_ne_bytes());
        let t = craft_bytes(
            &Craft {
                truncate: Some(10),
                len: None,
                ..c.clone()
            },
            77,
        );
        assert_eq!(t.len(), 10);
        assert_eq!(&t[0..4], &19u32.to_ne_bytes());
        assert_eq!(
            craft_bytes(
                &Craft {
                    truncate: Some(99),
                    ..c
                },
                1
            )
            .len(),
            19
        );
    }
}
