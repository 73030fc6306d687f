//! Faults in the framework, in real VMs of the default kernel: a guest panic mid-step, a hung
//! step, QEMU killed from outside, and the runner itself killed with SIGKILL. Each must be
//! reported for what it is, and no QEMU may outlive its owner. Times are printed, not asserted
//! (the bounds below only stop a hang).

mod support;

use std::path::Path;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kspec::exec::{self, CaseReport, FailureKind, Outcome};
use kspec::image;
use kspec::spec;
use support::default_image;

/// These tests look at this process's QEMU children: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(text: &str) -> (Vec<CaseReport>, Duration) {
    let (img, settings) = default_image();
    let s = spec::load_str(Path::new("fault.yaml"), text).expect("valid spec");
    let (tx, _rx) = mpsc::channel();
    let started = Instant::now();
    let r = exec::run_spec(img, &s, &|_| true, settings, &tx);
    (r, started.elapsed())
}

fn failure(r: &CaseReport) -> &exec::Failure {
    match &r.outcome {
        Outcome::Failed(f) => f,
        other => panic!("{}: expected a failure, got {other:?}", r.id.name()),
    }
}

/// QEMU processes whose parent is `pid`.
fn qemu_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let comm = status.lines().next().unwrap_or("");
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(|v| v.trim().parse::<u32>().unwrap_or(0));
        if comm.contains("qemu-system") && ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains("Z"))
        })
        .unwrap_or(false)
}

