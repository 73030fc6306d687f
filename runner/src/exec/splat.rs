//! Kernel reports that fail a step unless the spec allows them, grouped the way the kernel prints
//! them: one WARN, one KASAN report, one oops, one lockdep splat ... is ONE report of ONE class,
//! however many lines (register dump, "Call Trace:", stack, "---[ end trace ]---") it spans.
//!
//! [`ReportParser`] is fed every kernel log record of a VM in order and keeps its state across
//! calls, so a report straddling two steps' windows is still one report. Texts and structure
//! follow the v6.12 printk format strings (kernel/panic.c, lib/bug.c, arch/x86/kernel/dumpstack.c,
//! arch/x86/mm/fault.c, mm/kasan/report.c, mm/kfence/report.c, lib/ubsan.c,
//! kernel/locking/lockdep.c, kernel/hung_task.c, kernel/rcu/tree_stall.h, kernel/watchdog.c,
//! mm/kmemleak.c, kernel/sched/core.c, mm/page_alloc.c, mm/slub.c).

use crate::vm::KmsgRecord;

/// Taint bits every kchan run has: O (out-of-tree module, 4096) and E (unsigned module, 8192).
pub const EXPECTED_TAINT: u64 = (1 << 12) | (1 << 13);

/// Taint letters by bit, as in Documentation/admin-guide/tainted-kernels.rst.
const TAINT_LETTERS: &str = "PFSRMBUDAWCIOELKXTN";

const TAINT_BAD_PAGE: u64 = 1 << 5; // B
const TAINT_DIE: u64 = 1 << 7; // D
const TAINT_WARN: u64 = 1 << 9; // W
const TAINT_SOFTLOCKUP: u64 = 1 << 14; // L

/// A report longer than this many records is cut (a lost end marker must not swallow the log).
const MAX_REPORT_RECORDS: usize = 300;

/// The kernel prints a report in one burst; a record this long (µs) after the previous record of
/// an open report starts afresh (a report whose end was lost, or that has no end line at all).
const MAX_GAP_US: u64 = 2_000_000;

/// The class of a kernel report: what `allow:` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Warning,
    Bug,
    Oops,
    CallTrace,
    Kasan,
    Ubsan,
    Kfence,
    Lockdep,
    HungTask,
    RcuStall,
    SoftLockup,
    Kmemleak,
    Panic,
}

impl Class {
    pub const ALL: [Class; 13] = [
        Class::Warning,
        Class::Bug,
        Class::Oops,
        Class::CallTrace,
        Class::Kasan,
        Class::Ubsan,
        Class::Kfence,
        Class::Lockdep,
        Class::HungTask,
        Class::RcuStall,
        Class::SoftLockup,
        Class::Kmemleak,
        Class::Panic,
    ];

    /// The name `allow:` uses.
    pub fn name(self) -> &'static str {
        match self {
            Class::Warning => "warning",
            Class::Bug => "bug",
            Class::Oops => "oops",
            Class::CallTrace => "call_trace",
            Class::Kasan => "kasan",
            Class::Ubsan => "ubsan",
            Class::Kfence => "kfence",
            Class::Lockdep => "lockdep",
            Class::HungTask => "hung_task",
            Class::RcuStall => "rcu_stall",
            Class::SoftLockup => "soft_lockup",
            Class::Kmemleak => "kmemleak",
            Class::Panic => "panic",
        }
    }

    pub fn from_name(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Taint bits (see `TAINT_LETTERS`) this class of report sets in the kernel (v6.12), so an
    /// allowed report also allows its taint:
    /// - warning: W — kernel/panic.c `__warn()` ends with `add_taint(taint, ..)`, `taint` being
    ///   TAINT_WARN for WARN*() (include/asm-generic/bug.h `BUGFLAG_TAINT(TAINT_WARN)`).
    /// - oops: D — arch/x86/kernel/dumpstack.c `oops_end()`: `add_taint(TAINT_DIE, ..)`.
    /// - bug: D | W | B — BUG() dies (lib/bug.c "kernel BUG at" then `die()` -> `oops_end()`: D);
    ///   kernel/sched/core.c `__might_resched()` ("BUG: sleeping function called from invalid
    ///   context") and `__schedule_bug()` ("BUG: scheduling while atomic") `add_taint(TAINT_WARN)`;
    ///   mm/page_alloc.c `bad_page()` ("BUG: Bad page state") and mm/slub.c (`"BUG %s (%s): "`
    ///   reports), mm/kmsan/report.c `add_taint(TAINT_BAD_PAGE)`.
    /// - kasan: B — mm/kasan/report.c `end_report()`: `add_taint(TAINT_BAD_PAGE, ..)`.
    /// - kfence: B — mm/kfence/report.c `kfence_report_error()`: `add_taint(TAINT_BAD_PAGE, ..)`.
    /// - ubsan: D — lib/ubsan.c taints nothing, but with CONFIG_UBSAN_TRAP x86 `handle_bug()` prints
    ///   "UBSAN: ... at ..." and the trap dies ("Oops: invalid opcode") -> D.
    /// - soft_lockup: L — kernel/watchdog.c `watchdog_timer_fn()`: `add_taint(TAINT_SOFTLOCKUP)`;
    ///   the hard LOCKUP report taints nothing.
    /// - call_trace, lockdep, hung_task, rcu_stall, kmemleak, panic: none (no `add_taint` in
    ///   lib/dump_stack.c, kernel/locking/lockdep.c, kernel/hung_task.c, kernel/rcu/tree_stall.h,
    ///   mm/kmemleak.c, `panic()`).
    pub fn taint_bits(self) -> u64 {
        match self {
            Class::Warning => TAINT_WARN,
            Class::Bug => TAINT_DIE | TAINT_WARN | TAINT_BAD_PAGE,
            Class::Oops => TAINT_DIE,
            Class::Kasan | Class::Kfence => TAINT_BAD_PAGE,
            Class::Ubsan => TAINT_DIE,
            Class::SoftLockup => TAINT_SOFTLOCKUP,
            Class::CallTrace
            | Class::Lockdep
            | Class::HungTask
            | Class::RcuStall
            | Class::Kmemleak
            | Class::Panic => 0,
        }
    }
}

/// One kernel report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub class: Class,
    /// The header record's text (its first line, without surrounding newlines).
    pub header: String,
    pub seq: u64,
}

/// How an open report ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// At "---[ end trace" / "---[ end Kernel panic" (WARN, oops, BUG(), UBSAN, panic).
    Marker,
    /// At the closing line of '=' (KASAN, KFENCE, KCSAN, KMSAN).
    Separator,
    /// At the " </TASK>" closing its backtrace; after it, some classes go on with more
    /// (RCU stalls and lockups dump other CPUs' stacks).
    Backtrace,
    /// kmemleak: while records start with "kmemleak: ", up to the "new suspected memory leaks" line.
    Kmemleak,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// A `Backtrace` report saw " </TASK>": it is over unless the next record continues it.
    Tail,
}

#[derive(Debug, Clone)]
struct OpenReport {
    class: Class,
    end: End,
    phase: Phase,
    records: usize,
    last_ts_us: u64,
    /// The report already has its "Oops:" line (a BUG/page-fault header is followed by one).
    oops_seen: bool,
}

/// What a header line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    class: Class,
    end: End,
    /// Only a header when no report is open ("Call Trace:" of a dump_stack(), plain "WARNING:"
    /// lines such as the unwinder's); inside a report it is part of it.
    weak: bool,
    /// An "Oops: ..." line (the die() header), which continues an open BUG/oops/UBSAN report.
    oops_line: bool,
}

impl Header {
    fn new(class: Class, end: End) -> Header {
        Header {
            class,
            end,
            weak: false,
            oops_line: false,
        }
    }
    fn weak(mut self) -> Header {
        self.weak = true;
        self
    }
    fn oops_line(mut self) -> Header {
        self.oops_line = true;
        self
    }
}

/// Stream parser: feed every kernel log record of a VM in order; it returns a [`Report`] when a
/// record starts a new report (the header) and absorbs the rest of that report's records.
#[derive(Debug, Clone, Default)]
pub struct ReportParser {
    open: Option<OpenReport>,
}

