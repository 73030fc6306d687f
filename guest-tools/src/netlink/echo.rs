//! `netlink echo`: the netlink echo (NETLINK_ECHO, answered by NLMSG_DONE), or with --kchan
//! kchan's own KCHAN_ECHO.

use crate::abi;
use crate::error::{Error, Result};
use crate::escape::{escape, until_nul};
use crate::output;
use std::time::Duration;

use super::open_verbose;
use super::socket::{await_answer, Answer, NlSocket, RECV_BUF};
use super::wire::{NlMsgHdr, NLM_F_ACK, NLM_F_REQUEST};

const OP: &str = "netlink echo";

/// The first message but an ACK with sequence `seq` (any when `seq` is None).
fn reply(sock: &NlSocket, seq: Option<u32>, timeout: Duration) -> Result<(NlMsgHdr, Vec<u8>)> {
    let mut buf = vec![0u8; RECV_BUF];
    await_answer(sock, &mut buf, OP, timeout, |a| {
        Ok(match a {
            Answer::Msg(m) if seq.is_none_or(|s| s == m.header.seq) => {
                Some((m.header, m.payload.to_vec()))
            }
            _ => None,
        })
    })
}

/// `netlink echo MSG`: NETLINK_ECHO (type 0, flags 0, payload MSG + NUL).
/// kchan drops failed requests silently unless NLM_F_ACK is set: `ack` sets it so an error
/// (e.g. EMSGSIZE) is reported instead of a timeout.
pub(super) fn cmd_echo(
    unit: i32,
    msg: &[u8],
    ack: bool,
    timeout: Duration,
    verbose: bool,
) -> Result<()> {
    let mut sock = open_verbose(unit, verbose)?;
    let mut payload = msg.to_vec();
    payload.push(0);
    let flags = if ack { NLM_F_ACK } else { 0 };
    let seq = sock.send(abi::NETLINK_ECHO, flags, &payload)?;
    let (h, p) = reply(&sock, ack.then_some(seq), timeout)?;
    output::line(&format!("reply: {}", escape(until_nul(&p))))?;
    output::line(&format!("type: {}", h.ty))
}

/// `netlink echo --kchan MSG`: KCHAN_ECHO with NLM_F_ACK (so errors are reported; the reply
/// comes before the ACK), checks type, seq and payload. --ack changes nothing.
pub(super) fn cmd_kchan_echo(
    unit: i32,
    msg: &[u8],
    timeout: Duration,
    verbose: bool,
) -> Result<()> {
    let mut sock = open_verbose(unit, verbose)?;
    let seq = sock.send(abi::KCHAN_ECHO, NLM_F_REQUEST | NLM_F_ACK, msg)?;
    let (h, p) = reply(&sock, Some(seq), timeout)?;
    if h.ty != abi::KCHAN_ECHO || p != msg {
        return Err(Error::msg(
            OP,
            format!(
                "reply mismatch: type={} seq={} payload={}",
                h.ty,
                h.seq,
                escape(&p)
            ),
        ));
    }
    output::line(&format!("echo: {}", escape(&p)))
}
