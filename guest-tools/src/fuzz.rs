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

use crate::abi;
use crate::args::{parse_iterations, parse_procs, parse_u64};
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::mmap::page_size;
use crate::netlink::{
    self, nlmsg_align, Header, NlSocket, Recv, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_ECHO,
    NLM_F_MULTI, NLM_F_REQUEST,
};
use crate::procfs::open_path;
use crate::sockopt;
use nix::fcntl::OFlag;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

// ---- PRNG -------------------------------------------------------------------------------------

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 finalizer: a bijection on u64 that mixes every input bit into every output bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and every seed gives a full-period stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The stream of `channel` for a worker seed: distinct channels start at unrelated points.
    pub fn for_channel(seed: u64, channel: Channel) -> Self {
        Rng(mix64(seed ^ mix64(channel.salt())))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in 0..n (0 when n is 0); multiply-shift, bias below 2^-32 for our n.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in lo..=hi (lo <= hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A random byte, never `:` or `#` (see the module documentation).
    pub fn byte(&mut self) -> u8 {
        match self.next_u64() as u8 {
            b':' | b'#' => b';',
            b => b,
        }
    }

    /// `n` random bytes, never `:` or `#`.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

// ---- channels, counts, options ------------------------------------------------------------------

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

// ---- user memory the kernel may touch ---------------------------------------------------------

/// Read-write bytes of the arena; the guard page follows.
pub const ARENA_SIZE: usize = 128 * 1024;
/// Where a getsockopt optlen is kept (well away from the optval buffers at either end).
const LEN_AT: usize = 96 * 1024;
/// A kernel address (the x86-64 direct map): access_ok() refuses it.
const KERNEL_ADDR: usize = 0xffff_8880_0000_0000;

/// A user pointer as generated: resolved against the arena at execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ptr {
    /// The start of the arena: ARENA_SIZE accessible bytes.
    Start,
    /// This many bytes before the guard page: a longer access faults part-way.
    Tail(usize),
    Null,
    One,
    /// Inside the PROT_NONE guard page.
    Guard,
    Kernel,
}

/// An optlen pointer for getsockopt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LenPtr {
    Valid,
    /// An int starting this many (1..=3) bytes before the guard page.
    Straddle(usize),
    Null,
    Guard,
    Kernel,
}

/// Read-write pages followed by a PROT_NONE guard page. Only ever accessed through raw copies
/// at checked offsets (no Rust reference into it lives across a system call).
pub struct Arena {
    base: *mut u8,
    total: usize,
}

impl Arena {
    pub fn new() -> Result<Arena> {
        let ps = page_size();
        let total = ARENA_SIZE + ps;
        // SAFETY: a fresh anonymous mapping chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last("mmap arena"));
        }
        let base = p.cast::<u8>();
        // SAFETY: the last page of the mapping just made.
        if unsafe { libc::mprotect(base.add(ARENA_SIZE).cast(), ps, libc::PROT_NONE) } != 0 {
            let e = Error::last("mprotect arena");
            // SAFETY: unmapping what was mapped above.
            unsafe { libc::munmap(p, total) };
            return Err(e);
        }
        Ok(Arena { base, total })
    }

    /// The address `p` stands for and how many bytes from it are accessible.
    pub fn resolve(&self, p: Ptr) -> (usize, usize) {
        let base = self.base as usize;
        match p {
            Ptr::Start => (base, ARENA_SIZE),
            Ptr::Tail(room) => {
                let room = room.min(ARENA_SIZE);
                (base + ARENA_SIZE - room, room)
            }
            Ptr::Null => (0, 0),
            Ptr::One => (1, 0),
            Ptr::Guard => (base + ARENA_SIZE, 0),
            Ptr::Kernel => (KERNEL_ADDR, 0),
        }
    }

    fn resolve_len(&self, p: LenPtr) -> (usize, usize) {
        let base = self.base as usize;
        match p {
            LenPtr::Valid => (base + LEN_AT, 4),
            LenPtr::Straddle(k) => {
                let k = k.clamp(1, 3);
                (base + ARENA_SIZE - k, k)
            }
            LenPtr::Null => (0, 0),
            LenPtr::Guard => (base + ARENA_SIZE, 0),
            LenPtr::Kernel => (KERNEL_ADDR, 0),
        }
    }

    /// Copy what fits of `data` to the accessible bytes at `addr` (an address from `resolve`).
    fn put_addr(&mut self, addr: usize, room: usize, data: &[u8]) {
        let n = data.len().min(room);
        if n > 0 {
            // SAFETY: [addr, addr + n) lies inside the read-write part (resolve's `room`).
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, n) };
        }
    }

    /// Copy `data` to where `p` points, as much of it as is accessible.
    pub fn put(&mut self, p: Ptr, data: &[u8]) {
        let (addr, room) = self.resolve(p);
        self.put_addr(addr, room, data);
    }

    /// Up to `n` bytes from where `p` points (fewer if less is accessible).
    pub fn get(&self, p: Ptr, n: usize) -> Vec<u8> {
        let (addr, room) = self.resolve(p);
        let n = n.min(room);
        let mut v = vec![0u8; n];
        if n > 0 {
            // SAFETY: [addr, addr + n) lies inside the read-write part.
            unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, v.as_mut_ptr(), n) };
        }
        v
    }

    fn get_len(&self) -> i32 {
        // SAFETY: LEN_AT + 4 <= ARENA_SIZE.
        let b = unsafe { std::ptr::read_unaligned(self.base.add(LEN_AT).cast::<[u8; 4]>()) };
        i32::from_ne_bytes(b)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.total) };
    }
}

/// A pointer for an access of `len` bytes: mostly valid, sometimes cut short or invalid.
fn gen_ptr(rng: &mut Rng, len: usize) -> Ptr {
    match rng.below(100) {
        0..=74 => Ptr::Start,
        75..=82 => Ptr::Tail(len.min(ARENA_SIZE)),
        83..=87 => Ptr::Tail(rng.below(len.min(ARENA_SIZE) as u64) as usize),
        88..=90 => Ptr::Null,
        91..=93 => Ptr::One,
        94..=96 => Ptr::Guard,
        _ => Ptr::Kernel,
    }
}

/// A length in 0..=max, biased to the small sizes and the edges kchan cares about (the
/// sockopt message's 23 and 64, the proc buffer's 128, a page).
fn gen_len(rng: &mut Rng, max: usize) -> usize {
    const EDGES: [usize; 16] = [
        0, 1, 15, 16, 17, 22, 23, 24, 63, 64, 65, 127, 128, 129, 4095, 4096,
    ];
    let v = match rng.below(100) {
        0..=4 => 0,
        5..=14 => rng.range(1, 8) as usize,
        15..=39 => rng.pick(&EDGES),
        40..=74 => rng.range(1, 130) as usize,
        _ => rng.range(0, max as u64) as usize,
    };
    v.min(max)
}

fn gen_negative(rng: &mut Rng) -> i32 {
    match rng.below(4) {
        0 => -1,
        1 => i32::MIN,
        2 => -(rng.range(2, 4096) as i32),
        _ => -(rng.range(1, i32::MAX as u64) as i32),
    }
}

// ---- sockopt ----------------------------------------------------------------------------------

/// Optnames are `base + which`, which in -2..=4 (kchan owns 0 and 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockOp {
    Set {
        raw: bool,
        which: i32,
        data: Vec<u8>,
        optlen: i32,
        ptr: Ptr,
    },
    Get {
        raw: bool,
        which: i32,
        optlen: i32,
        ptr: Ptr,
        lenptr: LenPtr,
    },
    /// Close and reopen the socket.
    Reopen { raw: bool },
}

pub fn gen_sockopt(rng: &mut Rng) -> SockOp {
    let raw = rng.percent(30);
    if rng.one_in(100) {
        return SockOp::Reopen { raw };
    }
    let which = if rng.percent(60) {
        rng.below(2) as i32
    } else {
        rng.below(7) as i32 - 2
    };
    if rng.percent(50) {
        let len = gen_len(rng, 4096);
        let data = rng.bytes(len);
        let optlen = if rng.one_in(25) {
            gen_negative(rng)
        } else {
            len as i32
        };
        let ptr = gen_ptr(rng, len);
        SockOp::Set {
            raw,
            which,
            data,
            optlen,
            ptr,
        }
    } else {
        let optlen = match rng.below(20) {
            0 | 1 => gen_negative(rng),
            2 => rng.pick(&[i32::MAX, 0x7fff_f000, 1 << 20, 65536]),
            3 | 4 => rng.range(0, 40) as i32 * 2 + 1,
            _ => gen_len(rng, 4096) as i32,
        };
        let ptr = gen_ptr(rng, optlen.max(0) as usize);
        let lenptr = match rng.below(100) {
            0..=89 => LenPtr::Valid,
            90..=92 => LenPtr::Straddle(rng.range(1, 3) as usize),
            93..=95 => LenPtr::Null,
            96..=97 => LenPtr::Guard,
            _ => LenPtr::Kernel,
        };
        SockOp::Get {
            raw,
            which,
            optlen,
            ptr,
            lenptr,
        }
    }
}

struct SockoptFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    udp: Option<OwnedFd>,
    raw: Option<OwnedFd>,
}

impl<'a> SockoptFuzzer<'a> {
    fn new(cfg: &'a Config) -> Result<Self> {
        Ok(SockoptFuzzer {
            cfg,
            arena: Arena::new()?,
            udp: None,
            raw: None,
        })
    }

    /// The socket of that kind, opened if needed (None: socket() failed).
    fn sock(&mut self, raw: bool) -> Option<i32> {
        let slot = if raw { &mut self.raw } else { &mut self.udp };
        if slot.is_none() {
            let kind = if raw {
                sockopt::SockKind::Raw
            } else {
                sockopt::SockKind::Udp
            };
            *slot = sockopt::open(kind).ok();
        }
        slot.as_ref().map(|fd| fd.as_raw_fd())
    }

