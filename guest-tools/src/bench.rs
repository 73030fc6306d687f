//! `kchanctl bench`: per-operation latency and throughput of each channel, next to baselines
//! (a null syscall, an in-guest memcpy) and physical references (bench_reference.rs: the same
//! class of work done by the kernel's own code, in the same guest).

use crate::abi;
use crate::args::{parse_iterations, parse_u32};
use crate::bench_reference as reference;
use crate::error::{Error, Result};
use crate::mmap::{page_size, shared_size, Mapping};
use crate::netlink::{self, Answer, NlSocket, NLM_F_REQUEST};
use crate::output;
use crate::procfs::open_path;
use crate::sockopt::{self, SockKind};
use nix::fcntl::OFlag;
use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

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

/// Nearest-rank percentile of sorted samples (p in 0..=1).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (min, median, p99) of time samples.
pub fn summarize(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        percentile(&samples, 0.0),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    )
}

/// The clock's granularity in ns: the smallest step of `Instant::now()` over a few full ticks.
/// About the cost of reading the clock with a TSC clocksource; a whole jiffy (e.g. 4 ms) when
/// the guest kernel fell back to the jiffies clocksource (seen under TCG).
pub fn clock_granularity() -> f64 {
    const SPIN_LIMIT: u64 = 50_000_000;
    let next_change = |from: Instant| -> Option<Instant> {
        for _ in 0..SPIN_LIMIT {
            let t = Instant::now();
            if t != from {
                return Some(t);
            }
        }
        None
    };
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let Some(a) = next_change(Instant::now()) else {
            return 1e7; // the clock hardly moves: assume 10 ms
        };
        let Some(b) = next_change(a) else {
            return 1e7;
        };
        best = best.min((b - a).as_nanos() as f64);
    }
    best.max(1.0)
}

/// Fewest samples per row, whatever the batching.
const MIN_SAMPLES: usize = 10;

/// How many calls one sample must batch so that it lasts at least 10 clock steps (the
/// quantisation error stays under 10%), given the cost of one call.
pub fn batch_size(granularity_ns: f64, cost_ns: f64) -> usize {
    if cost_ns <= 0.0 || !cost_ns.is_finite() {
        return 1;
    }
    let b = (10.0 * granularity_ns / cost_ns).ceil();
    if b >= 1e8 {
        100_000_000
    } else if b >= 1.0 {
        b as usize
    } else {
        1 // also NaN
    }
}

/// Number of samples for `iters` calls batched by `batch`.
pub fn sample_count(iters: usize, batch: usize) -> usize {
    iters
        .div_ceil(batch.max(1))
        .max(MIN_SAMPLES.min(iters.max(1)))
}

/// Time about `iters` calls of `f`, in ns per call. Warm-up and calibration first: on a fine
/// clock every call is a sample; on a coarse one each sample is the mean of a batch of
/// calls (see `batch_size`), and at least MIN_SAMPLES samples are taken.
fn time_each(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let g = granularity();
    // Calibrate (this also warms up): double the count until it lasts 20 clock steps.
    let mut count = 1usize;
    let cost = loop {
        let t = Instant::now();
        for _ in 0..count {
            f()?;
        }
        let ns = t.elapsed().as_nanos() as f64;
        if ns >= 20.0 * g || count >= 1 << 24 {
            break ns / count as f64;
        }
        count *= 2;
    };
    let batch = batch_size(g, cost);
    let samples = sample_count(iters, batch);
    let mut v = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..batch {
            f()?;
        }
        v.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    Ok(v)
}

