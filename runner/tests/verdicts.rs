//! Verdicts kspec must get right, each in a real VM, with real kernel reports from the test
//! module runner/tests/kmod (kspec_faults.ko: WARN now or from delayed work, KASAN
//! out-of-bounds, taint, log flood) rather than lines echoed into /dev/kmsg. Every test asserts
//! the exact outcome of every case; each one of them was wrong with the shell agent kspec had
//! before (console noise, escaped daemons, late reports, allowed WARNs, one-shot KASAN, ...).
//! The KASAN tests run on the 6.12-debug kernel when KSPEC_KERNELS selects it (default: local).

mod support;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use kspec::exec::{self, CaseReport, FailureKind, Outcome, RunSettings};
use kspec::image::{self, Cache, Image, StderrProgress, Toolchain};
use kspec::project::Project;
use kspec::spec;
use kspec::vm::{self, StepRequest};
use support::passed;

struct Kernel {
    image: Image,
    faults_ko: PathBuf,
    /// kspec_kunit.ko (runner/tests/kunit), on kernels built with KUnit.
    kunit_ko: Option<PathBuf>,
}

struct Setup {
    settings: RunSettings,
    kernels: Vec<Kernel>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let project = Project::locate().expect("kspec project");
        let list = image::kernel_list(&project).expect("kernel list");
        let which = std::env::var("KSPEC_KERNELS").unwrap_or_else(|_| "local".into());
        let mut kernels: Vec<&image::Kernel> = list.select(Some(&which)).expect("kernels");
        kernels.retain(|k| k.name == "6.12" || k.name == "6.12-debug");
        let progress = StderrProgress::default();
        let prepared =
            exec::prepare(&project, &kernels, &Default::default(), &progress).expect("image build");
        let cache = Cache::from_env().expect("cache");
        let tc = Toolchain::detect(&cache).expect("toolchain");
        let src = project.root.join("runner/tests/kmod");
        let kernels = prepared
            .images
            .into_iter()
            .map(|image| {
                let faults_ko = image::module::build(
                    &image.kernel.name,
                    &image.built,
                    &src,
                    "kspec_faults",
                    &tc,
                    &cache,
                    &progress,
                )
                .expect("kspec_faults.ko")
                .ko;
                let kunit_ko = image.built.has_symbol("KUNIT").then(|| {
                    image::module::build(
                        &image.kernel.name,
                        &image.built,
                        &project.root.join("runner/tests/kunit"),
                        "kspec_kunit",
                        &tc,
                        &cache,
                        &progress,
                    )
                    .expect("kspec_kunit.ko")
                    .ko
                });
                Kernel {
                    image,
                    faults_ko,
                    kunit_ko,
                }
            })
            .collect();
        Setup {
            settings: prepared.settings,
            kernels,
        }
    })
}

fn kernel(name: &str) -> Option<&'static Kernel> {
    setup().kernels.iter().find(|k| k.image.kernel.name == name)
}

/// Run `cases` (YAML, indented as the `cases:` list) on `kernel` with kspec_faults.ko in the
/// guest at /lib/modules/kspec_faults.ko.
fn run_on(k: &Kernel, cases: &str) -> Vec<CaseReport> {
    let text = format!(
        "files:\n  - {{ src: {}, dest: /lib/modules/kspec_faults.ko }}\ncases:\n{cases}",
        k.faults_ko.display()
    );
    let s = spec::load_str(Path::new("verdicts.yaml"), &text)
        .unwrap_or_else(|e| panic!("invalid test spec: {e:?}\n{text}"));
    let (tx, _rx) = mpsc::channel();
    let reports = exec::run_spec(&k.image, &s, &|_| true, &setup().settings, &tx);
    for r in &reports {
        println!(
            "[{}] {}: {} ({:.2}s){}",
            r.id.kernel,
            r.id.case,
            match &r.outcome {
                Outcome::Passed => "passed".to_owned(),
                Outcome::Failed(f) =>
                    format!("FAILED: {}: {} in `{}`", f.kind.label(), f.message, f.step),
                Outcome::Skipped(w) => format!("skipped: {w}"),
                Outcome::XFailed { reason, .. } => format!("xfailed: {reason}"),
                Outcome::XPassed(reason) => format!("XPASSED: {reason}"),
            },
            r.duration.as_secs_f64(),
            r.note
                .as_ref()
                .map(|n| format!(" [{n}]"))
                .unwrap_or_default()
        );
    }
    reports
}

