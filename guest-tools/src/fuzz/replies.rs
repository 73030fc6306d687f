//! What the kernel owes a netlink socket for what it was sent, and the check of every
//! datagram it receives against that and the ABI.

use crate::abi;
use crate::escape::escape;
use crate::netlink::{self, nlmsg_align, NlMsgHdr, NLMSG_HDRLEN};
use std::collections::VecDeque;

/// What the kernel will answer to a datagram, by the ABI's framing rules (messages handled in
/// order; the walk stops at the first broken nlmsg_len, as the module does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// KCHAN_ECHO requests: (seq, payload) that come back as they are.
    pub echoes: Vec<(u32, Vec<u8>)>,
    /// Valid KCHAN_BURST requests: (seq, count, size).
    pub bursts: Vec<(u32, u32, u32)>,
}

pub fn expect(dgram: &[u8]) -> Expect {
    let mut e = Expect::default();
    let mut rest = dgram;
    while let Some(h) = NlMsgHdr::from_prefix(rest) {
        let mlen = h.len as usize;
        if mlen < NLMSG_HDRLEN || mlen > rest.len() {
            break;
        }
        let payload = &rest[NLMSG_HDRLEN..mlen];
        match h.ty {
            abi::KCHAN_ECHO if payload.len() <= abi::NETLINK_MAX_PAYLOAD => {
                e.echoes.push((h.seq, payload.to_vec()))
            }
            abi::KCHAN_BURST => {
                if let Some(abi::BurstRequest { count, size }) =
                    abi::BurstRequest::from_bytes(payload)
                {
                    if count <= abi::BURST_MAX_COUNT
                        && (abi::BURST_MIN_SIZE..=abi::BURST_MAX_SIZE).contains(&size)
                    {
                        e.bursts.push((h.seq, count, size));
                    }
                }
            }
            _ => {}
        }
        rest = &rest[nlmsg_align(mlen).min(rest.len())..];
    }
    e
}

/// What one socket is owed.
#[derive(Default)]
pub struct Pending {
    echoes: VecDeque<(u32, Vec<u8>)>,
    echo_bytes: usize,
    bursts: VecDeque<(u32, u32, u32)>,
    /// Some expectations were forgotten (bounded memory): unknown echo seqs are tolerated.
    lossy: bool,
}

const PENDING_ECHOES: usize = 1024;

const PENDING_ECHO_BYTES: usize = 1 << 20;

const PENDING_BURSTS: usize = 256;

impl Pending {
    pub fn add(&mut self, e: Expect) {
        for (seq, p) in e.echoes {
            self.echo_bytes += p.len();
            self.echoes.push_back((seq, p));
        }
        while self.echoes.len() > PENDING_ECHOES || self.echo_bytes > PENDING_ECHO_BYTES {
            if let Some((_, p)) = self.echoes.pop_front() {
                self.echo_bytes -= p.len();
            }
            self.lossy = true;
        }
        self.bursts.extend(e.bursts);
        while self.bursts.len() > PENDING_BURSTS {
            self.bursts.pop_front();
        }
    }

    /// Check one datagram received from the kernel against the ABI and these expectations.
    pub fn check(&mut self, dgram: &[u8]) -> std::result::Result<(), String> {
        let msgs = netlink::parse(dgram).map_err(|e| {
            format!(
                "malformed {}-byte datagram from the kernel: {e}",
                dgram.len()
            )
        })?;
        for m in msgs {
            let (seq, p) = (m.header.seq, m.payload);
            match m.header.ty {
                abi::NLMSG_ERROR => check_ack(seq, p)?,
                abi::NLMSG_DONE => {
                    if p != abi::NETLINK_ECHO_REPLY {
                        return Err(format!("seed echo reply \"{}\"", escape(p)));
                    }
                }
                abi::KCHAN_ECHO => self.check_echo(seq, p)?,
                abi::ICMP_REPORT_MSG => {
                    if abi::PacketInfo::from_prefix(p).is_none() {
                        return Err(format!("ICMP event of {} bytes", p.len()));
                    }
                }
                abi::KCHAN_BURST_DATA => self.check_burst_data(seq, p)?,
                abi::KCHAN_BURST_END => self.check_burst_end(seq, p)?,
                t => return Err(format!("unexpected message type {t} ({} bytes)", p.len())),
            }
        }
        Ok(())
    }

    /// An echo must answer a pending request with its payload (forgotten ones excepted).
    fn check_echo(&mut self, seq: u32, p: &[u8]) -> std::result::Result<(), String> {
        if let Some(i) = self
            .echoes
            .iter()
            .position(|(s, want)| *s == seq && want == p)
        {
            if let Some((_, w)) = self.echoes.remove(i) {
                self.echo_bytes -= w.len();
            }
        } else if self.echoes.iter().any(|(s, _)| *s == seq) {
            return Err(format!(
                "echo reply seq {seq}: {}-byte payload differs from the request's",
                p.len()
            ));
        } else if !self.lossy {
            return Err(format!(
                "echo reply seq {seq} ({} bytes) to no request",
                p.len()
            ));
        }
        Ok(())
    }

