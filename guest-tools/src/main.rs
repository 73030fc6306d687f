//! kchanctl: the userspace client of the kchan kernel module (kspec guest tool).
//!
//! One module per channel (sockopt, netlink, procfs, mmap) plus bench and fuzz; the ABI is the
//! module's own `abi.rs`, included by path. Output is line-oriented and stable because kspec specs match
//! it; the formats are documented in `kchanctl --help` (OUTPUT_HELP below).

#[path = "../../guest-kmod/abi.rs"]
#[allow(dead_code)]
mod abi;
mod bench;
mod bench_reference;
mod error;
mod escape;
mod fuzz;
mod mmap;
mod netlink;
mod output;
mod privilege;
mod procfs;
mod sockopt;

use clap::{Args, Parser, Subcommand};
use error::{Error, Result};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Duration;

const OUTPUT_HELP: &str = "\
OUTPUT (stable; kspec specs match it):
  Bytes are printed escaped unless said otherwise: printable ASCII as is, every other byte and
  the backslash as \\xNN (lowercase hex). stdout is flushed after every line.
  sockopt set      sockopt set: <N> bytes
  sockopt get      kmsg: <bytes up to the first NUL, one trailing newline removed>
                   len: <optlen returned by getsockopt>
  sockopt last     last: <all returned bytes>
                   len: <optlen>
  sockopt seed     kmsg: a message from kernel
  netlink echo     reply: <payload up to the first NUL>
                   type: <nlmsg_type of the reply>          (3 = NLMSG_DONE)
                   (kchan reports a failed request only when NLM_F_ACK is set: without
                   --ack a rejected echo ends in ETIMEDOUT; kecho, burst, listen set it)
  netlink echo --kchan / netlink kecho
                   echo: <payload>
  netlink listen   listening port=<port id>
                   icmp src=<a.b.c.d> dst=<a.b.c.d>          (one per IMP2_K_MSG)
                   other: type=<t> len=<l>                   (any other message)
                   unregistered                              (after IMP2_CLOSE was acked)
  netlink burst    burst: sockets=<K> messages=<received> expected=<K*N> lost=<n>
                   kernel_dropped=<n> seconds=<f> msgs_per_sec=<f> mb_per_sec=<f>
                   duplicate=<n> out_of_order=<n> invalid=<n>          (one line)
                   (--json: the same keys in one JSON object, plus kernel_sent, overruns, ended;
                   MB = 10^6 payload bytes)
  netlink send     reply: type=<t> len=<nlmsg_len>           (per message received in --wait)
                   error: <0 | ERRNO name | number>          (after each NLMSG_ERROR)
                   payload: <payload>                        (with --show-payload)
                   exit 0 whatever the kernel answers, 1 only for local failures
  netlink ping-unit
                   unit <n>: available                       (no kernel socket: EPROTONOSUPPORT)
  proc read        the bytes exactly as read (--escape: one escaped line)
  proc write       proc write: <N> bytes
  proc stats       the file exactly as read
  mmap write       mmap write: <N> bytes at <offset>         (N excludes the added NUL)
  mmap read        <bytes up to the first NUL>
  mmap map         mmap: ok
  mmap fill        mmap fill: <pages> pages
  mmap verify      mmap verify: <pages> pages ok
  bench            an aligned table: name unit min median p99 ratio (--json: an array of
                   {name, unit, min, median, p99, ratio}). Rows: null_syscall, sockopt_get,
                   proc_read, netlink_echo (ns); netlink_burst (msgs/s), netlink_burst_mb,
                   memcpy, mmap_write (MB/s). ratio = cost relative to the baseline (>1 is
                   slower): null_syscall for ns and msgs/s rows, memcpy for MB/s rows.
                   Each sample is one operation, or on a coarse clock (e.g. the jiffies
                   clocksource) the mean of a batch lasting >= 10 clock steps (>= 10 samples).
                   Throughput min is the slowest sample, p99 the rate at the p99 time.
  fuzz             fuzz <channel>: iterations=<n> ok=<n> errors=<n> seed=<s>
                   one line per channel (sockopt, netlink, proc, mmap, in this order), totals
                   over all workers (--iterations operations per worker and channel); errors =
                   calls the kernel refused, which is normal. Worker i uses seed S+i and is
                   reproduced alone by --seed S+i --procs 1. Exit 1 with
                   kchanctl: fuzz <channel>: <what> (worker <i>, seed <s>)
                   when the kernel broke the ABI (e.g. an echo reply with another payload, a
                   getsockopt returning more than the buffer) or a worker crashed.

