//! `kchanctl bench`: per-operation latency and throughput of each channel, next to baselines
//! (a null syscall, an in-guest memcpy) and physical references (reference.rs: the same class
//! of work done by the kernel's own code, in the same guest).

mod format;
mod reference;
mod timing;

use crate::abi;
use crate::args::{parse_iterations, parse_u32};
use crate::error::{Error, Result};
use crate::mmap::{page_size, shared_size, Mapping};
use crate::netlink::{self, Answer, NlSocket, NLM_F_REQUEST};
use crate::output;
use crate::procfs::open_path;
use crate::sockopt::{self, SockKind};
use nix::fcntl::OFlag;
use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::time::Duration;
use timing::{summarize, throughput, time_each};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(value_enum)]
    target: Target,
    /// Operations per latency row (mmap/memcpy: about this many pages copied)
    #[arg(long, default_value = "10000", value_parser = parse_iterations)]
    iterations: usize,
    /// Messages per burst run
    #[arg(long, default_value = "100000", value_parser = parse_u32)]
    burst_count: u32,
    /// Payload bytes per burst message
    #[arg(long, default_value = "64", value_parser = parse_u32)]
    burst_size: u32,
    /// Burst runs (min/median/p99 are over runs)
    #[arg(long, default_value = "3", value_parser = parse_iterations)]
    burst_runs: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Sockopt,
    Proc,
    Netlink,
    Mmap,
    All,
}

/// One result row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: &'static str,
    pub unit: &'static str,
    pub min: f64,
    pub median: f64,
    pub p99: f64,
    /// Cost relative to the baseline (>1: slower); None when there is no baseline.
    pub ratio: Option<f64>,
}

/// `kchanctl bench`; `base` and `unit` are the global options.
pub fn run(a: BenchArgs, base: i32, unit: i32) -> Result<()> {
    let rows = measure(&a, base, unit)?;
    if a.json {
        output::line(&format::json(&rows))
    } else {
        output::raw(format::table(&rows).as_bytes())
    }
}

/// The rows of `a.target` in output order. The MB/s rows come last, measured before the
/// netlink rows because memcpy is the baseline of the burst MB/s row too.
fn measure(a: &BenchArgs, base: i32, unit: i32) -> Result<Vec<Row>> {
    let want = |t: Target| a.target == t || a.target == Target::All;
    let n = a.iterations;
    let null = latency_row(
        "null_syscall",
        time_each(n, || {
            black_box(nix::unistd::getppid());
            Ok(())
        })?,
        None,
    );
    let null_median = null.median;
    let mut rows = vec![Row {
        ratio: Some(1.0),
        ..null
    }];
    if want(Target::Sockopt) {
        rows.extend(sockopt_rows(n, base, null_median)?);
    }
    if want(Target::Proc) {
        rows.extend(proc_rows(n, null_median)?);
    }
    let mmap_rows = if want(Target::Mmap) {
        mmap_rows(n)?
    } else {
        Vec::new()
    };
    if want(Target::Netlink) {
        let memcpy_median = mmap_rows.first().map(|r| r.median);
        rows.extend(netlink_rows(a, unit, null_median, memcpy_median)?);
    }
    rows.extend(mmap_rows);
    Ok(rows)
}

fn latency_row(name: &'static str, samples: Vec<f64>, base: Option<f64>) -> Row {
    let (min, median, p99) = summarize(samples);
    Row {
        name,
        unit: "ns",
        min,
        median,
        p99,
        ratio: base.and_then(|b| ratio(median, b)),
    }
}

/// One pread(2) from the start of `fd`.
fn pread_start(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    nix::sys::uio::pread(fd, buf, 0).map_err(|e| Error::sys("pread", e))
}

fn ratio(cost: f64, base: f64) -> Option<f64> {
    (base > 0.0 && cost.is_finite()).then(|| cost / base)
}