fn run(cases: &str) -> Vec<CaseReport> {
    run_on(kernel("6.12").expect("the 6.12 kernel is selected"), cases)
}

const LOAD: &str = "      - run: insmod /lib/modules/kspec_faults.ko\n";

fn failed(r: &CaseReport, kind: FailureKind, message: &str) -> exec::Failure {
    match &r.outcome {
        Outcome::Failed(f) if f.kind == kind && f.message.contains(message) => f.clone(),
        other => panic!(
            "{} should fail as {} with {message:?}, got {other:?}",
            r.id.case,
            kind.label()
        ),
    }
}

#[test]
fn noise_on_the_console_and_on_the_protocol_port_never_reaches_a_result() {
    // /dev/console is the kernel console now; a step that re-creates the protocol port's node
    // (ttyS0, 4:64) and writes to it directly gets its noise dropped between frames.
    let r = run(concat!(
        "  - name: noisy neighbours\n",
        "    steps:\n",
        "      - run: mknod /tmp/s0 c 4 64; while :; do echo 'aGVsbG8K KS:1:R 0 0 0 0' > /dev/console; echo 'bm9pc2UK' > /tmp/s0; done\n",
        "        background: noise\n",
        "      - run: seq 1 3000\n",
        "        stdout: { count: { regex: '^[0-9]+$', count: 3000 } }\n",
        "      - run: printf 'exact\\n'\n",
        "        stdout: \"exact\\n\"\n",
        "      - kill: noise\n",
        "        signal: KILL\n",
        "        exit: 137\n",
    ));
    passed(&r[0]);
}

#[test]
fn a_forged_frame_on_the_protocol_port_is_an_infrastructure_error_never_a_pass() {
    // SYNC, magic, version 1, type Finished, then bytes that cannot carry the right checksum.
    let r = run(concat!(
        "  - name: forged result\n",
        "    steps:\n",
        "      - run: mknod /tmp/s0 c 4 64; printf '\\176KS\\001\\205\\000\\000\\000\\000\\001\\000\\000\\000\\004\\000\\000\\000\\000\\000\\000\\000\\001\\002\\003\\004' > /tmp/s0; sleep 1\n",
        "  - name: next case runs in a fresh VM\n",
        "    steps:\n",
        "      - run: echo ok\n",
        "        stdout: \"ok\\n\"\n",
    ));
    failed(&r[0], FailureKind::Infrastructure, "corrupt frame");
    passed(&r[1]);
    assert!(
        r[1].note.as_deref().unwrap_or("").contains("fresh VM"),
        "{:?}",
        r[1].note
    );
}

#[test]
fn a_daemon_that_escapes_its_step_dies_with_it_and_never_writes_into_the_next() {
    let r = run(concat!(
        "  - name: escaped daemon\n",
        "    steps:\n",
        "      - run: setsid sh -c 'sleep 0.4; echo LEAKED; touch /tmp/leaked' & echo started\n",
        "        stdout: \"started\\n\"\n",
        "      - run: sleep 0.8; echo second\n",
        "        stdout: \"second\\n\"\n",
        "      - run: test ! -e /tmp/leaked && ! pgrep -f LEAKED\n",
    ));
    passed(&r[0]);
}

#[test]
fn a_warn_from_delayed_work_after_the_last_step_fails_the_case() {
    let r = run(&format!(
        "  - name: late warn\n    steps:\n{LOAD}      - run: echo warn_later 300 > /proc/kspec_faults\n"
    ));
    let f = failed(&r[0], FailureKind::KernelReport, "after the step returned");
    assert!(
        f.message.contains("kernel reported warning: WARNING: CPU:"),
        "{}",
        f.message
    );
    assert_eq!(f.step, "echo warn_later 300 > /proc/kspec_faults");
}

#[test]
fn an_allowed_real_warn_is_allowed_whole_and_the_next_case_gets_a_fresh_kernel() {
    let r = run(&format!(
        concat!(
            "  - name: allowed warn\n    steps:\n{load}",
            "      - run: echo warn > /proc/kspec_faults\n",
            "        allow: [warning]\n",
            "        kmsg: 'kspec_faults: warn now'\n",
            "  - name: clean case after it\n",
            "    steps:\n",
            "      - run: cat /proc/sys/kernel/tainted\n",
            "        stdout: \"0\\n\"\n",
        ),
        load = LOAD
    ));
    passed(&r[0]);
    passed(&r[1]);
    assert!(
        r[1].note
            .as_deref()
            .unwrap_or("")
            .contains("damaged kernel"),
        "{:?}",
        r[1].note
    );
}