    fn step(&mut self, op: &SockOp) -> Result<bool> {
        const CH: Channel = Channel::Sockopt;
        match *op {
            SockOp::Reopen { raw } => {
                *(if raw { &mut self.raw } else { &mut self.udp }) = None;
                Ok(self.sock(raw).is_some())
            }
            SockOp::Set {
                raw,
                which,
                ref data,
                optlen,
                ptr,
            } => {
                let Some(fd) = self.sock(raw) else {
                    return Ok(false);
                };
                self.arena.put(ptr, data);
                let (addr, _) = self.arena.resolve(ptr);
                let optname = self.cfg.base.wrapping_add(which);
                // SAFETY: the kernel only reads from addr (arena or invalid on purpose).
                let r = unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_IP,
                        optname,
                        addr as *const libc::c_void,
                        optlen as libc::socklen_t,
                    )
                };
                if r != 0 {
                    return self.refused();
                }
                if self.cfg.strict
                    && which == abi::SOCKOPT_MSG
                    && optlen as usize > abi::SOCKOPT_MAX_MSG
                {
                    return Err(violation(
                        CH,
                        format!(
                            "setsockopt({optname}) accepted {optlen} bytes (at most {} allowed)",
                            abi::SOCKOPT_MAX_MSG
                        ),
                    ));
                }
                Ok(true)
            }
            SockOp::Get {
                raw,
                which,
                optlen,
                ptr,
                lenptr,
            } => {
                let Some(fd) = self.sock(raw) else {
                    return Ok(false);
                };
                let (addr, room) = self.arena.resolve(ptr);
                let (laddr, lroom) = self.arena.resolve_len(lenptr);
                self.arena
                    .put_addr(laddr, lroom, &optlen.to_ne_bytes()[..lroom.min(4)]);
                let optname = self.cfg.base.wrapping_add(which);
                // SAFETY: the kernel writes at most optlen bytes at addr and 4 at laddr: both
                // inside the arena (faulting on its guard page) or invalid on purpose.
                let r = unsafe {
                    libc::getsockopt(
                        fd,
                        libc::IPPROTO_IP,
                        optname,
                        addr as *mut libc::c_void,
                        laddr as *mut libc::socklen_t,
                    )
                };
                if r != 0 {
                    return self.refused();
                }
                if self.cfg.strict && lenptr == LenPtr::Valid {
                    self.check_get(optname, which, optlen, ptr, room)?;
                }
                Ok(true)
            }
        }
    }

    /// A failed call: counted, unless the descriptor itself was bad (a bug here).
    fn refused(&self) -> Result<bool> {
        let e = errno();
        if internal_errno(e) {
            return Err(Error::raw("sockopt", e));
        }
        Ok(false)
    }

    /// What a successful getsockopt returned must fit the buffer and, for kchan's optnames,
    /// the ABI.
    fn check_get(
        &self,
        optname: i32,
        which: i32,
        optlen: i32,
        ptr: Ptr,
        room: usize,
    ) -> Result<()> {
        let ret = self.arena.get_len();
        let bad = |what: String| Err(violation(Channel::Sockopt, what));
        if optlen >= 0 && !(0..=optlen).contains(&ret) {
            return bad(format!(
                "getsockopt({optname}) returned optlen {ret} for a {optlen}-byte buffer"
            ));
        }
        let ours = which == abi::SOCKOPT_MSG || which == abi::SOCKOPT_LAST;
        if ours && ret as usize > abi::SOCKOPT_MAX_MSG {
            return bad(format!(
                "getsockopt({optname}) returned optlen {ret} (messages have at most {} bytes)",
                abi::SOCKOPT_MAX_MSG
            ));
        }
        if which == abi::SOCKOPT_MSG && optlen >= 0 {
            let want = (optlen as usize).min(abi::SOCKOPT_KERNEL_MSG.len());
            if room >= want {
                let got = self.arena.get(ptr, ret.max(0) as usize);
                if ret as usize != want || got != abi::SOCKOPT_KERNEL_MSG[..want] {
                    return bad(format!(
                        "getsockopt({optname}) with a {optlen}-byte buffer returned {ret} bytes \"{}\", expected {want} bytes \"{}\"",
                        escape(&got),
                        escape(&abi::SOCKOPT_KERNEL_MSG[..want])
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---- netlink ----------------------------------------------------------------------------------

/// Sockets per worker, used in turn by the operations.
pub const NL_SOCKETS: usize = 8;
/// Largest datagram generated (a 64 KiB payload plus headers); its error ack still fits the
/// receive buffer.
pub const NL_MAX_DATAGRAM: usize = 72 * 1024;
/// Largest valid burst the fuzzer asks for, so a run stays short.
pub const FUZZ_BURST_MAX_COUNT: u32 = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NlOp {
    /// One datagram of fuzzed messages (wrong lengths, random types and flags, several per
    /// datagram, truncated, oversized) sent from `ptr` (the arena start, or cut short/invalid).
    Send {
        sock: usize,
        bytes: Vec<u8>,
        ptr: Ptr,
    },
    /// A well-formed KCHAN_ECHO, or the seed echo (IMP2_U_PID with a payload).
    Echo {
        sock: usize,
        seq: u32,
        payload: Vec<u8>,
        seed_echo: bool,
        ack: bool,
    },
    /// A KCHAN_BURST (small, or with out-of-bounds count/size).
    Burst {
        sock: usize,
        seq: u32,
        count: u32,
        size: u32,
        ack: bool,
    },
    /// IMP2_U_PID without payload: register for ICMP events.
    Register { sock: usize, seq: u32, ack: bool },
    /// IMP2_CLOSE.
    Unregister { sock: usize, seq: u32, ack: bool },
    /// Close the socket (cancels its bursts and registration) and open a new one.
    Reopen { sock: usize },
    /// SO_RCVBUF(FORCE): small buffers make the kernel drop replies.
    Rcvbuf { sock: usize, bytes: u32 },
    /// Receive whatever is queued on every socket.
    Drain,
}

impl NlOp {
    fn sock(&self) -> Option<usize> {
        match *self {
            NlOp::Send { sock, .. }
            | NlOp::Echo { sock, .. }
            | NlOp::Burst { sock, .. }
            | NlOp::Register { sock, .. }
            | NlOp::Unregister { sock, .. }
            | NlOp::Reopen { sock }
            | NlOp::Rcvbuf { sock, .. } => Some(sock),
            NlOp::Drain => None,
        }
    }

    /// The datagram this operation sends, and from where.
    pub fn datagram(&self) -> Option<(Vec<u8>, Ptr)> {
        let ack = |a: bool| if a { NLM_F_ACK } else { 0 };
        let msg = |ty, flags, seq, payload: &[u8]| {
            netlink::encode(ty, NLM_F_REQUEST | flags, seq, 0, payload).unwrap_or_default()
        };
        let bytes = match *self {
            NlOp::Send { ref bytes, ptr, .. } => return Some((bytes.clone(), ptr)),
            NlOp::Echo {
                seq,
                ref payload,
                seed_echo,
                ack: a,
                ..
            } => {
                let ty = if seed_echo {
                    abi::IMP2_U_PID
                } else {
                    abi::KCHAN_ECHO
                };
                msg(ty, ack(a), seq, payload)
            }
            NlOp::Burst {
                seq,
                count,
                size,
                ack: a,
                ..
            } => msg(
                abi::KCHAN_BURST,
                ack(a),
                seq,
                &netlink::burst_request(abi::BurstRequest { count, size }),
            ),
            NlOp::Register { seq, ack: a, .. } => msg(abi::IMP2_U_PID, ack(a), seq, &[]),
            NlOp::Unregister { seq, ack: a, .. } => msg(abi::IMP2_CLOSE, ack(a), seq, &[]),
            NlOp::Reopen { .. } | NlOp::Rcvbuf { .. } | NlOp::Drain => return None,
        };
        Some((bytes, Ptr::Start))
    }
}

/// (count, size) of a burst request: mostly small and valid, sometimes out of bounds.
fn gen_burst(rng: &mut Rng) -> (u32, u32) {
    match rng.below(100) {
        0..=79 => (
            rng.range(0, u64::from(FUZZ_BURST_MAX_COUNT)) as u32,
            rng.range(4, 2048) as u32,
        ),
        80..=84 => (rng.range(1, 2) as u32, rng.range(2049, 65536) as u32),
        85..=89 => (
            rng.range(u64::from(abi::BURST_MAX_COUNT) + 1, u64::from(u32::MAX)) as u32,
            64,
        ),
        90..=94 => (4, rng.below(4) as u32),
        _ => (
            4,
            rng.range(u64::from(abi::BURST_MAX_SIZE) + 1, u64::from(u32::MAX)) as u32,
        ),
    }
}

fn gen_payload_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=24 => 0,
        25..=59 => rng.range(1, 32) as usize,
        60..=84 => rng.range(33, 512) as usize,
        85..=96 => rng.range(513, abi::NETLINK_MAX_PAYLOAD as u64) as usize,
        _ => rng.range(
            abi::NETLINK_MAX_PAYLOAD as u64 + 1,
            abi::NETLINK_MAX_PAYLOAD as u64 + 64,
        ) as usize,
    }
}

fn gen_flags(rng: &mut Rng) -> u16 {
    if rng.one_in(10) {
        return rng.u32() as u16;
    }
    let mut f = 0;
    for (p, bit) in [
        (50, NLM_F_REQUEST),
        (40, NLM_F_ACK),
        (10, NLM_F_DUMP),
        (5, NLM_F_MULTI),
        (5, NLM_F_ECHO),
    ] {
        if rng.percent(p) {
            f |= bit;
        }
    }
    f
}

/// One message (header, payload, usually its padding) appended to `out`.
fn gen_message(rng: &mut Rng, out: &mut Vec<u8>) {
    let ty = match rng.below(100) {
        0..=49 => rng.below(0x21) as u16,
        50..=79 => rng.pick(&[
            abi::IMP2_U_PID,
            abi::IMP2_U_PID,
            abi::IMP2_CLOSE,
            abi::KCHAN_ECHO,
            abi::KCHAN_ECHO,
            abi::KCHAN_BURST,
        ]),
        _ => rng.u32() as u16,
    };
    let flags = gen_flags(rng);
    let seq = rng.u32();
    let pid = match rng.below(4) {
        0 => 0,
        1 => u32::MAX,
        _ => rng.u32(),
    };
    // A burst request is always bounded (see gen_burst): never a 10-million message burst.
    let payload = if ty == abi::KCHAN_BURST && rng.percent(80) {
        let (count, size) = gen_burst(rng);
        netlink::burst_request(abi::BurstRequest { count, size }).to_vec()
    } else {
        let n = gen_payload_len(rng);
        rng.bytes(n)
    };
    let correct = (NLMSG_HDRLEN + payload.len()) as u32;
    let len = match rng.below(100) {
        0..=69 => correct,
        70..=73 => 0,
        74..=77 => rng.range(1, 15) as u32,
        78..=81 => NLMSG_HDRLEN as u32,
        82..=86 => correct + rng.range(1, 64) as u32,
        87..=91 => correct.saturating_sub(rng.range(1, 8) as u32).max(16),
        92..=95 => u32::MAX,
        _ => rng.u32(),
    };
    out.extend_from_slice(
        &Header {
            len,
            ty,
            flags,
            seq,
            pid,
        }
        .to_bytes(),
    );
    out.extend_from_slice(&payload);
    if rng.percent(85) {
        out.resize(nlmsg_align(out.len()), 0);
    }
}

/// A fuzzed datagram, at most NL_MAX_DATAGRAM bytes.
pub fn gen_datagram(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        // Not even a header.
        0..=7 => {
            let n = rng.below(16) as usize;
            if rng.percent(50) {
                let mut v = Vec::new();
                gen_message(rng, &mut v);
                v.truncate(n);
                v
            } else {
                rng.bytes(n)
            }
        }
        // One oversized message (the module takes at most NETLINK_MAX_PAYLOAD).
        8..=11 => {
            let n = rng.range(
                abi::NETLINK_MAX_PAYLOAD as u64 + 1,
                abi::BURST_MAX_SIZE as u64,
            ) as usize;
            let ty = rng.pick(&[abi::IMP2_U_PID, abi::KCHAN_ECHO, abi::IMP2_CLOSE, 0x20]);
            let flags = gen_flags(rng);
            let seq = rng.u32();
            let payload = rng.bytes(n);
            let mut v = netlink::encode(ty, flags, seq, 0, &payload).unwrap_or_default();
            if rng.percent(30) {
                let wrong = rng.u32();
                v[..4].copy_from_slice(&wrong.to_ne_bytes());
            }
            v
        }
        // Several messages, sometimes cut anywhere.
        _ => {
            let k = match rng.below(10) {
                0..=5 => 1,
                6..=8 => rng.range(2, 4),
                _ => rng.range(5, 16),
            };
            let mut v = Vec::new();
            for _ in 0..k {
                gen_message(rng, &mut v);
            }
            if rng.one_in(10) {
                let cut = rng.below(v.len() as u64 + 1) as usize;
                v.truncate(cut);
            }
            v.truncate(NL_MAX_DATAGRAM);
            v
        }
    }
}

pub fn gen_netlink(rng: &mut Rng) -> NlOp {
    let sock = rng.below(NL_SOCKETS as u64) as usize;
    match rng.below(100) {
        0..=61 => {
            let bytes = gen_datagram(rng);
            let ptr = match rng.below(100) {
                0..=93 => Ptr::Start,
                94..=96 => Ptr::Tail(bytes.len()),
                97 => Ptr::Tail(rng.below(bytes.len() as u64) as usize),
                98 => Ptr::Null,
                _ => Ptr::Guard,
            };
            NlOp::Send { sock, bytes, ptr }
        }
        62..=71 => {
            let seed_echo = rng.percent(20);
            let n = match rng.below(100) {
                0..=89 => rng.range(u64::from(seed_echo), 512),
                90..=97 => abi::NETLINK_MAX_PAYLOAD as u64,
                _ => abi::NETLINK_MAX_PAYLOAD as u64 + 1,
            } as usize;
            NlOp::Echo {
                sock,
                seq: rng.u32(),
                payload: rng.bytes(n),
                seed_echo,
                ack: rng.percent(70),
            }
        }
        72..=76 => {
            let (count, size) = gen_burst(rng);
            NlOp::Burst {
                sock,
                seq: rng.u32(),
                count,
                size,
                ack: rng.percent(70),
            }
        }
        77..=78 => NlOp::Register {
            sock,
            seq: rng.u32(),
            ack: rng.percent(70),
        },
        79..=81 => NlOp::Unregister {
            sock,
            seq: rng.u32(),
            ack: rng.percent(70),
        },
        82..=85 => NlOp::Reopen { sock },
        86..=87 => NlOp::Rcvbuf {
            sock,
            bytes: rng.pick(&[0, 256, 1024, 4096, 16384, 65536, 1 << 20]),
        },
        _ => NlOp::Drain,
    }
}

/// What the kernel will answer to a datagram, by the ABI's framing rules (messages handled in
/// order; the walk stops at the first broken nlmsg_len, as the module does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// KCHAN_ECHO requests: (seq, payload) that come back as they are.
    pub echoes: Vec<(u32, Vec<u8>)>,
    /// Valid KCHAN_BURST requests: (seq, count, size).
    pub bursts: Vec<(u32, u32, u32)>,
}

pub fn expect(dgram: &[u8]) -> Expect {
    let mut e = Expect::default();
    let mut rest = dgram;
    while let Ok(h) = Header::from_bytes(rest) {
        let mlen = h.len as usize;
        if mlen < NLMSG_HDRLEN || mlen > rest.len() {
            break;
        }
        let payload = &rest[NLMSG_HDRLEN..mlen];
        match h.ty {
            abi::KCHAN_ECHO if payload.len() <= abi::NETLINK_MAX_PAYLOAD => {
                e.echoes.push((h.seq, payload.to_vec()))
            }
            abi::KCHAN_BURST if payload.len() == 8 => {
                let count = u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let size = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
                if count <= abi::BURST_MAX_COUNT
                    && (abi::BURST_MIN_SIZE..=abi::BURST_MAX_SIZE).contains(&size)
                {
                    e.bursts.push((h.seq, count, size));
                }
            }
            _ => {}
        }
        rest = &rest[nlmsg_align(mlen).min(rest.len())..];
    }
    e
}

/// What one socket is owed.
#[derive(Default)]
pub struct Pending {
    echoes: VecDeque<(u32, Vec<u8>)>,
    echo_bytes: usize,
    bursts: VecDeque<(u32, u32, u32)>,
    /// Some expectations were forgotten (bounded memory): unknown echo seqs are tolerated.
    lossy: bool,
}

const PENDING_ECHOES: usize = 1024;
const PENDING_ECHO_BYTES: usize = 1 << 20;
const PENDING_BURSTS: usize = 256;

impl Pending {
    pub fn add(&mut self, e: Expect) {
        for (seq, p) in e.echoes {
            self.echo_bytes += p.len();
            self.echoes.push_back((seq, p));
        }
        while self.echoes.len() > PENDING_ECHOES || self.echo_bytes > PENDING_ECHO_BYTES {
            if let Some((_, p)) = self.echoes.pop_front() {
                self.echo_bytes -= p.len();
            }
            self.lossy = true;
        }
        self.bursts.extend(e.bursts);
        while self.bursts.len() > PENDING_BURSTS {
            self.bursts.pop_front();
        }
    }

    /// Check one datagram received from the kernel against the ABI and these expectations.
    pub fn check(&mut self, dgram: &[u8]) -> std::result::Result<(), String> {
        let msgs = netlink::parse(dgram).map_err(|e| {
            format!(
                "malformed {}-byte datagram from the kernel: {e}",
                dgram.len()
            )
        })?;
        for m in msgs {
            let (ty, seq, p) = (m.header.ty, m.header.seq, m.payload);
            match ty {
                abi::NLMSG_ERROR => {
                    let (err, orig) =
                        netlink::parse_error(p).map_err(|e| format!("NLMSG_ERROR: {e}"))?;
                    if !(-4095..=0).contains(&err) {
                        return Err(format!("NLMSG_ERROR with error {err}"));
                    }
                    match orig {
                        Some(o) if o.seq == seq => {}
                        Some(o) => {
                            return Err(format!(
                                "ack seq {seq} quotes a request with seq {}",
                                o.seq
                            ))
                        }
                        None => {
                            return Err(format!(
                                "ack of {} bytes without the request header",
                                p.len()
                            ))
                        }
                    }
                }
                abi::NLMSG_DONE => {
                    if p != abi::NETLINK_ECHO_REPLY {
                        return Err(format!("seed echo reply \"{}\"", escape(p)));
                    }
                }
                abi::KCHAN_ECHO => {
                    if let Some(i) = self
                        .echoes
                        .iter()
                        .position(|(s, want)| *s == seq && want == p)
                    {
                        if let Some((_, w)) = self.echoes.remove(i) {
                            self.echo_bytes -= w.len();
                        }
                    } else if self.echoes.iter().any(|(s, _)| *s == seq) {
                        return Err(format!(
                            "echo reply seq {seq}: {}-byte payload differs from the request's",
                            p.len()
                        ));
                    } else if !self.lossy {
                        return Err(format!(
                            "echo reply seq {seq} ({} bytes) to no request",
                            p.len()
                        ));
                    }
                }
                abi::IMP2_K_MSG => {
                    if p.len() < std::mem::size_of::<abi::PacketInfo>() {
                        return Err(format!("ICMP event of {} bytes", p.len()));
                    }
                }
                abi::KCHAN_BURST_DATA => {
                    let n = netlink::burst_seq(p)
                        .ok_or_else(|| format!("burst data of {} bytes", p.len()))?;
                    if let Some(i) =
                        (abi::BURST_SEQ_LEN..p.len()).find(|&i| p[i] != abi::burst_filler(i))
                    {
                        return Err(format!(
                            "burst data seq {seq}: byte {i} is {:#04x}, expected {:#04x}",
                            p[i],
                            abi::burst_filler(i)
                        ));
                    }
                    // Bursts of a closed socket may reach a new socket that reuses its port:
                    // only bursts we know of are held to their size and count.
                    let ours: Vec<_> = self.bursts.iter().filter(|b| b.0 == seq).collect();
                    if !ours.is_empty()
                        && !ours
                            .iter()
                            .any(|&&(_, count, size)| size as usize == p.len() && n < count)
                    {
                        return Err(format!(
                            "burst data seq {seq}: message {n} of {} bytes fits no request (count, size) {:?}",
                            p.len(),
                            ours.iter().map(|b| (b.1, b.2)).collect::<Vec<_>>()
                        ));
                    }
                }
                abi::KCHAN_BURST_END => {
                    let end = netlink::burst_end(p).map_err(|e| format!("burst end: {e}"))?;
                    let total = u64::from(end.sent) + u64::from(end.dropped);
                    let ours: Vec<_> = self.bursts.iter().filter(|b| b.0 == seq).collect();
                    if !ours.is_empty() && !ours.iter().any(|b| total <= u64::from(b.1)) {
                        return Err(format!(
                            "burst end seq {seq}: sent {} + dropped {} exceeds the request",
                            end.sent, end.dropped
                        ));
                    }
                }
                t => return Err(format!("unexpected message type {t} ({} bytes)", p.len())),
            }
        }
        Ok(())
    }
}

struct NlSlot {
    sock: Option<NlSocket>,
    pending: Pending,
}

struct NetlinkFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    slots: Vec<NlSlot>,
    buf: Vec<u8>,
}

impl<'a> NetlinkFuzzer<'a> {
    fn new(cfg: &'a Config) -> Result<Self> {
        Ok(NetlinkFuzzer {
            cfg,
            arena: Arena::new()?,
            slots: (0..NL_SOCKETS)
                .map(|_| NlSlot {
                    sock: None,
                    pending: Pending::default(),
                })
                .collect(),
            buf: vec![0u8; netlink::RECV_BUF],
        })
    }

    /// Slot `i`'s socket, opened if needed (false: the unit has no kernel socket right now).
    fn ensure(&mut self, i: usize) -> bool {
        let slot = &mut self.slots[i];
        if slot.sock.is_none() {
            if let Ok(s) = NlSocket::open(self.cfg.unit) {
                slot.sock = Some(s);
                slot.pending = Pending::default();
            }
        }
        slot.sock.is_some()
    }

    fn step(&mut self, op: &NlOp) -> Result<bool> {
        let ok = match op {
            NlOp::Drain => {
                let mut ok = true;
                for i in 0..NL_SOCKETS {
                    ok &= self.drain(i)?;
                }
                return Ok(ok);
            }
            NlOp::Reopen { sock } => {
                self.slots[*sock].sock = None;
                self.ensure(*sock)
            }
            NlOp::Rcvbuf { sock, bytes } => {
                self.ensure(*sock)
                    && self.slots[*sock]
                        .sock
                        .as_ref()
                        .is_some_and(|s| s.set_rcvbuf(*bytes as usize).is_ok())
            }
            _ => {
                let (Some(i), Some((bytes, ptr))) = (op.sock(), op.datagram()) else {
                    return Ok(false);
                };
                self.ensure(i) && self.send(i, &bytes, ptr)?
            }
        };
        if let Some(i) = op.sock() {
            self.drain(i)?;
        }
        Ok(ok)
    }

    /// sendto(kernel) of `bytes` placed at `ptr`; expectations recorded when it went through.
    fn send(&mut self, i: usize, bytes: &[u8], ptr: Ptr) -> Result<bool> {
        let Some(fd) = self.slots[i].sock.as_ref().map(|s| s.as_raw_fd()) else {
            return Ok(false);
        };
        self.arena.put(ptr, bytes);
        let (addr, _) = self.arena.resolve(ptr);
        // SAFETY: sockaddr_nl is plain data; all-zero is nl_pid 0 (the kernel), no groups.
        let mut dst: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        dst.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the kernel only reads `bytes.len()` bytes from addr (arena or invalid on
        // purpose) and the address structure.
        let r = unsafe {
            libc::sendto(
                fd,
                addr as *const libc::c_void,
                bytes.len(),
                libc::MSG_DONTWAIT,
                (&dst as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = errno();
            if internal_errno(e) {
                return Err(Error::raw("sendto", e));
            }
            return Ok(false);
        }
        // The module handled the whole datagram during sendto (it was copied in full, or
        // sendto would have failed with EFAULT).
        self.slots[i].pending.add(expect(bytes));
        Ok(true)
    }

    /// Receive (without blocking) what slot `i` has queued, checking every datagram.
    fn drain(&mut self, i: usize) -> Result<bool> {
        let slot = &mut self.slots[i];
        let Some(sock) = slot.sock.as_ref() else {
            return Ok(true);
        };
        for _ in 0..256 {
            match sock.recv(&mut self.buf) {
                Ok(Recv::Data(n)) => {
                    if self.cfg.strict {
                        slot.pending
                            .check(&self.buf[..n])
                            .map_err(|w| violation(Channel::Netlink, w))?;
                    }
                }
                Ok(Recv::WouldBlock) => return Ok(true),
                // Replies were dropped for a full receive queue (expected with small buffers):
                // their expectations stay pending, nothing unexpected can come of it.
                Ok(Recv::Overrun) => {}
                Err(Error::Sys { errno, .. }) if !internal_errno(errno) => return Ok(false),
                Err(e) => {
                    return Err(match e {
                        Error::Msg { msg, .. } => violation(Channel::Netlink, msg),
                        e => e,
                    })
                }
            }
        }
        Ok(true)
    }
}

// ---- proc -------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcOp {
    /// pwrite(2) of /proc/kchan/buffer.
    Write {
        offset: u64,
        data: Vec<u8>,
        ptr: Ptr,
    },
    /// pread(2) of /proc/kchan/buffer.
    Read { offset: u64, len: usize, ptr: Ptr },
    /// write(2) at the descriptor's position.
    WriteFd { data: Vec<u8>, ptr: Ptr },
    /// read(2) at the descriptor's position.
    ReadFd { len: usize, ptr: Ptr },
    /// lseek(2) of the descriptor.
    Seek { offset: i64, whence: i32 },
    /// Read /proc/kchan/stats in `chunk`-byte preads and check its format.
    Stats { chunk: usize },
    /// Close and reopen the buffer's descriptor.
    Reopen,
}

/// A file offset: mostly 0..=300, sometimes huge or negative as an off_t.
fn gen_offset(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=39 => 0,
        40..=79 => rng.range(0, 300),
        80..=89 => rng.pick(&[1, 127, 128, 129, 255, 256]),
        90..=94 => rng.pick(&[1 << 31, 1 << 40, i64::MAX as u64]),
        _ => rng.next_u64() | 1 << 63,
    }
}

pub fn gen_proc(rng: &mut Rng) -> ProcOp {
    let data = |rng: &mut Rng| {
        let n = gen_len(rng, 300);
        rng.bytes(n)
    };
    match rng.below(100) {
        0..=29 => {
            let offset = gen_offset(rng);
            let data = data(rng);
            let ptr = gen_ptr(rng, data.len());
            ProcOp::Write { offset, data, ptr }
        }
        30..=59 => {
            let offset = gen_offset(rng);
            let len = gen_len(rng, 300);
            let ptr = gen_ptr(rng, len);
            ProcOp::Read { offset, len, ptr }
        }
        60..=69 => {
            let data = data(rng);
            let ptr = gen_ptr(rng, data.len());
            ProcOp::WriteFd { data, ptr }
        }
        70..=79 => {
            let len = gen_len(rng, 300);
            let ptr = gen_ptr(rng, len);
            ProcOp::ReadFd { len, ptr }
        }
        80..=87 => ProcOp::Seek {
            offset: gen_offset(rng) as i64,
            whence: rng.pick(&[libc::SEEK_SET, libc::SEEK_CUR, libc::SEEK_END, 3, 42]),
        },
        88..=95 => ProcOp::Stats {
            chunk: rng.pick(&[1, 7, 64, 4096]),
        },
        _ => ProcOp::Reopen,
    }
}

/// /proc/kchan/stats: `name: value` lines, names lowercase, values decimal.
pub fn check_stats(text: &[u8]) -> std::result::Result<(), String> {
    let s = std::str::from_utf8(text).map_err(|_| "stats are not text".to_string())?;
    if !s.ends_with('\n') {
        return Err(format!(
            "stats do not end with a newline: \"{}\"",
            escape(text)
        ));
    }
    for line in s.lines() {
        let ok = line.split_once(": ").is_some_and(|(k, v)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit())
        });
        if !ok {
            return Err(format!("stats line \"{}\"", escape(line.as_bytes())));
        }
    }
    Ok(())
}

