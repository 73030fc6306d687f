//! `kchanctl fuzz <sockopt|netlink|proc|mmap|all>`: hostile-but-legal system calls at the kchan
//! channels, reproducible from a seed. The kernel's checkers (KASAN, KFENCE, lockdep, kmemleak
//! on the debug kernel) turn a module bug into a kernel report, which kspec fails the step on;
//! this tool only has to generate the calls, count the outcomes, check what the ABI promises
//! and never crash itself.
//!
//! How it stays reproducible and safe:
//!
//! - One PRNG (`Rng`, splitmix64) per channel and worker, derived from the seed alone. Each
//!   operation is first generated (`gen_*`: a pure function of the PRNG, unit-tested for
//!   determinism) and then executed; results never feed back into generation, so a worker's
//!   operation sequence depends only on its seed. Worker `i` of `--procs P` uses seed `S + i`
//!   and is reproduced alone by `--seed S+i --procs 1`; `fuzz all` runs the channels in order
//!   with the same per-channel streams as `fuzz <channel>`.
//! - Every user pointer handed to the kernel together with a fuzzed length points into an
//!   `Arena`: read-write pages followed by a PROT_NONE guard page. The kernel can therefore
//!   never write into memory Rust owns; too-long lengths fault on the guard page (EFAULT).
//!   "Invalid" pointers are NULL, 1, the guard page (rather than an unmapped page, which a
//!   later allocation could reuse) and a kernel address.
//! - Mappings are touched from user space only where the mapping is known to be backed (inside
//!   the area phymem_size reports) and allowed by its protection. The munmap race is between
//!   a second thread that remaps, blanks and unmaps slots of a private reserved region and the
//!   main thread making the *kernel* copy to and from those slots (pread/pwrite): a copy that
//!   hits a slot being unmapped faults in the kernel (EFAULT), never in this process. The
//!   region sits at a fixed low address where no allocation lands, and every unmapped slot is
//!   re-reserved at once, so the slots never become someone else's memory.
//! - Every failed system call is counted as an error and the run goes on (the module may be
//!   unloaded and reloaded at any moment). Only ABI violations end a worker: an echo reply
//!   with a different payload, a getsockopt returning more than the buffer, a write beyond
//!   /proc/kchan/buffer's capacity accepted, a mapping beyond the shared area accepted, ...
//! - Random bytes never contain `:` or `#`, so nothing the module logs (sockopt, proc and
//!   netlink payloads) can look like a kernel report (`BUG:`, `WARNING:`, `Oops#`) to kspec.

mod arena;
mod mapping;
mod mmap;
mod netlink;
mod proc;
mod racer;
mod replies;
mod report;
mod rng;
mod sockopt;
mod worker;

use crate::abi;
use crate::args::{parse_iterations, parse_procs, parse_u64};
use crate::error::{Error, Result};
use mmap::{gen_mmap, MmapFuzzer};
use netlink::{gen_netlink, NetlinkFuzzer};
use proc::{gen_proc, ProcFuzzer};
use report::summarize;
use rng::Rng;
use sockopt::{gen_sockopt, SockoptFuzzer};
use worker::run_workers;

/// `fuzz`: bad lengths, bad pointers, malformed netlink framing, odd mmap offsets, concurrent
/// workers and munmap races. Every refused call is counted, never fatal (the module may even
/// be unloaded meanwhile); the kernel's own checkers (KASAN, lockdep, ...) find the bugs.
#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    #[arg(value_enum)]
    target: Target,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Sockopt,
    Netlink,
    Proc,
    Mmap,
    /// The four channels in this order
    All,
}

impl Target {
    pub fn channels(self) -> Vec<Channel> {
        match self {
            Target::Sockopt => vec![Channel::Sockopt],
            Target::Netlink => vec![Channel::Netlink],
            Target::Proc => vec![Channel::Proc],
            Target::Mmap => vec![Channel::Mmap],
            Target::All => Channel::ALL.to_vec(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Sockopt,
    Netlink,
    Proc,
    Mmap,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Sockopt,
        Channel::Netlink,
        Channel::Proc,
        Channel::Mmap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Sockopt => "sockopt",
            Channel::Netlink => "netlink",
            Channel::Proc => "proc",
            Channel::Mmap => "mmap",
        }
    }

    fn from_name(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == s)
    }

    fn salt(self) -> u64 {
        match self {
            Channel::Sockopt => 1,
            Channel::Netlink => 2,
            Channel::Proc => 3,
            Channel::Mmap => 4,
        }
    }
}