ERRORS:
  kchanctl: <operation>: <ERRNO> (<description>)     e.g. kchanctl: setsockopt: EPERM (Operation not permitted)
  kchanctl: <operation>: <message>                   e.g. kchanctl: mmap verify: page 17 offset 24: expected .. got ..
  <operation> is the failing system call (socket, bind, sendto, setsockopt, getsockopt, open <path>,
  pread, write, mmap, setgroups ...) or, for errors the kernel reports in an NLMSG_ERROR, the
  command: netlink echo, netlink register, netlink unregister, netlink listen, netlink burst.
  A missing reply is ETIMEDOUT.

EXIT STATUS: 0 success, 1 operation failed, 2 usage error.";

/// kchanctl: exercise the kchan kernel module's channels (sockopt, netlink, procfs, mmap).
#[derive(Parser, Debug)]
#[command(
    name = "kchanctl",
    version,
    after_long_help = OUTPUT_HELP,
    color = clap::ColorChoice::Never
)]
struct Cli {
    /// Become this user first: setgroups([]), setgid(UID), setuid(UID) (drops all
    /// capabilities for UID != 0). Needs root.
    #[arg(long, global = true, value_name = "UID", value_parser = parse_u32)]
    as_user: Option<u32>,
    /// First sockopt optname (the module's sockopt_base).
    #[arg(long, global = true, value_name = "N", default_value_t = abi::SOCKOPT_BASE_DEFAULT, value_parser = parse_i32)]
    base: i32,
    /// Netlink unit (protocol number; the module's netlink_unit).
    #[arg(long, global = true, value_name = "N", default_value_t = abi::NETLINK_UNIT_DEFAULT, value_parser = parse_i32)]
    unit: i32,
    /// Diagnostics (port ids, bytes sent) on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// setsockopt/getsockopt on IPPROTO_IP (seed imp1)
    Sockopt(SockoptCmd),
    /// AF_NETLINK messages on the kchan unit (seeds imp2 and 004)
    Netlink(NetlinkCmd),
    /// /proc/kchan/buffer and /proc/kchan/stats (seed yzy_test)
    Proc(ProcCmd),
    /// mmap of /proc/kchan/mmap (seed memshare)
    Mmap(MmapCmd),
    /// Latency and throughput of each channel next to a null syscall and memcpy
    Bench(BenchArgs),
    /// Hostile-but-legal system calls at a channel, reproducible from a seed
    Fuzz(FuzzArgs),
}

/// A message argument: its bytes as given, or hex with --hex.
#[derive(Args, Debug)]
struct MsgArg {
    /// The message (use -- before a message starting with '-')
    #[arg(value_name = "MSG")]
    msg: OsString,
    /// MSG is hex: pairs of digits, optional 0x, spaces/':'/'-'/'_' ignored (e.g. 41:00:ff)
    #[arg(long)]
    hex: bool,
}