struct ProcFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    fd: Option<OwnedFd>,
}

impl<'a> ProcFuzzer<'a> {
    fn new(cfg: &'a Config) -> Result<Self> {
        Ok(ProcFuzzer {
            cfg,
            arena: Arena::new()?,
            fd: None,
        })
    }

    fn fd(&mut self) -> Option<i32> {
        if self.fd.is_none() {
            self.fd = open_path(&self.cfg.buffer, OFlag::O_RDWR).ok();
        }
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    fn step(&mut self, op: &ProcOp) -> Result<bool> {
        if let ProcOp::Stats { chunk } = *op {
            return self.stats(chunk);
        }
        if *op == ProcOp::Reopen {
            self.fd = None;
            return Ok(self.fd().is_some());
        }
        let Some(fd) = self.fd() else {
            return Ok(false);
        };
        let r: isize = match *op {
            ProcOp::Write {
                offset,
                ref data,
                ptr,
            } => self.write(fd, Some(offset), data, ptr)?,
            ProcOp::WriteFd { ref data, ptr } => self.write(fd, None, data, ptr)?,
            ProcOp::Read { offset, len, ptr } => self.read(fd, Some(offset), len, ptr)?,
            ProcOp::ReadFd { len, ptr } => self.read(fd, None, len, ptr)?,
            // SAFETY: plain lseek(2).
            ProcOp::Seek { offset, whence } => unsafe { libc::lseek(fd, offset, whence) as isize },
            ProcOp::Stats { .. } | ProcOp::Reopen => unreachable!("handled above"),
        };
        if r < 0 {
            let e = errno();
            if internal_errno(e) {
                return Err(Error::raw("proc", e));
            }
            // A stale descriptor (the module was reloaded) stays stale: start afresh.
            if e != libc::EINVAL && e != libc::EFAULT {
                self.fd = None;
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// pwrite(2) at `offset`, or write(2) at the descriptor's position.
    fn write(&mut self, fd: i32, offset: Option<u64>, data: &[u8], ptr: Ptr) -> Result<isize> {
        let cap = abi::PROC_BUFFER_CAPACITY;
        self.arena.put(ptr, data);
        let (addr, _) = self.arena.resolve(ptr);
        let addr = addr as *const libc::c_void;
        // SAFETY: the kernel only reads data.len() bytes at addr.
        let r = unsafe {
            match offset {
                Some(o) => libc::pwrite(fd, addr, data.len(), o as libc::off_t),
                None => libc::write(fd, addr, data.len()),
            }
        };
        if r >= 0 && self.cfg.strict && (r as usize > data.len() || data.len() > cap) {
            return Err(violation(
                Channel::Proc,
                format!(
                    "a {}-byte write was accepted as {r} bytes (capacity {cap})",
                    data.len()
                ),
            ));
        }
        Ok(r)
    }

    /// pread(2) at `offset`, or read(2) at the descriptor's position.
    fn read(&mut self, fd: i32, offset: Option<u64>, len: usize, ptr: Ptr) -> Result<isize> {
        let cap = abi::PROC_BUFFER_CAPACITY as u64;
        let (addr, _) = self.arena.resolve(ptr);
        let addr = addr as *mut libc::c_void;
        // SAFETY: the kernel writes at most len bytes at addr: inside the arena (faulting on
        // the guard page) or invalid on purpose.
        let r = unsafe {
            match offset {
                Some(o) => libc::pread(fd, addr, len, o as libc::off_t),
                None => libc::read(fd, addr, len),
            }
        };
        let pos = offset.unwrap_or(0);
        if r > 0 && self.cfg.strict && (r as usize > len || pos.saturating_add(r as u64) > cap) {
            return Err(violation(
                Channel::Proc,
                format!("a {len}-byte read at offset {pos} returned {r} bytes (capacity {cap})"),
            ));
        }
        Ok(r)
    }

    fn stats(&mut self, chunk: usize) -> Result<bool> {
        let Ok(fd) = open_path(&self.cfg.stats, OFlag::O_RDONLY) else {
            return Ok(false);
        };
        let Ok(text) = crate::procfs::read_all(&fd, 0, chunk, Some(64 * 1024)) else {
            return Ok(false);
        };
        if self.cfg.strict {
            check_stats(&text).map_err(|w| violation(Channel::Proc, w))?;
        }
        Ok(true)
    }
}

// ---- mmap -------------------------------------------------------------------------------------

/// Page size the generated offsets and lengths are expressed in (x86-64).
pub const PAGE: u64 = 4096;
/// The racer's region: RACE_SLOTS slots of SLOT_PAGES pages, at a fixed low address.
const RACE_HINT: usize = 0x2000_0000_0000;
pub const RACE_SLOTS: usize = 8;
pub const SLOT_PAGES: usize = 2;
/// Most mappings the main thread keeps at once.
const POOL: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MmapOp {
    /// mmap(NULL, len, prot, shared ? MAP_SHARED : MAP_PRIVATE, fd (O_RDWR or O_RDONLY),
    /// offset); on success touch a few bytes (seeded by `touch`) and keep or unmap it.
    Map {
        offset: u64,
        len: usize,
        prot: i32,
        shared: bool,
        rdwr: bool,
        keep: bool,
        touch: u64,
    },
    /// munmap a kept mapping (pick modulo how many there are).
    Unmap { pick: u32 },
    /// Touch a kept mapping again.
    Touch { pick: u32, seed: u64 },
    /// pread(2) of /proc/kchan/mmap into the arena.
    Read { offset: u64, len: usize, ptr: Ptr },
    /// The kernel copies to (`into_user`: pread of /proc/kchan/mmap) or from (write of
    /// /proc/kchan/buffer) the racer's slots while they are remapped and unmapped.
    RaceCopy {
        at: usize,
        len: usize,
        into_user: bool,
        offset: u64,
    },
    /// Read /proc/memshare/phymem_size.
    Size,
}

fn gen_prot(rng: &mut Rng) -> i32 {
    match rng.below(10) {
        0 => libc::PROT_NONE,
        1..=3 => libc::PROT_READ,
        4 => libc::PROT_WRITE,
        _ => libc::PROT_READ | libc::PROT_WRITE,
    }
}

fn gen_map_offset(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=49 => 0,
        50..=74 => PAGE * rng.below(5),
        75..=84 => rng.range(1, 3 * PAGE),
        85..=89 => rng.pick(&[
            1 << 40,
            (i64::MAX as u64) & !(PAGE - 1),
            1 << 63,
            !(PAGE - 1),
        ]),
        _ => PAGE * rng.below(u64::from(abi::MMAP_PAGES_MAX) + 2),
    }
}

fn gen_map_len(rng: &mut Rng) -> usize {
    (match rng.below(100) {
        0..=9 => 0,
        10..=59 => PAGE * rng.range(1, 3),
        60..=74 => rng.range(1, 3 * PAGE),
        75..=84 => rng.pick(&[1 << 30, 1 << 40, u64::MAX / 2, !(PAGE - 1)]),
        _ => PAGE * rng.range(1, 64),
    }) as usize
}

pub fn gen_mmap(rng: &mut Rng) -> MmapOp {
    match rng.below(100) {
        0..=49 => MmapOp::Map {
            offset: gen_map_offset(rng),
            len: gen_map_len(rng),
            prot: gen_prot(rng),
            shared: rng.percent(85),
            rdwr: rng.percent(80),
            keep: rng.percent(50),
            touch: rng.next_u64(),
        },
        50..=59 => MmapOp::Unmap { pick: rng.u32() },
        60..=69 => MmapOp::Touch {
            pick: rng.u32(),
            seed: rng.next_u64(),
        },
        70..=79 => {
            let len = gen_len(rng, 3 * PAGE as usize);
            MmapOp::Read {
                offset: gen_map_offset(rng),
                len,
                ptr: gen_ptr(rng, len),
            }
        }
        80..=96 => {
            let into_user = rng.percent(75);
            MmapOp::RaceCopy {
                at: rng.below((RACE_SLOTS * SLOT_PAGES) as u64 * PAGE) as usize,
                len: if into_user {
                    gen_len(rng, 3 * PAGE as usize)
                } else {
                    gen_len(rng, 200)
                },
                into_user,
                offset: PAGE * rng.below(2) + rng.below(PAGE),
            }
        }
        _ => MmapOp::Size,
    }
}

/// What the racer thread does, in a loop, while the main thread runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaceOp {
    /// MAP_FIXED a kchan mapping over the slot (replacing what is there).
    Remap {
        slot: usize,
        pages: usize,
        offset: u64,
        prot: i32,
    },
    /// MAP_FIXED an anonymous PROT_NONE mapping over the slot (unmaps the kchan pages).
    Blank { slot: usize },
    /// munmap the slot, then reserve it again at once.
    Unmap { slot: usize },
    /// mprotect the slot.
    Protect { slot: usize, prot: i32 },
    /// Map at an address the kernel picks, touch, unmap.
    Churn {
        offset: u64,
        len: usize,
        prot: i32,
        touch: u64,
    },
}

pub fn gen_race(rng: &mut Rng) -> RaceOp {
    let slot = rng.below(RACE_SLOTS as u64) as usize;
    match rng.below(100) {
        0..=39 => RaceOp::Remap {
            slot,
            pages: rng.range(1, SLOT_PAGES as u64) as usize,
            offset: PAGE * rng.below(3),
            prot: gen_prot(rng),
        },
        40..=54 => RaceOp::Blank { slot },
        55..=69 => RaceOp::Unmap { slot },
        70..=79 => RaceOp::Protect {
            slot,
            prot: gen_prot(rng),
        },
        _ => RaceOp::Churn {
            offset: PAGE * rng.below(3),
            len: (PAGE * rng.range(1, 2)) as usize,
            prot: gen_prot(rng),
            touch: rng.next_u64(),
        },
    }
}

/// Read and/or write a few bytes (the first and last page, some random ones) of
/// [addr, addr + touchable), as `prot` allows.
///
/// # Safety
///
/// [addr, addr + touchable) must be mapped with at least `prot`, backed (no fault can fail),
/// and stay mapped for the call.
unsafe fn touch(addr: usize, touchable: usize, prot: i32, seed: u64) {
    if touchable == 0 || prot & (libc::PROT_READ | libc::PROT_WRITE) == 0 {
        return;
    }
    let mut rng = Rng::new(seed);
    let ps = page_size();
    let pages = touchable.div_ceil(ps);
    for k in 0..pages.min(6) {
        let page = match k {
            0 => 0,
            1 => pages - 1,
            _ => rng.below(pages as u64) as usize,
        };
        let at = (page * ps + rng.below(ps as u64) as usize).min(touchable - 1);
        let p = (addr + at) as *mut u8;
        // SAFETY: per the function's contract, `p` is inside the mapping; volatile so the
        // access really happens.
        unsafe {
            if prot & libc::PROT_READ != 0 {
                std::ptr::read_volatile(p);
            }
            if prot & libc::PROT_WRITE != 0 {
                std::ptr::write_volatile(p, rng.byte());
            }
        }
    }
}

/// The part of a mapping of `len` bytes at file `offset` that the area of `area` bytes backs.
fn backed(area: Option<u64>, offset: u64, len: usize) -> usize {
    match area {
        Some(a) if offset < a => (a - offset).min(len as u64) as usize,
        _ => 0,
    }
}

/// phymem_size (the shared area's size), None while it cannot be read.
fn read_area(path: &str) -> Option<u64> {
    let fd = open_path(path, OFlag::O_RDONLY).ok()?;
    let text = crate::procfs::read_all(&fd, 0, 64, Some(64)).ok()?;
    std::str::from_utf8(&text).ok()?.trim().parse().ok()
}

/// A mapping kept by the main thread, unmapped on drop.
struct Live {
    addr: usize,
    len: usize,
    prot: i32,
    touchable: usize,
}

impl Drop for Live {
    fn drop(&mut self) {
        // SAFETY: a mapping this thread made and nobody else unmaps.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// The racer's slots: a region reserved PROT_NONE at RACE_HINT (where no kernel-chosen
/// address lands: those go top-down from the top of the address space). Unmapped on drop.
struct RaceRegion {
    base: usize,
    len: usize,
}

impl RaceRegion {
    fn new() -> Option<RaceRegion> {
        let len = RACE_SLOTS * SLOT_PAGES * page_size();
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        let p = unsafe {
            libc::mmap(
                RACE_HINT as *mut libc::c_void,
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        if p as usize != RACE_HINT {
            // A kernel without MAP_FIXED_NOREPLACE took it as a hint.
            // SAFETY: unmapping what was just mapped.
            unsafe { libc::munmap(p, len) };
            return None;
        }
        Some(RaceRegion {
            base: RACE_HINT,
            len,
        })
    }

    /// Reserve whatever page of [addr, addr + len) is unmapped (after a munmap, or a failed
    /// MAP_FIXED that may have left a hole), one page at a time so mapped pages stay.
    fn refill(addr: usize, len: usize) {
        let ps = page_size();
        for at in (addr..addr + len).step_by(ps) {
            // SAFETY: MAP_FIXED_NOREPLACE only fills a hole (EEXIST when the page is mapped).
            unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    ps,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE
                        | libc::MAP_ANONYMOUS
                        | libc::MAP_NORESERVE
                        | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
        }
    }
}

impl Drop for RaceRegion {
    fn drop(&mut self) {
        // SAFETY: the region reserved in `new`; the racer has been joined.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// State shared by the main thread and the racer.
struct RaceShared {
    stop: AtomicBool,
    /// The area size (0: unknown).
    area: AtomicU64,
    violation: Mutex<Option<String>>,
}

impl RaceShared {
    fn area(&self) -> Option<u64> {
        match self.area.load(Ordering::Relaxed) {
            0 => None,
            a => Some(a),
        }
    }

    fn report(&self, what: String) {
        if let Ok(mut v) = self.violation.lock() {
            v.get_or_insert(what);
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A mapping of the shared area succeeded: beyond the area or MAP_PRIVATE, that breaks the
/// ABI (re-reading the area size first, in case the module was reloaded with more pages).
fn check_mapping(
    cfg: &Config,
    shared: &RaceShared,
    offset: u64,
    len: usize,
    private: bool,
) -> std::result::Result<(), String> {
    if !cfg.strict {
        return Ok(());
    }
    if private {
        return Err(format!(
            "MAP_PRIVATE mapping of {len} bytes at offset {offset} was accepted"
        ));
    }
    let end = offset.saturating_add((len as u64).div_ceil(PAGE) * PAGE);
    let fits = |a: Option<u64>| a.is_some_and(|a| end <= a);
    if fits(shared.area()) {
        return Ok(());
    }
    let now = read_area(&cfg.mmap_size);
    if let Some(a) = now {
        shared.area.store(a, Ordering::Relaxed);
    }
    if fits(now) || now.is_none() {
        // Unknown size (the module is being reloaded): cannot judge, and nothing is touched.
        return Ok(());
    }
    Err(format!(
        "mapping of {len} bytes at offset {offset} was accepted beyond the {}-byte area",
        now.unwrap_or(0)
    ))
}

/// The racer thread: remaps, blanks and unmaps the region's slots (and maps, touches and
/// unmaps mappings of its own) until told to stop.
fn racer(cfg: Config, seed: u64, region: Option<(usize, usize)>, shared: Arc<RaceShared>) {
    let mut rng = Rng::new(mix64(seed ^ 0x5ace_da7a));
    let mut fd: Option<OwnedFd> = None;
    let ps = page_size();
    let slot_len = SLOT_PAGES * ps;
    while !shared.stop.load(Ordering::Relaxed) {
        let op = gen_race(&mut rng);
        if fd.is_none() {
            fd = open_path(&cfg.mmap, OFlag::O_RDWR).ok();
        }
        let raw = fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let mut failed = false;
        match op {
            RaceOp::Remap {
                slot,
                pages,
                offset,
                prot,
            } => {
                if let Some((base, _)) = region {
                    let addr = base + (slot % RACE_SLOTS) * slot_len;
                    let len = pages.min(SLOT_PAGES) * ps;
                    // SAFETY: MAP_FIXED inside our reserved region only.
                    let p = unsafe {
                        libc::mmap(
                            addr as *mut libc::c_void,
                            len,
                            prot,
                            libc::MAP_SHARED | libc::MAP_FIXED,
                            raw,
                            offset as libc::off_t,
                        )
                    };
                    if p == libc::MAP_FAILED {
                        failed = true;
                        RaceRegion::refill(addr, slot_len);
                    }
                }
            }
            RaceOp::Blank { slot } => {
                if let Some((base, _)) = region {
                    let addr = base + (slot % RACE_SLOTS) * slot_len;
                    // SAFETY: MAP_FIXED inside our reserved region only.
                    let p = unsafe {
                        libc::mmap(
                            addr as *mut libc::c_void,
                            slot_len,
                            libc::PROT_NONE,
                            libc::MAP_PRIVATE
                                | libc::MAP_ANONYMOUS
                                | libc::MAP_NORESERVE
                                | libc::MAP_FIXED,
                            -1,
                            0,
                        )
                    };
                    if p == libc::MAP_FAILED {
                        RaceRegion::refill(addr, slot_len);
                    }
                }
            }
            RaceOp::Unmap { slot } => {
                if let Some((base, _)) = region {
                    let addr = base + (slot % RACE_SLOTS) * slot_len;
                    // SAFETY: our reserved region only; re-reserved right below.
                    unsafe { libc::munmap(addr as *mut libc::c_void, slot_len) };
                    RaceRegion::refill(addr, slot_len);
                }
            }
            RaceOp::Protect { slot, prot } => {
                if let Some((base, _)) = region {
                    let addr = base + (slot % RACE_SLOTS) * slot_len;
                    // SAFETY: our reserved region only; nobody touches it from user space.
                    unsafe { libc::mprotect(addr as *mut libc::c_void, slot_len, prot) };
                }
            }
            RaceOp::Churn {
                offset,
                len,
                prot,
                touch: seed,
            } => {
                // SAFETY: a mapping at an address the kernel picks.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        prot,
                        libc::MAP_SHARED,
                        raw,
                        offset as libc::off_t,
                    )
                };
                if p == libc::MAP_FAILED {
                    failed = true;
                } else {
                    match check_mapping(&cfg, &shared, offset, len, false) {
                        // SAFETY: the backed part of a live mapping with `prot`.
                        Ok(()) => unsafe {
                            touch(p as usize, backed(shared.area(), offset, len), prot, seed)
                        },
                        Err(w) => shared.report(format!("racer: {w}")),
                    }
                    // SAFETY: the mapping made above.
                    unsafe { libc::munmap(p, len) };
                }
            }
        }
        if failed {
            let e = errno();
            if e != libc::EINVAL && e != libc::EACCES && e != libc::ENOMEM {
                fd = None; // stale after a reload (EIO) or never opened (EBADF)
            }
        }
        std::thread::yield_now();
    }
}

struct MmapFuzzer<'a> {
    cfg: &'a Config,
    arena: Arena,
    /// /proc/kchan/mmap opened O_RDONLY and O_RDWR.
    fds: [Option<OwnedFd>; 2],
    buffer: Option<OwnedFd>,
    pool: VecDeque<Live>,
    shared: Arc<RaceShared>,
    region: Option<RaceRegion>,
    steps: u64,
}

impl<'a> MmapFuzzer<'a> {
    fn new(cfg: &'a Config) -> Result<Self> {
        let shared = Arc::new(RaceShared {
            stop: AtomicBool::new(false),
            area: AtomicU64::new(0),
            violation: Mutex::new(None),
        });
        Ok(MmapFuzzer {
            cfg,
            arena: Arena::new()?,
            fds: [None, None],
            buffer: None,
            pool: VecDeque::new(),
            shared,
            region: RaceRegion::new(),
            steps: 0,
        })
    }

    fn fd(&mut self, rdwr: bool) -> i32 {
        let (i, flags) = if rdwr {
            (1, OFlag::O_RDWR)
        } else {
            (0, OFlag::O_RDONLY)
        };
        if self.fds[i].is_none() {
            self.fds[i] = open_path(&self.cfg.mmap, flags).ok();
        }
        self.fds[i].as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Run `ops` with the racer going; stops at the first violation of either thread.
    fn run(&mut self, seed: u64, ops: impl Iterator<Item = MmapOp>) -> Result<Counts> {
        let racer_handle = {
            let cfg = self.cfg.clone();
            let shared = Arc::clone(&self.shared);
            let region = self.region.as_ref().map(|r| (r.base, r.len));
            std::thread::Builder::new()
                .name("racer".into())
                .spawn(move || racer(cfg, seed, region, shared))
                .map_err(|e| Error::io("spawn racer", &e))?
        };
        let mut counts = Counts::default();
        let mut result = Ok(());
        for op in ops {
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            match self.step(&op) {
                Ok(ok) => counts.record(ok),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        let joined = racer_handle.join();
        self.pool.clear();
        result?;
        if joined.is_err() {
            return Err(violation(Channel::Mmap, "the racer thread panicked"));
        }
        if let Some(w) = self.shared.violation.lock().ok().and_then(|v| v.clone()) {
            return Err(violation(Channel::Mmap, w));
        }
        Ok(counts)
    }

    fn step(&mut self, op: &MmapOp) -> Result<bool> {
        const CH: Channel = Channel::Mmap;
        self.steps += 1;
        if self.shared.area().is_none() || self.steps.is_multiple_of(256) {
            if let Some(a) = read_area(&self.cfg.mmap_size) {
                self.shared.area.store(a, Ordering::Relaxed);
            }
        }
        match *op {
            MmapOp::Map {
                offset,
                len,
                prot,
                shared,
                rdwr,
                keep,
                touch: seed,
            } => {
                let fd = self.fd(rdwr);
                let flags = if shared {
                    libc::MAP_SHARED
                } else {
                    libc::MAP_PRIVATE
                };
                // SAFETY: a mapping at an address the kernel picks.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        prot,
                        flags,
                        fd,
                        offset as libc::off_t,
                    )
                };
                if p == libc::MAP_FAILED {
                    return self.refused(rdwr);
                }
                let live = Live {
                    addr: p as usize,
                    len,
                    prot,
                    touchable: backed(self.shared.area(), offset, len),
                };
                check_mapping(self.cfg, &self.shared, offset, len, !shared)
                    .map_err(|w| violation(CH, w))?;
                // SAFETY: the backed part of a live mapping with `prot`.
                unsafe { touch(live.addr, live.touchable, live.prot, seed) };
                if keep {
                    if self.pool.len() >= POOL {
                        self.pool.pop_front();
                    }
                    self.pool.push_back(live);
                }
                Ok(true)
            }
            MmapOp::Unmap { pick } => {
                if !self.pool.is_empty() {
                    let i = pick as usize % self.pool.len();
                    self.pool.remove(i);
                }
                Ok(true)
            }
            MmapOp::Touch { pick, seed } => {
                if !self.pool.is_empty() {
                    let l = &self.pool[pick as usize % self.pool.len()];
                    // SAFETY: a kept mapping, unmapped only by this thread.
                    unsafe { touch(l.addr, l.touchable, l.prot, seed) };
                }
                Ok(true)
            }
            MmapOp::Read { offset, len, ptr } => {
                let fd = self.fd(false);
                let (addr, _) = self.arena.resolve(ptr);
                // SAFETY: the kernel writes at most len bytes at addr: inside the arena
                // (faulting on the guard page) or invalid on purpose.
                let r = unsafe {
                    libc::pread(fd, addr as *mut libc::c_void, len, offset as libc::off_t)
                };
                if r < 0 {
                    return self.refused(false);
                }
                let area = self.shared.area().unwrap_or(u64::MAX);
                if self.cfg.strict
                    && r > 0
                    && (r as usize > len || offset.saturating_add(r as u64) > area)
                {
                    return Err(violation(
                        CH,
                        format!("a {len}-byte read at offset {offset} returned {r} bytes (area {area} bytes)"),
                    ));
                }
                Ok(true)
            }
            MmapOp::RaceCopy {
                at,
                len,
                into_user,
                offset,
            } => {
                // Into the racer's slots, or the arena when there is no region.
                let (addr, len) = match &self.region {
                    Some(r) => {
                        let at = at % r.len;
                        (r.base + at, len.min(r.len - at))
                    }
                    None => (self.arena.resolve(Ptr::Start).0, len.min(ARENA_SIZE)),
                };
                let r = if into_user {
                    let fd = self.fd(false);
                    // SAFETY: the kernel writes at most len bytes at addr, inside the racer's
                    // region (which only ever holds kchan pages or PROT_NONE reservations, and
                    // which nothing in this process reads) or the arena.
                    unsafe {
                        libc::pread(fd, addr as *mut libc::c_void, len, offset as libc::off_t)
                    }
                } else {
                    if self.buffer.is_none() {
                        self.buffer = open_path(&self.cfg.buffer, OFlag::O_WRONLY).ok();
                    }
                    let fd = self.buffer.as_ref().map_or(-1, |f| f.as_raw_fd());
                    // SAFETY: the kernel only reads len bytes at addr.
                    unsafe { libc::pwrite(fd, addr as *const libc::c_void, len, 0) }
                };
                if r < 0 {
                    let e = errno();
                    if e != libc::EFAULT && e != libc::EINVAL {
                        self.fds[0] = None;
                        self.buffer = None;
                    }
                    return Ok(false);
                }
                if self.cfg.strict && r as usize > len {
                    return Err(violation(
                        CH,
                        format!("a {len}-byte copy returned {r} bytes"),
                    ));
                }
                Ok(true)
            }
            MmapOp::Size => {
                let Ok(fd) = open_path(&self.cfg.mmap_size, OFlag::O_RDONLY) else {
                    return Ok(false);
                };
                let Ok(text) = crate::procfs::read_all(&fd, 0, 64, Some(4096)) else {
                    return Ok(false);
                };
                let good = text.len() > 1
                    && text.ends_with(b"\n")
                    && text[..text.len() - 1].iter().all(u8::is_ascii_digit);
                if self.cfg.strict && !good {
                    return Err(violation(
                        CH,
                        format!("phymem_size is \"{}\"", escape(&text)),
                    ));
                }
                Ok(true)
            }
        }
    }

    /// A refused mmap/pread: counted; a descriptor made stale by a reload is reopened later.
    fn refused(&mut self, rdwr: bool) -> Result<bool> {
        let e = errno();
        if !matches!(
            e,
            libc::EINVAL | libc::EACCES | libc::ENOMEM | libc::EOVERFLOW | libc::EFAULT
        ) {
            self.fds[usize::from(rdwr)] = None;
        }
        Ok(false)
    }
}

// ---- one worker -------------------------------------------------------------------------------

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

/// What a worker reports through its pipe, one line each: `done <channel> <iterations> <ok>
/// <errors>` or `fail <channel> <what>`.
fn worker_lines(
    channels: &[Channel],
    cfg: &Config,
    seed: u64,
    n: u64,
    out: &mut impl Write,
) -> i32 {
    for &ch in channels {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_channel(ch, cfg, seed, n)
        }));
        let line = match r {
            Ok(Ok(c)) => format!("done {} {} {} {}", ch.name(), c.iterations, c.ok, c.errors),
            Ok(Err(e)) => {
                let what = match e {
                    Error::Msg { op, msg } if op.starts_with("fuzz ") => msg,
                    e => e.to_string(),
                };
                format!("fail {} {}", ch.name(), what.replace('\n', " "))
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("fail {} panicked: {}", ch.name(), msg.replace('\n', " "))
            }
        };
        let failed = line.starts_with("fail");
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() || failed {
            return 1;
        }
    }
    0
}

/// One worker's results as the parent sees them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub index: usize,
    pub seed: u64,
    pub done: Vec<(Channel, Counts)>,
    pub fail: Option<(Channel, String)>,
}

/// Parse a worker's pipe output; `status` says how it ended (None: it could not be waited for).
fn parse_report(
    index: usize,
    seed: u64,
    channels: &[Channel],
    text: &str,
    status: Option<String>,
) -> WorkerReport {
    let mut r = WorkerReport {
        index,
        seed,
        ..Default::default()
    };
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (kind, ch) = (parts.next(), parts.next().and_then(Channel::from_name));
        let rest = parts.next().unwrap_or("");
        match (kind, ch) {
            (Some("done"), Some(ch)) => {
                let v: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [iterations, ok, errors] = v[..] {
                    r.done.push((
                        ch,
                        Counts {
                            iterations,
                            ok,
                            errors,
                        },
                    ));
                }
            }
            (Some("fail"), Some(ch)) if r.fail.is_none() => r.fail = Some((ch, rest.to_string())),
            _ => {}
        }
    }
    if r.fail.is_none() {
        let unfinished = channels
            .iter()
            .find(|c| !r.done.iter().any(|(d, _)| d == *c));
        if let (Some(&ch), Some(s)) = (unfinished, status.as_ref()) {
            r.fail = Some((ch, s.clone()));
        } else if let Some(&ch) = unfinished {
            r.fail = Some((ch, "ended without a report".to_string()));
        }
    }
    r
}

/// How a child ended, unless it exited 0.
fn describe_status(status: libc::c_int) -> Option<String> {
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => None,
            c => Some(format!("exited with status {c}")),
        }
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {sig}"));
        Some(format!("killed by {name}"))
    } else {
        Some(format!("ended with wait status {status:#x}"))
    }
}

/// Fork `procs` workers (worker i: seed + i), collect their reports.
pub fn run_workers(o: &Options) -> Result<Vec<WorkerReport>> {
    let channels = o.target.channels();
    let mut started = Vec::new();
    let mut spawn_error = None;
    for i in 0..o.procs {
        let seed = o.seed.wrapping_add(i as u64);
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            spawn_error = Some(Error::last("pipe"));
            break;
        }
        // SAFETY: fresh descriptors owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the parent is single-threaded here (fuzz starts threads only in workers);
        // the child only runs the worker and _exits.
        match unsafe { libc::fork() } {
            -1 => {
                spawn_error = Some(Error::last("fork"));
                break;
            }
            0 => {
                drop(r);
                let mut out = std::fs::File::from(w);
                let code = worker_lines(&channels, &o.config, seed, o.iterations, &mut out);
                drop(out);
                // SAFETY: leave without running the parent's exit handlers.
                unsafe { libc::_exit(code) }
            }
            pid => {
                drop(w);
                started.push((i, seed, pid, r));
            }
        }
    }
    let mut reports = Vec::new();
    for (i, seed, pid, r) in started {
        let mut text = Vec::new();
        let _ = std::fs::File::from(r).read_to_end(&mut text);
        let mut status = 0;
        let waited = loop {
            // SAFETY: waiting for our own child.
            let w = unsafe { libc::waitpid(pid, &mut status, 0) };
            if w == pid {
                break true;
            }
            if w < 0 && errno() != libc::EINTR {
                break false;
            }
        };
        let st = if waited {
            describe_status(status)
        } else {
            Some("could not be waited for".to_string())
        };
        reports.push(parse_report(
            i,
            seed,
            &channels,
            &String::from_utf8_lossy(&text),
            st,
        ));
    }
    if let Some(e) = spawn_error {
        return Err(e);
    }
    Ok(reports)
}

/// The summary lines (channels every worker finished) and the failures, in channel order.
pub fn summarize(
    channels: &[Channel],
    seed: u64,
    reports: &[WorkerReport],
) -> (Vec<String>, Vec<Error>) {
    let mut lines = Vec::new();
    for &ch in channels {
        let mut total = Counts::default();
        let mut complete = true;
        for r in reports {
            match r.done.iter().find(|(c, _)| *c == ch) {
                Some((_, c)) => total.add(c),
                None => complete = false,
            }
        }
        if complete {
            lines.push(total.line(ch, seed));
        }
    }
    let mut failures = Vec::new();
    for &ch in channels {
        for r in reports {
            if let Some((c, what)) = &r.fail {
                if *c == ch {
                    failures.push(violation(
                        ch,
                        format!("{what} (worker {}, seed {})", r.index, r.seed),
                    ));
                }
            }
        }
    }
    (lines, failures)
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
    use super::*;

    #[test]
    fn splitmix64_reference() {
        // The reference splitmix64 stream for seed 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn rng_bounds() {
        let mut r = Rng::new(42);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let v = r.range(3, 5);
            assert!((3..=5).contains(&v));
            let b = r.byte();
            assert!(b != b':' && b != b'#');
        }
        assert_eq!(r.below(0), 0);
        let _ = r.range(0, u64::MAX);
        // Every value of a small range shows up.
        let mut seen = [false; 6];
        for _ in 0..1000 {
            seen[r.range(0, 5) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn channel_streams_differ() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_channel(1, Channel::Sockopt).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut firsts: Vec<u64> = Channel::ALL
            .iter()
            .map(|&c| Rng::for_channel(1, c).next_u64())
            .collect();
        firsts.push(Rng::for_channel(2, Channel::Sockopt).next_u64());
        let mut d = firsts.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), firsts.len());
    }

