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
mod tests;