#[test]
fn guest_panic_mid_step_is_reported_as_a_panic_with_the_console_tail() {
    let _one_at_a_time = serial();
    let (r, total) = run("cases:\n  - name: panic\n    steps:\n      - run: echo c > /proc/sysrq-trigger\n        timeout: 60s\n      - run: echo never\n");
    let f = failure(&r[0]);
    assert_eq!(f.kind, FailureKind::Panic, "{f:?}");
    assert!(f.message.contains("kernel panic"), "{}", f.message);
    let console: Vec<&String> = f
        .details
        .iter()
        .filter_map(|d| match d {
            exec::Detail::Lines { heading, lines } if heading.starts_with("console") => Some(lines),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        console
            .iter()
            .any(|l| l.contains("sysrq") || l.contains("Kernel panic")),
        "{console:?}"
    );
    assert_eq!(r[0].steps.len(), 1, "the step after the panic must not run");
    println!(
        "panic reported after {:.2}s (panic step {:.2}s)",
        total.as_secs_f64(),
        r[0].steps[0].duration.as_secs_f64()
    );
    assert!(qemu_children(std::process::id()).is_empty());
}

#[test]
fn hung_step_is_a_timeout_with_its_partial_output() {
    let _one_at_a_time = serial();
    let (r, _) = run("cases:\n  - name: hang\n    steps:\n      - run: echo started; sleep 600\n        timeout: 2s\n");
    let f = failure(&r[0]);
    assert_eq!(f.kind, FailureKind::Timeout, "{f:?}");
    let out = f.details.iter().any(|d| matches!(d, exec::Detail::Lines { heading, lines } if heading == "stdout" && lines == &["started"]));
    assert!(out, "partial output missing: {:?}", f.details);
    println!(
        "timeout reported after {:.2}s for a 2s bound",
        r[0].steps[0].duration.as_secs_f64()
    );
    assert!(qemu_children(std::process::id()).is_empty());
}

#[test]
fn qemu_killed_from_outside_is_reported_not_hung() {
    let _one_at_a_time = serial();
    let me = std::process::id();
    let killer = std::thread::spawn(move || {
        // Kill whichever QEMU this test process starts, once the step is running.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(pid) = qemu_children(me).first() {
                std::thread::sleep(Duration::from_secs(4));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let (r, _) =
        run("cases:\n  - name: killed\n    steps:\n      - run: sleep 60\n        timeout: 90s\n");
    assert!(killer.join().unwrap(), "no QEMU appeared");
    let f = failure(&r[0]);
    assert_eq!(f.kind, FailureKind::Panic, "{f:?}");
    assert!(f.message.contains("QEMU exited"), "{}", f.message);
    println!(
        "external kill reported after {:.2}s",
        r[0].duration.as_secs_f64()
    );
}

#[test]
fn runner_killed_with_sigkill_leaves_no_qemu() {
    let _one_at_a_time = serial();
    default_image(); // build before timing anything
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("sleep.yaml");
    std::fs::write(
        &spec,
        "cases:\n  - name: sleep\n    steps:\n      - run: sleep 120\n        timeout: 200s\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kspec"))
        .arg("run")
        .arg(&spec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let qemu = loop {
        if let Some(q) = qemu_children(child.id()).first() {
            break *q;
        }
        assert!(Instant::now() < deadline, "kspec started no QEMU");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(1));
    child.kill().unwrap(); // SIGKILL: no destructor runs, only the parent-death signal is left
    child.wait().unwrap();
    let killed = Instant::now();
    while alive(qemu) && killed.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(qemu), "QEMU {qemu} survived its runner");
    println!(
        "QEMU gone {:.3}s after the runner was killed",
        killed.elapsed().as_secs_f64()
    );
}

#[test]
fn two_concurrent_builds_of_an_empty_cache_entry_build_it_once() {
    let _one_at_a_time = serial();
    default_image(); // the kernel and tools exist; the cache below shares them
    let real = image::Cache::from_env().expect("cache");
    let dir = tempfile::tempdir().unwrap();
    // Everything but the module and image entries is the real cache's.
    for d in [
        "kernels",
        "src",
        "tools",
        "target-guest",
        "downloads",
        "apt",
    ] {
        let target = real.root().join(d);
        if target.exists() {
            std::os::unix::fs::symlink(&target, dir.path().join(d)).unwrap();
        }
    }
    let build = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kspec"))
            .args(["build", "--kernel", "6.12"])
            .env("KSPEC_CACHE", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(a.status.success() && b.status.success(), "{text}");
    assert_eq!(text.matches("building kchan.ko").count(), 1, "{text}");
    assert_eq!(text.matches("initramfs packed").count(), 1, "{text}");
    assert!(
        text.contains("waiting for another kspec building"),
        "{text}"
    );
    println!("two concurrent builds: one built, the other waited and reused");
}

/// Ctrl-C (SIGINT) and a cancelled CI job (SIGTERM): QEMU stopped, every VM directory removed,
/// exit 128+signal, and the JUnit file holds the case that finished before.
#[test]
fn interrupted_runner_stops_its_vms_and_keeps_finished_results() {
    let _one_at_a_time = serial();
    default_image();
    for (signal, code) in [
        (nix::sys::signal::Signal::SIGINT, 130),
        (nix::sys::signal::Signal::SIGTERM, 143),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let spec = dir.path().join("interrupted.yaml");
        std::fs::write(
            &spec,
            "cases:\n  - name: quick\n    steps:\n      - run: \"true\"\n  \
             - name: sleep\n    steps:\n      - run: sleep 120\n        timeout: 200s\n",
        )
        .unwrap();
        let junit = dir.path().join("junit.xml");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kspec"))
            .arg("run")
            .arg(&spec)
            .arg("--junit")
            .arg(&junit)
            .env("TMPDIR", &tmp)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        // The first case has finished once the JUnit file exists.
        while !junit.exists() {
            assert!(Instant::now() < deadline, "the first case never finished");
            std::thread::sleep(Duration::from_millis(50));
        }
        let qemu = qemu_children(child.id());
        assert_eq!(qemu.len(), 1, "one VM runs the second case");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("stopped 1 VM(s)"), "{stderr}");
        assert!(!alive(qemu[0]), "QEMU survived {signal}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert!(left.is_empty(), "left in TMPDIR after {signal}: {left:?}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("name=\"quick\""), "{xml}");
        println!("{signal}: exit {code}, QEMU gone, no VM directory left, JUnit kept");
    }
}