/// Outcomes of one channel: every iteration is one operation, accepted (ok) or refused by
/// the kernel (errors, which is normal for hostile input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub iterations: u64,
    pub ok: u64,
    pub errors: u64,
}

impl Counts {
    fn record(&mut self, ok: bool) {
        self.iterations += 1;
        if ok {
            self.ok += 1;
        } else {
            self.errors += 1;
        }
    }

    fn add(&mut self, o: &Counts) {
        self.iterations += o.iterations;
        self.ok += o.ok;
        self.errors += o.errors;
    }

    /// The summary line `fuzz <channel>: iterations=<n> ok=<n> errors=<n> seed=<s>`.
    pub fn line(&self, ch: Channel, seed: u64) -> String {
        format!(
            "fuzz {}: iterations={} ok={} errors={} seed={seed}",
            ch.name(),
            self.iterations,
            self.ok,
            self.errors
        )
    }
}

/// Where the channels are and how strictly replies are checked.
#[derive(Clone, Debug)]
pub struct Config {
    pub base: i32,
    pub unit: i32,
    pub buffer: String,
    pub stats: String,
    pub mmap: String,
    pub mmap_size: String,
    /// Check results against the kchan ABI. Off only in host tests that stand in plain files
    /// for the /proc entries.
    pub strict: bool,
}

impl Config {
    pub fn new(base: i32, unit: i32) -> Self {
        Config {
            base,
            unit,
            buffer: abi::PROC_BUFFER.to_string(),
            stats: abi::PROC_STATS.to_string(),
            mmap: abi::PROC_MMAP.to_string(),
            mmap_size: abi::MEMSHARE_SIZE.to_string(),
            strict: true,
        }
    }
}

pub struct Options {
    pub target: Target,
    /// Operations per channel and worker.
    pub iterations: u64,
    pub seed: u64,
    pub procs: usize,
    pub config: Config,
}

/// An ABI violation found on `ch`: ends the worker, reported as `fuzz <channel>: <what>`.
fn violation(ch: Channel, what: impl Into<String>) -> Error {
    Error::msg(format!("fuzz {}", ch.name()), what)
}

/// The current errno (after a libc call returned -1).
fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// Errors that mean this tool misused a descriptor: a bug here, not a refusal by the kernel.
fn internal_errno(e: i32) -> bool {
    e == libc::EBADF || e == libc::ENOTSOCK
}

/// Run `n` operations of channel `ch` from worker seed `seed`.
pub fn run_channel(ch: Channel, cfg: &Config, seed: u64, n: u64) -> Result<Counts> {
    let mut rng = Rng::for_channel(seed, ch);
    let mut counts = Counts::default();
    macro_rules! drive {
        ($fuzzer:expr, $gen:expr) => {{
            let mut f = $fuzzer;
            for _ in 0..n {
                let op = $gen(&mut rng);
                counts.record(f.step(&op)?);
            }
            Ok(counts)
        }};
    }
    match ch {
        Channel::Sockopt => drive!(SockoptFuzzer::new(cfg)?, gen_sockopt),
        Channel::Netlink => drive!(NetlinkFuzzer::new(cfg)?, gen_netlink),
        Channel::Proc => drive!(ProcFuzzer::new(cfg)?, gen_proc),
        Channel::Mmap => {
            let mut f = MmapFuzzer::new(cfg)?;
            f.run(seed, (0..n).map(|_| gen_mmap(&mut rng)))
        }
    }
}

/// `kchanctl fuzz`: prints one summary line per channel; exit 1 on a violation or a crash.
/// `base` and `unit` are the global options.
pub fn run(a: FuzzArgs, base: i32, unit: i32) -> Result<()> {
    let o = Options {
        target: a.target,
        iterations: a.iterations as u64,
        seed: a.seed,
        procs: a.procs,
        config: Config::new(base, unit),
    };
    let reports = run_workers(&o)?;
    let (lines, mut failures) = summarize(&o.target.channels(), o.seed, &reports);
    for l in lines {
        crate::output::line(&l)?;
    }
    if failures.is_empty() {
        return Ok(());
    }
    let first = failures.remove(0);
    for f in failures {
        crate::output::diag(&f.to_string());
    }
    Err(first)
}

#[cfg(test)]
mod tests {
    use super::mapping::PAGE;
    use super::mmap::MmapOp;
    use super::netlink::{FUZZ_BURST_MAX_COUNT, NL_MAX_DATAGRAM, NL_SOCKETS};
    use super::proc::ProcOp;
    use super::racer::{gen_race, RACE_SLOTS, SLOT_PAGES};
    use super::replies::expect;
    use super::sockopt::SockOp;
    use super::*;

