//! The subcommands, on top of every layer. Exit codes: 0 ok, 1 failed cases, 2 invalid specs
//! or usage, 3 environment or build errors.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;

use crate::exec::{self, CaseId, Event, RunSettings};
use crate::image::{self, BuildOptions, Repo, StderrProgress};
use crate::report::{self, github::Github, human::Human, json::JsonLines, junit::Junit, Reporter};
use crate::spec::{self, LoadedSpec};
use crate::vm::{self, AccelChoice};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_ENV: u8 = 3;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Spec files or directories (default: specs/).
    pub paths: Vec<PathBuf>,
    /// Kernel name, a comma list, "local" or "all" (default: the list's default).
    #[arg(long)]
    pub kernel: Option<String>,
    /// Only cases whose `<spec>::<case>` name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// VMs at once (default: number of CPUs).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: String,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// JSON lines on stdout instead of human output (GitHub annotations then go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON lines to this file, a line per case as it finishes.
    #[arg(long)]
    pub json_file: Option<PathBuf>,
    /// Guest memory in MiB (default: the kernel list's memory_mb, else 256).
    #[arg(long)]
    pub memory: Option<u32>,
    /// Use a local kernel tree (with a single --kernel).
    #[arg(long)]
    pub kernel_src: Option<PathBuf>,
    /// For spec files without an `isolation` key: `spec` (cases share a VM) or `case` (a VM
    /// per case, restored from the image's snapshot).
    #[arg(long, default_value = "spec")]
    pub isolation: spec::Isolation,
}

/// The checkout and the kernels a `--kernel` argument names; errors already printed.
fn checkout_and_kernels(kernel: Option<&str>) -> Result<(Repo, Vec<image::Kernel>), u8> {
    let repo = Repo::locate().map_err(|e| err(EXIT_ENV, e))?;
    let list = repo.kernel_list().map_err(|e| err(EXIT_ENV, e))?;
    let kernels = list
        .select(kernel)
        .map_err(|e| err(EXIT_INVALID, e))?
        .into_iter()
        .cloned()
        .collect();
    Ok((repo, kernels))
}

fn err(code: u8, msg: impl std::fmt::Display) -> u8 {
    eprintln!("kspec: error: {msg}");
    code
}

/// Load and validate specs; print every error as file:line:col.
pub fn load_specs(repo: Option<&Repo>, paths: &[PathBuf]) -> Result<Vec<LoadedSpec>, u8> {
    let paths = if paths.is_empty() {
        match repo {
            Some(r) => vec![r.specs_dir()],
            None => {
                return Err(err(
                    EXIT_INVALID,
                    "no spec paths given and no kspec checkout found",
                ))
            }
        }
    } else {
        paths.to_vec()
    };
    let files = spec::discover(&paths).map_err(|e| err(EXIT_INVALID, e))?;
    if files.is_empty() {
        return Err(err(EXIT_INVALID, "no spec files (*.yaml) found"));
    }
    let mut specs = Vec::new();
    let mut bad = 0;
    for f in files {
        match spec::load_file(&f) {
            Ok(s) => specs.push(s),
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                    bad += 1;
                }
            }
        }
    }
    let mut names = std::collections::HashMap::new();
    for s in &specs {
        if let Some(prev) = names.insert(s.name.clone(), s.path.clone()) {
            eprintln!(
                "{}:1:1: spec name {:?} is also used by {}",
                s.path.display(),
                s.name,
                prev.display()
            );
            bad += 1;
        }
    }
    if bad > 0 {
        eprintln!("kspec: {bad} error(s) in spec files");
        return Err(EXIT_INVALID);
    }
    Ok(specs)
}

pub fn check(paths: &[PathBuf]) -> u8 {
    let repo = Repo::locate().ok();
    match load_specs(repo.as_ref(), paths) {
        Ok(specs) => {
            let cases: usize = specs.iter().map(|s| s.spec.cases.len()).sum();
            println!("kspec: {} spec files, {cases} cases: ok", specs.len());
            0
        }
        Err(code) => code,
    }
}

pub fn list(paths: &[PathBuf]) -> u8 {
    let repo = Repo::locate().ok();
    match load_specs(repo.as_ref(), paths) {
        Ok(specs) => {
            for s in &specs {
                for c in &s.spec.cases {
                    println!("{}::{}", s.name, c.name);
                }
            }
            0
        }
        Err(code) => code,
    }
}