/// The clock granularity, measured once per process.
fn granularity() -> f64 {
    static G: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *G.get_or_init(clock_granularity)
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

/// Throughput from time samples of moving `bytes` each: min = slowest sample, median, and p99
/// = the rate at the 99th-percentile time (the tail, as for latencies). MB = 10^6 bytes.
fn throughput(samples_ns: Vec<f64>, bytes: f64) -> (f64, f64, f64) {
    let (tmin, tmed, tp99) = summarize(samples_ns.clone());
    let tmax = samples_ns.iter().copied().fold(tmin, f64::max);
    let rate = |t: f64| if t > 0.0 { bytes * 1e3 / t } else { 0.0 };
    (rate(tmax), rate(tmed), rate(tp99))
}

pub struct Options {
    pub target: Target,
    pub iterations: usize,
    pub base: i32,
    pub unit: i32,
    /// Messages per burst run.
    pub burst_count: u32,
    pub burst_size: u32,
    pub burst_runs: usize,
}

pub fn measure(o: &Options) -> Result<Vec<Row>> {
    let want = |t: Target| o.target == t || o.target == Target::All;
    let n = o.iterations;
    let mut rows = Vec::new();

    let null = latency_row(
        "null_syscall",
        time_each(n, || {
            black_box(nix::unistd::getppid());
            Ok(())
        })?,
        None,
    );
    let null_median = null.median;
    rows.push(Row {
        ratio: Some(1.0),
        ..null
    });

    if want(Target::Sockopt) {
        let fd = sockopt::open(SockKind::Udp)?;
        let opt = sockopt::optname(o.base, abi::SOCKOPT_MSG)?;
        let s = time_each(n, || {
            sockopt::get(&fd, opt, sockopt::SEED_KMSG_BUF).map(|_| ())
        })?;
        rows.push(latency_row("sockopt_get", s, Some(null_median)));
        let s = time_each(n, || reference::ip_ttl(&fd))?;
        rows.push(latency_row("ip_ttl_get", s, Some(null_median)));
    }
    if want(Target::Proc) {
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
        rows.push(latency_row("proc_read", s, Some(null_median)));
        // The same number of bytes from a file the kernel generates on each read.
        let reference_fd = reference::proc_reference()?;
        let mut same = vec![0u8; len];
        let s = time_each(n, || pread_start(&reference_fd, &mut same).map(|_| ()))?;
        rows.push(latency_row("proc_ref_read", s, Some(null_median)));
    }

    // memcpy baseline first: the mmap row and the burst MB/s row are relative to it.
    let mut memcpy_median = None;
    let mut mmap_rows = Vec::new();
    if want(Target::Mmap) {
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
        memcpy_median = Some(median);
        mmap_rows.push(Row {
            name: "memcpy",
            unit: "MB/s",
            min,
            median,
            p99,
            ratio: Some(1.0),
        });
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
        mmap_rows.push(Row {
            name: "mmap_write",
            unit: "MB/s",
            min,
            median: mmed,
            p99,
            ratio: ratio(median, mmed),
        });
    }

    if want(Target::Netlink) {
        let mut sock = NlSocket::open(o.unit)?;
        let payload = [0xa5u8; 64];
        let mut buf = vec![0u8; netlink::RECV_BUF];
        let s = time_each(n, || echo_once(&mut sock, &payload, &mut buf))?;
        rows.push(latency_row("netlink_echo", s, Some(null_median)));
        // The echo's bytes on the wire: a netlink header and the payload.
        let (a, b) = reference::pair()?;
        let msg = [0xa5u8; 16 + 64];
        let s = time_each(n, || reference::unix_round_trip(&a, &b, &msg, &mut buf))?;
        rows.push(latency_row("unix_dgram_rtt", s, Some(null_median)));

        let params = netlink::BurstParams {
            unit: o.unit,
            sockets: 1,
            count: o.burst_count,
            size: o.burst_size,
            rcvbuf: 16 << 20,
            idle: Duration::from_secs(5),
        };
        let mut per_msg_ns = Vec::new();
        for _ in 0..o.burst_runs.max(1) {
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
            o.burst_size,
            null_median,
            memcpy_median,
        ));
        let mut unix_ns = Vec::new();
        for _ in 0..o.burst_runs.max(1) {
            unix_ns.push(reference::unix_burst(
                o.burst_count,
                o.burst_size as usize + 16,
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
    }
    rows.extend(mmap_rows);
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

fn num(v: f64) -> String {
    format!("{v:.1}")
}

pub fn table(rows: &[Row]) -> String {
    let mut cells = vec![[
        "name".to_string(),
        "unit".to_string(),
        "min".to_string(),
        "median".to_string(),
        "p99".to_string(),
        "ratio".to_string(),
    ]];
    for r in rows {
        cells.push([
            r.name.to_string(),
            r.unit.to_string(),
            num(r.min),
            num(r.median),
            num(r.p99),
            r.ratio.map_or("-".to_string(), |x| format!("{x:.2}")),
        ]);
    }
    let mut w = [0usize; 6];
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.len());
        }
    }
    let mut out = String::new();
    for c in &cells {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4],
            w5 = w[5]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".to_string()
    }
}

