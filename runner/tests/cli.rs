//! The kspec command line, without booting anything: validation, listing, schema, matrix and
//! argument errors.

use assert_cmd::Command;
use predicates::prelude::*;

fn kspec() -> Command {
    let mut c = Command::cargo_bin("kspec").expect("kspec binary");
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KSPEC_ROOT", concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    c
}

#[test]
fn check_accepts_the_shipped_specs() {
    kspec()
        .args(["check", "../specs"])
        .assert()
        .success()
        .stdout(predicate::str::contains("spec files"));
}

#[test]
fn list_prints_spec_case_names() {
    kspec()
        .args(["list", "../specs"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^[a-z0-9_-]+::.+$").unwrap());
}

/// Every file of the malformed corpus fails `kspec check` with exit 2 and exactly the stderr
/// pinned beside it (`<name>.stderr`, as trybuild does); `KSPEC_BLESS=1` rewrites the pinned
/// files from what kspec prints now.
#[test]
fn every_malformed_spec_fails_with_its_pinned_message() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let bless = std::env::var_os("KSPEC_BLESS").is_some_and(|v| v == "1");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus has {} files", files.len());
    let located = regex::Regex::new(r"^\S+\.yaml:\d+:\d+: \S").unwrap();
    let mut wrong = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let out = kspec()
            .arg("check")
            .arg(format!("tests/malformed/{name}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            located.is_match(first),
            "{name}: not file:line:col: {first:?}"
        );
        let pinned = f.with_extension("stderr");
        if bless {
            std::fs::write(&pinned, &stderr).unwrap();
            continue;
        }
        match std::fs::read_to_string(&pinned) {
            Ok(want) if want == stderr => {}
            Ok(want) => wrong.push(format!("{name}:\n--- pinned\n{want}+++ now\n{stderr}")),
            Err(_) => wrong.push(format!("{name}: no {}", pinned.display())),
        }
    }
    assert!(
        wrong.is_empty(),
        "stderr differs from the pinned files (KSPEC_BLESS=1 rewrites them):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn bad_regex_names_its_line() {
    kspec()
        .args(["check", "tests/malformed/bad-regex.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "bad-regex.yaml:6:11: invalid regex",
        ));
}

#[test]
fn unknown_key_names_its_line() {
    kspec()
        .args(["check", "tests/malformed/unknown-step-key.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown-step-key.yaml:5:9: cases[0].steps[0]: unknown field `stdotu`",
        ));
}

#[test]
fn schema_is_json_with_the_top_level_keys() {
    let out = kspec().arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let props = &v["properties"];
    for key in ["cases", "module", "requires", "files", "timeout"] {
        assert!(props.get(key).is_some(), "schema lacks {key}");
    }
}

#[test]
fn matrix_lists_the_kernels() {
    let out = kspec().arg("matrix").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kernel"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"6.12") && names.contains(&"7.3"),
        "{names:?}"
    );
}

#[test]
fn unknown_kernel_is_a_usage_error() {
    kspec()
        .args(["build", "--kernel", "2.4"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2.4"));
}

#[test]
fn missing_path_is_an_error_not_a_panic() {
    kspec()
        .args(["check", "no/such/dir"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such file"));
}

/// `--artifacts DIR` is made before anything is built: a run without failures leaves an empty
/// DIR (the workflow uploads it), and a DIR that cannot be made stops the run at once.
#[test]
fn artifacts_dir_is_made_up_front_or_refused() {
    kspec()
        .args(["run", "--artifacts", "/proc/kspec-no/such", "../specs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "kspec: error: --artifacts /proc/kspec-no/such:",
        ));
}
