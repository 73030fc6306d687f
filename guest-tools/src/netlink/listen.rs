//! `netlink listen`: the seeds' ICMP event listener (register, print events, unregister).

use crate::abi;
use crate::error::{Error, Result};
use crate::output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::open_verbose;
use super::socket::{deadline_after, Recv, POLL_SLICE, RECV_BUF, REPLY_TIMEOUT};
use super::wire::{format_icmp, packet_info, parse, parse_error, NLM_F_ACK};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// SIGINT/SIGTERM only set a flag; the loops poll in short slices and check it.
fn install_stop_handlers() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }.map_err(|e| Error::sys("sigaction", e))?;
    }
    Ok(())
}

/// `netlink listen`: register for ICMP events, print them, unregister on exit.
pub(super) fn cmd_listen(
    unit: i32,
    count: Option<u64>,
    timeout: Option<Duration>,
    verbose: bool,
) -> Result<()> {
    install_stop_handlers()?;
    let mut sock = open_verbose(unit, verbose)?;
    let mut buf = vec![0u8; RECV_BUF];
    // Register and wait for the ACK. Events may already be queued before the ACK (the hook
    // can fire between registration and the ACK being queued): keep them.
    let seq = sock.send(abi::IMP2_U_PID, NLM_F_ACK, &[])?;
    let mut early: Vec<abi::PacketInfo> = Vec::new();
    let deadline = deadline_after(REPLY_TIMEOUT);
    'ack: loop {
        let n = sock
            .recv_until(&mut buf, deadline, &|| false)?
            .ok_or_else(|| Error::raw("netlink register", libc::ETIMEDOUT))?;
        let msgs = parse(&buf[..n]).map_err(|e| Error::msg("netlink register", e.to_string()))?;
        for m in msgs {
            match m.header.ty {
                abi::NLMSG_ERROR => {
                    let (err, _) = parse_error(m.payload)
                        .map_err(|e| Error::msg("netlink register", e.to_string()))?;
                    if err != 0 {
                        return Err(Error::raw(
                            "netlink register",
                            err.checked_neg().unwrap_or(libc::EINVAL),
                        ));
                    }
                    if m.header.seq == seq {
                        break 'ack;
                    }
                }
                abi::IMP2_K_MSG => {
                    if let Ok(p) = packet_info(m.payload) {
                        early.push(p);
                    }
                }
                _ => {}
            }
        }
    }
    output::line(&format!("listening port={}", sock.port))?;

    let started = Instant::now();
    let mut seen: u64 = 0;
    let done = |seen: u64| count.is_some_and(|c| seen >= c);
    let mut result = Ok(());
    for p in early {
        if done(seen) {
            break;
        }
        output::line(&format_icmp(&p))?;
        seen += 1;
    }
    'events: while !done(seen) && !stop_requested() {
        let remaining = match timeout {
            Some(t) => match t.checked_sub(started.elapsed()) {
                Some(r) if !r.is_zero() => Some(r),
                _ => {
                    if count.is_some() {
                        result = Err(Error::raw("netlink listen", libc::ETIMEDOUT));
                    }
                    break;
                }
            },
            None => None,
        };
        let slice = remaining.map_or(POLL_SLICE, |r| r.min(POLL_SLICE));
        sock.wait_readable(Some(slice))?;
        loop {
            let n = match sock.recv(&mut buf)? {
                Recv::Data(n) => n,
                Recv::WouldBlock => break,
                Recv::Overrun => {
                    output::diag("netlink listen: ENOBUFS (receive queue overrun, events lost)");
                    continue;
                }
            };
            let msgs = match parse(&buf[..n]) {
                Ok(m) => m,
                Err(e) => {
                    output::line(&format!("malformed: {e}"))?;
                    continue;
                }
            };
            for m in msgs {
                match m.header.ty {
                    abi::IMP2_K_MSG => match packet_info(m.payload) {
                        Ok(p) => {
                            output::line(&format_icmp(&p))?;
                            seen += 1;
                            if done(seen) {
                                break 'events;
                            }
                        }
                        Err(e) => output::line(&format!("malformed: {e}"))?,
                    },
                    t => output::line(&format!("other: type={t} len={}", m.header.len))?,
                }
            }
        }
    }
    // Unregister (the seed's sig_int), with an ACK so a failure is visible.
    let close_seq = sock.send(abi::IMP2_CLOSE, NLM_F_ACK, &[])?;
    let deadline = deadline_after(REPLY_TIMEOUT);
    'close: loop {
        let n = sock
            .recv_until(&mut buf, deadline, &|| false)?
            .ok_or_else(|| Error::raw("netlink unregister", libc::ETIMEDOUT))?;
        let msgs = parse(&buf[..n]).map_err(|e| Error::msg("netlink unregister", e.to_string()))?;
        for m in msgs {
            if m.header.ty == abi::NLMSG_ERROR {
                let (err, orig) = parse_error(m.payload)
                    .map_err(|e| Error::msg("netlink unregister", e.to_string()))?;
                let ours = m.header.seq == close_seq || orig.is_some_and(|h| h.seq == close_seq);
                if err != 0 && ours {
                    return Err(Error::raw(
                        "netlink unregister",
                        err.checked_neg().unwrap_or(libc::EINVAL),
                    ));
                }
                if ours {
                    break 'close;
                }
            }
        }
    }
    output::line("unregistered")?;
    result
}