pub fn print_keys(kernel: Option<&str>, kernel_src: Option<PathBuf>) -> u8 {
    let (repo, kernels) = match checkout_and_kernels(kernel) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let refs: Vec<&image::Kernel> = kernels.iter().collect();
    match image::kernel_keys(&repo, &refs, kernel_src.as_deref()) {
        Ok(keys) => {
            for k in keys {
                println!("{k}");
            }
            0
        }
        Err(e) => err(EXIT_ENV, e),
    }
}

pub fn fetch_sources(kernel: Option<&str>, kernel_src: Option<PathBuf>) -> u8 {
    let (repo, kernels) = match checkout_and_kernels(kernel) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let refs: Vec<&image::Kernel> = kernels.iter().collect();
    let progress = StderrProgress::default();
    match image::fetch_sources(&repo, &refs, kernel_src.as_deref(), &progress) {
        Ok(trees) => {
            for (k, tree) in kernels.iter().zip(trees) {
                println!("{}: {}", k.name, tree.display());
            }
            0
        }
        Err(e) => err(EXIT_ENV, e),
    }
}

pub fn build(kernel: Option<&str>, kernel_src: Option<PathBuf>, jobs: usize) -> u8 {
    let started = std::time::Instant::now();
    let (repo, kernels) = match checkout_and_kernels(kernel) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let kernels: Vec<&image::Kernel> = kernels.iter().collect();
    let progress = StderrProgress::default();
    match image::build_images(
        &repo,
        &kernels,
        &BuildOptions { kernel_src, jobs },
        &progress,
    ) {
        Ok(images) => {
            for i in &images {
                println!(
                    "{}: kernel {} → {} + {}",
                    i.kernel.name,
                    i.kernel.version,
                    i.built.bzimage.display(),
                    i.initramfs.display()
                );
            }
            eprintln!(
                "kspec: build finished in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            0
        }
        Err(e) => err(EXIT_ENV, e),
    }
}

pub fn run(args: RunArgs) -> u8 {
    let (repo, kernels) = match checkout_and_kernels(args.kernel.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let kernels: Vec<&image::Kernel> = kernels.iter().collect();
    let specs = match load_specs(Some(&repo), &args.paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let choice: AccelChoice = match args.accel.parse() {
        Ok(c) => c,
        Err(e) => return err(EXIT_INVALID, e),
    };
    let accel = match vm::accel::decide(choice) {
        Ok(a) => a,
        Err(e) => return err(EXIT_ENV, e),
    };
    let progress = StderrProgress::default();
    let opts = BuildOptions {
        kernel_src: args.kernel_src.clone(),
        jobs: 0,
    };
    let images = match image::build_images(&repo, &kernels, &opts, &progress) {
        Ok(i) => i,
        Err(e) => return err(EXIT_ENV, e),
    };
    eprintln!("kspec: accelerator: {accel}");
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut settings = RunSettings::new(accel.accel, args.memory);
    settings.isolation = args.isolation;
    let filter = args.filter.clone();
    let selected = move |id: &CaseId| filter.as_deref().is_none_or(|f| id.name().contains(f));

    let mut reporters: Vec<Box<dyn Reporter + Send>> = Vec::new();
    if args.json {
        reporters.push(Box::new(JsonLines::new(std::io::stdout())));
    } else {
        reporters.push(Box::new(Human::new(
            std::io::stdout(),
            std::io::stdout().is_terminal(),
        )));
    }
    if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
        // The runner reads workflow commands from both streams; stdout stays pure JSON.
        if args.json {
            reporters.push(Box::new(Github::new(std::io::stderr())));
        } else {
            reporters.push(Box::new(Github::new(std::io::stdout())));
        }
    }
    if let Some(p) = &args.json_file {
        match std::fs::File::create(p) {
            Ok(f) => reporters.push(Box::new(JsonLines::new(std::io::LineWriter::new(f)))),
            Err(e) => return err(EXIT_ENV, format!("{}: {e}", p.display())),
        }
    }
    if let Some(p) = &args.junit {
        reporters.push(Box::new(Junit::new(p.clone())));
    }
    stop_vms_on_interrupt();
    let (tx, rx) = mpsc::channel::<Event>();
    let render = std::thread::spawn(move || {
        for ev in rx {
            for r in reporters.iter_mut() {
                r.event(&ev);
            }
        }
        reporters
    });
    let reports = exec::run_all(&images, &specs, &selected, &settings, jobs, &tx);
    drop(tx);
    let mut reporters = render.join().unwrap_or_default();
    let mut code = 0;
    for r in reporters.iter_mut() {
        if let Err(e) = r.finish(&reports) {
            code = err(EXIT_ENV, e);
        }
    }
    let counts = report::count(&reports);
    if reports.is_empty() {
        return err(EXIT_INVALID, "no case matched");
    }
    if counts.failed > 0 {
        EXIT_FAILED
    } else {
        code
    }
}

/// On SIGINT, SIGTERM or SIGHUP (Ctrl-C, a cancelled CI job): stop every VM, remove their
/// directories and exit 128+signal. Reports written so far (JUnit, JSON file) stay complete:
/// they are rewritten after every case.
pub fn stop_vms_on_interrupt() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let n = vm::live::stop_all();
            eprintln!("kspec: interrupted (signal {sig}): stopped {n} VM(s) and removed their directories");
            std::process::exit(128 + sig);
        }
    });
}

