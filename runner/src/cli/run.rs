//! `kspec run`: specs on kernels, rendered by every reporter asked for.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::{err, load_specs, prepare_err, project_and_kernels};
use crate::exec::{self, CaseId, CaseReport, Event, PrepareOptions};
use crate::exit::{ENV as EXIT_ENV, FAILED as EXIT_FAILED, INVALID as EXIT_INVALID};
use crate::image::{self, StderrProgress};
use crate::project::Project;
use crate::report::{self, github::Github, human::Human, json::JsonLines, junit::Junit, Reporter};
use crate::spec;
use crate::spec::bless::BlessEdit;
use crate::vm::AccelChoice;

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
    pub accel: AccelChoice,
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
    /// Run each selected case N times (hunting a flaky case); each run is reported as
    /// "<case> [run k/N]".
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Run only the cases that failed in the last run of this project (its JSON report is
    /// kept in the cache).
    #[arg(long)]
    pub rerun_failed: bool,
    /// Rewrite the exact expectations that failed (plain `stdout:`/`stderr:` strings, `equals`,
    /// `lines`) in the spec files from the actual output, keeping comments and layout. Also
    /// KSPEC_BLESS=1.
    #[arg(long, env = "KSPEC_BLESS", value_parser = clap::builder::BoolishValueParser::new())]
    pub bless: bool,
    /// When a case fails, copy its VM's kernel log, console and the guest files its spec lists
    /// (`artifacts:`) under DIR/<kernel>/<spec>/<case>/, and name them in the report. DIR is
    /// created before anything runs (so a run without failures leaves it empty).
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> u8 {
    let (project, kernels) = match project_and_kernels(args.kernel.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let kernels: Vec<&image::Kernel> = kernels.iter().collect();
    // Before anything is built: a DIR that cannot be made is a usage error, not a lost
    // failure's evidence at the end of a long run.
    if let Some(dir) = &args.artifacts {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("kspec: error: --artifacts {}: {e}", dir.display());
            return 2;
        }
    }
    let specs = match load_specs(Some(&project), &args.paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = PrepareOptions {
        accel: args.accel,
        memory_mb: args.memory,
        kernel_src: args.kernel_src.clone(),
    };
    let prepared = match exec::prepare(&project, &kernels, &opts, &StderrProgress::default()) {
        Ok(p) => p,
        Err(e) => return prepare_err(&e),
    };
    let images = prepared.images;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut settings = prepared.settings;
    settings.isolation = args.isolation;
    settings.repeat = args.repeat;
    settings.artifacts = args.artifacts.clone();
    settings.bless = args.bless;
    let last_run = last_run_file(&project);
    let rerun = if args.rerun_failed {
        match failed_in(&last_run) {
            Ok(ids) if ids.is_empty() => {
                eprintln!(
                    "kspec: the last run ({}) had no failed case",
                    last_run.display()
                );
                return 0;
            }
            Ok(ids) => Some(ids),
            Err(e) => return err(EXIT_INVALID, e),
        }
    } else {
        None
    };
    let filter = args.filter.clone();
    let selected = move |id: &CaseId| {
        filter.as_deref().is_none_or(|f| id.name().contains(f))
            && rerun.as_ref().is_none_or(|ids| ids.contains(id))
    };

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
    // The record `--rerun-failed` reads; a run that cannot write it still runs.
    if let Some(f) = last_run.parent().and_then(|d| {
        std::fs::create_dir_all(d).ok()?;
        std::fs::File::create(&last_run).ok()
    }) {
        reporters.push(Box::new(JsonLines::new(std::io::LineWriter::new(f))));
    }
    crate::vm::live::stop_all_on_interrupt();
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
    if args.bless {
        if let Err(e) = bless(&reports) {
            code = err(EXIT_ENV, e);
        }
    }
    if counts.failed > 0 {
        EXIT_FAILED
    } else {
        code
    }
}

/// Write the failed exact expectations of `reports` into their spec files. A value that two
/// runs of a step saw differently (a repeated case, a shared step list) is left alone.
fn bless(reports: &[CaseReport]) -> Result<(), String> {
    let mut by_file: BTreeMap<&Path, Vec<BlessEdit>> = BTreeMap::new();
    let mut conflicting = HashSet::new();
    for r in reports.iter().filter(|r| r.outcome.is_failure()) {
        for e in r.steps.iter().flat_map(|s| &s.bless) {
            let edits = by_file.entry(&r.file).or_default();
            match edits.iter().find(|x| x.path == e.path) {
                Some(x) if x.value != e.value => {
                    conflicting.insert((r.file.clone(), e.path.clone()));
                }
                Some(_) => {}
                None => edits.push(e.clone()),
            }
        }
    }
    for (file, mut edits) in by_file {
        edits.retain(|e| {
            let clash = conflicting.contains(&(file.to_owned(), e.path.clone()));
            if clash {
                eprintln!(
                    "kspec: bless: {}: {} got different output in different runs; left as it is",
                    file.display(),
                    e.path
                );
            }
            !clash
        });
        if edits.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let new = spec::bless::apply(&text, &edits)
            .map_err(|e| format!("bless: {}: {e}", file.display()))?;
        std::fs::write(file, new).map_err(|e| format!("{}: {e}", file.display()))?;
        eprintln!(
            "kspec: blessed {} expectation(s) in {}; run again to check",
            edits.len(),
            file.display()
        );
    }
    Ok(())
}

/// Where the last run of `project` is recorded: in the cache, one file per project.
fn last_run_file(project: &Project) -> PathBuf {
    let key = image::cache::Key::new("last-run")
        .str("root", &project.root.display().to_string())
        .finish();
    let base = image::Cache::from_env()
        .map(|c| c.root().to_owned())
        .unwrap_or_else(|_| std::env::temp_dir());
    base.join("runs").join(format!("{key}.jsonl"))
}

/// The cases that failed in the JSON lines at `path`.
fn failed_in(path: &Path) -> Result<HashSet<CaseId>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("no last run to rerun ({}: {e})", path.display()))?;
    let mut ids = HashSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{}: not a kspec JSON report: {e}", path.display()))?;
        let failed = matches!(v["outcome"].as_str(), Some("failed" | "xpassed"));
        if v["type"] == "case" && failed {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            // A repeated case is rerun once, by its own name.
            let case = s("case");
            let case = exec::case_of_run(&case).to_owned();
            ids.insert(CaseId {
                kernel: s("kernel"),
                spec: s("spec"),
                case,
            });
        }
    }
    Ok(ids)
}
