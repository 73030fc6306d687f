//! kspec on a project of its own, outside this checkout: a project file with two modules, each
//! with default parameters, and specs that say which one they load. Runs `kspec run` in a real
//! VM of the default kernel (the kernel cache is shared).

use std::path::Path;

#[test]
fn a_project_with_two_modules_loads_the_one_each_spec_names() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("specs")).unwrap();
    let toml = format!(
        r#"kernels = "{kernels}"
specs = ["specs"]

[[module]]
name = "kchan"
source = "{kchan}"
params = {{ mmap_pages = 8 }}

[[module]]
name = "kspec_faults"
source = "{faults}"
"#,
        kernels = repo.join("images/kernels.yaml").display(),
        kchan = repo.join("guest-kmod").display(),
        faults = repo.join("runner/tests/kmod").display(),
    );
    std::fs::write(root.join("kspec.toml"), toml).unwrap();
    std::fs::write(
        root.join("specs/first.yaml"),
        r#"module: {}
cases:
  - name: the first module, with the project's parameters
    steps:
      - run: cut -d' ' -f1 /proc/modules
        stdout: "kchan\n"
      - run: cat /sys/module/kchan/parameters/mmap_pages
        stdout: "8\n"
"#,
    )
    .unwrap();
    std::fs::write(
        root.join("specs/second.yaml"),
        r#"module: { name: kspec_faults }
cases:
  - name: the module it names, and only that one
    steps:
      - run: cut -d' ' -f1 /proc/modules
        stdout: "kspec_faults\n"
      - run: test -e /proc/kspec_faults && ls /lib/modules/*.ko
        stdout: "/lib/modules/kchan.ko\n/lib/modules/kspec_faults.ko\n"
"#,
    )
    .unwrap();
    std::fs::write(
        root.join("specs/wrong.yaml.off"),
        "module: { name: nope }\ncases: [{ name: x, steps: [{ run: \"true\" }] }]\n",
    )
    .unwrap();
    let kspec = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("kspec")
            .unwrap()
            .current_dir(root)
            .env_remove("KSPEC_ROOT")
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{text}");
        (out.status.code(), text)
    };
    let (code, out) = kspec(&["run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    // A spec that names a module the project lacks is an error at its line, before anything runs.
    std::fs::rename(
        root.join("specs/wrong.yaml.off"),
        root.join("specs/wrong.yaml"),
    )
    .unwrap();
    let (code, out) = kspec(&["check"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("wrong.yaml:1:1: the project")
            && out.contains("has no module \"nope\" (it has: kchan, kspec_faults)"),
        "{out}"
    );
}
