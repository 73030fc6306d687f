//! `kspec init`, for a Rust and a C module: the files it writes and that it never overwrites
//! (no VM), that the new project's kernels have kspec's own cache keys, and the round trip —
//! `kspec init demo`, then `kspec run` inside it builds the module and passes every case of its
//! spec in a VM on the default kernel, reusing the kernel kspec's cache holds. Nothing here is
//! skipped: without a toolchain or QEMU the environment tests fail, saying why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use kspec::project::{framework_root, Project};

/// The round trips boot VMs and build modules: one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

const LANGS: [&str; 2] = ["rust", "c"];

fn kspec(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kspec"))
        .args(args)
        .current_dir(cwd)
        // The project is the one in the working directory, whatever the caller's environment.
        .env_remove("KSPEC_ROOT")
        .output()
        .expect("run kspec")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Every file under `dir`, relative, with its content.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `kspec init demo --lang LANG` in a new temporary directory: (that directory, the project).
fn new_project(lang: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = kspec(tmp.path(), &["init", "demo", "--lang", lang]);
    assert_ok("kspec init", &out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("`demo`"), "{stdout}");
    assert!(stdout.ends_with("next: cd demo && kspec run\n"), "{stdout}");
    let project = tmp.path().join("demo");
    (tmp, project)
}

fn expected_files(lang: &str) -> Vec<String> {
    let mut want: Vec<String> = [
        "kspec.toml",
        "README.md",
        ".github/workflows/kspec.yml",
        "specs/demo.yaml",
        "module/Kbuild",
        "module/Makefile",
        "kernels/kernels.yaml",
    ]
    .map(String::from)
    .to_vec();
    match lang {
        "rust" => want.extend(["module/demo_main.rs".into(), "module/glue.c".into()]),
        _ => want.push("module/demo.c".into()),
    }
    let images = framework_root().join("images");
    for sub in ["kconfig", "keys"] {
        for e in std::fs::read_dir(images.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            want.push(format!("kernels/{sub}/{name}"));
        }
    }
    want.sort();
    want
}

#[test]
fn init_writes_a_complete_project_in_both_languages() {
    for lang in LANGS {
        let (_tmp, dir) = new_project(lang);
        let written = files(&dir);
        let names: Vec<String> = written.keys().map(|p| p.display().to_string()).collect();
        assert_eq!(names, expected_files(lang), "{lang}");

        // The kernel list, fragments and keys are kspec's, byte for byte.
        let images = framework_root().join("images");
        for (rel, content) in &written {
            if let Ok(sub) = rel.strip_prefix("kernels") {
                assert_eq!(
                    content,
                    &std::fs::read(images.join(sub)).unwrap(),
                    "{rel:?}"
                );
            }
        }
        let p = Project::load(&dir).unwrap();
        assert_eq!(p.kernels, dir.join("kernels/kernels.yaml"));
        assert_eq!(p.specs, [dir.join("specs")]);
        assert_eq!(p.modules.len(), 1);
        assert_eq!(p.modules[0].name, "demo");
        assert_eq!(p.modules[0].source, dir.join("module"));
        assert!(p.guest.packages.is_empty());

        let main = match lang {
            "rust" => "module/demo_main.rs",
            _ => "module/demo.c",
        };
        let source = text(&written[Path::new(main)]);
        assert!(source.contains("\"demo\""), "{lang}: {source}");
        assert!(source.contains("Hello from demo!\\n"), "{lang}");

        // The spec is valid and names the project's module; four cases.
        let out = kspec(&dir, &["check"]);
        assert_ok("kspec check", &out);
        assert_eq!(text(&out.stdout), "kspec: 1 spec files, 4 cases: ok\n");

        let wf: serde_yaml::Value =
            serde_yaml::from_slice(&written[Path::new(".github/workflows/kspec.yml")]).unwrap();
        assert_eq!(wf["env"]["KSPEC_REPO"].as_str(), Some("OWNER/kspec"));
        let steps = wf["jobs"]["specs"]["steps"].as_sequence().unwrap();
        let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
        assert!(runs
            .iter()
            .any(|r| r.contains("kspec run --kernel \"$KERNEL\"") && r.contains("--json-file")));
        assert!(steps
            .iter()
            .any(|s| s["with"]["path"].as_str() == Some("kspec")));
    }
}

#[test]
fn init_never_overwrites_a_file() {
    for lang in LANGS {
        let (tmp, dir) = new_project(lang);
        let before = files(tmp.path());
        let out = kspec(tmp.path(), &["init", "demo", "--lang", lang]);
        assert_eq!(out.status.code(), Some(2), "{lang}");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr,
            format!(
                "kspec: error: demo/kspec.toml already exists: kspec init writes only new \
                 files (nothing was written)\n"
            )
        );
        assert_eq!(
            files(tmp.path()),
            before,
            "{lang}: the second init changed files"
        );
        assert!(dir.join("kspec.toml").is_file());
    }
    // One file in the way: nothing at all is written, and the error names that file.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("p/specs")).unwrap();
    std::fs::write(tmp.path().join("p/specs/p.yaml"), "mine").unwrap();
    let out = kspec(&tmp.path().join("p"), &["init", "--lang", "c"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("kspec: error: specs/p.yaml already exists"));
    let left = files(&tmp.path().join("p"));
    assert_eq!(left.keys().collect::<Vec<_>>(), [Path::new("specs/p.yaml")]);
}

#[test]
fn init_names_the_module_after_the_directory_or_refuses_a_bad_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = kspec(tmp.path(), &["init", "My-Driver.v2"]);
    assert_ok("kspec init My-Driver.v2", &out);
    let p = Project::load(&tmp.path().join("My-Driver.v2")).unwrap();
    assert_eq!(p.modules[0].name, "my_driver_v2");
    assert!(tmp
        .path()
        .join("My-Driver.v2/module/my_driver_v2_main.rs")
        .is_file());

    let out = kspec(tmp.path(), &["init", "x", "--name", "Bad-Name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("module name \"Bad-Name\""));
    assert!(
        !tmp.path().join("x").exists(),
        "a refused init created its directory"
    );

    let out = kspec(tmp.path(), &["init", "x", "--lang", "go"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The new project's kernels are kspec's: the same cache keys, so the kernels kspec built are
/// the project's too (what makes the round trip below reuse the cache).
#[test]
fn the_new_projects_kernels_have_kspecs_cache_keys() {
    let (_tmp, dir) = new_project("c");
    let theirs = kspec(&dir, &["build", "--print-key"]);
    assert_ok("kspec build --print-key in the new project", &theirs);
    let ours = kspec(&framework_root(), &["build", "--print-key"]);
    assert_ok("kspec build --print-key in kspec", &ours);
    assert_eq!(text(&theirs.stdout), text(&ours.stdout));
}

/// `kspec init demo --lang LANG && cd demo && kspec run`: exit 0 and every case passed.
fn round_trip(lang: &str) {
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (_tmp, dir) = new_project(lang);
    let key = kspec(&dir, &["build", "--print-key"]);
    assert_ok("kspec build --print-key", &key);
    let key = text(&key.stdout).trim().to_owned();
    let cache = kspec::image::Cache::from_env().unwrap();
    let cached = cache
        .root()
        .join(format!("kernels/6.12-{key}/done"))
        .is_file();

    let started = std::time::Instant::now();
    let out = kspec(&dir, &["run"]);
    let took = started.elapsed().as_secs_f64();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("{lang}: kspec run in {took:.1}s\n{stdout}");
    assert_ok(&format!("{lang}: kspec run"), &out);
    let cases = text(&kspec(&dir, &["list"]).stdout);
    assert_eq!(cases.lines().count(), 4, "{cases}");
    for case in cases.lines() {
        let passed = format!("PASS [6.12] {case} (");
        assert!(stdout.contains(&passed), "{lang}: no `{passed}`:\n{stdout}");
    }
    assert!(stdout.contains("4 passed, 0 failed, 0 skipped"), "{stdout}");
    if cached {
        // The kernel kspec had built was reused, not rebuilt.
        assert!(stderr.contains(&format!("up to date ({key})")), "{stderr}");
        assert!(!stderr.contains("building kernel"), "{stderr}");
    }
}

#[test]
fn round_trip_rust() {
    round_trip("rust");
}

#[test]
fn round_trip_c() {
    round_trip("c");
}
