//! What spec authors reach for, each in a real VM of the default kernel with the exact outcome
//! of every case asserted: env, setup/teardown, step lists, wait_until, xfail, per-case
//! requirements, per-file memory and command line, --repeat, --artifacts and --rerun-failed.

mod support;

use std::path::Path;
use std::sync::mpsc;

use kspec::exec::{self, CaseReport, FailureKind, Outcome, RunSettings};
use kspec::spec;
use support::{default_image, passed};

fn run_with(text: &str, settings: &RunSettings) -> Vec<CaseReport> {
    let (img, _) = default_image();
    let s = spec::load_str(Path::new("authoring.yaml"), text)
        .unwrap_or_else(|e| panic!("invalid test spec: {e:?}\n{text}"));
    let (tx, _rx) = mpsc::channel();
    let r = exec::run_spec(img, &s, &|_| true, settings, &tx);
    for r in &r {
        println!("{}: {:?}", r.id.case, r.outcome);
    }
    r
}

fn run(text: &str) -> Vec<CaseReport> {
    run_with(text, &default_image().1)
}

fn failed<'a>(r: &'a CaseReport, message: &str) -> &'a exec::Failure {
    match &r.outcome {
        Outcome::Failed(f) if f.kind == FailureKind::Assertion && f.message.contains(message) => f,
        other => panic!("{} should fail with {message:?}: {other:?}", r.id.case),
    }
}