#[test]
fn an_unallowed_warn_fails_and_an_allowed_one_in_a_background_window_is_judged_once() {
    let r = run(&format!(
        concat!(
            "  - name: unallowed warn\n    steps:\n{load}",
            "      - run: echo warn > /proc/kspec_faults\n",
            "  - name: allowed inside a background window\n    steps:\n{load}",
            "      - run: sleep 1; echo done\n",
            "        background: bg\n",
            "      - run: echo warn > /proc/kspec_faults\n",
            "        allow: [warning]\n",
            "      - wait: bg\n",
            "        stdout: \"done\\n\"\n",
        ),
        load = LOAD
    ));
    let f = failed(&r[0], FailureKind::KernelReport, "kernel reported warning");
    assert_eq!(f.step, "echo warn > /proc/kspec_faults");
    passed(&r[1]);
}

#[test]
fn a_taint_without_a_report_fails_unless_allowed() {
    let r = run(&format!(
        concat!(
            "  - name: user taint\n    steps:\n{load}",
            "      - run: echo taint > /proc/kspec_faults\n",
            "  - name: allowed taint\n    steps:\n{load}",
            "      - run: echo taint > /proc/kspec_faults\n",
            "        allow: [taint]\n",
        ),
        load = LOAD
    ));
    failed(&r[0], FailureKind::KernelReport, "tainted: U");
    passed(&r[1]);
}

#[test]
fn a_log_flood_that_overwrites_records_is_reported_as_an_incomplete_log() {
    let r = run(&format!(
        concat!(
            // Two floods with preemption off keep both vCPUs from running the agent until they
            // are done: 20,000 records overwrite the ring whatever the host's load.
            "  - name: flood\n    steps:\n{load}",
            "      - run: {flood}\n",
            "        timeout: 120s\n",
            "  - name: flood allowed\n    steps:\n{load}",
            "      - run: {flood}\n",
            "        timeout: 120s\n",
            "        allow: [kmsg_lost]\n",
        ),
        load = LOAD,
        flood =
            "echo flood 10000 > /proc/kspec_faults & echo flood 10000 > /proc/kspec_faults; wait"
    ));
    failed(&r[0], FailureKind::KernelReport, "kernel log incomplete");
    passed(&r[1]);
}

#[test]
fn eight_megabytes_of_stdout_fail_at_once_on_the_output_limit() {
    let r = run(concat!(
        "  - name: flood stdout\n",
        "    steps:\n",
        "      - run: head -c 8000000 /dev/zero\n",
        "        timeout: 60s\n",
    ));
    let f = failed(&r[0], FailureKind::Assertion, "stdout exceeded 4.0MiB");
    println!(
        "8 MB of stdout failed after {:.2}s: {}",
        r[0].duration.as_secs_f64(),
        f.message
    );
}

#[test]
fn binary_output_arrives_byte_for_byte() {
    let k = kernel("6.12").expect("6.12");
    let cfg = exec::vm_config(&k.image, &setup().settings, exec::DEFAULT_CPUS);
    let mut vm = vm::Vm::boot(&cfg, None).expect("boot");
    let t = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let out = vm
        .run(&StepRequest::new(
            "head -c 1048576 /dev/urandom | tee /tmp/r",
            t,
        ))
        .expect("step");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(out.stdout.len(), 1 << 20);
    let sum = vm
        .run(&StepRequest::new("sha256sum < /tmp/r", t))
        .expect("step");
    use sha2::Digest;
    let host = format!("{:x}", sha2::Sha256::digest(&out.stdout));
    assert_eq!(
        String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next(),
        Some(&host[..])
    );
    println!(
        "1 MiB of random bytes in {secs:.2}s: {:.0} KiB/s",
        1024.0 / secs
    );
}