    pub(super) fn ops<T>(seed: u64, ch: Channel, n: usize, gen: fn(&mut Rng) -> T) -> Vec<T> {
        let mut r = Rng::for_channel(seed, ch);
        (0..n).map(|_| gen(&mut r)).collect()
    }

    #[test]
    fn same_seed_same_operations() {
        assert_eq!(
            ops(7, Channel::Sockopt, 500, gen_sockopt),
            ops(7, Channel::Sockopt, 500, gen_sockopt)
        );
        assert_eq!(
            ops(7, Channel::Netlink, 500, gen_netlink),
            ops(7, Channel::Netlink, 500, gen_netlink)
        );
        assert_eq!(
            ops(7, Channel::Proc, 500, gen_proc),
            ops(7, Channel::Proc, 500, gen_proc)
        );
        assert_eq!(
            ops(7, Channel::Mmap, 500, gen_mmap),
            ops(7, Channel::Mmap, 500, gen_mmap)
        );
        let race = |s| {
            let mut r = Rng::new(s);
            (0..200).map(|_| gen_race(&mut r)).collect::<Vec<_>>()
        };
        assert_eq!(race(3), race(3));
        // Other seeds, other operations.
        assert_ne!(
            ops(7, Channel::Netlink, 50, gen_netlink),
            ops(8, Channel::Netlink, 50, gen_netlink)
        );
        assert_ne!(
            ops(7, Channel::Sockopt, 50, gen_sockopt),
            ops(8, Channel::Sockopt, 50, gen_sockopt)
        );
        assert_ne!(race(3), race(4));
    }

    #[test]
    fn generated_operations_stay_in_bounds() {
        for seed in 0..20 {
            for op in ops(seed, Channel::Sockopt, 2000, gen_sockopt) {
                match op {
                    SockOp::Set { which, data, .. } => {
                        assert!((-2..=4).contains(&which));
                        assert!(data.len() <= 4096);
                        assert!(!data.contains(&b':') && !data.contains(&b'#'));
                    }
                    SockOp::Get { which, .. } => assert!((-2..=4).contains(&which)),
                    SockOp::Reopen { .. } => {}
                }
            }
            for op in ops(seed, Channel::Netlink, 2000, gen_netlink) {
                assert!(op.sock().is_none_or(|s| s < NL_SOCKETS));
                if let Some((bytes, _)) = op.datagram() {
                    assert!(bytes.len() <= NL_MAX_DATAGRAM, "{}", bytes.len());
                    // No valid burst request asks for more than a few messages.
                    for (_, count, _) in expect(&bytes).bursts {
                        assert!(count <= FUZZ_BURST_MAX_COUNT, "{count}");
                    }
                }
            }
            for op in ops(seed, Channel::Proc, 2000, gen_proc) {
                if let ProcOp::Write { data, .. } | ProcOp::WriteFd { data, .. } = op {
                    assert!(data.len() <= 300);
                }
            }
            for op in ops(seed, Channel::Mmap, 2000, gen_mmap) {
                if let MmapOp::RaceCopy { at, .. } = op {
                    assert!(at < RACE_SLOTS * SLOT_PAGES * PAGE as usize);
                }
            }
        }
    }

    pub(super) fn temp_files(tag: &str) -> (std::path::PathBuf, Config) {
        let dir = std::env::temp_dir().join(format!("kchanctl-fuzz-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = |name: &str, content: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, content).unwrap();
            p.to_string_lossy().into_owned()
        };
        let mut cfg = Config::new(20_000, libc::NETLINK_USERSOCK);
        cfg.buffer = f("buffer", b"hello");
        cfg.stats = f("stats", b"a: 1\nb_2: 3\n");
        cfg.mmap = f("mmap", &vec![0u8; 16384]);
        cfg.mmap_size = f("size", b"16384\n");
        (dir, cfg)
    }

    #[test]
    fn executors_survive_on_the_host() {
        let (dir, cfg) = temp_files("exec");
        for ch in Channel::ALL {
            let strict = Config {
                strict: ch == Channel::Sockopt,
                ..cfg.clone()
            };
            let c =
                run_channel(ch, &strict, 11, 1500).unwrap_or_else(|e| panic!("{}: {e}", ch.name()));
            assert_eq!(c.iterations, 1500);
            assert_eq!(c.ok + c.errors, 1500);
            if ch == Channel::Netlink {
                assert!(c.errors > 0);
            }
            if ch == Channel::Proc || ch == Channel::Mmap {
                assert!(c.ok > 0, "{}: {c:?}", ch.name());
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