impl ReportParser {
    pub fn new() -> Self {
        ReportParser { open: None }
    }

    pub fn feed(&mut self, rec: &KmsgRecord) -> Option<Report> {
        let line = first_line(&rec.text);
        if let Some(mut open) = self.open.take() {
            let gap = rec.ts_us.saturating_sub(open.last_ts_us);
            if open.records < MAX_REPORT_RECORDS && gap <= MAX_GAP_US {
                open.records += 1;
                open.last_ts_us = rec.ts_us;
                match absorb(&mut open, line) {
                    Absorb::Keep => {
                        self.open = Some(open);
                        return None;
                    }
                    Absorb::Closed => return None,
                    Absorb::NotMine => {}
                }
            }
        }
        self.start(rec, line)
    }

    /// `line` with no report open.
    fn start(&mut self, rec: &KmsgRecord, line: &str) -> Option<Report> {
        if is_separator(line) || is_end_marker(line) || is_task_end(line) {
            return None;
        }
        let h = classify(line)?;
        let summary = h.end == End::Kmemleak && is_kmemleak_summary(line);
        if !summary {
            self.open = Some(OpenReport {
                class: h.class,
                end: h.end,
                phase: Phase::Open,
                records: 1,
                last_ts_us: rec.ts_us,
                oops_seen: h.oops_line,
            });
        }
        Some(Report {
            class: h.class,
            header: line.to_owned(),
            seq: rec.seq,
        })
    }
}

enum Absorb {
    /// Part of the open report, which goes on.
    Keep,
    /// Part of the open report, which it ends.
    Closed,
    /// The open report is over; `line` must be looked at afresh.
    NotMine,
}

fn absorb(open: &mut OpenReport, line: &str) -> Absorb {
    if is_end_marker(line) {
        return if open.phase == Phase::Open {
            Absorb::Closed
        } else {
            Absorb::NotMine
        };
    }
    // The '=' line ends KASAN/KFENCE reports; before anything else it opens the next report.
    if is_separator(line) {
        return if open.phase == Phase::Open && !is_cut_here(line) {
            Absorb::Closed
        } else {
            Absorb::NotMine
        };
    }
    let header = classify(line);
    if open.end == End::Kmemleak {
        if !line.starts_with("kmemleak: ") || header.is_some_and(|h| h.class != Class::Kmemleak) {
            return Absorb::NotMine;
        }
        return if is_kmemleak_summary(line) {
            Absorb::Closed
        } else {
            Absorb::Keep
        };
    }
    if let Some(h) = header {
        if h.class == Class::Panic {
            return Absorb::NotMine;
        }
        if h.oops_line
            && !open.oops_seen
            && open.phase == Phase::Open
            && matches!(open.class, Class::Bug | Class::Oops | Class::Ubsan)
        {
            // "BUG: kernel NULL pointer dereference" / "kernel BUG at" / "BUG: ... stack guard
            // page" / UBSAN trap, then die(): "Oops: ...". From here on it ends like an oops.
            open.oops_seen = true;
            open.end = End::Marker;
            return Absorb::Keep;
        }
        if !h.weak || open.phase == Phase::Tail {
            return Absorb::NotMine;
        }
        return Absorb::Keep;
    }
    if open.phase == Phase::Tail {
        if tail_continues(open.class, line) {
            open.phase = Phase::Open;
            return Absorb::Keep;
        }
        return Absorb::NotMine;
    }
    if open.end == End::Backtrace && is_task_end(line) {
        open.phase = Phase::Tail;
    }
    Absorb::Keep
}

/// After a backtrace's " </TASK>", does `line` carry the same report on?
fn tail_continues(class: Class, line: &str) -> bool {
    let nmi = || {
        // lib/nmi_backtrace.c, kernel/sched/core.c dump_cpu_task()
        line.starts_with("Sending NMI from CPU ")
            || line.starts_with("NMI backtrace for cpu ")
            || line.starts_with("Task dump for CPU ")
    };
    match class {
        // kernel/rcu/tree_stall.h (pr_fmt "rcu: "): kthread starvation, "RCU grace-period kthread
        // stack dump:", "Stack dump where RCU GP kthread last ran:", per-CPU dumps.
        Class::RcuStall => line.starts_with("rcu: ") || line.starts_with("Offline CPU ") || nmi(),
        // kernel/watchdog.c: softlockup_all_cpu_backtrace / hardlockup_all_cpu_backtrace;
        // kernel/hung_task.c: hung_task_all_cpu_backtrace.
        Class::SoftLockup | Class::HungTask => nmi(),
        _ => false,
    }
}

/// The first line of a record's text, without the newlines printk leaves around it
/// (`pr_warn("\nstack backtrace:\n")`) or trailing blanks.
fn first_line(text: &str) -> &str {
    let t = text.trim_start_matches(['\n', '\r']);
    t.split('\n').next().unwrap_or("").trim_end()
}

/// "------------[ cut here ]------------", or a line of only '=' (>= 10): what KASAN, KFENCE,
/// lockdep, SLUB print around a report. Not reports by themselves.
fn is_separator(line: &str) -> bool {
    is_cut_here(line) || (line.len() >= 10 && line.bytes().all(|b| b == b'='))
}

fn is_cut_here(line: &str) -> bool {
    line.starts_with("------------[ cut here ]")
}

/// kernel/panic.c print_oops_end_marker(), lib/ubsan.c ubsan_epilogue(), panic().
fn is_end_marker(line: &str) -> bool {
    line.starts_with("---[ end trace") || line.starts_with("---[ end Kernel panic")
}

/// arch/x86/kernel/dumpstack.c show_trace_log_lvl(): " </TASK>" closes a backtrace.
fn is_task_end(line: &str) -> bool {
    line.trim() == "</TASK>"
}

fn is_kmemleak_summary(line: &str) -> bool {
    line.starts_with("kmemleak: ") && line.contains(" new suspected memory leak")
}

