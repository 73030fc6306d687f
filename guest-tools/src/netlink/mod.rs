//! The netlink channel (ICMP reports, the netlink echo, kchan's echo and burst): the
//! `kchanctl netlink ...` commands, one file each, over the wire format (pure, unit-tested) and
//! the socket.
//!
//! Sockets are AF_NETLINK SOCK_RAW on the kchan unit, bound with nl_pid 0 so the kernel assigns
//! the port, and send to nl_pid 0 (the kernel). Outgoing headers carry our port in nlmsg_pid,
//! as the seed programs did with getpid().

mod burst;
mod echo;
mod listen;
mod send;
mod socket;
mod wire;

pub use burst::{run_burst, BurstParams};
pub use socket::{await_answer, Answer, NlSocket, Recv, RECV_BUF, REPLY_TIMEOUT};
pub use wire::*;

use crate::args::{
    parse_buflen, parse_hex_arg, parse_secs, parse_sockets, parse_u32, parse_u64, HexBytes, MsgArg,
};
use crate::error::Result;
use crate::output;
use burst::cmd_burst;
use clap::{Args, Subcommand};
use echo::{cmd_echo, cmd_kchan_echo};
use listen::cmd_listen;
use send::{cmd_ping_unit, cmd_send, parse_flags, parse_type, Craft};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct NetlinkCmd {
    #[command(subcommand)]
    pub op: NetlinkOp,
}