fn sockopt_rows(n: usize, base: i32, null_median: f64) -> Result<[Row; 2]> {
    let fd = sockopt::open(SockKind::Udp)?;
    let opt = sockopt::optname(base, abi::SOCKOPT_MSG)?;
    let s = time_each(n, || {
        sockopt::get(&fd, opt, sockopt::SEED_KMSG_BUF).map(|_| ())
    })?;
    let get = latency_row("sockopt_get", s, Some(null_median));
    let s = time_each(n, || reference::ip_ttl(&fd))?;
    Ok([get, latency_row("ip_ttl_get", s, Some(null_median))])
}

fn proc_rows(n: usize, null_median: f64) -> Result<[Row; 2]> {
    // A message in the buffer first: reading an empty one would measure nothing.
    let w = open_path(abi::PROC_BUFFER, OFlag::O_WRONLY)?;
    let msg = [b'k'; 64];
    nix::unistd::write(&w, &msg).map_err(|e| Error::sys("write", e))?;
    let fd = open_path(abi::PROC_BUFFER, OFlag::O_RDONLY)?;
    let mut buf = vec![0u8; 4096];
    let len = pread_start(&fd, &mut buf)?;
    if len == 0 {
        return Err(Error::msg("bench proc_read", "the buffer reads back empty"));
    }
    let s = time_each(n, || pread_start(&fd, &mut buf).map(|_| ()))?;
    let read = latency_row("proc_read", s, Some(null_median));
    // The same number of bytes from a file the kernel generates on each read.
    let reference_fd = reference::proc_reference()?;
    let mut same = vec![0u8; len];
    let s = time_each(n, || pread_start(&reference_fd, &mut same).map(|_| ()))?;
    Ok([read, latency_row("proc_ref_read", s, Some(null_median))])
}

/// memcpy (the baseline, first) and writes through a mapping of the shared area.
fn mmap_rows(n: usize) -> Result<Vec<Row>> {
    let size = usize::try_from(shared_size()?).map_err(|_| Error::raw("mmap", libc::EINVAL))?;
    let reps = (n.saturating_mul(page_size()) / size.max(1)).max(10);
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let s = time_each(reps, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        Ok(())
    })?;
    let (min, median, p99) = throughput(s, size as f64);
    let memcpy = Row {
        name: "memcpy",
        unit: "MB/s",
        min,
        median,
        p99,
        ratio: Some(1.0),
    };
    let fd = open_path(abi::PROC_MMAP, OFlag::O_RDWR)?;
    let mut m = Mapping::new(
        &fd,
        0,
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )?;
    let s = time_each(reps, || {
        let p = black_box(m.as_mut_ptr());
        // SAFETY: the mapping is `size` bytes long and does not overlap `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, size) };
        Ok(())
    })?;
    let (min, mmed, p99) = throughput(s, size as f64);
    let write = Row {
        name: "mmap_write",
        unit: "MB/s",
        min,
        median: mmed,
        p99,
        ratio: ratio(median, mmed),
    };
    Ok(vec![memcpy, write])
}