/// Which report, if any, `line` starts. Specific classes are tried before the generic "BUG:" and
/// "WARNING:".
fn classify(line: &str) -> Option<Header> {
    use Class::*;
    use End::*;
    // kernel/panic.c panic()
    if line.starts_with("Kernel panic - not syncing") {
        return Some(Header::new(Panic, Marker));
    }
    // mm/kasan/report.c print_error_description(), kasan_report_async()
    if line.starts_with("BUG: KASAN:") {
        return Some(Header::new(Kasan, Separator));
    }
    // mm/kfence/report.c kfence_report_error()
    if line.starts_with("BUG: KFENCE:") {
        return Some(Header::new(Kfence, Separator));
    }
    // kernel/kcsan/report.c, mm/kmsan/report.c: '='-bracketed like KASAN.
    if line.starts_with("BUG: KCSAN:") || line.starts_with("BUG: KMSAN:") {
        return Some(Header::new(Bug, Separator));
    }
    // lib/ubsan.c ubsan_prologue() "UBSAN: %s in %s:%d:%d"; arch/x86/kernel/traps.c handle_bug()
    // with CONFIG_UBSAN_TRAP: "UBSAN: array index out of bounds at %pS" (then dies).
    if line.starts_with("UBSAN:") {
        return Some(Header::new(Ubsan, Marker));
    }
    if is_lockdep_header(line) {
        return Some(Header::new(Lockdep, Backtrace));
    }
    // kernel/hung_task.c check_hung_task()
    if line.starts_with("INFO: task ") && line.contains(" blocked for more than ") {
        return Some(Header::new(HungTask, Backtrace));
    }
    if is_rcu_stall_header(line) {
        return Some(Header::new(RcuStall, Backtrace));
    }
    // kernel/watchdog.c (pr_fmt "watchdog: "): soft lockup and hard LOCKUP.
    let wd = line
        .strip_prefix("watchdog: ")
        .or_else(|| line.strip_prefix("NMI watchdog: "))
        .unwrap_or(line);
    if wd.starts_with("BUG: soft lockup") || wd.contains("Watchdog detected hard LOCKUP") {
        return Some(Header::new(SoftLockup, Backtrace));
    }
    // mm/kmemleak.c (pr_fmt "kmemleak: "): kmemleak_scan() and, with kmemleak.verbose,
    // print_unreferenced() before it.
    if let Some(rest) = line.strip_prefix("kmemleak: ") {
        if rest.starts_with("unreferenced object ") || is_kmemleak_summary(line) {
            return Some(Header::new(Class::Kmemleak, End::Kmemleak));
        }
        return None;
    }
    // arch/x86/mm/fault.c show_fault_oops(); older kernels "BUG: unable to handle kernel ...".
    if line.starts_with("BUG: kernel NULL pointer dereference")
        || line.starts_with("BUG: unable to handle ")
    {
        return Some(Header::new(Oops, Marker));
    }
    // arch/x86/kernel/dumpstack.c __die_header(): "Oops: %s: %04lx [#%d]..." (6.12 puts the
    // general protection fault description there; older kernels printed it as the header).
    if line.starts_with("Oops:") || line.starts_with("Oops#") {
        return Some(Header::new(Oops, Marker).oops_line());
    }
    if line.starts_with("general protection fault") {
        return Some(Header::new(Oops, Marker).oops_line());
    }
    // arch/x86/kernel/traps.c exc_double_fault(), then die("double fault").
    if line.starts_with("PANIC: double fault") {
        return Some(Header::new(Oops, Marker));
    }
    // lib/bug.c __report_bug(): "kernel BUG at %s:%u!" / "Kernel BUG at %pB [verbose debug info
    // unavailable]", then die("invalid opcode").
    if line.starts_with("kernel BUG at ") || line.starts_with("Kernel BUG at ") {
        return Some(Header::new(Bug, Marker));
    }
    // mm/slub.c slab_bug(): "BUG %s (%s): %pV", %s being print_tainted().
    if line.starts_with("BUG ")
        && (line.contains(" (Not tainted): ") || line.contains(" (Tainted: "))
    {
        return Some(Header::new(Bug, Backtrace));
    }
    if line.starts_with("BUG: ") || line == "BUG:" {
        return Some(Header::new(Bug, Backtrace));
    }
    // kernel/panic.c __warn()
    if line.starts_with("WARNING: CPU: ") {
        return Some(Header::new(Warning, Marker));
    }
    if line.starts_with("WARNING: ") {
        return Some(Header::new(Warning, Backtrace).weak());
    }
    // A bare dump_stack(): arch/x86/kernel/dumpstack.c show_trace_log_lvl().
    if line == "Call Trace:" {
        return Some(Header::new(CallTrace, Backtrace).weak());
    }
    None
}

/// The report headers of kernel/locking/lockdep.c (v6.12), including lockdep_rcu_suspicious().
fn is_lockdep_header(line: &str) -> bool {
    const EXACT: &[&str] = &[
        "WARNING: possible circular locking dependency detected",
        "WARNING: possible recursive locking detected",
        "WARNING: inconsistent lock state",
        "WARNING: possible irq lock inversion dependency detected",
        "WARNING: suspicious RCU usage",
        "WARNING: bad unlock balance detected!",
        "WARNING: bad contention detected!",
        "WARNING: held lock freed!",
        "WARNING: lock held when returning to user space!",
        "WARNING: Nested lock was not taken",
        "WARNING: chain_key collision",
        "[ BUG: Invalid wait context ]",
        "INFO: trying to register non-static key.",
    ];
    if EXACT.contains(&line) {
        return true;
    }
    // print_bad_irq_dependency(): "WARNING: %s-safe -> %s-unsafe lock order detected"
    (line.starts_with("WARNING: ") && line.ends_with(" lock order detected"))
        // print_held_locks_bug(): "WARNING: %s/%d still has locks held!"
        || (line.starts_with("WARNING: ") && line.ends_with(" still has locks held!"))
        // print_lockdep_off(): "BUG: MAX_LOCKDEP_KEYS too low!", MAX_LOCKDEP_ENTRIES,
        // MAX_LOCKDEP_CHAINS, MAX_LOCKDEP_CHAIN_HLOCKS, MAX_STACK_TRACE_ENTRIES, MAX_LOCK_DEPTH
        || (line.starts_with("BUG: MAX_") && line.ends_with(" too low!"))
        // look_up_lock_class(), lockdep_init_map_type()
        || line.starts_with("BUG: looking up invalid subclass: ")
        || (line.starts_with("BUG: key ") && line.ends_with(" has not been registered!"))
}

/// kernel/rcu/tree_stall.h and tree_exp.h (pr_fmt "rcu: "), kernel/rcu/tasks.h (no prefix).
fn is_rcu_stall_header(line: &str) -> bool {
    let s = line.strip_prefix("rcu: ").unwrap_or(line);
    s.starts_with("INFO: ")
        && (s.contains(" detected stalls on ")
            || s.contains(" self-detected stall on ")
            || s.contains(" detected stall, but ")
            || s.contains(" detected expedited stalls"))
}

/// All reports in `records`.
pub fn reports(records: &[KmsgRecord]) -> Vec<Report> {
    let mut p = ReportParser::new();
    records.iter().filter_map(|r| p.feed(r)).collect()
}

/// Is a report of `class` allowed by the `allow:` list (class names, plus "all")?
pub fn is_allowed(class: Class, allow: &[String]) -> bool {
    allow.iter().any(|a| a == "all" || a == class.name())
}

/// New taint bits (after & !before) that neither the expected O/E module taint nor the given
/// allowed reports' classes explain; None if nothing unexplained, or if allow has "taint"/"all".
pub fn unexplained_taint(
    before: u64,
    after: u64,
    allowed_reports: &[Class],
    allow: &[String],
) -> Option<u64> {
    if allow.iter().any(|a| a == "all" || a == "taint") {
        return None;
    }
    let explained = allowed_reports
        .iter()
        .fold(EXPECTED_TAINT, |m, c| m | c.taint_bits());
    let new = after & !before & !explained;
    (new != 0).then_some(new)
}

