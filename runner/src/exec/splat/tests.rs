//! Report grouping against texts real kernels print (reports/*.txt).

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
const WARN: &str = include_str!("reports/warn.txt");

// mm/kasan/report.c start_report() .. end_report() (generic KASAN), lib/dump_stack.c,
// lib/stackdepot.c via kernel/stacktrace.c stack_trace_print(), mm/debug.c dump_page(),
// kernel/panic.c add_taint() "Disabling lock debugging" after the closing '=' line.
const KASAN_OOB: &str = include_str!("reports/kasan_oob.txt");

// mm/kasan/report.c, a second report (kasan_multi_shot) right after the first.
const KASAN_UAF: &str = include_str!("reports/kasan_uaf.txt");

// arch/x86/mm/fault.c show_fault_oops()/dump_pagetable()/page_fault_oops() ("Oops" die,
// "CR2:"), arch/x86/kernel/dumpstack.c __die_header()/__die_body()/oops_end() (end marker,
// then the "executive summary" registers), kernel/exit.c make_task_dead() note.
const NULL_DEREF: &str = include_str!("reports/null_deref.txt");

// lib/bug.c __report_bug() (cut here, "kernel BUG at"), arch/x86/kernel/traps.c
// handle_invalid_op() -> die("invalid opcode"), arch/x86/kernel/dumpstack.c.
const BUG_ON: &str = include_str!("reports/bug_on.txt");

// kernel/locking/lockdep.c print_circular_bug(): header (with print_kernel_ident()),
// print_lock(), print_circular_bug_entry() (stack_trace_print with 6 spaces),
// print_circular_lock_scenario(), lockdep_print_held_locks(), "stack backtrace:" dump_stack().
const LOCKDEP_CIRCULAR: &str = include_str!("reports/lockdep_circular.txt");

// kernel/locking/lockdep.c lockdep_rcu_suspicious().
const SUSPICIOUS_RCU: &str = include_str!("reports/suspicious_rcu.txt");

// mm/kfence/report.c kfence_report_error() (UAF), kfence_print_object(), kfence_print_stack(),
// dump_stack_print_info(KERN_ERR). "\n\n"-ended printks keep one newline in the record.
const KFENCE_UAF: &str = include_str!("reports/kfence_uaf.txt");

// lib/ubsan.c ubsan_prologue() (CUT_HERE, "UBSAN: %s in %s:%d:%d"),
// __ubsan_handle_out_of_bounds(), ubsan_epilogue() (dump_stack, "---[ end trace ]---").
const UBSAN_OOB: &str = include_str!("reports/ubsan_oob.txt");

// kernel/hung_task.c check_hung_task(), kernel/sched/core.c sched_show_task(),
// kernel/locking/lockdep.c debug_show_all_locks() (after the task, ends with '=').
const HUNG_TASK: &str = include_str!("reports/hung_task.txt");

// kernel/rcu/tree_stall.h print_other_cpu_stall() (pr_fmt "rcu: "), print_cpu_stall_info(),
// rcu_dump_cpu_stacks() -> dump_cpu_task() -> lib/nmi_backtrace.c, and
// rcu_check_gp_kthread_starvation() with sched_show_task(): several backtraces, one report.
const RCU_STALL: &str = include_str!("reports/rcu_stall.txt");

// kernel/watchdog.c watchdog_timer_fn() (pr_fmt "watchdog: "), show_regs() from the hrtimer
// interrupt (<IRQ> section, then the interrupted task with its pt_regs).
const SOFT_LOCKUP: &str = include_str!("reports/soft_lockup.txt");

// mm/kmemleak.c print_unreferenced() (kmemleak.verbose=1, pr_fmt "kmemleak: ",
// print_hex_dump with pr_fmt(HEX_PREFIX)) and kmemleak_scan()'s summary.
const KMEMLEAK_VERBOSE: &str = include_str!("reports/kmemleak_verbose.txt");

// A bare dump_stack(): lib/dump_stack.c dump_stack_print_info(), show_trace_log_lvl().
const DUMP_STACK: &str = include_str!("reports/dump_stack.txt");

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
    let slub = "=============================================================================\n\
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