pub fn json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"name\":\"{}\",\"unit\":\"{}\",\"min\":{},\"median\":{},\"p99\":{},\"ratio\":{}}}",
                r.name,
                r.unit,
                json_num(r.min),
                json_num(r.median),
                json_num(r.p99),
                r.ratio.map_or("null".to_string(), json_num)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `kchanctl bench`; `base` and `unit` are the global options.
pub fn run(a: BenchArgs, base: i32, unit: i32) -> Result<()> {
    let rows = measure(&Options {
        target: a.target,
        iterations: a.iterations,
        base,
        unit,
        burst_count: a.burst_count,
        burst_size: a.burst_size,
        burst_runs: a.burst_runs,
    })?;
    if a.json {
        output::line(&json(&rows))
    } else {
        output::raw(table(&rows).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(summarize(vec![3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
    }

    #[test]
    fn batching() {
        // Fine clock: one call per sample.
        assert_eq!(batch_size(30.0, 700.0), 1);
        assert_eq!(sample_count(10_000, 1), 10_000);
        // Jiffies clock (4 ms) and a 1 us call: 40000 calls per sample, still 10 samples.
        assert_eq!(batch_size(4e6, 1000.0), 40_000);
        assert_eq!(sample_count(10_000, 40_000), 10);
        assert_eq!(sample_count(5, 1), 5);
        assert_eq!(sample_count(1, 1000), 1);
        assert_eq!(batch_size(1.0, 0.0), 1);
        assert_eq!(batch_size(1.0, f64::NAN), 1);
        assert_eq!(batch_size(1e300, 1e-300), 100_000_000);
        let g = clock_granularity();
        assert!((1.0..1e8).contains(&g), "{g}");
    }

    #[test]
    fn throughput_tail() {
        // 1e6 bytes in 1 ms = 1000 MB/s.
        let (min, med, p99) = throughput(vec![1e6, 1e6, 2e6], 1e6);
        assert_eq!(med, 1000.0);
        assert_eq!(min, 500.0);
        assert_eq!(p99, 500.0);
    }

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

    #[test]
    fn formats() {
        let rows = vec![
            Row {
                name: "null_syscall",
                unit: "ns",
                min: 100.0,
                median: 110.0,
                p99: 200.0,
                ratio: Some(1.0),
            },
            Row {
                name: "netlink_burst_mb",
                unit: "MB/s",
                min: 1.0,
                median: 2.0,
                p99: 1.5,
                ratio: None,
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("name              unit"));
        assert!(lines[1].ends_with("1.00"));
        assert!(lines[2].ends_with("-"));
        assert_eq!(
            json(&rows[..1]),
            "[{\"name\":\"null_syscall\",\"unit\":\"ns\",\"min\":100.000,\"median\":110.000,\"p99\":200.000,\"ratio\":1.000}]"
        );
        assert_eq!(json_num(f64::NAN), "null");
    }
}