/// The echo and its UNIX datagram reference, then the bursts and theirs.
fn netlink_rows(
    a: &BenchArgs,
    unit: i32,
    null_median: f64,
    memcpy_median: Option<f64>,
) -> Result<Vec<Row>> {
    let n = a.iterations;
    let mut rows = Vec::new();
    let mut sock = NlSocket::open(unit)?;
    let payload = [0xa5u8; 64];
    let mut buf = vec![0u8; netlink::RECV_BUF];
    let s = time_each(n, || echo_once(&mut sock, &payload, &mut buf))?;
    rows.push(latency_row("netlink_echo", s, Some(null_median)));
    // The echo's bytes on the wire: a netlink header and the payload.
    let (x, y) = reference::pair()?;
    let msg = [0xa5u8; 16 + 64];
    let s = time_each(n, || reference::unix_round_trip(&x, &y, &msg, &mut buf))?;
    rows.push(latency_row("unix_dgram_rtt", s, Some(null_median)));

    let params = netlink::BurstParams {
        unit,
        sockets: 1,
        count: a.burst_count,
        size: a.burst_size,
        rcvbuf: 16 << 20,
        idle: Duration::from_secs(5),
    };
    let mut per_msg_ns = Vec::new();
    for _ in 0..a.burst_runs.max(1) {
        let st = netlink::run_burst(&params)?;
        if st.ended < st.sockets {
            return Err(Error::raw("bench netlink_burst", libc::ETIMEDOUT));
        }
        if st.messages == 0 {
            return Err(Error::msg("bench netlink_burst", "no messages received"));
        }
        per_msg_ns.push(st.seconds * 1e9 / st.messages as f64);
    }
    rows.extend(burst_rows(
        per_msg_ns,
        a.burst_size,
        null_median,
        memcpy_median,
    ));
    let mut unix_ns = Vec::new();
    for _ in 0..a.burst_runs.max(1) {
        unix_ns.push(reference::unix_burst(
            a.burst_count,
            a.burst_size as usize + 16,
        )?);
    }
    let (min, median, p99) = throughput(unix_ns, 1.0);
    rows.push(Row {
        name: "unix_dgram_burst",
        unit: "msgs/s",
        min: min * 1e6,
        median: median * 1e6,
        p99: p99 * 1e6,
        ratio: None,
    });
    Ok(rows)
}

/// The two burst rows from per-run times per message (ns): messages/s (ratio: cost per
/// message over the null syscall) and payload MB/s (ratio over memcpy, when measured).
fn burst_rows(
    per_msg_ns: Vec<f64>,
    size: u32,
    null_median: f64,
    memcpy_median: Option<f64>,
) -> [Row; 2] {
    // throughput() of 1-byte items is in 10^6 items/s: scale to messages/s.
    let (min, median, p99) = throughput(per_msg_ns.clone(), 1.0);
    let (min, median, p99) = (min * 1e6, median * 1e6, p99 * 1e6);
    let (bmin, bmed, bp99) = throughput(per_msg_ns, f64::from(size));
    [
        Row {
            name: "netlink_burst",
            unit: "msgs/s",
            min,
            median,
            p99,
            ratio: (median > 0.0)
                .then(|| 1e9 / median)
                .and_then(|c| ratio(c, null_median)),
        },
        Row {
            name: "netlink_burst_mb",
            unit: "MB/s",
            min: bmin,
            median: bmed,
            p99: bp99,
            ratio: memcpy_median.and_then(|m| ratio(m, bmed)),
        },
    ]
}

/// One KCHAN_ECHO round trip with the reply checked.
fn echo_once(sock: &mut NlSocket, payload: &[u8], buf: &mut [u8]) -> Result<()> {
    const OP: &str = "bench netlink_echo";
    let seq = sock.send(abi::KCHAN_ECHO, NLM_F_REQUEST, payload)?;
    netlink::await_answer(sock, buf, OP, netlink::REPLY_TIMEOUT, |a| match a {
        Answer::Msg(m) if m.header.ty == abi::KCHAN_ECHO && m.header.seq == seq => {
            if m.payload != payload {
                return Err(Error::msg(OP, "reply payload differs"));
            }
            Ok(Some(()))
        }
        _ => Ok(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_units() {
        // 1000 ns per 64-byte message: 1e6 msgs/s, 64 MB/s; 10x a 100 ns null syscall.
        let [m, b] = burst_rows(vec![1000.0, 1000.0, 1000.0], 64, 100.0, Some(128.0));
        assert_eq!((m.unit, m.median), ("msgs/s", 1e6));
        assert_eq!(m.ratio, Some(10.0));
        assert_eq!((b.unit, b.median), ("MB/s", 64.0));
        assert_eq!(b.ratio, Some(2.0));
        let [_, b] = burst_rows(vec![1000.0], 64, 100.0, None);
        assert_eq!(b.ratio, None);
    }
}
