//! `netlink listen`: the seeds' ICMP event listener (register, print events, unregister).

use crate::abi;
use crate::error::{Error, Result};
use crate::output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::open_verbose;
use super::socket::{await_answer, Answer, NlSocket, Recv, POLL_SLICE, RECV_BUF, REPLY_TIMEOUT};
use super::wire::{format_icmp, packet_info, parse, NLM_F_ACK};

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
    let early = register(&mut sock, &mut buf)?;
    output::line(&format!("listening port={}", sock.port))?;
    let complete = print_events(&sock, &mut buf, early, count, timeout)?;
    unregister(&mut sock, &mut buf)?;
    output::line("unregistered")?;
    if !complete {
        return Err(Error::raw("netlink listen", libc::ETIMEDOUT));
    }
    Ok(())
}

/// Register and wait for the ACK. Events may already be queued before the ACK (the hook can
/// fire between registration and the ACK being queued): they are returned, to be printed.
fn register(sock: &mut NlSocket, buf: &mut [u8]) -> Result<Vec<abi::PacketInfo>> {
    let seq = sock.send(abi::ICMP_REPORT_REGISTER, NLM_F_ACK, &[])?;
    let mut early = Vec::new();
    await_answer(sock, buf, "netlink register", REPLY_TIMEOUT, |a| {
        match a {
            Answer::Ack(ack) if ack.is_for(seq) => return Ok(Some(())),
            Answer::Msg(m) if m.header.ty == abi::ICMP_REPORT_MSG => {
                if let Ok(p) = packet_info(m.payload) {
                    early.push(p);
                }
            }
            _ => {}
        }
        Ok(None)
    })?;
    Ok(early)
}

/// Unregister (the seed's sig_int), with an ACK so a failure is visible.
fn unregister(sock: &mut NlSocket, buf: &mut [u8]) -> Result<()> {
    let seq = sock.send(abi::ICMP_REPORT_UNREGISTER, NLM_F_ACK, &[])?;
    await_answer(sock, buf, "netlink unregister", REPLY_TIMEOUT, |a| {
        Ok(matches!(a, Answer::Ack(ack) if ack.is_for(seq)).then_some(()))
    })
}

/// Print `early`, then the events as they come, until `count` of them, `timeout` or a
/// signal. False when `timeout` ended it with `count` not reached.
fn print_events(
    sock: &NlSocket,
    buf: &mut [u8],
    early: Vec<abi::PacketInfo>,
    count: Option<u64>,
    timeout: Option<Duration>,
) -> Result<bool> {
    let started = Instant::now();
    let mut seen: u64 = 0;
    let done = |seen: u64| count.is_some_and(|c| seen >= c);
    for p in early {
        if done(seen) {
            break;
        }
        output::line(&format_icmp(&p))?;
        seen += 1;
    }
    while !done(seen) && !stop_requested() {
        let slice = match timeout {
            None => POLL_SLICE,
            Some(t) => match t.checked_sub(started.elapsed()) {
                Some(r) if !r.is_zero() => r.min(POLL_SLICE),
                _ => return Ok(count.is_none()),
            },
        };
        sock.wait_readable(Some(slice))?;
        print_queued(sock, buf, &mut seen, &done)?;
    }
    Ok(true)
}

/// Print what the socket has queued (events, and anything else as `other:`), until `done`.
fn print_queued(
    sock: &NlSocket,
    buf: &mut [u8],
    seen: &mut u64,
    done: &dyn Fn(u64) -> bool,
) -> Result<()> {
    loop {
        let n = match sock.recv(buf)? {
            Recv::Data(n) => n,
            Recv::WouldBlock => return Ok(()),
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
                abi::ICMP_REPORT_MSG => match packet_info(m.payload) {
                    Ok(p) => {
                        output::line(&format_icmp(&p))?;
                        *seen += 1;
                        if done(*seen) {
                            return Ok(());
                        }
                    }
                    Err(e) => output::line(&format!("malformed: {e}"))?,
                },
                t => output::line(&format!("other: type={t} len={}", m.header.len))?,
            }
        }
    }
}