#[derive(Subcommand, Debug)]
pub enum NetlinkOp {
    /// Netlink echo: type 0 (NETLINK_ECHO), flags 0, payload MSG + NUL; --kchan: KCHAN_ECHO
    Echo {
        #[command(flatten)]
        msg: MsgArg,
        /// Send KCHAN_ECHO (payload MSG, no NUL, NLM_F_ACK) and check the reply's type, seq and payload
        #[arg(long)]
        kchan: bool,
        /// Set NLM_F_ACK (kchan reports errors such as EMSGSIZE only then; default: flags 0 as the seed)
        #[arg(long)]
        ack: bool,
        /// Seconds to wait for the reply
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        timeout: Duration,
    },
    /// Register for ICMP reports (ICMP_REPORT_REGISTER + ACK), print them, unregister on exit/SIGINT/SIGTERM
    Listen {
        /// Stop after N events (not reached before --timeout: exit 1, ETIMEDOUT)
        #[arg(long, value_parser = parse_u64)]
        count: Option<u64>,
        /// Stop after SECS seconds (exit 0 unless --count was given and not reached)
        #[arg(long, value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
    /// KCHAN_BURST on K sockets; count lost/duplicate/out-of-order messages
    Burst {
        /// Messages per socket
        #[arg(long, value_parser = parse_u32)]
        count: u32,
        /// Payload bytes per message
        #[arg(long, value_parser = parse_u32)]
        size: u32,
        /// Number of sockets, each with its own burst
        #[arg(long, default_value_t = 1, value_parser = parse_sockets)]
        sockets: usize,
        /// Print a JSON object instead of the burst: line
        #[arg(long)]
        json: bool,
        /// Receive buffer per socket (SO_RCVBUFFORCE if allowed, else SO_RCVBUF)
        #[arg(long, default_value = "16777216", value_parser = parse_buflen)]
        rcvbuf: usize,
        /// Give up after SECS seconds without any message (then exit 1, ETIMEDOUT)
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        timeout: Duration,
    },
    /// Send a raw, possibly malformed message and print whatever comes back
    Send {
        /// nlmsg_type: number or name (register, close, done, error, echo, burst, ...)
        #[arg(long = "type", value_name = "T", value_parser = parse_type)]
        ty: u16,
        /// nlmsg_flags: numbers or names joined by ',' (request, ack, echo, dump, ...)
        #[arg(long, default_value = "0", value_parser = parse_flags)]
        flags: u16,
        /// nlmsg_len (default: 16 + payload length)
        #[arg(long, value_parser = parse_u32)]
        len: Option<u32>,
        /// Payload bytes in hex
        #[arg(long, value_name = "HEX", value_parser = parse_hex_arg)]
        payload: Option<HexBytes>,
        /// Send only the first N bytes of the message
        #[arg(long, value_name = "N", value_parser = parse_u64)]
        truncate: Option<u64>,
        /// nlmsg_seq
        #[arg(long, default_value = "1", value_parser = parse_u32)]
        seq: u32,
        /// nlmsg_pid (default: our port id)
        #[arg(long, value_parser = parse_u32)]
        pid: Option<u32>,
        /// Milliseconds to wait for replies
        #[arg(long, value_name = "MS", default_value = "500", value_parser = parse_u64)]
        wait: u64,
        /// Also print each reply's payload
        #[arg(long)]
        show_payload: bool,
        /// After the replies of --wait, hold the socket open SECS seconds without reading
        /// anything more, then exit 0 (a requester that stops reading)
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        stall: Option<Duration>,
    },
    /// Only socket() on the unit: is the module's netlink socket there?
    PingUnit,
}

/// `kchanctl netlink ...`; `unit` and `verbose` are the global options.
pub fn run(cmd: NetlinkCmd, unit: i32, verbose: bool) -> Result<()> {
    match cmd.op {
        NetlinkOp::Echo {
            msg,
            kchan: true,
            timeout,
            ..
        } => cmd_kchan_echo(unit, &msg.bytes()?, timeout, verbose),
        NetlinkOp::Echo {
            msg, ack, timeout, ..
        } => cmd_echo(unit, &msg.bytes()?, ack, timeout, verbose),
        NetlinkOp::Listen { count, timeout } => cmd_listen(unit, count, timeout, verbose),
        NetlinkOp::Burst {
            count,
            size,
            sockets,
            json,
            rcvbuf,
            timeout,
        } => cmd_burst(
            &BurstParams {
                unit,
                sockets,
                count,
                size,
                rcvbuf,
                idle: timeout,
            },
            json,
        ),
        NetlinkOp::Send {
            ty,
            flags,
            len,
            payload,
            truncate,
            seq,
            pid,
            wait,
            show_payload,
            stall,
        } => cmd_send(
            unit,
            &Craft {
                ty,
                flags,
                len,
                seq,
                pid,
                payload: payload.map(|p| p.0).unwrap_or_default(),
                truncate: truncate.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
                wait: Duration::from_millis(wait),
                show_payload,
                stall,
            },
            verbose,
        ),
        NetlinkOp::PingUnit => cmd_ping_unit(unit),
    }
}

/// A socket on `unit`; --verbose tells its port.
fn open_verbose(unit: i32, verbose: bool) -> Result<NlSocket> {
    let s = NlSocket::open(unit)?;
    if verbose {
        output::diag(&format!("netlink unit {unit} port={}", s.port));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_args, Cmd};

    #[test]
    fn netlink_args() {
        let c = parse_args(&[
            "netlink",
            "send",
            "--type",
            "echo",
            "--flags",
            "request,ack",
            "--payload",
            "00ff",
            "--truncate",
            "10",
            "--len",
            "1000",
        ])
        .unwrap();
        match c.cmd {
            Cmd::Netlink(NetlinkCmd {
                op:
                    NetlinkOp::Send {
                        ty: 0x10,
                        flags: 5,
                        len: Some(1000),
                        payload: Some(p),
                        truncate: Some(10),
                        wait: 500,
                        ..
                    },
            }) => assert_eq!(p, HexBytes(vec![0, 0xff])),
            other => panic!("{other:?}"),
        }
        let c = parse_args(&["netlink", "listen", "--count", "2", "--timeout", "1.5"]).unwrap();
        match c.cmd {
            Cmd::Netlink(NetlinkCmd {
                op:
                    NetlinkOp::Listen {
                        count: Some(2),
                        timeout: Some(t),
                    },
            }) => assert_eq!(t, Duration::from_millis(1500)),
            other => panic!("{other:?}"),
        }
        assert!(parse_args(&["netlink", "burst", "--count", "10"]).is_err());
        assert!(parse_args(&[
            "netlink",
            "burst",
            "--count",
            "10",
            "--size",
            "64",
            "--sockets",
            "0"
        ])
        .is_err());
        assert!(parse_args(&["netlink", "send", "--type", "70000"]).is_err());
        assert!(parse_args(&["netlink", "listen", "--timeout", "-1"]).is_err());
        assert!(parse_args(&["netlink", "listen", "--timeout", "nan"]).is_err());
        assert!(parse_args(&["netlink", "echo", "--kchan", "hi"]).is_ok());
    }
}
