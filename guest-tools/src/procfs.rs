//! The procfs channel: /proc/kchan/buffer read/write, /proc/kchan/stats.

use crate::abi;
use crate::args::{parse_chunk, parse_u64, MsgArg};
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::output;
use clap::{Args, Subcommand};
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{FromRawFd, OwnedFd};

#[derive(Args, Debug)]
pub struct ProcCmd {
    #[command(subcommand)]
    pub op: ProcOp,
}

#[derive(Subcommand, Debug)]
pub enum ProcOp {
    /// pread from OFFSET in CHUNK-byte reads until EOF; print the bytes exactly
    Read {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        offset: u64,
        #[arg(long, default_value = "4096", value_parser = parse_chunk)]
        chunk: usize,
        #[arg(long, default_value = abi::PROC_BUFFER)]
        path: String,
        /// Print one escaped line instead of the raw bytes
        #[arg(long)]
        escape: bool,
    },
    /// One write(2) of MSG (pwrite(2) with --offset)
    Write {
        #[command(flatten)]
        msg: MsgArg,
        #[arg(long, default_value = abi::PROC_BUFFER)]
        path: String,
        #[arg(long, value_parser = parse_u64)]
        offset: Option<u64>,
    },
    /// Print /proc/kchan/stats
    Stats {
        #[arg(long, default_value = abi::PROC_STATS)]
        path: String,
    },
}

/// `kchanctl proc ...`.
pub fn run(cmd: ProcCmd) -> Result<()> {
    match cmd.op {
        ProcOp::Read {
            offset,
            chunk,
            path,
            escape,
        } => cmd_read(&path, offset, chunk, escape),
        ProcOp::Write { msg, path, offset } => cmd_write(&path, &msg.bytes()?, offset),
        ProcOp::Stats { path } => cmd_stats(&path),
    }
}

/// open(2) a path, failing as `open <path>: <errno>`.
pub fn open_path(path: &str, flags: OFlag) -> Result<OwnedFd> {
    let fd = open(path, flags | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys(format!("open {path}"), e))?;
    // SAFETY: a fresh descriptor owned by nobody else (nix 0.29 returns a RawFd).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// pread from `offset` in `chunk`-byte reads until EOF (or `limit` bytes).
pub fn read_all(fd: &OwnedFd, offset: u64, chunk: usize, limit: Option<usize>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    let mut pos = offset;
    loop {
        let want = match limit {
            Some(l) if out.len() >= l => break,
            Some(l) => buf.len().min(l - out.len()),
            None => buf.len(),
        };
        let off = i64::try_from(pos).map_err(|_| Error::raw("pread", libc::EINVAL))?;
        let n =
            nix::sys::uio::pread(fd, &mut buf[..want], off).map_err(|e| Error::sys("pread", e))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        pos = pos.saturating_add(n as u64);
    }
    Ok(out)
}

/// `proc read`: the bytes as they are (or one escaped line).
fn cmd_read(path: &str, offset: u64, chunk: usize, escaped: bool) -> Result<()> {
    let fd = open_path(path, OFlag::O_RDONLY)?;
    let data = read_all(&fd, offset, chunk, None)?;
    if escaped {
        output::line(&escape(&data))
    } else {
        output::raw(&data)
    }
}

/// `proc write`: one write(2) (pwrite(2) with --offset); prints `proc write: <N> bytes`.
fn cmd_write(path: &str, data: &[u8], offset: Option<u64>) -> Result<()> {
    let fd = open_path(path, OFlag::O_WRONLY)?;
    let n = match offset {
        None => nix::unistd::write(&fd, data).map_err(|e| Error::sys("write", e))?,
        Some(o) => {
            let o = i64::try_from(o).map_err(|_| Error::raw("pwrite", libc::EINVAL))?;
            nix::sys::uio::pwrite(&fd, data, o).map_err(|e| Error::sys("pwrite", e))?
        }
    };
    output::line(&format!("proc write: {n} bytes"))
}

/// `proc stats`: the stats file as it is.
fn cmd_stats(path: &str) -> Result<()> {
    let fd = open_path(path, OFlag::O_RDONLY)?;
    output::raw(&read_all(&fd, 0, 4096, None)?)
}
