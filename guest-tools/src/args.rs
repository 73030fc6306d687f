//! What the subcommands' arguments share: the MSG argument and the option value parsers.

use crate::error::{Error, Result};
use crate::escape;
use clap::Args;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

/// A message argument: its bytes as given, or hex with --hex.
#[derive(Args, Debug)]
pub struct MsgArg {
    /// The message (use -- before a message starting with '-')
    #[arg(value_name = "MSG")]
    msg: OsString,
    /// MSG is hex: pairs of digits, optional 0x, spaces/':'/'-'/'_' ignored (e.g. 41:00:ff)
    #[arg(long)]
    hex: bool,
}

impl MsgArg {
    pub fn bytes(&self) -> Result<Vec<u8>> {
        if self.hex {
            let s = self.msg.to_str().ok_or_else(|| {
                Error::Usage("invalid value for MSG with --hex: not UTF-8".into())
            })?;
            escape::parse_hex(s)
                .map_err(|e| Error::Usage(format!("invalid value for MSG with --hex: {e}")))
        } else {
            Ok(self.msg.as_bytes().to_vec())
        }
    }
}

/// Largest buffer a length option may ask for.
const MAX_BUF: u64 = 64 << 20;

pub fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    escape::parse_u64(s)
}
pub fn parse_u32(s: &str) -> std::result::Result<u32, String> {
    u32::try_from(escape::parse_u64(s)?).map_err(|_| format!("{s:?} does not fit 32 bits"))
}
pub fn parse_i32(s: &str) -> std::result::Result<i32, String> {
    i32::try_from(escape::parse_i64(s)?).map_err(|_| format!("{s:?} does not fit an int"))
}
pub fn parse_usize(s: &str) -> std::result::Result<usize, String> {
    usize::try_from(escape::parse_u64(s)?).map_err(|_| format!("{s:?} is too large"))
}
pub fn parse_buflen(s: &str) -> std::result::Result<usize, String> {
    let v = escape::parse_u64(s)?;
    if v > MAX_BUF {
        return Err(format!("{v} is larger than {MAX_BUF}"));
    }
    Ok(v as usize)
}
pub fn parse_chunk(s: &str) -> std::result::Result<usize, String> {
    match parse_buflen(s)? {
        0 => Err("must be at least 1".to_string()),
        v => Ok(v),
    }
}
pub fn parse_iterations(s: &str) -> std::result::Result<usize, String> {
    match escape::parse_u64(s)? {
        0 => Err("must be at least 1".to_string()),
        v if v > 100_000_000 => Err("at most 100000000".to_string()),
        v => Ok(v as usize),
    }
}
pub fn parse_procs(s: &str) -> std::result::Result<usize, String> {
    match escape::parse_u64(s)? {
        v @ 1..=64 => Ok(v as usize),
        _ => Err("must be 1..=64".to_string()),
    }
}
pub fn parse_sockets(s: &str) -> std::result::Result<usize, String> {
    match escape::parse_u64(s)? {
        v @ 1..=1024 => Ok(v as usize),
        _ => Err("must be 1..=1024".to_string()),
    }
}
pub fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("invalid seconds {s:?}"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("seconds {s:?} out of range"));
    }
    Duration::try_from_secs_f64(v).map_err(|e| e.to_string())
}

/// Hex bytes as one option value (a bare Vec<u8> would make clap take many values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

pub fn parse_hex_arg(s: &str) -> std::result::Result<HexBytes, String> {
    escape::parse_hex(s).map(HexBytes)
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::{parse_args as parse, procfs, sockopt, Cmd};

    #[test]
    fn messages() {
        let c = parse(&["sockopt", "set", "--hex", "41:00", "--nul"]).unwrap();
        match c.cmd {
            Cmd::Sockopt(sockopt::SockoptCmd {
                op: sockopt::SockoptOp::Set { msg, nul: true },
                ..
            }) => assert_eq!(msg.bytes().unwrap(), vec![0x41, 0]),
            other => panic!("{other:?}"),
        }
        let c = parse(&["proc", "write", "--", "-x"]).unwrap();
        match c.cmd {
            Cmd::Proc(procfs::ProcCmd {
                op: procfs::ProcOp::Write { msg, .. },
            }) => assert_eq!(msg.bytes().unwrap(), b"-x"),
            other => panic!("{other:?}"),
        }
        let c = parse(&["proc", "write", "--hex", "4"]).unwrap();
        match c.cmd {
            Cmd::Proc(procfs::ProcCmd {
                op: procfs::ProcOp::Write { msg, .. },
            }) => assert!(matches!(msg.bytes(), Err(Error::Usage(_)))),
            other => panic!("{other:?}"),
        }
    }
}