pub fn taint_letters(bits: u64) -> String {
    TAINT_LETTERS
        .chars()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1 << 9;
    const O: u64 = 1 << 12;

    /// One record per line; "\x0a" inside a line is a newline inside the record, as /dev/kmsg
    /// escapes it (e.g. `pr_err("BUG: KFENCE: ... %pS\n\n")` keeps one trailing newline).
    /// Records are 10 µs apart, as a report printed in one burst.
    fn recs_at(text: &str, seq0: u64, ts0: u64) -> Vec<KmsgRecord> {
        let text = text.strip_prefix('\n').unwrap_or(text);
        let text = text.strip_suffix('\n').unwrap_or(text);
        text.split('\n')
            .enumerate()
            .map(|(i, l)| KmsgRecord {
                seq: seq0 + i as u64,
                level: 4,
                ts_us: ts0 + 10 * i as u64,
                text: l.replace("\\x0a", "\n"),
            })
            .collect()
    }

    fn recs(text: &str) -> Vec<KmsgRecord> {
        recs_at(text, 100, 5_000_000)
    }

    fn classes(text: &str) -> Vec<Class> {
        reports(&recs(text)).iter().map(|r| r.class).collect()
    }

    // All report texts below are faithfully reconstructed from the v6.12 printk format strings
    // (files named per text), with addresses, offsets and register values made up. Lines that
    // start with a space are as the kernel prints them (trace entries " %pS", " <TASK>").

    // kernel/panic.c __warn() reached from lib/bug.c report_bug() (x86 WARN_ON: cut here first,
    // show_regs(regs), print_oops_end_marker()); lib/dump_stack.c; arch/x86/kernel/dumpstack.c.
    const WARN: &str = r#"
------------[ cut here ]------------
WARNING: CPU: 0 PID: 231 at drivers/misc/kchan/kchan.c:42 kchan_write+0x2a/0x60 [kchan]
Modules linked in: kchan(OE)
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:kchan_write+0x2a/0x60 [kchan]
Code: 48 89 fb 48 85 f6 74 1c 48 8b 46 08 48 85 c0 74 13 48 89 c7 e8 5e fe ff ff 31 c0 5b c3 cc cc cc cc <0f> 0b b8 ea ff ff ff 5b c3 cc cc cc cc 66 0f 1f 84 00 00 00 00 00
RSP: 0018:ffffc900004b7e28 EFLAGS: 00010246
RAX: 0000000000000000 RBX: ffff888004c1e000 RCX: 0000000000000000
RDX: 0000000000000004 RSI: 0000000000000000 RDI: ffff888004c1e000
RBP: ffffc900004b7e58 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: 0000000000000004
R13: 00007ffd5a3c1e40 R14: ffffc900004b7f08 R15: 0000000000000000
FS:  00007f6f4c8e9740(0000) GS:ffff88803ec00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 00007f6f4c6e1000 CR3: 0000000004b96000 CR4: 00000000000006f0
Call Trace:
 <TASK>
 ? __warn+0x89/0x130
 ? kchan_write+0x2a/0x60 [kchan]
 ? report_bug+0x17e/0x1b0
 ? handle_bug+0x58/0x90
 ? exc_invalid_op+0x1b/0x80
 ? asm_exc_invalid_op+0x1a/0x20
 ? kchan_write+0x2a/0x60 [kchan]
 vfs_write+0xf2/0x420
 ksys_write+0x6d/0xf0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
RIP: 0033:0x7f6f4c9f2a37
Code: 10 00 f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 f3 0f 1e fa 64 8b 04 25 18 00 00 00 85 c0 75 10 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 51 c3 48 83 ec 28 48 89 54 24 18 48 89 74 24
RSP: 002b:00007ffd5a3c1e18 EFLAGS: 00000246 ORIG_RAX: 0000000000000001
RAX: ffffffffffffffda RBX: 0000000000000004 RCX: 00007f6f4c9f2a37
RDX: 0000000000000004 RSI: 00007ffd5a3c1e40 RDI: 0000000000000003
RBP: 00007ffd5a3c1e40 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000246 R12: 0000000000000004
R13: 0000000000000003 R14: 0000000000000000 R15: 0000000000000000
 </TASK>
---[ end trace 0000000000000000 ]---
"#;

    // mm/kasan/report.c start_report() .. end_report() (generic KASAN), lib/dump_stack.c,
    // lib/stackdepot.c via kernel/stacktrace.c stack_trace_print(), mm/debug.c dump_page(),
    // kernel/panic.c add_taint() "Disabling lock debugging" after the closing '=' line.
    const KASAN_OOB: &str = r#"
==================================================================
BUG: KASAN: slab-out-of-bounds in kchan_read+0x5e/0x90 [kchan]
Read of size 1 at addr ffff888004a1f4c8 by task kspec-agent/231

CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 print_report+0xc1/0x5e0
 ? kchan_read+0x5e/0x90 [kchan]
 kasan_report+0xbd/0xf0
 ? kchan_read+0x5e/0x90 [kchan]
 kchan_read+0x5e/0x90 [kchan]
 vfs_read+0xd8/0x3d0
 ksys_read+0x6d/0xf0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
RIP: 0033:0x7f6f4c9f29a1
Code: 00 48 8b 15 79 a4 0d 00 f7 d8 64 89 02 b8 ff ff ff ff eb bd e8 50 e0 01 00 f3 0f 1e fa 80 3d 35 26 0e 00 00 74 13 31 c0 0f 05 <48> 3d 00 f0 ff ff 77 4f c3 66 0f 1f 44 00 00 55 48 89 e5 48 83 ec
RSP: 002b:00007ffd5a3c1e18 EFLAGS: 00000246 ORIG_RAX: 0000000000000000
RAX: ffffffffffffffda RBX: 0000000000000010 RCX: 00007f6f4c9f29a1
RDX: 0000000000000010 RSI: 00007ffd5a3c1e40 RDI: 0000000000000003
RBP: 00007ffd5a3c1e40 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000246 R12: 0000000000000010
R13: 0000000000000003 R14: 0000000000000000 R15: 0000000000000000
 </TASK>

Allocated by task 231:
 kasan_save_stack+0x30/0x50
 kasan_save_track+0x14/0x30
 __kasan_kmalloc+0x8f/0xa0
 __kmalloc_cache_noprof+0x181/0x340
 kchan_open+0x3b/0x80 [kchan]
 chrdev_open+0xc3/0x240
 do_dentry_open+0x16a/0x4d0
 vfs_open+0x2e/0xe0
 path_openat+0x7f3/0x1290
 do_filp_open+0xc4/0x170
 do_sys_openat2+0xae/0xe0
 __x64_sys_openat+0x55/0xa0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e

The buggy address belongs to the object at ffff888004a1f4c0\x0a which belongs to the cache kmalloc-8 of size 8
The buggy address is located 0 bytes to the right of\x0a allocated 8-byte region [ffff888004a1f4c0, ffff888004a1f4c8)

The buggy address belongs to the physical page:
page: refcount:1 mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x4a1f
flags: 0x100000000000000(node=0|zone=1)
page_type: f5(slab)
raw: 0100000000000000 ffff888001041500 dead000000000100 dead000000000122
raw: 0000000000000000 0000000080800080 00000001f5000000 0000000000000000
page dumped because: kasan: bad access detected

Memory state around the buggy address:
 ffff888004a1f380: fa fc fc fc fa fc fc fc fa fc fc fc fa fc fc fc
 ffff888004a1f400: fa fc fc fc fa fc fc fc fa fc fc fc fa fc fc fc
>ffff888004a1f480: fa fc fc fc fa fc fc fc fa fc fc fc fa fc 00 fc
                                                              ^
 ffff888004a1f500: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc
 ffff888004a1f580: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc
==================================================================
Disabling lock debugging due to kernel taint
"#;

    // mm/kasan/report.c, a second report (kasan_multi_shot) right after the first.
    const KASAN_UAF: &str = r#"
==================================================================
BUG: KASAN: slab-use-after-free in kchan_poll+0x31/0x70 [kchan]
Read of size 8 at addr ffff888004a2b010 by task kspec-agent/231

CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G    B      OE      6.12.117 #1
Tainted: [B]=BAD_PAGE, [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 print_report+0xc1/0x5e0
 kasan_report+0xbd/0xf0
 kchan_poll+0x31/0x70 [kchan]
 do_sys_poll+0x2b4/0x5e0
 __x64_sys_poll+0x61/0x190
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>

Allocated by task 231:
 kasan_save_stack+0x30/0x50
 kasan_save_track+0x14/0x30
 __kasan_kmalloc+0x8f/0xa0
 kchan_open+0x3b/0x80 [kchan]

Freed by task 231:
 kasan_save_stack+0x30/0x50
 kasan_save_track+0x14/0x30
 kasan_save_free_info+0x3b/0x60
 __kasan_slab_free+0x51/0x70
 kfree+0x137/0x3a0
 kchan_release+0x1c/0x30 [kchan]

The buggy address belongs to the object at ffff888004a2b000\x0a which belongs to the cache kmalloc-32 of size 32
The buggy address is located 16 bytes inside of\x0a freed 32-byte region [ffff888004a2b000, ffff888004a2b020)

Memory state around the buggy address:
 ffff888004a2af00: fa fb fb fb fc fc fc fc fa fb fb fb fc fc fc fc
>ffff888004a2b000: fa fb fb fb fc fc fc fc fa fb fb fb fc fc fc fc
                         ^
 ffff888004a2b080: fa fb fb fb fc fc fc fc 00 00 00 fc fc fc fc fc
==================================================================
"#;

    // arch/x86/mm/fault.c show_fault_oops()/dump_pagetable()/page_fault_oops() ("Oops" die,
    // "CR2:"), arch/x86/kernel/dumpstack.c __die_header()/__die_body()/oops_end() (end marker,
    // then the "executive summary" registers), kernel/exit.c make_task_dead() note.
    const NULL_DEREF: &str = r#"
BUG: kernel NULL pointer dereference, address: 0000000000000000
#PF: supervisor write access in kernel mode
#PF: error_code(0x0002) - not-present page
PGD 0 P4D 0
Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:kchan_ioctl+0x15/0x40 [kchan]
Code: 90 90 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 81 fe 01 6b 00 00 75 0b <c7> 04 25 00 00 00 00 01 00 00 00 31 c0 c3 cc cc cc cc 66 90 90 90
RSP: 0018:ffffc900004b7e90 EFLAGS: 00010246
RAX: 0000000000000000 RBX: ffff888004c1e000 RCX: 0000000000000000
RDX: 0000000000000000 RSI: 0000000000006b01 RDI: ffff888004c1e000
RBP: ffffc900004b7ea8 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: 0000000000006b01
R13: 0000000000000000 R14: ffff888004c1e000 R15: 0000000000000000
FS:  00007f6f4c8e9740(0000) GS:ffff88803ec00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 0000000000000000 CR3: 0000000004b96000 CR4: 00000000000006f0
Call Trace:
 <TASK>
 ? __die+0x23/0x70
 ? page_fault_oops+0x173/0x5b0
 ? exc_page_fault+0x7e/0x180
 ? asm_exc_page_fault+0x26/0x30
 ? kchan_ioctl+0x15/0x40 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
RIP: 0033:0x7f6f4c9f8ced
Code: 04 25 28 00 00 00 48 89 45 c8 31 c0 48 8d 45 10 c7 45 b0 10 00 00 00 48 89 45 b8 48 8d 45 d0 48 89 45 c0 b8 10 00 00 00 0f 05 <89> c2 3d 00 f0 ff ff 77 1a 48 8b 45 c8 64 48 2b 04 25 28 00 00 00
RSP: 002b:00007ffd5a3c1dc0 EFLAGS: 00000246 ORIG_RAX: 0000000000000010
RAX: ffffffffffffffda RBX: 0000000000000003 RCX: 00007f6f4c9f8ced
RDX: 0000000000000000 RSI: 0000000000006b01 RDI: 0000000000000003
RBP: 00007ffd5a3c1e10 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000246 R12: 0000000000000003
R13: 0000000000000000 R14: 0000000000000000 R15: 0000000000000000
 </TASK>
Modules linked in: kchan(OE)
CR2: 0000000000000000
---[ end trace 0000000000000000 ]---
RIP: 0010:kchan_ioctl+0x15/0x40 [kchan]
Code: 90 90 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 81 fe 01 6b 00 00 75 0b <c7> 04 25 00 00 00 00 01 00 00 00 31 c0 c3 cc cc cc cc 66 90 90 90
RSP: 0018:ffffc900004b7e90 EFLAGS: 00010246
RAX: 0000000000000000 RBX: ffff888004c1e000 RCX: 0000000000000000
RDX: 0000000000000000 RSI: 0000000000006b01 RDI: ffff888004c1e000
RBP: ffffc900004b7ea8 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: 0000000000006b01
R13: 0000000000000000 R14: ffff888004c1e000 R15: 0000000000000000
FS:  00007f6f4c8e9740(0000) GS:ffff88803ec00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 0000000000000000 CR3: 0000000004b96000 CR4: 00000000000006f0
note: kspec-agent[231] exited with irqs disabled
"#;

    // lib/bug.c __report_bug() (cut here, "kernel BUG at"), arch/x86/kernel/traps.c
    // handle_invalid_op() -> die("invalid opcode"), arch/x86/kernel/dumpstack.c.
    const BUG_ON: &str = r#"
------------[ cut here ]------------
kernel BUG at drivers/misc/kchan/kchan.c:57!
Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:kchan_release+0x10/0x20 [kchan]
Code: 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 48 8b 46 18 48 85 c0 74 02 <0f> 0b 31 c0 c3 cc cc cc cc 66 2e 0f 1f 84 00 00 00 00 00 90 90
RSP: 0018:ffffc900004b7ec8 EFLAGS: 00010282
RAX: ffff888004a2b000 RBX: ffff888004c1e000 RCX: 0000000000000000
RDX: 0000000000000000 RSI: ffff888004c1e000 RDI: ffff888003f1a2c0
RBP: ffffc900004b7ef0 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: ffff888003f1a2c0
R13: 0000000000000000 R14: ffff888004c1e000 R15: 0000000000000000
FS:  00007f6f4c8e9740(0000) GS:ffff88803ec00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 00007f6f4c6e1000 CR3: 0000000004b96000 CR4: 00000000000006f0
Call Trace:
 <TASK>
 ? die+0x36/0x90
 ? do_trap+0xdd/0x100
 ? kchan_release+0x10/0x20 [kchan]
 ? do_error_trap+0x6a/0x90
 ? exc_invalid_op+0x50/0x70
 ? asm_exc_invalid_op+0x1a/0x20
 ? kchan_release+0x10/0x20 [kchan]
 __fput+0xea/0x2d0
 __x64_sys_close+0x3c/0x80
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
Modules linked in: kchan(OE)
---[ end trace 0000000000000000 ]---
RIP: 0010:kchan_release+0x10/0x20 [kchan]
RSP: 0018:ffffc900004b7ec8 EFLAGS: 00010282
"#;

    // kernel/locking/lockdep.c print_circular_bug(): header (with print_kernel_ident()),
    // print_lock(), print_circular_bug_entry() (stack_trace_print with 6 spaces),
    // print_circular_lock_scenario(), lockdep_print_held_locks(), "stack backtrace:" dump_stack().
    const LOCKDEP_CIRCULAR: &str = r#"

======================================================
WARNING: possible circular locking dependency detected
6.12.117 #1 Tainted: G           OE
------------------------------------------------------
kspec-agent/231 is trying to acquire lock:
ffff888004b2c0a8 (&kc->b){+.+.}-{4:4}, at: kchan_ab+0x3c/0x80 [kchan]
\x0abut task is already holding lock:
ffff888004b2c070 (&kc->a){+.+.}-{4:4}, at: kchan_ab+0x28/0x80 [kchan]
\x0awhich lock already depends on the new lock.\x0a
\x0athe existing dependency chain (in reverse order) is:
\x0a-> #1 (&kc->a){+.+.}-{4:4}:
       __mutex_lock+0x9c/0xde0
       kchan_ba+0x3c/0x80 [kchan]
       kchan_ioctl+0x55/0x70 [kchan]
       __x64_sys_ioctl+0x94/0xd0
       do_syscall_64+0x82/0x160
       entry_SYSCALL_64_after_hwframe+0x76/0x7e
\x0a-> #0 (&kc->b){+.+.}-{4:4}:
       __lock_acquire+0x1422/0x2360
       lock_acquire+0xd1/0x2f0
       __mutex_lock+0x9c/0xde0
       kchan_ab+0x3c/0x80 [kchan]
       kchan_ioctl+0x4a/0x70 [kchan]
       __x64_sys_ioctl+0x94/0xd0
       do_syscall_64+0x82/0x160
       entry_SYSCALL_64_after_hwframe+0x76/0x7e
\x0aother info that might help us debug this:\x0a
 Possible unsafe locking scenario:\x0a
       CPU0                    CPU1
       ----                    ----
  lock(&kc->a);
                               lock(&kc->b);
                               lock(&kc->a);
  lock(&kc->b);
\x0a *** DEADLOCK ***\x0a
1 lock held by kspec-agent/231:
 #0: ffff888004b2c070 (&kc->a){+.+.}-{4:4}, at: kchan_ab+0x28/0x80 [kchan]
\x0astack backtrace:
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x7e/0xc0
 print_circular_bug+0x2c1/0x350
 check_noncircular+0x10b/0x120
 __lock_acquire+0x1422/0x2360
 lock_acquire+0xd1/0x2f0
 __mutex_lock+0x9c/0xde0
 kchan_ab+0x3c/0x80 [kchan]
 kchan_ioctl+0x4a/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
"#;

    // kernel/locking/lockdep.c lockdep_rcu_suspicious().
    const SUSPICIOUS_RCU: &str = r#"

=============================
WARNING: suspicious RCU usage
6.12.117 #1 Tainted: G           OE
-----------------------------
drivers/misc/kchan/kchan.c:101 suspicious rcu_dereference_check() usage!
\x0aother info that might help us debug this:\x0a
\x0arcu_scheduler_active = 2, debug_locks = 1
no locks held by kspec-agent/231.
\x0astack backtrace:
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x7e/0xc0
 lockdep_rcu_suspicious+0x15b/0x1b0
 kchan_lookup+0x6e/0x90 [kchan]
 kchan_ioctl+0x3f/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
"#;

    // mm/kfence/report.c kfence_report_error() (UAF), kfence_print_object(), kfence_print_stack(),
    // dump_stack_print_info(KERN_ERR). "\n\n"-ended printks keep one newline in the record.
    const KFENCE_UAF: &str = r#"
==================================================================
BUG: KFENCE: use-after-free read in kchan_read+0x5e/0x90 [kchan]\x0a
Use-after-free read at 0x000000009f8e7d6c (in kfence-#12):
 kchan_read+0x5e/0x90 [kchan]
 vfs_read+0xd8/0x3d0
 ksys_read+0x6d/0xf0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e

kfence-#12: 0x000000009f8e7d6c-0x00000000c6a0e1f3, size=32, cache=kmalloc-32\x0a
allocated by task 231 on cpu 0 at 41.123456s (0.004561s ago):
 __kmalloc_cache_noprof+0x1d4/0x340
 kchan_open+0x3b/0x80 [kchan]
 chrdev_open+0xc3/0x240
 do_dentry_open+0x16a/0x4d0
 vfs_open+0x2e/0xe0

freed by task 231 on cpu 0 at 41.125012s (0.003005s ago):
 kchan_release+0x1c/0x30 [kchan]
 __fput+0xea/0x2d0
 __x64_sys_close+0x3c/0x80
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e

CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
==================================================================
"#;

    // lib/ubsan.c ubsan_prologue() (CUT_HERE, "UBSAN: %s in %s:%d:%d"),
    // __ubsan_handle_out_of_bounds(), ubsan_epilogue() (dump_stack, "---[ end trace ]---").
    const UBSAN_OOB: &str = r#"
------------[ cut here ]------------
UBSAN: array-index-out-of-bounds in drivers/misc/kchan/kchan.c:88:12
index 8 is out of range for type 'u8[8]'
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 __ubsan_handle_out_of_bounds+0xa3/0xe0
 kchan_poke+0x4c/0x60 [kchan]
 kchan_ioctl+0x61/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
---[ end trace ]---
"#;

    // kernel/hung_task.c check_hung_task(), kernel/sched/core.c sched_show_task(),
    // kernel/locking/lockdep.c debug_show_all_locks() (after the task, ends with '=').
    const HUNG_TASK: &str = r#"
INFO: task kspec-agent:231 blocked for more than 122 seconds.
      Tainted: G           OE      6.12.117 #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:kspec-agent     state:D stack:0     pid:231   tgid:231   ppid:1      flags:0x00004002
Call Trace:
 <TASK>
 __schedule+0x3f6/0xb20
 schedule+0x27/0xf0
 schedule_preempt_disabled+0x15/0x30
 __mutex_lock.constprop.0+0x3c9/0x6e0
 kchan_ioctl+0x2e/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
RIP: 0033:0x7f6f4c9f8ced
RSP: 002b:00007ffd5a3c1dc0 EFLAGS: 00000246 ORIG_RAX: 0000000000000010
RAX: ffffffffffffffda RBX: 0000000000000003 RCX: 00007f6f4c9f8ced
RDX: 0000000000000000 RSI: 0000000000006b02 RDI: 0000000000000003
RBP: 00007ffd5a3c1e10 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000246 R12: 0000000000000003
R13: 0000000000000000 R14: 0000000000000000 R15: 0000000000000000
 </TASK>
\x0aShowing all locks held in the system:
1 lock held by khungtaskd/29:
 #0: ffffffff82b5e0e0 (rcu_read_lock){....}-{1:2}, at: debug_show_all_locks+0x36/0x1c0
1 lock held by kspec-agent/230:
 #0: ffff888004b2c070 (&kc->a){+.+.}-{4:4}, at: kchan_ioctl+0x2e/0x70 [kchan]

=============================================\x0a
"#;

    // kernel/rcu/tree_stall.h print_other_cpu_stall() (pr_fmt "rcu: "), print_cpu_stall_info(),
    // rcu_dump_cpu_stacks() -> dump_cpu_task() -> lib/nmi_backtrace.c, and
    // rcu_check_gp_kthread_starvation() with sched_show_task(): several backtraces, one report.
    const RCU_STALL: &str = r#"
rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
rcu: 	1-...!: (0 ticks this GP) idle=7fc4/1/0x4000000000000000 softirq=1544/1544 fqs=0
rcu: 	(detected by 0, t=21002 jiffies, g=2113, q=55 ncpus=2)
Sending NMI from CPU 0 to CPUs 1:
NMI backtrace for cpu 1
CPU: 1 UID: 0 PID: 232 Comm: kchan-spin Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:kchan_spin+0x12/0x30 [kchan]
Code: 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 fa 66 90 <eb> fe 66 2e 0f 1f 84 00 00 00 00 00 90 90 90 90 90 90 90 90 90 90
RSP: 0018:ffffc900004c7e98 EFLAGS: 00000046
RAX: 0000000000000000 RBX: ffff888004c1e000 RCX: 0000000000000000
RDX: 0000000000000000 RSI: 0000000000000000 RDI: 0000000000000000
RBP: ffffc900004c7ea8 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: 0000000000000000
R13: 0000000000000000 R14: 0000000000000000 R15: 0000000000000000
FS:  00007f6f4c8e9740(0000) GS:ffff88803ed00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 00007f6f4c6e1000 CR3: 0000000004b96000 CR4: 00000000000006f0
Call Trace:
 <NMI>
 ? nmi_cpu_backtrace+0xbf/0x140
 ? nmi_cpu_backtrace_handler+0x11/0x20
 ? nmi_handle+0x62/0x160
 ? default_do_nmi+0x45/0x120
 ? exc_nmi+0x12b/0x1b0
 ? end_repeat_nmi+0xf/0x53
 </NMI>
 <TASK>
 kchan_ioctl+0x69/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
rcu: rcu_preempt kthread starved for 21004 jiffies! g2113 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x0 ->cpu=1
rcu: 	Unless rcu_preempt kthread gets sufficient CPU time, OOM is now expected behavior.
rcu: RCU grace-period kthread stack dump:
task:rcu_preempt     state:R  running task     stack:0     pid:17    tgid:17    ppid:2      flags:0x00004000
Call Trace:
 <TASK>
 __schedule+0x3f6/0xb20
 schedule+0x27/0xf0
 schedule_timeout+0x9e/0x160
 rcu_gp_fqs_loop+0x10b/0x520
 rcu_gp_kthread+0xd9/0x190
 kthread+0xd2/0x100
 ret_from_fork+0x34/0x50
 ret_from_fork_asm+0x1a/0x30
 </TASK>
rcu: Stack dump where RCU GP kthread last ran:
Sending NMI from CPU 0 to CPUs 1:
NMI backtrace for cpu 1
CPU: 1 UID: 0 PID: 232 Comm: kchan-spin Tainted: G           OE      6.12.117 #1
RIP: 0010:kchan_spin+0x12/0x30 [kchan]
Call Trace:
 <TASK>
 kchan_ioctl+0x69/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
"#;

    // kernel/watchdog.c watchdog_timer_fn() (pr_fmt "watchdog: "), show_regs() from the hrtimer
    // interrupt (<IRQ> section, then the interrupted task with its pt_regs).
    const SOFT_LOCKUP: &str = r#"
watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kspec-agent:231]
Modules linked in: kchan(OE)
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:kchan_spin+0x12/0x30 [kchan]
Code: 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 66 90 <eb> fe 66 2e 0f 1f 84 00 00 00 00 00 90 90 90 90 90 90 90 90 90 90
RSP: 0018:ffffc900004b7e98 EFLAGS: 00000246
RAX: 0000000000000000 RBX: ffff888004c1e000 RCX: 0000000000000000
RDX: 0000000000000000 RSI: 0000000000000000 RDI: 0000000000000000
RBP: ffffc900004b7ea8 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: 0000000000000000
R13: 0000000000000000 R14: 0000000000000000 R15: 0000000000000000
FS:  00007f6f4c8e9740(0000) GS:ffff88803ec00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 00007f6f4c6e1000 CR3: 0000000004b96000 CR4: 00000000000006f0
Call Trace:
 <IRQ>
 ? show_regs+0x6c/0x80
 ? watchdog_timer_fn+0x1e6/0x270
 ? __pfx_watchdog_timer_fn+0x10/0x10
 ? __hrtimer_run_queues+0x10f/0x2a0
 ? hrtimer_interrupt+0xf5/0x230
 ? __sysvec_apic_timer_interrupt+0x51/0x120
 ? sysvec_apic_timer_interrupt+0x6c/0x90
 </IRQ>
 <TASK>
 ? asm_sysvec_apic_timer_interrupt+0x1a/0x20
 ? kchan_spin+0x12/0x30 [kchan]
 kchan_ioctl+0x69/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
"#;

    // mm/kmemleak.c print_unreferenced() (kmemleak.verbose=1, pr_fmt "kmemleak: ",
    // print_hex_dump with pr_fmt(HEX_PREFIX)) and kmemleak_scan()'s summary.
    const KMEMLEAK_VERBOSE: &str = r#"
kmemleak: unreferenced object 0xffff888004a1f4c0 (size 8):
kmemleak:   comm "kspec-agent", pid 231, jiffies 4294893294
kmemleak:   hex dump (first 8 bytes):
kmemleak:     6b 63 68 61 6e 00 00 00                          kchan...
kmemleak:   backtrace (crc 1a2b3c4d):
kmemleak:     __kmalloc_cache_noprof+0x2c5/0x340
kmemleak:     kchan_open+0x3b/0x80 [kchan]
kmemleak:     chrdev_open+0xc3/0x240
kmemleak: unreferenced object 0xffff888004a2b000 (size 32):
kmemleak:   comm "kspec-agent", pid 231, jiffies 4294893301
kmemleak:   backtrace (crc 5e6f7a8b):
kmemleak:     __kmalloc_cache_noprof+0x2c5/0x340
kmemleak:     kchan_open+0x4f/0x80 [kchan]
kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)
"#;

    // A bare dump_stack(): lib/dump_stack.c dump_stack_print_info(), show_trace_log_lvl().
    const DUMP_STACK: &str = r#"
CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1
Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 kchan_ioctl+0x55/0x70 [kchan]
 __x64_sys_ioctl+0x94/0xd0
 do_syscall_64+0x82/0x160
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
"#;

    #[test]
    fn full_warn_is_one_warning_and_explains_its_taint() {
        let r = reports(&recs(WARN));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::Warning);
        assert!(r[0].header.starts_with("WARNING: CPU: 0 PID: 231 at "));
        assert_eq!(r[0].seq, 101);
        assert_eq!(unexplained_taint(0, W | O, &[Class::Warning], &[]), None);
        assert_eq!(unexplained_taint(0, W | O, &[], &[]), Some(W));
    }

    #[test]
    fn kasan_is_kasan_and_back_to_back_reports_count_twice() {
        let r = reports(&recs(KASAN_OOB));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::Kasan);
        assert_eq!(
            r[0].header,
            "BUG: KASAN: slab-out-of-bounds in kchan_read+0x5e/0x90 [kchan]"
        );
        assert!(is_allowed(Class::Kasan, &["kasan".into()]));
        assert!(!is_allowed(Class::Kasan, &["bug".into()]));

        let two = format!("{KASAN_OOB}{KASAN_UAF}");
        assert_eq!(classes(&two), vec![Class::Kasan, Class::Kasan]);
        assert_eq!(unexplained_taint(0, 1 << 5, &[Class::Kasan], &[]), None);
    }

    #[test]
    fn null_deref_is_one_oops() {
        let r = reports(&recs(NULL_DEREF));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::Oops);
        assert!(r[0]
            .header
            .starts_with("BUG: kernel NULL pointer dereference"));
        // ... and a panic_on_oops panic after it is a report of its own.
        let with_panic = format!(
            "{NULL_DEREF}Kernel panic - not syncing: Fatal exception\n\
             Kernel Offset: disabled\n\
             ---[ end Kernel panic - not syncing: Fatal exception ]---\n"
        );
        assert_eq!(classes(&with_panic), vec![Class::Oops, Class::Panic]);
    }

    #[test]
    fn bug_on_is_one_bug() {
        let r = reports(&recs(BUG_ON));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::Bug);
        assert_eq!(r[0].header, "kernel BUG at drivers/misc/kchan/kchan.c:57!");
        assert_eq!(unexplained_taint(0, (1 << 7) | O, &[Class::Bug], &[]), None);
    }

    #[test]
    fn lockdep_reports_are_lockdep_not_warning() {
        let r = reports(&recs(LOCKDEP_CIRCULAR));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::Lockdep);
        assert_eq!(classes(SUSPICIOUS_RCU), vec![Class::Lockdep]);
        // Back to back, then an ordinary dump_stack(): three reports.
        let all = format!("{LOCKDEP_CIRCULAR}{SUSPICIOUS_RCU}{DUMP_STACK}");
        assert_eq!(
            classes(&all),
            vec![Class::Lockdep, Class::Lockdep, Class::CallTrace]
        );
    }

    #[test]
    fn every_lockdep_header_is_lockdep() {
        for h in [
            "WARNING: possible circular locking dependency detected",
            "WARNING: possible recursive locking detected",
            "WARNING: inconsistent lock state",
            "WARNING: possible irq lock inversion dependency detected",
            "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
            "WARNING: SOFTIRQ-READ-safe -> SOFTIRQ-READ-unsafe lock order detected",
            "WARNING: suspicious RCU usage",
            "WARNING: bad unlock balance detected!",
            "WARNING: bad contention detected!",
            "WARNING: held lock freed!",
            "WARNING: kspec-agent/231 still has locks held!",
            "WARNING: lock held when returning to user space!",
            "WARNING: Nested lock was not taken",
            "WARNING: chain_key collision",
            "[ BUG: Invalid wait context ]",
            "BUG: MAX_LOCKDEP_KEYS too low!",
            "BUG: MAX_LOCKDEP_ENTRIES too low!",
            "BUG: MAX_LOCKDEP_CHAINS too low!",
            "BUG: MAX_LOCKDEP_CHAIN_HLOCKS too low!",
            "BUG: MAX_STACK_TRACE_ENTRIES too low!",
            "BUG: MAX_LOCK_DEPTH too low!",
            "BUG: looking up invalid subclass: 9",
            "BUG: key ffff888004b2c0a8 has not been registered!",
            "INFO: trying to register non-static key.",
        ] {
            assert_eq!(classes(h), vec![Class::Lockdep], "{h}");
        }
    }

    #[test]
    fn kfence_report() {
        let r = reports(&recs(KFENCE_UAF));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::Kfence);
        // The record kept its trailing newline; the header does not.
        assert_eq!(
            r[0].header,
            "BUG: KFENCE: use-after-free read in kchan_read+0x5e/0x90 [kchan]"
        );
    }

    #[test]
    fn ubsan_report() {
        let r = reports(&recs(UBSAN_OOB));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::Ubsan);
    }

    #[test]
    fn hung_task_report() {
        assert_eq!(classes(HUNG_TASK), vec![Class::HungTask]);
    }

    #[test]
    fn rcu_stall_with_several_backtraces_is_one_report() {
        let with_after = format!("{RCU_STALL}kchan: loaded\n{DUMP_STACK}");
        assert_eq!(
            classes(&with_after),
            vec![Class::RcuStall, Class::CallTrace]
        );
        // Self-detected (kernel/rcu/tree_stall.h print_cpu_stall()).
        let self_detected = "rcu: INFO: rcu_preempt self-detected stall on CPU\n\
             rcu: \t0-....: (20999 ticks this GP) idle=b3c4/1/0x4000000000000000 softirq=1234/1234 fqs=5250\n\
             rcu: \t(t=21000 jiffies g=2345 q=123 ncpus=1)\n";
        assert_eq!(classes(self_detected), vec![Class::RcuStall]);
        assert_eq!(
            classes("INFO: rcu_tasks detected stalls on tasks:"),
            vec![Class::RcuStall]
        );
    }

    #[test]
    fn soft_lockup_report() {
        let r = reports(&recs(SOFT_LOCKUP));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::SoftLockup);
        assert_eq!(
            unexplained_taint(0, (1 << 14) | O, &[Class::SoftLockup], &[]),
            None
        );
        assert_eq!(
            classes("watchdog: Watchdog detected hard LOCKUP on cpu 1"),
            vec![Class::SoftLockup]
        );
    }

    #[test]
    fn kmemleak_reports() {
        assert_eq!(
            classes("kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"),
            vec![Class::Kmemleak]
        );
        // Verbose: the objects and the summary are one report; what follows is not in it.
        let v = format!("{KMEMLEAK_VERBOSE}{DUMP_STACK}");
        assert_eq!(classes(&v), vec![Class::Kmemleak, Class::CallTrace]);
        // Two scans, two reports.
        let twice = "kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n\
                     kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n";
        assert_eq!(classes(twice), vec![Class::Kmemleak, Class::Kmemleak]);
    }

    #[test]
    fn bare_dump_stack_is_one_call_trace() {
        let r = reports(&recs(DUMP_STACK));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].class, Class::CallTrace);
        assert_eq!(r[0].header, "Call Trace:");
    }

    #[test]
    fn state_carries_across_feed_sequences() {
        let all = recs(WARN);
        let (first, second) = all.split_at(20);
        let mut p = ReportParser::new();
        let a: Vec<_> = first.iter().filter_map(|r| p.feed(r)).collect();
        let b: Vec<_> = second.iter().filter_map(|r| p.feed(r)).collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].class, Class::Warning);
        assert!(b.is_empty(), "{b:?}");
        // And the parser is ready for the next one.
        let k = recs_at(KASAN_OOB, 500, 6_000_000);
        let c: Vec<_> = k.iter().filter_map(|r| p.feed(r)).collect();
        assert_eq!(
            c.iter().map(|r| r.class).collect::<Vec<_>>(),
            [Class::Kasan]
        );
    }

    #[test]
    fn ordinary_lines_are_not_reports() {
        let text = "kchan: loaded\n\
                    kchan: BUGS fixed: 0\n\
                    traps: a.out[77] general protection fault ip:401136 sp:7ffd5a3c1e10 error:0 in a.out[401000+1000]\n\
                    a.out[78]: segfault at 0 ip 0000000000401136 sp 00007ffd5a3c1e10 error 6 in a.out[401000+1000]\n\
                    ---[ end trace 0000000000000000 ]---\n\
                    ==================================================================\n\
                    ------------[ cut here ]------------\n\
                     </TASK>\n\
                    INFO: lockdep is turned off.\n";
        assert!(classes(text).is_empty());
    }

    #[test]
    fn other_bug_kinds() {
        // kernel/sched/core.c __might_resched(): W taint, class bug.
        let might_sleep =
            "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:585\n\
             in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 231, name: kspec-agent\n\
             preempt_count: 1, expected: 0\n\
             RCU nest depth: 0, expected: 0\n\
             Preemption disabled at:\n\
             [<ffffffffc0a0102a>] kchan_spin+0x1a/0x40 [kchan]\n";
        let with_trace = format!("{might_sleep}{DUMP_STACK}kchan: done\n{DUMP_STACK}");
        assert_eq!(classes(&with_trace), vec![Class::Bug, Class::CallTrace]);
        assert_eq!(unexplained_taint(0, W | O, &[Class::Bug], &[]), None);
        // mm/slub.c slab_bug(), mm/page_alloc.c bad_page().
        let slub =
            "=============================================================================\n\
             BUG kmalloc-32 (Tainted: G           OE     ): Left Redzone overwritten\n\
             -----------------------------------------------------------------------------\n";
        assert_eq!(classes(slub), vec![Class::Bug]);
        assert_eq!(
            classes("BUG: Bad page state in process kspec-agent  pfn:04a1f"),
            vec![Class::Bug]
        );
        // arch/x86/kernel/traps.c: "BUG: %s stack guard page was hit", then die(): one bug.
        let guard = "BUG: TASK stack guard page was hit at ffffc900004b4ff8 (stack is ffffc900004b5000..ffffc900004b9000)\n\
             Oops: stack guard page: 0000 [#1] PREEMPT SMP NOPTI\n\
             CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1\n\
             Call Trace:\n \
             <TASK>\n \
             </TASK>\n\
             ---[ end trace 0000000000000000 ]---\n";
        assert_eq!(classes(guard), vec![Class::Bug]);
        // CONFIG_UBSAN_TRAP: "UBSAN: ... at %pS", then die("invalid opcode"): one ubsan.
        let trap = "UBSAN: array index out of bounds at kchan_poke+0x4c/0x60 [kchan]\n\
             Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\n\
             ---[ end trace 0000000000000000 ]---\n";
        assert_eq!(classes(trap), vec![Class::Ubsan]);
    }

    #[test]
    fn gpf_with_kasan_hint_is_one_oops() {
        // arch/x86/kernel/traps.c exc_general_protection() -> die_addr(): the __die_header()
        // line, then mm/kasan/report.c kasan_non_canonical_hook()'s "KASAN: ..." (not a report).
        let gpf = "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN NOPTI\n\
             KASAN: null-ptr-deref in range [0x0000000000000008-0x000000000000000f]\n\
             CPU: 0 UID: 0 PID: 231 Comm: kspec-agent Tainted: G           OE      6.12.117 #1\n\
             Call Trace:\n \
             <TASK>\n \
             kchan_ioctl+0x55/0x70 [kchan]\n \
             </TASK>\n\
             Modules linked in: kchan(OE)\n\
             ---[ end trace 0000000000000000 ]---\n";
        assert_eq!(classes(gpf), vec![Class::Oops]);
    }

    #[test]
    fn report_without_end_is_closed_by_a_gap_or_the_cap() {
        // kernel/locking/lockdep.c lockdep_sys_exit(): no backtrace, no end line.
        let held = recs_at(
            "\n================================================\n\
             WARNING: lock held when returning to user space!\n\
             6.12.117 #1 Tainted: G           OE\n\
             ------------------------------------------------\n\
             kspec-agent/231 is leaving the kernel with locks still held!\n\
             1 lock held by kspec-agent/231:\n \
             #0: ffff888004b2c070 (&kc->a){+.+.}-{4:4}, at: kchan_ioctl+0x2e/0x70 [kchan]\n",
            1,
            1_000_000,
        );
        let later = recs_at(DUMP_STACK, 100, 30_000_000);
        let mut p = ReportParser::new();
        let got: Vec<_> = held
            .iter()
            .chain(&later)
            .filter_map(|r| p.feed(r))
            .map(|r| r.class)
            .collect();
        assert_eq!(got, [Class::Lockdep, Class::CallTrace]);

        // A WARN whose end marker never comes does not swallow more than the cap.
        let mut p = ReportParser::new();
        let mut n = 0;
        n += p
            .feed(&recs("WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1")[0])
            .is_some() as usize;
        for _ in 0..MAX_REPORT_RECORDS {
            n += p.feed(&recs(" f+0x0/0x1")[0]).is_some() as usize;
        }
        n += recs(DUMP_STACK).iter().filter_map(|r| p.feed(r)).count();
        assert_eq!(n, 2);
    }

    #[test]
    fn class_names_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::from_name(c.name()), Some(c));
        }
        assert_eq!(Class::from_name("call_trace"), Some(Class::CallTrace));
        assert_eq!(Class::from_name("taint"), None);
        assert_eq!(Class::from_name("all"), None);
    }

    #[test]
    fn allow_lists() {
        assert!(is_allowed(Class::Kasan, &["all".into()]));
        assert!(is_allowed(
            Class::Lockdep,
            &["warning".into(), "lockdep".into()]
        ));
        assert!(!is_allowed(Class::Lockdep, &["warning".into()]));
        assert!(!is_allowed(Class::Warning, &[]));
    }

    #[test]
    fn taint() {
        assert_eq!(unexplained_taint(0, O, &[], &[]), None);
        assert_eq!(unexplained_taint(O, O | W, &[], &[]), Some(W));
        assert_eq!(unexplained_taint(0, W, &[], &["taint".into()]), None);
        assert_eq!(unexplained_taint(0, W, &[], &["all".into()]), None);
        assert_eq!(unexplained_taint(W, W, &[], &[]), None);
        assert_eq!(
            unexplained_taint(0, (1 << 7) | 1, &[Class::Warning], &[]),
            Some((1 << 7) | 1)
        );
        assert_eq!(taint_letters((1 << 7) | 1), "PD");
        assert_eq!(taint_letters(W | O | (1 << 13)), "WOE");
    }
}
