//! `netlink echo`: the seed 004 echo, or with --kchan kchan's own KCHAN_ECHO.

use crate::abi;
use crate::error::{Error, Result};
use crate::escape::{escape, until_nul};
use crate::output;
use std::time::Duration;

use super::open_verbose;
use super::socket::{deadline_after, NlSocket, RECV_BUF};
use super::wire::{parse, parse_error, Header, NLM_F_ACK, NLM_F_REQUEST};

/// Receive until a message with sequence `seq` (or any non-control message when `seq` is None)
/// arrives; a non-zero NLMSG_ERROR for our request is the error `op: <errno>`.
fn await_reply(
    sock: &NlSocket,
    op: &str,
    seq: Option<u32>,
    timeout: Duration,
) -> Result<(Header, Vec<u8>)> {
    let mut buf = vec![0u8; RECV_BUF];
    let deadline = deadline_after(timeout);
    loop {
        let n = sock
            .recv_until(&mut buf, deadline, &|| false)?
            .ok_or_else(|| Error::raw(op, libc::ETIMEDOUT))?;
        let msgs = parse(&buf[..n]).map_err(|e| Error::msg(op, e.to_string()))?;
        for m in msgs {
            if m.header.ty == abi::NLMSG_ERROR {
                let (err, _) = parse_error(m.payload).map_err(|e| Error::msg(op, e.to_string()))?;
                if err != 0 {
                    return Err(Error::raw(op, err.checked_neg().unwrap_or(libc::EINVAL)));
                }
                continue; // an ACK
            }
            if seq.is_none_or(|s| s == m.header.seq) {
                return Ok((m.header, m.payload.to_vec()));
            }
        }
    }
}

/// `netlink echo MSG`: the seed 004 echo (type IMP2_U_PID, flags 0, payload MSG + NUL).
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
    let seq = sock.send(abi::IMP2_U_PID, flags, &payload)?;
    let (h, p) = await_reply(&sock, "netlink echo", ack.then_some(seq), timeout)?;
    output::line(&format!("reply: {}", escape(until_nul(&p))))?;
    output::line(&format!("type: {}", h.ty))
}

/// `netlink echo --kchan MSG` / `netlink kecho MSG`: KCHAN_ECHO with NLM_F_ACK (so errors are
/// reported; the reply comes before the ACK), checks type, seq and payload.
pub(super) fn cmd_kecho(unit: i32, msg: &[u8], timeout: Duration, verbose: bool) -> Result<()> {
    let mut sock = open_verbose(unit, verbose)?;
    let seq = sock.send(abi::KCHAN_ECHO, NLM_F_REQUEST | NLM_F_ACK, msg)?;
    let (h, p) = await_reply(&sock, "netlink echo", Some(seq), timeout)?;
    if h.ty != abi::KCHAN_ECHO || p != msg {
        return Err(Error::msg(
            "netlink echo",
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
