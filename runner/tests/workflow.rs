//! The GitHub workflow, checked here. The quick tests pin what makes it correct by construction
//! (the cache saved on failure, no step output that hides a failing command, reports kept
//! whatever the outcome). The ignored one (`.ci/simulate-workflow` runs it) executes the specs
//! job for the default kernel on this machine: its matrix entry from the matrix job, every
//! `run:` step in bash as GitHub runs them (`-eo pipefail`, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY,
//! `${{ }}` expressions, `if:` conditions), the kernel downloaded with KSPEC_SOURCE's GitHub
//! path from a loopback mirror serving the Debian source of the same release under kernel.org's
//! name. What differs from a real runner: the trust anchor (a copy of the checkout whose
//! kernels.yaml pins a throwaway key that signed the mirror's sha256sums.asc), the `uses:`
//! actions (imitated: cache restore misses, cache save and upload check their paths exist),
//! the steps that need a GitHub image (KVM udev rule, rustup toolchain install; listed in SKIP).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;
use support::{sh, sums_line, Reply, Server, SigningKey};

const AUTOSIGNER: &str = "B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1";

/// Steps that need a GitHub runner image, and why they are not run here.
const SKIP: &[(&str, &str)] = &[
    (
        "Let this user open /dev/kvm",
        "a udev rule for the runner user; here the job runs as root (and KVM is emulated: TCG)",
    ),
    (
        "Rust toolchain",
        "rustup cannot fetch toolchains here; the machine's toolchain builds kspec, Debian's rustc-web the kernel",
    ),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn workflow() -> Value {
    let path = repo_root().join(".github/workflows/kspec.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn steps<'a>(wf: &'a Value, job: &str) -> &'a [Value] {
    wf["jobs"][job]["steps"].as_sequence().unwrap()
}

fn step_name(step: &Value) -> String {
    step["name"]
        .as_str()
        .or(step["uses"].as_str())
        .or(step["run"].as_str())
        .unwrap_or("?")
        .to_owned()
}

fn uses(step: &Value) -> &str {
    step["uses"].as_str().unwrap_or("")
}

#[test]
fn the_kernel_cache_is_saved_as_soon_as_the_kernel_is_built() {
    let wf = workflow();
    let steps = steps(&wf, "specs");
    let at = |pred: &dyn Fn(&Value) -> bool| steps.iter().position(pred);
    // actions/cache alone saves only when the whole job succeeds.
    assert!(at(&|s| uses(s).starts_with("actions/cache@")).is_none());
    let build = at(&|s| {
        s["run"]
            .as_str()
            .is_some_and(|r| r.contains("kspec build --kernel") && !r.contains("--print-key"))
    })
    .unwrap();
    let save = at(&|s| uses(s).starts_with("actions/cache/save@")).unwrap();
    let specs = at(&|s| s["run"].as_str().is_some_and(|r| r.contains("kspec run"))).unwrap();
    assert!(build < save && save < specs);
    assert!(steps[save]["if"].as_str().unwrap().contains("always()"));
    assert_eq!(
        steps[save]["with"]["key"],
        steps[at(&|s| uses(s).starts_with("actions/cache/restore@")).unwrap()]["with"]["key"]
    );
}

#[test]
fn no_step_output_hides_a_failing_command() {
    let wf = workflow();
    for (job, _) in wf["jobs"].as_mapping().unwrap() {
        for step in steps(&wf, job.as_str().unwrap()) {
            for line in step["run"].as_str().unwrap_or("").lines() {
                assert!(
                    !(line.contains("GITHUB_OUTPUT") && line.contains("$(")),
                    "`{line}`: a command substitution inside the echo loses its exit status"
                );
            }
        }
    }
}

#[test]
fn reports_are_summarised_and_uploaded_whatever_the_outcome() {
    let wf = workflow();
    let steps = steps(&wf, "specs");
    for s in steps.iter().filter(|s| {
        uses(s).starts_with("actions/upload-artifact@")
            || s["run"]
                .as_str()
                .is_some_and(|r| r.contains("GITHUB_STEP_SUMMARY"))
    }) {
        assert_eq!(s["if"].as_str(), Some("always()"), "{}", step_name(s));
    }
    assert_eq!(
        wf["env"]["RUST_TOOLCHAIN"]
            .as_str()
            .map(|v| v.split('.').count()),
        Some(3),
        "a pinned toolchain is an exact version"
    );
}

/// The state of a job being imitated.
struct Job {
    env: HashMap<String, String>,
    matrix: serde_json::Value,
    outputs: HashMap<String, HashMap<String, String>>,
    outcomes: HashMap<String, &'static str>,
    failed: Vec<String>,
    scratch: PathBuf,
    ran: usize,
}

impl Job {
    /// `${{ expr }}` for the expressions the workflow uses.
    fn value(&self, expr: &str) -> String {
        let expr = expr.trim();
        let parts: Vec<&str> = expr.split('.').collect();
        match parts.as_slice() {
            ["matrix", k] => match &self.matrix[k] {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            },
            ["steps", id, "outputs", k] => self
                .outputs
                .get(*id)
                .and_then(|o| o.get(*k))
                .cloned()
                .unwrap_or_default(),
            ["steps", id, "outcome"] => self.outcomes.get(*id).unwrap_or(&"skipped").to_string(),
            _ => panic!("the simulation cannot evaluate `${{{{ {expr} }}}}`"),
        }
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${{") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find("}}").expect("unclosed ${{") + i;
            out.push_str(&self.value(&rest[i + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// An `if:` of `&&`-joined terms: always(), `a == 'b'`, `a != 'b'`. Without always(), a
    /// step runs only while no earlier step failed (GitHub's implicit success()).
    fn should_run(&self, cond: Option<&str>) -> bool {
        let Some(cond) = cond else {
            return self.failed.is_empty();
        };
        let mut always = false;
        let mut all = true;
        for term in cond.split("&&").map(str::trim) {
            let lit = |s: &str| s.trim().trim_matches('\'').to_owned();
            if term == "always()" {
                always = true;
            } else if let Some((l, r)) = term.split_once("!=") {
                all &= self.value(l) != lit(r);
            } else if let Some((l, r)) = term.split_once("==") {
                all &= self.value(l) == lit(r);
            } else {
                panic!("the simulation cannot evaluate `if: {cond}`");
            }
        }
        all && (always || self.failed.is_empty())
    }

    fn run_step(&mut self, step: &Value, cwd: &Path) {
        let name = step_name(step);
        let id = step["id"].as_str().unwrap_or("").to_owned();
        if !self.should_run(step["if"].as_str()) {
            eprintln!("simulate: skip `{name}` (its condition is false)");
            return;
        }
        if let Some((_, why)) = SKIP.iter().find(|(n, _)| *n == name) {
            eprintln!("simulate: not run here `{name}`: {why}");
            return;
        }
        let with = |k: &str| self.substitute(step["with"][k].as_str().unwrap_or(""));
        let ok = if let Some(script) = step["run"].as_str() {
            let script = self.substitute(script);
            self.ran += 1;
            let out_file = self.scratch.join(format!("output-{}", self.ran));
            std::fs::write(&out_file, "").unwrap();
            eprintln!("simulate: run `{name}`");
            let status = Command::new("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
                .current_dir(cwd)
                .envs(&self.env)
                .env("GITHUB_OUTPUT", &out_file)
                .status()
                .unwrap();
            let outputs = std::fs::read_to_string(&out_file)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            self.outputs.insert(id.clone(), outputs);
            status.success()
        } else {
            let action = uses(step);
            eprintln!("simulate: imitate `{name}` ({action})");
            let paths = || -> Vec<String> {
                with("path")
                    .lines()
                    .map(|p| p.trim().replacen('~', &self.env["HOME"], 1))
                    .filter(|p| !p.is_empty())
                    .collect()
            };
            match action.split('@').next().unwrap() {
                "actions/checkout" => true,
                // A fresh runner: nothing cached yet.
                "actions/cache/restore" => {
                    let keyed = !with("key").trim().ends_with('-');
                    let out = HashMap::from([("cache-hit".to_owned(), "false".to_owned())]);
                    self.outputs.insert(id.clone(), out);
                    keyed
                }
                "actions/cache/save" | "actions/upload-artifact" => {
                    let missing: Vec<String> =
                        paths().into_iter().filter(|p| !exists(cwd, p)).collect();
                    if !missing.is_empty() {
                        eprintln!("simulate: `{name}`: nothing at {missing:?}");
                    }
                    missing.is_empty() && !with("key").trim().ends_with('-')
                }
                "taiki-e/install-action" => Command::new("cargo")
                    .args(["nextest", "--version"])
                    .output()
                    .is_ok_and(|o| o.status.success()),
                other => panic!("the simulation does not know the action {other}"),
            }
        };
        if !id.is_empty() {
            self.outcomes
                .insert(id, if ok { "success" } else { "failure" });
        }
        if !ok {
            eprintln!("simulate: step `{name}` FAILED");
            self.failed.push(name);
        }
    }
}

/// Does `pattern` (a path, relative to `cwd` unless absolute, with `*` in its last part)
/// name something that exists?
fn exists(cwd: &Path, pattern: &str) -> bool {
    let p = cwd.join(pattern);
    let (Some(dir), Some(last)) = (p.parent(), p.file_name()) else {
        return false;
    };
    let last = last.to_string_lossy();
    match last.split_once('*') {
        None => p.exists(),
        Some((pre, post)) => std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len()
            })
        }),
    }
}

/// A copy of the tracked files of the checkout whose kernel list trusts `key` where the real
/// one trusts kernel.org's autosigner.
fn checkout_copy(dest: &Path, key: &SigningKey) {
    let root = repo_root();
    let files = sh(Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"]))
    .stdout;
    for f in files.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(f).unwrap());
        let (from, to) = (root.join(rel), dest.join(rel));
        if from.is_file() {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
    // GitHub's checkout has the lock file by the time kspec builds: its "Build kspec" step ran
    // cargo there. Here that step runs in this checkout, so the copy takes its lock file.
    std::fs::copy(root.join("Cargo.lock"), dest.join("Cargo.lock")).unwrap();
    let list = dest.join("images/kernels.yaml");
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.contains(AUTOSIGNER));
    std::fs::write(&list, text.replace(AUTOSIGNER, &key.fingerprint)).unwrap();
    key.export(&dest.join(format!("images/keys/{}.asc", key.fingerprint)));
}

fn sha256_sums_of_file(path: &Path, name: &str) -> String {
    // The tarball is large: hash it with sha256sum instead of reading it whole.
    let out = sh(Command::new("sha256sum").arg(path)).stdout;
    let sha = String::from_utf8(out).unwrap();
    let sha = sha.split_whitespace().next().unwrap();
    let line = format!("{sha}  {name}\n");
    assert_eq!(line.len(), sums_line(b"", name).len());
    line
}

#[test]
#[ignore = "runs the specs job of the workflow for the default kernel (a kernel build and every spec, twice): .ci/simulate-workflow"]
fn the_specs_job_runs_here_against_a_loopback_mirror() {
    let scratch = tempfile::tempdir().unwrap();
    let key = SigningKey::new(scratch.path());
    let copy = scratch.path().join("checkout");
    checkout_copy(&copy, &key);

    // The default kernel's GitHub source, served from the Debian source of the same release.
    let list: Value =
        serde_yaml::from_str(&std::fs::read_to_string(copy.join("images/kernels.yaml")).unwrap())
            .unwrap();
    let default = list["default"].as_str().unwrap();
    let kernel = list["kernels"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|k| k["name"].as_str() == Some(default))
        .unwrap();
    let url = kernel["github_source"]["tarball"]["url"].as_str().unwrap();
    let tree = "/pub/linux/kernel";
    let rel = &url[url.find(tree).unwrap() + tree.len()..];
    let (dir, name) = rel.rsplit_once('/').unwrap();
    let package = kernel["source"]["debian"]["package"].as_str().unwrap();
    let debian = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
    let sums = key.clearsign(&sha256_sums_of_file(&debian, name));
    let server = Server::start(HashMap::from([
        (rel.to_owned(), Reply::File(debian)),
        (format!("{dir}/sha256sums.asc"), Reply::Serve(sums)),
    ]));

    // A tree unpacked by an earlier simulation is reused without a download, as on a runner
    // whose cache was restored.
    let cache = std::env::var("KSPEC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kspec"));
    let stem = name.trim_end_matches(".tar.xz");
    let unpacked_before = cache.join(format!("src/tarball-{stem}.ok")).is_file();

    let wf = workflow();
    let root = repo_root();
    let mut env: HashMap<String, String> = wf["env"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    env.insert("HOME".into(), std::env::var("HOME").unwrap());
    env.insert("GITHUB_ACTIONS".into(), "true".into());
    env.insert("CI".into(), "true".into());
    env.insert("KSPEC_ROOT".into(), copy.display().to_string());
    env.insert("KSPEC_KERNEL_MIRROR".into(), server.base.clone());
    let summary = scratch.path().join("step-summary.md");
    std::fs::write(&summary, "").unwrap();
    env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());

    // The matrix job, for the matrix entry.
    let mut matrix_job = Job {
        env: env.clone(),
        matrix: serde_json::Value::Null,
        outputs: HashMap::new(),
        outcomes: HashMap::new(),
        failed: Vec::new(),
        scratch: scratch.path().to_owned(),
        ran: 0,
    };
    for step in steps(&wf, "matrix") {
        matrix_job.run_step(step, &root);
    }
    assert!(matrix_job.failed.is_empty(), "{:?}", matrix_job.failed);
    let kernels: serde_json::Value =
        serde_json::from_str(&matrix_job.outputs["list"]["kernels"]).unwrap();
    let entry = kernels["include"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["default"] == true)
        .unwrap()
        .clone();

    let mut job = Job {
        env,
        matrix: entry,
        outputs: HashMap::new(),
        outcomes: HashMap::new(),
        failed: Vec::new(),
        scratch: scratch.path().to_owned(),
        ran: 0,
    };
    for (k, v) in wf["jobs"]["specs"]["env"].as_mapping().unwrap() {
        let v = job.substitute(v.as_str().unwrap());
        job.env.insert(k.as_str().unwrap().to_owned(), v);
    }
    for step in steps(&wf, "specs") {
        job.run_step(step, &root);
    }
    let kernel_name = job.value("matrix.kernel");
    let produced = [
        root.join(format!("junit-{kernel_name}.xml")),
        root.join(format!("report-{kernel_name}.jsonl")),
    ];
    let summary = std::fs::read_to_string(&summary).unwrap();
    eprintln!("simulate: job summary:\n{summary}");
    for p in &produced {
        let _ = std::fs::remove_file(p);
    }
    assert!(job.failed.is_empty(), "failed steps: {:?}", job.failed);
    assert!(
        summary.contains(&format!("| spec | {kernel_name} |")) && summary.contains("**all**"),
        "no per-kernel table in the job summary"
    );
    let requests = server.requests();
    assert!(
        unpacked_before || requests.iter().any(|r| r.ends_with(name)),
        "the kernel was not downloaded from the mirror: {requests:?}"
    );
    assert!(cache.join(format!("src/tarball-{stem}.ok")).is_file());
}
