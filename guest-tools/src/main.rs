//! kchanctl: the userspace client of the kchan kernel module (kspec guest tool).
//!
//! One module per channel (sockopt, netlink, procfs, mmap) plus bench and fuzz, each with its
//! subcommand's arguments and `run`; this file has the global options and the dispatch. The
//! ABI is the module's own `abi.rs`, included by path. Output is line-oriented and stable
//! because kspec specs match it; the formats are documented in `kchanctl --help` (OUTPUT_HELP
//! below).

#[path = "../../guest-kmod/abi.rs"]
#[allow(dead_code)]
mod abi;
mod args;
mod bench;
mod error;
mod escape;
mod fuzz;
mod mmap;
mod netlink;
mod output;
mod privilege;
mod procfs;
mod sockopt;

use args::{parse_i32, parse_u32};
use clap::{Parser, Subcommand};
use error::{Error, Result};
use std::io::Write;
use std::process::ExitCode;

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
                   --ack a rejected echo ends in ETIMEDOUT; --kchan, burst, listen set it)
  netlink echo --kchan
                   echo: <payload>
  netlink listen   listening port=<port id>
                   icmp src=<a.b.c.d> dst=<a.b.c.d>          (one per ICMP_REPORT_MSG)
                   other: type=<t> len=<l>                   (any other message)
                   unregistered                              (after ICMP_REPORT_UNREGISTER was acked)
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
    /// setsockopt/getsockopt on IPPROTO_IP
    Sockopt(sockopt::SockoptCmd),
    /// AF_NETLINK messages on the kchan unit: ICMP reports, echoes, bursts
    Netlink(netlink::NetlinkCmd),
    /// /proc/kchan/buffer and /proc/kchan/stats
    Proc(procfs::ProcCmd),
    /// mmap of /proc/kchan/mmap
    Mmap(mmap::MmapCmd),
    /// Latency and throughput of each channel next to a null syscall and memcpy
    Bench(bench::BenchArgs),
    /// Hostile-but-legal system calls at a channel, reproducible from a seed
    Fuzz(fuzz::FuzzArgs),
}

fn run(cli: Cli) -> Result<()> {
    if let Some(uid) = cli.as_user {
        privilege::drop_to(uid)?;
    }
    let (base, unit, verbose) = (cli.base, cli.unit, cli.verbose);
    match cli.cmd {
        Cmd::Sockopt(c) => sockopt::run(c, base),
        Cmd::Netlink(c) => netlink::run(c, unit, verbose),
        Cmd::Proc(c) => procfs::run(c),
        Cmd::Mmap(c) => mmap::run(c),
        Cmd::Bench(a) => bench::run(a, base, unit),
        Cmd::Fuzz(a) => fuzz::run(a, base, unit),
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

/// Parse a command line (without the program name), for the tests of every module.
#[cfg(test)]
fn parse_args(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("kchanctl").chain(args.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::parse_args as parse;
    use super::*;
    use clap::CommandFactory;
    use sockopt::{SockoptCmd, SockoptOp};

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

    /// Every option of every command, so each field's value type is checked against its
    /// parser (clap panics at runtime on a mismatch that debug_assert does not catch).
    #[test]
    fn every_option_parses() {
        let g = ["--as-user", "0", "--base", "128", "--unit", "31", "-v"];
        let cmds = [
            "sockopt --raw set m --hex --nul",
            "sockopt get --len 0x40",
            "sockopt last --len 1 --raw",
            "sockopt seed",
            "netlink echo m --hex --kchan --ack --timeout 0.25",
            "netlink listen --count 1 --timeout 2",
            "netlink burst --count 1 --size 64 --sockets 2 --json --rcvbuf 4096 --timeout 3",
            "netlink send --type 0 --flags ack --len 16 --payload 00 --truncate 4 --seq 9 \
             --pid 1 --wait 10 --show-payload",
            "netlink ping-unit",
            "proc read --offset 1 --chunk 2 --path /x --escape",
            "proc write m --hex --path /x --offset 3",
            "proc stats --path /x",
            "mmap write m --hex --offset 5 --no-nul --path /x",
            "mmap read --offset 1 --len 2 --map --path /x",
            "mmap map --offset 0 --len 4096 --private --prot r --touch --path /x",
            "mmap fill --seed 1 --size 4096 --path /x",
            "mmap verify --seed 1 --size 4096 --via-read --path /x",
            "bench all --iterations 5 --burst-count 6 --burst-size 64 --burst-runs 2 --json",
            "bench sockopt",
            "bench proc",
            "bench netlink",
            "bench mmap",
            "fuzz all --iterations 10 --seed 0x10 --procs 2",
            "fuzz sockopt",
            "fuzz netlink",
            "fuzz proc",
            "fuzz mmap",
        ];
        for c in cmds {
            let c: Vec<&str> = c.split_whitespace().collect();
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
            &["netlink", "kecho", "m"],
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