    fn check_burst_data(&self, seq: u32, p: &[u8]) -> std::result::Result<(), String> {
        let n = abi::burst_data_seq(p).ok_or_else(|| format!("burst data of {} bytes", p.len()))?;
        if let Some(i) = (abi::BURST_SEQ_LEN..p.len()).find(|&i| p[i] != abi::burst_filler(i)) {
            return Err(format!(
                "burst data seq {seq}: byte {i} is {:#04x}, expected {:#04x}",
                p[i],
                abi::burst_filler(i)
            ));
        }
        // Bursts of a closed socket may reach a new socket that reuses its port: only bursts
        // we know of are held to their size and count.
        let ours: Vec<_> = self.bursts.iter().filter(|b| b.0 == seq).collect();
        if !ours.is_empty()
            && !ours
                .iter()
                .any(|&&(_, count, size)| size as usize == p.len() && n < count)
        {
            return Err(format!(
                "burst data seq {seq}: message {n} of {} bytes fits no request (count, size) {:?}",
                p.len(),
                ours.iter().map(|b| (b.1, b.2)).collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    fn check_burst_end(&self, seq: u32, p: &[u8]) -> std::result::Result<(), String> {
        let end = netlink::burst_end(p).map_err(|e| format!("burst end: {e}"))?;
        let total = u64::from(end.sent) + u64::from(end.dropped);
        let ours: Vec<_> = self.bursts.iter().filter(|b| b.0 == seq).collect();
        if !ours.is_empty() && !ours.iter().any(|b| total <= u64::from(b.1)) {
            return Err(format!(
                "burst end seq {seq}: sent {} + dropped {} exceeds the request",
                end.sent, end.dropped
            ));
        }
        Ok(())
    }
}

/// An NLMSG_ERROR: an errno (or 0) and the header of the request it answers.
fn check_ack(seq: u32, p: &[u8]) -> std::result::Result<(), String> {
    let (err, orig) = netlink::parse_error(p).map_err(|e| format!("NLMSG_ERROR: {e}"))?;
    if !(-4095..=0).contains(&err) {
        return Err(format!("NLMSG_ERROR with error {err}"));
    }
    match orig {
        Some(o) if o.seq == seq => Ok(()),
        Some(o) => Err(format!("ack seq {seq} quotes a request with seq {}", o.seq)),
        None => Err(format!(
            "ack of {} bytes without the request header",
            p.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::netlink::gen_netlink;
    use crate::fuzz::tests::ops;
    use crate::fuzz::Channel;
    use crate::netlink::NLM_F_ACK;

    #[test]
    fn expectations_follow_the_framing() {
        for seed in 0..50 {
            for op in ops(seed, Channel::Netlink, 500, gen_netlink) {
                if let Some((b, _)) = op.datagram() {
                    let _ = expect(&b);
                }
            }
        }
        let mut d = netlink::encode(abi::KCHAN_ECHO, NLM_F_ACK, 5, 0, b"abc").unwrap();
        d.extend(
            netlink::encode(
                abi::KCHAN_BURST,
                0,
                6,
                0,
                &abi::BurstRequest { count: 3, size: 64 }.to_bytes(),
            )
            .unwrap(),
        );
        d.extend(
            netlink::encode(
                abi::KCHAN_BURST,
                0,
                7,
                0,
                &abi::BurstRequest { count: 3, size: 2 }.to_bytes(),
            )
            .unwrap(),
        );
        d.extend(netlink::encode(abi::KCHAN_ECHO, 0, 8, 0, &[0u8; 4097]).unwrap());
        d.extend(netlink::encode(abi::KCHAN_ECHO, 0, 9, 0, b"last").unwrap());
        let e = expect(&d);
        assert_eq!(e.echoes, vec![(5, b"abc".to_vec()), (9, b"last".to_vec())]);
        assert_eq!(e.bursts, vec![(6, 3, 64)]);
        // A broken nlmsg_len ends the walk, as in the module.
        let mut bad = netlink::encode(abi::KCHAN_ECHO, 0, 1, 0, b"x").unwrap();
        bad[..4].copy_from_slice(&15u32.to_ne_bytes());
        bad.extend(netlink::encode(abi::KCHAN_ECHO, 0, 2, 0, b"y").unwrap());
        assert!(expect(&bad).echoes.is_empty());
        assert!(expect(&[]).echoes.is_empty());
        assert!(expect(&[1, 2, 3]).echoes.is_empty());
    }

    fn reply(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        netlink::encode(ty, 0, seq, 0, payload).unwrap()
    }

    fn ack(seq: u32, err: i32) -> Vec<u8> {
        let mut p = abi::NlMsgErr { error: err }.to_bytes().to_vec();
        p.extend_from_slice(
            &NlMsgHdr {
                len: 16,
                ty: 0x10,
                flags: 5,
                seq,
                pid: 9,
            }
            .to_bytes(),
        );
        reply(abi::NLMSG_ERROR, seq, &p)
    }

    #[test]
    fn replies_are_checked_against_the_abi() {
        let mut p = Pending::default();
        let mut req = netlink::encode(abi::KCHAN_ECHO, NLM_F_ACK, 5, 0, b"abc").unwrap();
        req.extend(
            netlink::encode(
                abi::KCHAN_BURST,
                0,
                6,
                0,
                &abi::BurstRequest { count: 2, size: 8 }.to_bytes(),
            )
            .unwrap(),
        );
        p.add(expect(&req));
        // The right answers.
        p.check(&reply(abi::KCHAN_ECHO, 5, b"abc")).unwrap();
        p.check(&ack(5, 0)).unwrap();
        p.check(&ack(5, -libc::EOPNOTSUPP)).unwrap();
        p.check(&reply(abi::NLMSG_DONE, 1, abi::NETLINK_ECHO_REPLY))
            .unwrap();
        p.check(&reply(abi::KCHAN_BURST_DATA, 6, &[1, 0, 0, 0, 4, 5, 6, 7]))
            .unwrap();
        let end = abi::BurstEnd {
            sent: 1,
            dropped: 1,
        }
        .to_bytes();
        p.check(&reply(abi::KCHAN_BURST_END, 6, &end)).unwrap();
        p.check(&reply(
            abi::ICMP_REPORT_MSG,
            0,
            &[127, 0, 0, 1, 127, 0, 0, 1],
        ))
        .unwrap();
        // The echo was matched: a second reply to it answers no request.
        let e = p.check(&reply(abi::KCHAN_ECHO, 5, b"abc")).unwrap_err();
        assert!(e.contains("to no request"), "{e}");
        // Violations.
        p.add(expect(
            &netlink::encode(abi::KCHAN_ECHO, 0, 7, 0, b"xyz").unwrap(),
        ));
        let e = p.check(&reply(abi::KCHAN_ECHO, 7, b"xyZ")).unwrap_err();
        assert!(e.contains("differs"), "{e}");
        assert!(p.check(&ack(5, 1)).is_err());
        assert!(p
            .check(&reply(
                abi::NLMSG_ERROR,
                5,
                &abi::NlMsgErr { error: 0 }.to_bytes()
            ))
            .is_err());
        assert!(p
            .check(&reply(abi::NLMSG_DONE, 1, b"Reply from kernel"))
            .is_err());
        assert!(p
            .check(&reply(abi::KCHAN_BURST_DATA, 6, &[1, 0, 0, 0, 4, 5, 6, 0]))
            .is_err());
        assert!(p
            .check(&reply(abi::KCHAN_BURST_DATA, 6, &[1, 0, 0, 0, 4, 5]))
            .is_err());
        assert!(p
            .check(&reply(abi::KCHAN_BURST_DATA, 6, &[2, 0, 0, 0, 4, 5, 6, 7]))
            .is_err());
        let end = abi::BurstEnd {
            sent: 2,
            dropped: 1,
        }
        .to_bytes();
        assert!(p.check(&reply(abi::KCHAN_BURST_END, 6, &end)).is_err());
        assert!(p.check(&reply(0x77, 1, b"")).is_err());
        assert!(p.check(&[1, 2, 3]).is_err());
        // Bursts nobody here asked for (a reused port) are only checked for their filler.
        p.check(&reply(
            abi::KCHAN_BURST_DATA,
            99,
            &[9, 0, 0, 0, 4, 5, 6, 7, 8],
        ))
        .unwrap();
        // After forgetting expectations, unknown echo seqs are tolerated.
        p.lossy = true;
        p.check(&reply(abi::KCHAN_ECHO, 1234, b"?")).unwrap();
    }

    #[test]
    fn pending_is_bounded() {
        let mut p = Pending::default();
        for i in 0..3000u32 {
            p.add(Expect {
                echoes: vec![(i, vec![0; 2048])],
                bursts: vec![(i, 1, 8)],
            });
        }
        assert!(p.echoes.len() <= PENDING_ECHOES && p.echo_bytes <= PENDING_ECHO_BYTES);
        assert!(p.bursts.len() <= PENDING_BURSTS);
        assert!(p.lossy);
    }
}