pub fn shell(kernel: Option<&str>, accel: &str) -> u8 {
    let (repo, kernels) = match checkout_and_kernels(kernel) {
        Ok(x) if x.1.len() == 1 => x,
        Ok(_) => return err(EXIT_INVALID, "kspec shell boots exactly one kernel"),
        Err(code) => return code,
    };
    let kernels: Vec<&image::Kernel> = kernels.iter().collect();
    let decision = match accel
        .parse()
        .map_err(|e: String| e)
        .and_then(vm::accel::decide)
    {
        Ok(d) => d,
        Err(e) => return err(EXIT_INVALID, e),
    };
    let images = match image::build_images(
        &repo,
        &kernels,
        &BuildOptions::default(),
        &StderrProgress::default(),
    ) {
        Ok(i) => i,
        Err(e) => return err(EXIT_ENV, e),
    };
    let img = &images[0];
    eprintln!("kspec: accelerator: {decision}");
    eprintln!(
        "kspec: booting {} — Ctrl-A X or `poweroff` leaves; kchan.ko is at {}",
        img.kernel.name,
        image::initramfs::MODULE_PATH
    );
    let settings = RunSettings::new(decision.accel, None);
    let cfg = exec::vm_config(img, &settings, exec::DEFAULT_CPUS);
    // QEMU switches the terminal to raw mode; restore it whatever happens to QEMU.
    let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
    let status = vm::qemu::shell_command(&cfg).status();
    if let Some(t) = saved {
        let _ =
            nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &t);
    }
    match status {
        Ok(s) if s.success() => 0,
        Ok(s) => err(EXIT_FAILED, format!("QEMU exited with {s}")),
        Err(e) => err(EXIT_ENV, format!("cannot start qemu-system-x86_64: {e}")),
    }
}

pub fn summary(paths: &[PathBuf]) -> u8 {
    let mut texts = Vec::new();
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(t) => texts.push((p.display().to_string(), t)),
            Err(e) => return err(EXIT_ENV, format!("{}: {e}", p.display())),
        }
    }
    match report::summary::markdown(&texts) {
        Ok(md) => {
            print!("{md}");
            0
        }
        Err(e) => err(EXIT_INVALID, e),
    }
}

pub fn matrix(local_only: bool) -> u8 {
    let repo = match Repo::locate() {
        Ok(r) => r,
        Err(e) => return err(EXIT_ENV, e),
    };
    let list = match repo.kernel_list() {
        Ok(l) => l,
        Err(e) => return err(EXIT_ENV, e),
    };
    let include: Vec<serde_json::Value> = list
        .kernels
        .iter()
        .filter(|k| !local_only || k.local)
        .map(|k| {
            serde_json::json!({
                "kernel": k.name,
                "version": k.version,
                "rustc": k.toolchain.rustc,
                "bindgen": k.toolchain.bindgen,
                "llvm": k.toolchain.llvm,
                "default": k.name == list.default,
            })
        })
        .collect();
    println!("{}", serde_json::json!({ "include": include }));
    0
}