#[test]
fn env_setup_teardown_and_step_lists_compose() {
    let r = run(r#"
env: { A: file, B: file }
setup:
  - run: echo setup >> /tmp/log
teardown:
  - run: echo teardown >> /tmp/log
step_lists:
  check b:
    - run: echo "$B"
      stdout: "case\n"
cases:
  - name: the step's env over the case's over the file's
    env: { B: case }
    steps:
      - run: echo "$A $B $C"
        env: { C: step, A: step }
        stdout: "step case step\n"
      - include: check b
  - name: a failing case is torn down too
    steps:
      - run: "false"
      - run: echo never
  - name: setup and teardown ran around each case, in order
    steps:
      - run: cat /tmp/log
        stdout: "setup\nteardown\nsetup\nteardown\nsetup\n"
"#);
    passed(&r[0]);
    failed(&r[1], "exit status 1");
    passed(&r[2]);
}

#[test]
fn wait_until_retries_until_the_expectations_hold_and_shows_the_last_attempt() {
    let r = run(r#"
cases:
  - name: ready after a moment
    steps:
      - run: sleep 1; echo ready > /tmp/state
        background: later
      - wait_until: cat /tmp/state 2>/dev/null
        stdout: "ready\n"
        interval: 50ms
        timeout: 20s
      - wait: later
  - name: never so
    steps:
      - wait_until: echo "not yet"
        stdout: "ready\n"
        interval: 100ms
        timeout: 1s
"#);
    passed(&r[0]);
    let f = failed(&r[1], "not so after");
    let attempts =
        regex::Regex::new(r"^not so after ([0-9]+) attempts in [0-9.]+s: stdout differs").unwrap();
    let n: u32 = attempts.captures(&f.message).expect("attempts counted")[1]
        .parse()
        .unwrap();
    assert!(n >= 3, "{}", f.message);
    // The last attempt's output is in the failure.
    assert!(
        f.details
            .iter()
            .any(|d| matches!(d, exec::Detail::Diff { actual, .. } if actual == "not yet\n")),
        "{:?}",
        f.details
    );
}

#[test]
fn xfail_and_per_case_requirements() {
    let r = run(r#"
cases:
  - name: known bug
    xfail: "the answer is still 41"
    steps:
      - run: echo 41
        stdout: "42\n"
  - name: fixed bug
    xfail: "it used to fail"
    steps:
      - run: "true"
  - name: needs a symbol this kernel lacks
    requires: { kconfig: [KSPEC_NO_SUCH_SYMBOL] }
    steps:
      - run: "false"
  - name: needs a newer kernel
    requires: { kernel: ">=99.0" }
    steps:
      - run: "false"
"#);
    assert!(
        matches!(&r.iter().find(|c| c.id.case == "known bug").unwrap().outcome,
            Outcome::XFailed { reason, failure } if reason == "the answer is still 41"
                && failure.message.contains("stdout")),
        "{r:?}"
    );
    let fixed = r.iter().find(|c| c.id.case == "fixed bug").unwrap();
    assert!(matches!(&fixed.outcome, Outcome::XPassed(_)), "{fixed:?}");
    assert!(fixed.outcome.is_failure());
    for (name, why) in [
        (
            "needs a symbol this kernel lacks",
            "lacks KSPEC_NO_SUCH_SYMBOL",
        ),
        ("needs a newer kernel", "does not satisfy >=99.0"),
    ] {
        let c = r.iter().find(|c| c.id.case == name).unwrap();
        assert!(
            matches!(&c.outcome, Outcome::Skipped(w) if w.contains(why)),
            "{c:?}"
        );
    }
}

#[test]
fn a_files_memory_and_command_line_shape_its_vms() {
    let r = run(r#"
memory: 384MiB
cmdline: kspec.authoring=yes
cases:
  - name: the guest has the memory and the command line
    steps:
      - run: grep -o kspec.authoring=yes /proc/cmdline
        stdout: "kspec.authoring=yes\n"
      - run: |
          awk '/MemTotal/ { print ($2 > 300000 && $2 < 400000) ? "ok" : $2 }' /proc/meminfo
        stdout: "ok\n"
"#);
    passed(&r[0]);
}

#[test]
fn repeat_runs_each_case_again_and_artifacts_keep_what_a_failure_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = default_image().1.clone();
    settings.repeat = 3;
    settings.artifacts = Some(dir.path().to_owned());
    let r = run_with(
        r#"
artifacts: [/tmp/out.txt, /tmp/never-written]
cases:
  - name: counts
    steps:
      - run: echo x >> /tmp/count; wc -l < /tmp/count
  - name: fails with output
    steps:
      - run: echo kspec-artifact-marker > /dev/kmsg; echo "what the case saw" > /tmp/out.txt; false
"#,
        &settings,
    );
    let names: Vec<&str> = r.iter().map(|c| c.id.case.as_str()).collect();
    assert_eq!(
        names,
        [
            "counts [run 1/3]",
            "counts [run 2/3]",
            "counts [run 3/3]",
            "fails with output [run 1/3]",
            "fails with output [run 2/3]",
            "fails with output [run 3/3]",
        ]
    );
    for c in &r[..3] {
        passed(c);
        assert!(c.artifacts.is_empty());
    }
    let f = &r[3];
    failed(f, "exit status 1");
    let case_dir = dir
        .path()
        .join("6.12/authoring/fails_with_output__run_1_3_");
    let read = |name: &str| std::fs::read_to_string(case_dir.join(name)).unwrap_or_default();
    assert_eq!(read("files/tmp_out.txt"), "what the case saw\n");
    assert!(
        read("kernel.log").contains("kspec-artifact-marker"),
        "{}",
        read("kernel.log")
    );
    assert!(case_dir.join("console.log").is_file());
    assert!(read("missing.txt").contains("/tmp/never-written"));
    assert!(
        f.artifacts.iter().any(|a| a.ends_with("files/tmp_out.txt")),
        "{:?}",
        f.artifacts
    );
}

/// `kspec run SPEC ARGS` on this checkout: (exit code, stdout, stderr), both printed.
fn kspec_run(spec: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = assert_cmd::Command::cargo_bin("kspec")
        .unwrap()
        .env("KSPEC_ROOT", concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env_remove("KSPEC_BLESS")
        .arg("run")
        .arg(spec)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{stdout}{stderr}");
    (out.status.code(), stdout, stderr)
}

#[test]
fn rerun_failed_runs_only_what_failed_last_time() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("rerun.yaml");
    let write = |second: &str| {
        let text = format!(
            "cases:\n  - name: fine\n    steps: [{{ run: \"true\" }}]\n  - name: flaky\n    steps: [{{ run: \"{second}\" }}]\n"
        );
        std::fs::write(&spec, text).unwrap();
    };
    let kspec = |args: &[&str]| kspec_run(&spec, args);
    write("false");
    let (code, out, _) = kspec(&[]);
    assert_eq!(code, Some(1));
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    let (code, out, _) = kspec(&["--rerun-failed"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("0 passed, 1 failed") && out.contains("rerun::flaky"),
        "{out}"
    );
    assert!(!out.contains("rerun::fine"), "{out}");
    write("true");
    let (code, out, _) = kspec(&["--rerun-failed"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("1 passed, 0 failed") && out.contains("rerun::flaky"),
        "{out}"
    );
    let (code, _, err) = kspec(&["--rerun-failed"]);
    assert_eq!(code, Some(0));
    assert!(err.contains("had no failed case"), "{err}");
}

#[test]
fn bless_rewrites_exact_expectations_in_place_and_a_rerun_passes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bless.yaml");
    let before = r#"# Expectations written before the code was.
cases:
  - name: outputs
    steps:
      - run: echo hello   # the greeting
        stdout: "hallo\n"
      - run: printf 'a\nb\n' >&2
        stderr: { lines: [a, c] }   # two lines
      - run: printf 'x\n'
        stdout:
          equals: |
            y
        exit: 0
"#;
    std::fs::write(&spec, before).unwrap();
    let kspec = |bless: bool| {
        let args: &[&str] = if bless { &["--bless"] } else { &[] };
        kspec_run(&spec, args).0
    };
    assert_eq!(
        kspec(true),
        Some(1),
        "the blessing run still reports the failure"
    );
    let after = std::fs::read_to_string(&spec).unwrap();
    let want = r#"# Expectations written before the code was.
cases:
  - name: outputs
    steps:
      - run: echo hello   # the greeting
        stdout: "hello\n"
      - run: printf 'a\nb\n' >&2
        stderr: { lines: ["a", "b"] }   # two lines
      - run: printf 'x\n'
        stdout:
          equals: |
            x
        exit: 0
"#;
    assert_eq!(after, want);
    assert_eq!(kspec(false), Some(0), "a rerun passes");
}