    fn ops<T>(seed: u64, ch: Channel, n: usize, gen: fn(&mut Rng) -> T) -> Vec<T> {
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

    /// Every generated netlink datagram can be walked (no panic), and well-formed echoes are
    /// expected back byte for byte.
    #[test]
    fn expectations_follow_the_framing() {
        for seed in 0..50 {
            for op in ops(seed, Channel::Netlink, 500, gen_netlink) {
                if let Some((b, _)) = op.datagram() {
                    let _ = expect(&b);
                }
            }
        }
        let mut d = netlink::encode(abi::KCHAN_ECHO, NLM_F_ACK, 5, 0, b"abc").unwrap();
        d.extend(
            netlink::encode(
                abi::KCHAN_BURST,
                0,
                6,
                0,
                &netlink::burst_request(abi::BurstRequest { count: 3, size: 64 }),
            )
            .unwrap(),
        );
        d.extend(
            netlink::encode(
                abi::KCHAN_BURST,
                0,
                7,
                0,
                &netlink::burst_request(abi::BurstRequest { count: 3, size: 2 }),
            )
            .unwrap(),
        );
        d.extend(netlink::encode(abi::KCHAN_ECHO, 0, 8, 0, &[0u8; 4097]).unwrap());
        d.extend(netlink::encode(abi::KCHAN_ECHO, 0, 9, 0, b"last").unwrap());
        let e = expect(&d);
        assert_eq!(e.echoes, vec![(5, b"abc".to_vec()), (9, b"last".to_vec())]);
        assert_eq!(e.bursts, vec![(6, 3, 64)]);
        // A broken nlmsg_len ends the walk, as in the module.
        let mut bad = netlink::encode(abi::KCHAN_ECHO, 0, 1, 0, b"x").unwrap();
        bad[..4].copy_from_slice(&15u32.to_ne_bytes());
        bad.extend(netlink::encode(abi::KCHAN_ECHO, 0, 2, 0, b"y").unwrap());
        assert!(expect(&bad).echoes.is_empty());
        assert!(expect(&[]).echoes.is_empty());
        assert!(expect(&[1, 2, 3]).echoes.is_empty());
    }

    fn reply(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        netlink::encode(ty, 0, seq, 0, payload).unwrap()
    }

    fn ack(seq: u32, err: i32) -> Vec<u8> {
        let mut p = err.to_ne_bytes().to_vec();
        p.extend_from_slice(
            &Header {
                len: 16,
                ty: 0x10,
                flags: 5,
                seq,
                pid: 9,
            }
            .to_bytes(),
        );
        reply(abi::NLMSG_ERROR, seq, &p)
    }

    #[test]
    fn replies_are_checked_against_the_abi() {
        let mut p = Pending::default();
        let mut req = netlink::encode(abi::KCHAN_ECHO, NLM_F_ACK, 5, 0, b"abc").unwrap();
        req.extend(
            netlink::encode(
                abi::KCHAN_BURST,
                0,
                6,
                0,
                &netlink::burst_request(abi::BurstRequest { count: 2, size: 8 }),
            )
            .unwrap(),
        );
        p.add(expect(&req));
        // The right answers.
        p.check(&reply(abi::KCHAN_ECHO, 5, b"abc")).unwrap();
        p.check(&ack(5, 0)).unwrap();
        p.check(&ack(5, -libc::EOPNOTSUPP)).unwrap();
        p.check(&reply(abi::NLMSG_DONE, 1, abi::NETLINK_ECHO_REPLY))
            .unwrap();
        p.check(&reply(abi::KCHAN_BURST_DATA, 6, &[1, 0, 0, 0, 4, 5, 6, 7]))
            .unwrap();
        let end = [1u32.to_ne_bytes(), 1u32.to_ne_bytes()].concat();
        p.check(&reply(abi::KCHAN_BURST_END, 6, &end)).unwrap();
        p.check(&reply(abi::IMP2_K_MSG, 0, &[127, 0, 0, 1, 127, 0, 0, 1]))
            .unwrap();
        // The echo was matched: a second reply to it answers no request.
        let e = p.check(&reply(abi::KCHAN_ECHO, 5, b"abc")).unwrap_err();
        assert!(e.contains("to no request"), "{e}");
        // Violations.
        p.add(expect(
            &netlink::encode(abi::KCHAN_ECHO, 0, 7, 0, b"xyz").unwrap(),
        ));
        let e = p.check(&reply(abi::KCHAN_ECHO, 7, b"xyZ")).unwrap_err();
        assert!(e.contains("differs"), "{e}");
        assert!(p.check(&ack(5, 1)).is_err());
        assert!(p
            .check(&reply(abi::NLMSG_ERROR, 5, &0i32.to_ne_bytes()))
            .is_err());
        assert!(p
            .check(&reply(abi::NLMSG_DONE, 1, b"Reply from kernel"))
            .is_err());
        assert!(p
            .check(&reply(abi::KCHAN_BURST_DATA, 6, &[1, 0, 0, 0, 4, 5, 6, 0]))
            .is_err());
        assert!(p
            .check(&reply(abi::KCHAN_BURST_DATA, 6, &[1, 0, 0, 0, 4, 5]))
            .is_err());
        assert!(p
            .check(&reply(abi::KCHAN_BURST_DATA, 6, &[2, 0, 0, 0, 4, 5, 6, 7]))
            .is_err());
        let end = [2u32.to_ne_bytes(), 1u32.to_ne_bytes()].concat();
        assert!(p.check(&reply(abi::KCHAN_BURST_END, 6, &end)).is_err());
        assert!(p.check(&reply(0x77, 1, b"")).is_err());
        assert!(p.check(&[1, 2, 3]).is_err());
        // Bursts nobody here asked for (a reused port) are only checked for their filler.
        p.check(&reply(
            abi::KCHAN_BURST_DATA,
            99,
            &[9, 0, 0, 0, 4, 5, 6, 7, 8],
        ))
        .unwrap();
        // After forgetting expectations, unknown echo seqs are tolerated.
        p.lossy = true;
        p.check(&reply(abi::KCHAN_ECHO, 1234, b"?")).unwrap();
    }

    #[test]
    fn pending_is_bounded() {
        let mut p = Pending::default();
        for i in 0..3000u32 {
            p.add(Expect {
                echoes: vec![(i, vec![0; 2048])],
                bursts: vec![(i, 1, 8)],
            });
        }
        assert!(p.echoes.len() <= PENDING_ECHOES && p.echo_bytes <= PENDING_ECHO_BYTES);
        assert!(p.bursts.len() <= PENDING_BURSTS);
        assert!(p.lossy);
    }

    #[test]
    fn stats_format() {
        check_stats(b"netlink_rx: 5\nproc_reads: 0\n").unwrap();
        assert!(check_stats(b"netlink_rx: 5").is_err());
        assert!(check_stats(b"netlink_rx 5\n").is_err());
        assert!(check_stats(b"netlink_rx: x\n").is_err());
        assert!(check_stats(b"\xff: 1\n").is_err());
    }

    #[test]
    fn arena_pointers() {
        let mut a = Arena::new().unwrap();
        let (start, room) = a.resolve(Ptr::Start);
        assert_eq!(room, ARENA_SIZE);
        let (tail, room) = a.resolve(Ptr::Tail(10));
        assert_eq!((tail - start, room), (ARENA_SIZE - 10, 10));
        assert_eq!(a.resolve(Ptr::Tail(usize::MAX)).1, ARENA_SIZE);
        a.put(Ptr::Tail(3), b"abcdef");
        assert_eq!(a.get(Ptr::Tail(3), 100), b"abc");
        a.put(Ptr::Guard, b"x");
        a.put(Ptr::Null, b"x");
        assert!(a.get(Ptr::Kernel, 4).is_empty());
        // The guard page really faults: the kernel says EFAULT.
        let (g, _) = a.resolve(Ptr::Guard);
        let fd = open_path("/dev/zero", OFlag::O_RDONLY).unwrap();
        // SAFETY: reading into the guard page; the kernel refuses.
        let r = unsafe { libc::read(fd.as_raw_fd(), g as *mut libc::c_void, 1) };
        assert_eq!((r, errno()), (-1, libc::EFAULT));
    }

    #[test]
    fn reports_and_summary() {
        let chans = Channel::ALL.to_vec();
        let a = parse_report(
            0,
            5,
            &chans,
            "done sockopt 10 7 3\ndone netlink 10 10 0\ndone proc 10 1 9\ndone mmap 10 5 5\n",
            None,
        );
        assert!(a.fail.is_none());
        let b = parse_report(
            1,
            6,
            &chans,
            "done sockopt 10 6 4\nfail netlink echo reply seq 1: differs\n",
            Some("exited with status 1".into()),
        );
        let (lines, fails) = summarize(&chans, 5, &[a, b]);
        assert_eq!(
            lines,
            vec!["fuzz sockopt: iterations=20 ok=13 errors=7 seed=5".to_string()]
        );
        assert_eq!(fails.len(), 1);
        assert_eq!(
            fails[0].to_string(),
            "fuzz netlink: echo reply seq 1: differs (worker 1, seed 6)"
        );
        let c = parse_report(
            2,
            7,
            &chans,
            "done sockopt 1 1 0\n",
            Some("killed by SIGSEGV".into()),
        );
        assert_eq!(c.fail, Some((Channel::Netlink, "killed by SIGSEGV".into())));
        let d = parse_report(3, 8, &chans[..1], "", None);
        assert!(d.fail.is_some());
        assert_eq!(describe_status(0), None);
        assert_eq!(describe_status(9).as_deref(), Some("killed by SIGKILL"));
        assert_eq!(
            describe_status(1 << 8).as_deref(),
            Some("exited with status 1")
        );
    }

    fn temp_files(tag: &str) -> (std::path::PathBuf, Config) {
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

    /// The executors never panic or crash on the host: sockopt on optnames nobody owns (base
    /// 20000), netlink on NETLINK_USERSOCK (no kernel socket: every send is refused), proc and
    /// mmap on plain files standing in for /proc/kchan (so without the ABI checks), with the
    /// munmap racer running.
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

    #[test]
    fn workers_report_through_pipes() {
        let (dir, cfg) = temp_files("workers");
        let o = Options {
            target: Target::Proc,
            iterations: 300,
            seed: 40,
            procs: 3,
            config: Config {
                strict: false,
                ..cfg
            },
        };
        let reports = run_workers(&o).unwrap();
        assert_eq!(reports.len(), 3);
        for (i, r) in reports.iter().enumerate() {
            assert_eq!((r.index, r.seed), (i, 40 + i as u64));
            assert!(r.fail.is_none(), "{r:?}");
        }
        let (lines, fails) = summarize(&[Channel::Proc], 40, &reports);
        assert!(fails.is_empty());
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("fuzz proc: iterations=900 ok="),
            "{}",
            lines[0]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