#[test]
fn two_vcpus_run_a_steps_work_in_parallel_and_kill_minus_one_spares_the_agent() {
    let r = run(concat!(
        "  - name: smp\n",
        "    steps:\n",
        "      - run: nproc\n",
        "        stdout: \"2\\n\"\n",
        "      - run: for i in 1 2; do (n=0; while [ $n -lt 150000 ]; do n=$((n+1)); done) & done; wait\n",
        "        min_parallelism: 1.4\n",
        "        min_busy_cpus: 2\n",
        "      - run: kill -9 -1; sleep 5\n",
        "        exit: any\n",
        "      - run: echo still here\n",
        "        stdout: \"still here\\n\"\n",
        "  - name: one busy CPU is not parallel\n",
        "    steps:\n",
        "      - run: n=0; while [ $n -lt 150000 ]; do n=$((n+1)); done\n",
        "        min_parallelism: 1.4\n",
    ));
    passed(&r[0]);
    failed(&r[1], FailureKind::Assertion, "below min_parallelism 1.4");
}

#[test]
fn kasan_reports_are_kasan_allowed_whole_and_a_second_one_is_still_caught() {
    let Some(k) = kernel("6.12-debug") else {
        println!("6.12-debug not selected (KSPEC_KERNELS): nothing to check");
        return;
    };
    let r = run_on(
        k,
        &format!(
            concat!(
                "  - name: allowed kasan then another\n    steps:\n{load}",
                "      - run: echo oob > /proc/kspec_faults\n",
                "        allow: [kasan]\n",
                "      - run: echo oob > /proc/kspec_faults\n",
                "  - name: fresh kernel after it\n",
                "    steps:\n",
                "      - run: cat /proc/sys/kernel/tainted\n",
                "        stdout: \"0\\n\"\n",
            ),
            load = LOAD
        ),
    );
    let f = failed(
        &r[0],
        FailureKind::KernelReport,
        "kernel reported kasan: BUG: KASAN:",
    );
    assert_eq!(f.step, "echo oob > /proc/kspec_faults");
    assert_eq!(
        r[0].steps.len(),
        3,
        "the second oob step is the one that failed"
    );
    passed(&r[1]);
    assert!(r[1].note.as_deref().unwrap_or("").contains("fresh VM"));
}

#[test]
fn a_failing_kunit_case_fails_its_own_result_with_its_diagnostics() {
    let Some(k) = kernel("6.12-debug") else {
        println!("6.12-debug not selected (KSPEC_KERNELS): nothing to check");
        return;
    };
    let ko = k.kunit_ko.as_ref().expect("6.12-debug is built with KUnit");
    let text = format!(
        concat!(
            "files:\n  - {{ src: {ko}, dest: /lib/modules/kspec_kunit.ko }}\n",
            "setup:\n  - run: mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug\n",
            "cases:\n",
            "  - name: kunit suite\n    steps:\n",
            "      - run: insmod /lib/modules/kspec_kunit.ko && cat /sys/kernel/debug/kunit/kspec-kunit/results\n",
            "        ktap: true\n",
            "        allow: [taint]\n",
        ),
        ko = ko.display()
    );
    let s = spec::load_str(Path::new("kunit.yaml"), &text).expect("valid spec");
    let (tx, _rx) = mpsc::channel();
    let r = exec::run_spec(&k.image, &s, &|_| true, &setup().settings, &tx);
    let f = failed(
        &r[0],
        FailureKind::Assertion,
        "ktap: 1 of 3 tests failed: kspec-kunit/kspec_fails",
    );
    use exec::ktap::KtapOutcome;
    let results = &r[0].steps.last().expect("the KTAP step").ktap;
    let by = |n: &str| {
        results
            .iter()
            .find(|t| t.name == format!("kspec-kunit/{n}"))
            .unwrap_or_else(|| panic!("no result {n} in {results:?}"))
    };
    assert_eq!(by("kspec_passes").outcome, KtapOutcome::Pass);
    assert_eq!(
        by("kspec_skipped").outcome,
        KtapOutcome::Skip("nothing to test on this machine".into())
    );
    let fails = by("kspec_fails");
    assert_eq!(fails.outcome, KtapOutcome::Fail);
    let diag = fails.diagnostics.join("\n");
    assert!(diag.contains("EXPECTATION FAILED"), "{diag}");
    assert!(diag.contains("kspec wants this case to fail"), "{diag}");
    // The failure shows the failed test's diagnostics.
    assert!(
        f.details.iter().any(|d| matches!(d, exec::Detail::Lines { heading, lines }
            if heading.contains("kspec_fails") && lines.iter().any(|l| l.contains("EXPECTATION FAILED")))),
        "{:?}",
        f.details
    );
}