impl MsgArg {
    fn bytes(&self) -> Result<Vec<u8>> {
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

#[derive(Args, Debug)]
struct SockoptCmd {
    /// Use SOCK_RAW/IPPROTO_RAW like the seed (needs CAP_NET_RAW) instead of a UDP socket
    #[arg(long, global = true)]
    raw: bool,
    #[command(subcommand)]
    op: SockoptOp,
}

#[derive(Subcommand, Debug)]
enum SockoptOp {
    /// setsockopt(base+SOCKOPT_MSG, MSG)
    Set {
        #[command(flatten)]
        msg: MsgArg,
        /// Append a NUL (the seed sent UMSG with its NUL)
        #[arg(long)]
        nul: bool,
    },
    /// getsockopt(base+SOCKOPT_MSG) with a LEN-byte buffer: the kernel's message
    Get {
        #[arg(long, default_value_t = 64, value_parser = parse_buflen)]
        len: usize,
    },
    /// getsockopt(base+SOCKOPT_LAST): the last message set
    Last {
        #[arg(long, default_value_t = 64, value_parser = parse_buflen)]
        len: usize,
    },
    /// The seed's imp1_u: SOCK_RAW, set UMSG (26 bytes), get 64 bytes, print kmsg
    Seed,
}

#[derive(Args, Debug)]
struct NetlinkCmd {
    #[command(subcommand)]
    op: NetlinkOp,
}

#[derive(Subcommand, Debug)]
enum NetlinkOp {
    /// Seed 004 echo: type 0 (IMP2_U_PID), flags 0, payload MSG + NUL; --kchan: KCHAN_ECHO
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
    /// Same as `echo --kchan`
    Kecho {
        #[command(flatten)]
        msg: MsgArg,
        #[arg(long, default_value = "5", value_parser = parse_secs)]
        timeout: Duration,
    },
    /// Register for ICMP events (IMP2_U_PID + ACK), print them, IMP2_CLOSE on exit/SIGINT/SIGTERM
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
        #[arg(long = "type", value_name = "T", value_parser = netlink::parse_type)]
        ty: u16,
        /// nlmsg_flags: numbers or names joined by ',' (request, ack, echo, dump, ...)
        #[arg(long, default_value = "0", value_parser = netlink::parse_flags)]
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

#[derive(Args, Debug)]
struct ProcCmd {
    #[command(subcommand)]
    op: ProcOp,
}

#[derive(Subcommand, Debug)]
enum ProcOp {
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

#[derive(Args, Debug)]
struct MmapCmd {
    #[command(subcommand)]
    op: MmapOp,
}

#[derive(Subcommand, Debug)]
enum MmapOp {
    /// Map the pages holding [OFFSET, OFFSET+len] MAP_SHARED and copy MSG plus a NUL there
    Write {
        #[command(flatten)]
        msg: MsgArg,
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        offset: u64,
        /// Do not append the NUL
        #[arg(long)]
        no_nul: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Read up to LEN bytes at OFFSET with pread(2) (--map: through a mapping)
    Read {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        offset: u64,
        #[arg(long, default_value = "4096", value_parser = parse_buflen)]
        len: usize,
        #[arg(long)]
        map: bool,
        /// With --map: seconds to keep the pages mapped (file closed) before reading them
        #[arg(long, default_value = "0", requires = "map")]
        hold: u64,
        /// With --map: madvise(MADV_DONTNEED) the pages before reading, so the read faults
        /// them in again
        #[arg(long, requires = "map")]
        dontneed: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Only try mmap(OFFSET, LEN) and report
    Map {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        offset: u64,
        #[arg(long, value_parser = parse_usize)]
        len: usize,
        /// MAP_PRIVATE instead of MAP_SHARED
        #[arg(long)]
        private: bool,
        #[arg(long, value_enum, default_value_t = mmap::Prot::Rw)]
        prot: mmap::Prot,
        /// Access one byte of every page (a failing fault kills kchanctl with SIGBUS)
        #[arg(long)]
        touch: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Write a deterministic per-page pattern over the whole area (size from phymem_size)
    Fill {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        seed: u64,
        /// Area size in bytes instead of /proc/memshare/phymem_size
        #[arg(long, value_parser = parse_u64)]
        size: Option<u64>,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
    /// Check the pattern written by fill (through a mapping, or read(2) with --via-read)
    Verify {
        #[arg(long, default_value = "0", value_parser = parse_u64)]
        seed: u64,
        #[arg(long, value_parser = parse_u64)]
        size: Option<u64>,
        #[arg(long)]
        via_read: bool,
        #[arg(long, default_value = abi::PROC_MMAP)]
        path: String,
    },
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[arg(value_enum)]
    target: bench::Target,
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

/// `fuzz`: bad lengths, bad pointers, malformed netlink framing, odd mmap offsets, concurrent
/// workers and munmap races. Every refused call is counted, never fatal (the module may even
/// be unloaded meanwhile); the kernel's own checkers (KASAN, lockdep, ...) find the bugs.
#[derive(Args, Debug)]
struct FuzzArgs {
    #[arg(value_enum)]
    target: fuzz::Target,
    /// Operations per channel and worker
    #[arg(long, default_value = "1000", value_parser = parse_iterations)]
    iterations: usize,
    /// PRNG seed; worker i uses SEED+i
    #[arg(long, default_value = "0", value_parser = parse_u64)]
    seed: u64,
    /// Worker processes running at once (fork)
    #[arg(long, default_value = "1", value_parser = parse_procs)]
    procs: usize,
}

// ---- argument value parsers -------------------------------------------------------------------

/// Largest buffer a length option may ask for.
const MAX_BUF: u64 = 64 << 20;

fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    escape::parse_u64(s)
}
fn parse_u32(s: &str) -> std::result::Result<u32, String> {
    u32::try_from(escape::parse_u64(s)?).map_err(|_| format!("{s:?} does not fit 32 bits"))
}
fn parse_i32(s: &str) -> std::result::Result<i32, String> {
    i32::try_from(escape::parse_i64(s)?).map_err(|_| format!("{s:?} does not fit an int"))
}
fn parse_usize(s: &str) -> std::result::Result<usize, String> {
    usize::try_from(escape::parse_u64(s)?).map_err(|_| format!("{s:?} is too large"))
}
fn parse_buflen(s: &str) -> std::result::Result<usize, String> {
    let v = escape::parse_u64(s)?;
    if v > MAX_BUF {
        return Err(format!("{v} is larger than {MAX_BUF}"));
    }
    Ok(v as usize)
}
fn parse_chunk(s: &str) -> std::result::Result<usize, String> {
    match parse_buflen(s)? {
        0 => Err("must be at least 1".to_string()),
        v => Ok(v),
    }
}
fn parse_iterations(s: &str) -> std::result::Result<usize, String> {
    match escape::parse_u64(s)? {
        0 => Err("must be at least 1".to_string()),
        v if v > 100_000_000 => Err("at most 100000000".to_string()),
        v => Ok(v as usize),
    }
}
fn parse_procs(s: &str) -> std::result::Result<usize, String> {
    match escape::parse_u64(s)? {
        v @ 1..=64 => Ok(v as usize),
        _ => Err("must be 1..=64".to_string()),
    }
}
fn parse_sockets(s: &str) -> std::result::Result<usize, String> {
    match escape::parse_u64(s)? {
        v @ 1..=1024 => Ok(v as usize),
        _ => Err("must be 1..=1024".to_string()),
    }
}
fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
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
struct HexBytes(Vec<u8>);

fn parse_hex_arg(s: &str) -> std::result::Result<HexBytes, String> {
    escape::parse_hex(s).map(HexBytes)
}

// ---- dispatch ---------------------------------------------------------------------------------

fn run(cli: Cli) -> Result<()> {
    if let Some(uid) = cli.as_user {
        privilege::drop_to(uid)?;
    }
    let (base, unit, verbose) = (cli.base, cli.unit, cli.verbose);
    match cli.cmd {
        Cmd::Sockopt(s) => {
            let kind = if s.raw {
                sockopt::SockKind::Raw
            } else {
                sockopt::SockKind::Udp
            };
            match s.op {
                SockoptOp::Set { msg, nul } => sockopt::cmd_set(kind, base, msg.bytes()?, nul),
                SockoptOp::Get { len } => sockopt::cmd_get(kind, base, len),
                SockoptOp::Last { len } => sockopt::cmd_last(kind, base, len),
                SockoptOp::Seed => sockopt::cmd_seed(base),
            }
        }
        Cmd::Netlink(n) => match n.op {
            NetlinkOp::Echo {
                msg,
                kchan,
                ack,
                timeout,
            } => {
                if kchan {
                    netlink::cmd_kecho(unit, &msg.bytes()?, timeout, verbose)
                } else {
                    netlink::cmd_echo(unit, &msg.bytes()?, ack, timeout, verbose)
                }
            }
            NetlinkOp::Kecho { msg, timeout } => {
                netlink::cmd_kecho(unit, &msg.bytes()?, timeout, verbose)
            }
            NetlinkOp::Listen { count, timeout } => {
                netlink::cmd_listen(unit, count, timeout, verbose)
            }
            NetlinkOp::Burst {
                count,
                size,
                sockets,
                json,
                rcvbuf,
                timeout,
            } => netlink::cmd_burst(
                &netlink::BurstParams {
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
            } => netlink::cmd_send(
                unit,
                &netlink::Craft {
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
            NetlinkOp::PingUnit => netlink::cmd_ping_unit(unit),
        },
        Cmd::Proc(p) => match p.op {
            ProcOp::Read {
                offset,
                chunk,
                path,
                escape,
            } => procfs::cmd_read(&path, offset, chunk, escape),
            ProcOp::Write { msg, path, offset } => procfs::cmd_write(&path, &msg.bytes()?, offset),
            ProcOp::Stats { path } => procfs::cmd_stats(&path),
        },
        Cmd::Mmap(m) => match m.op {
            MmapOp::Write {
                msg,
                offset,
                no_nul,
                path,
            } => mmap::cmd_write(&path, &msg.bytes()?, offset, !no_nul),
            MmapOp::Read {
                offset,
                len,
                map,
                hold,
                dontneed,
                path,
            } => mmap::cmd_read(
                &path,
                offset,
                len,
                mmap::ReadVia {
                    map,
                    hold: std::time::Duration::from_secs(hold),
                    dontneed,
                },
            ),
            MmapOp::Map {
                offset,
                len,
                private,
                prot,
                touch,
                path,
            } => mmap::cmd_map(&path, offset, len, private, prot, touch),
            MmapOp::Fill { seed, size, path } => mmap::cmd_fill(&path, seed, size),
            MmapOp::Verify {
                seed,
                size,
                via_read,
                path,
            } => mmap::cmd_verify(&path, seed, size, via_read),
        },
        Cmd::Bench(b) => bench::cmd_bench(&bench::Options {
            target: b.target,
            iterations: b.iterations,
            base,
            unit,
            burst_count: b.burst_count,
            burst_size: b.burst_size,
            burst_runs: b.burst_runs,
            json: b.json,
        }),
        Cmd::Fuzz(f) => fuzz::cmd_fuzz(&fuzz::Options {
            target: f.target,
            iterations: f.iterations as u64,
            seed: f.seed,
            procs: f.procs,
            config: fuzz::Config::new(base, unit),
        }),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(msg)) => {
            use clap::CommandFactory;
            let e = Cli::command().error(clap::error::ErrorKind::InvalidValue, msg);
            let _ = e.print();
            ExitCode::from(2)
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "kchanctl: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kchanctl").chain(args.iter().copied()))
    }

    #[test]
    fn cli_debug_assert() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_globals() {
        let c = parse(&["sockopt", "get"]).unwrap();
        assert_eq!(c.base, 128);
        assert_eq!(c.unit, 31);
        assert!(c.as_user.is_none());
        match c.cmd {
            Cmd::Sockopt(SockoptCmd {
                raw: false,
                op: SockoptOp::Get { len: 64 },
            }) => {}
            other => panic!("{other:?}"),
        }
        let c = parse(&[
            "sockopt",
            "get",
            "--raw",
            "--base",
            "0x90",
            "--as-user",
            "1000",
        ])
        .unwrap();
        assert_eq!(c.base, 0x90);
        assert_eq!(c.as_user, Some(1000));
        assert!(matches!(c.cmd, Cmd::Sockopt(SockoptCmd { raw: true, .. })));
        let c = parse(&["--unit", "25", "netlink", "ping-unit"]).unwrap();
        assert_eq!(c.unit, 25);
    }

    #[test]
    fn messages() {
        let c = parse(&["sockopt", "set", "--hex", "41:00", "--nul"]).unwrap();
        match c.cmd {
            Cmd::Sockopt(SockoptCmd {
                op: SockoptOp::Set { msg, nul: true },
                ..
            }) => assert_eq!(msg.bytes().unwrap(), vec![0x41, 0]),
            other => panic!("{other:?}"),
        }
        let c = parse(&["proc", "write", "--", "-x"]).unwrap();
        match c.cmd {
            Cmd::Proc(ProcCmd {
                op: ProcOp::Write { msg, .. },
            }) => assert_eq!(msg.bytes().unwrap(), b"-x"),
            other => panic!("{other:?}"),
        }
        let c = parse(&["proc", "write", "--hex", "4"]).unwrap();
        match c.cmd {
            Cmd::Proc(ProcCmd {
                op: ProcOp::Write { msg, .. },
            }) => assert!(matches!(msg.bytes(), Err(Error::Usage(_)))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn netlink_args() {
        let c = parse(&[
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
        let c = parse(&["netlink", "listen", "--count", "2", "--timeout", "1.5"]).unwrap();
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
        assert!(parse(&["netlink", "burst", "--count", "10"]).is_err());
        assert!(parse(&[
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
        assert!(parse(&["netlink", "send", "--type", "70000"]).is_err());
        assert!(parse(&["netlink", "listen", "--timeout", "-1"]).is_err());
        assert!(parse(&["netlink", "listen", "--timeout", "nan"]).is_err());
        assert!(parse(&["netlink", "echo", "--kchan", "hi"]).is_ok());
    }

    /// Every option of every command, so each field's value type is checked against its
    /// parser (clap panics at runtime on a mismatch that debug_assert does not catch).
    #[test]
    fn every_option_parses() {
        let g = ["--as-user", "0", "--base", "128", "--unit", "31", "-v"];
        let cmds: &[&[&str]] = &[
            &["sockopt", "--raw", "set", "m", "--hex", "--nul"],
            &["sockopt", "get", "--len", "0x40"],
            &["sockopt", "last", "--len", "1", "--raw"],
            &["sockopt", "seed"],
            &[
                "netlink",
                "echo",
                "m",
                "--hex",
                "--kchan",
                "--ack",
                "--timeout",
                "0.25",
            ],
            &["netlink", "kecho", "m", "--hex", "--timeout", "1"],
            &["netlink", "listen", "--count", "1", "--timeout", "2"],
            &[
                "netlink",
                "burst",
                "--count",
                "1",
                "--size",
                "64",
                "--sockets",
                "2",
                "--json",
                "--rcvbuf",
                "4096",
                "--timeout",
                "3",
            ],
            &[
                "netlink",
                "send",
                "--type",
                "0",
                "--flags",
                "ack",
                "--len",
                "16",
                "--payload",
                "00",
                "--truncate",
                "4",
                "--seq",
                "9",
                "--pid",
                "1",
                "--wait",
                "10",
                "--show-payload",
            ],
            &["netlink", "ping-unit"],
            &[
                "proc", "read", "--offset", "1", "--chunk", "2", "--path", "/x", "--escape",
            ],
            &[
                "proc", "write", "m", "--hex", "--path", "/x", "--offset", "3",
            ],
            &["proc", "stats", "--path", "/x"],
            &[
                "mmap", "write", "m", "--hex", "--offset", "5", "--no-nul", "--path", "/x",
            ],
            &[
                "mmap", "read", "--offset", "1", "--len", "2", "--map", "--path", "/x",
            ],
            &[
                "mmap",
                "map",
                "--offset",
                "0",
                "--len",
                "4096",
                "--private",
                "--prot",
                "r",
                "--touch",
                "--path",
                "/x",
            ],
            &[
                "mmap", "fill", "--seed", "1", "--size", "4096", "--path", "/x",
            ],
            &[
                "mmap",
                "verify",
                "--seed",
                "1",
                "--size",
                "4096",
                "--via-read",
                "--path",
                "/x",
            ],
            &[
                "bench",
                "all",
                "--iterations",
                "5",
                "--burst-count",
                "6",
                "--burst-size",
                "64",
                "--burst-runs",
                "2",
                "--json",
            ],
            &["bench", "sockopt"],
            &["bench", "proc"],
            &["bench", "netlink"],
            &["bench", "mmap"],
            &[
                "fuzz",
                "all",
                "--iterations",
                "10",
                "--seed",
                "0x10",
                "--procs",
                "2",
            ],
            &["fuzz", "sockopt"],
            &["fuzz", "netlink"],
            &["fuzz", "proc"],
            &["fuzz", "mmap"],
        ];
        for c in cmds {
            let args: Vec<&str> = g.iter().chain(c.iter()).copied().collect();
            let cli = parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.as_user, Some(0));
            // Also with the global options after the subcommand.
            let args: Vec<&str> = c.iter().chain(g.iter()).copied().collect();
            parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["bogus"][..],
            &["sockopt"],
            &["sockopt", "get", "--len", "x"],
            &["sockopt", "get", "--len", "999999999999"],
            &["proc", "read", "--chunk", "0"],
            &["mmap", "map"],
            &["mmap", "map", "--len", "4096", "--prot", "x"],
            &["bench", "all", "--iterations", "0"],
            &["fuzz", "bogus"],
            &["fuzz", "all", "--procs", "0"],
            &["fuzz", "all", "--procs", "65"],
            &["fuzz", "all", "--seed", "-1"],
            &["--as-user", "-1", "proc", "stats"],
            &["--base", "99999999999", "sockopt", "get"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        assert_eq!(parse(&["--help"]).unwrap_err().exit_code(), 0);
    }

    #[test]
    fn help_documents_output() {
        let h = Cli::command().render_long_help().to_string();
        for s in [
            "kmsg:",
            "listening port=",
            "burst: sockets=",
            "mmap verify:",
            "fuzz <channel>: iterations=",
            "EXIT STATUS",
        ] {
            assert!(h.contains(s), "{s}");
        }
    }
}
