//! `kspec bench`: framework and project numbers side by side. Boots the image several times,
//! measures per-step overhead, a warm build and the warm suite, and runs the project's guest
//! bench command (kspec.toml `[bench]`); prints one table (min/median/max, target, ratio to
//! target), optionally JSON and an SVG chart. Benchmarks print numbers; nothing here asserts a
//! time.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod channels;
pub mod figure;

pub use figure::{render_table, to_json, to_svg, Figure, Target};

use crate::exec::{self, PrepareOptions, RunSettings};
use crate::exit::{ENV as EXIT_ENV, INVALID as EXIT_INVALID};
use crate::image::{self, BuildOptions, Image, Quiet, StderrProgress};
use crate::project::Project;
use crate::vm::{self, AccelChoice, StepRequest, Vm};

/// A failure: its exit code and message.
type Fail = (u8, String);

fn env(e: impl std::fmt::Display) -> Fail {
    (EXIT_ENV, e.to_string())
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Kernel name (default: the list's default).
    #[arg(long)]
    pub kernel: Option<String>,
    /// Repetitions of each boot and warm-build measurement.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Iterations per channel operation inside the guest.
    #[arg(long, default_value_t = 2000)]
    pub iterations: usize,
    /// Skip the warm-suite measurement (it runs every spec once).
    #[arg(long)]
    pub no_suite: bool,
    /// auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: AccelChoice,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG chart (each figure against its target) here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

/// The module edit loop's build: the project's first module copied into a cache of its own,
/// built whole, then again after a one-comment edit of its first source file (incremental, as
/// `kspec run` after an edit), timed phase by phase.
fn module_edit(project: &Project, img: &Image) -> Result<Vec<Figure>, Fail> {
    let Some(def) = project.modules.first() else {
        return Ok(vec![]);
    };
    eprintln!("kspec: bench: module rebuild after an edit");
    let scratch = tempfile::tempdir().map_err(env)?;
    let src = scratch.path().join("module");
    std::fs::create_dir(&src).map_err(env)?;
    image::module::sync_sources(&def.source, &src).map_err(env)?;
    let real = image::Cache::from_env().map_err(env)?;
    let tc = image::Toolchain::detect(&real).map_err(env)?;
    let cache = image::Cache::at(scratch.path().join("cache")).map_err(env)?;
    let build = |src: &std::path::Path| {
        image::module::build(
            &img.kernel.name,
            &img.built,
            src,
            &def.name,
            &tc,
            &cache,
            &Quiet,
        )
        .map_err(env)
    };
    // First the whole module (what a new kernel costs), then again after an edit.
    let t = Instant::now();
    build(&src)?;
    let full = t.elapsed().as_secs_f64();
    let edited = first_source(&src).ok_or_else(|| env("the module has no .rs or .c file"))?;
    let mut text = std::fs::read_to_string(&edited).map_err(env)?;
    text.push_str(&format!("// kspec bench edit {:?}\n", Instant::now()));
    std::fs::write(&edited, text).map_err(env)?;
    let t = Instant::now();
    let built = build(&src)?;
    let total = t.elapsed().as_secs_f64();
    let ko = format!("{}.ko", def.name);
    let mut figs = vec![
        Figure::from_samples(
            &format!("module: full build of {ko}"),
            "s",
            vec![full],
            Target::None,
        ),
        Figure::from_samples(
            &format!("module edit: rebuild {ko}"),
            "s",
            vec![total],
            Target::None,
        ),
    ];
    for (phase, secs) in built.phases {
        figs.push(Figure::from_samples(
            &format!("  module build: {phase}"),
            "s",
            vec![secs],
            Target::None,
        ));
    }
    Ok(figs)
}

/// The first .rs or .c file of a module's sources, by name.
fn first_source(dir: &std::path::Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("rs" | "c")))
        .filter(|p| !p.to_string_lossy().ends_with(".mod.c"))
        .collect();
    files.sort();
    files.into_iter().next()
}

/// The project's guest bench command, run with its first module loaded, as figures.
fn project_figures(
    project: &Project,
    img: &Image,
    vm: &mut Vm,
    iterations: usize,
) -> Result<Vec<Figure>, Fail> {
    let Some(command) = &project.bench.command else {
        return Ok(vec![]);
    };
    let step = |vm: &mut Vm, cmd: &str, timeout: u64| {
        let out = vm
            .run(&StepRequest::new(cmd, Duration::from_secs(timeout)))
            .map_err(env)?;
        if out.exit() != 0 {
            return Err(env(format!(
                "`{cmd}` failed ({}): {}",
                out.exit(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(out)
    };
    if let Some(m) = img.modules.first() {
        step(vm, &m.insmod(&Default::default()), 60)?;
    }
    let cmd = command.replace("{iterations}", &iterations.to_string());
    let out = step(vm, &cmd, 600)?;
    let rows = channels::parse_rows(&String::from_utf8_lossy(&out.stdout)).map_err(env)?;
    channels::figures(&project.bench.figure, &rows).map_err(env)
}

pub fn bench(args: BenchArgs) -> u8 {
    crate::vm::live::stop_all_on_interrupt();
    match run_bench(&args) {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("kspec: error: {e}");
            code
        }
    }
}

fn run_bench(args: &BenchArgs) -> Result<(), Fail> {
    let project = Project::locate().map_err(env)?;
    let list = image::kernel_list(&project).map_err(env)?;
    let kernels = list
        .select(args.kernel.as_deref())
        .map_err(|e| (EXIT_INVALID, e.to_string()))?;
    if kernels.len() != 1 {
        return Err((
            EXIT_INVALID,
            "kspec bench measures one kernel at a time".into(),
        ));
    }
    let opts = PrepareOptions {
        accel: args.accel,
        ..Default::default()
    };
    let prepared =
        exec::prepare(&project, &kernels, &opts, &StderrProgress::default()).map_err(|e| {
            (
                if e.is_usage() { EXIT_INVALID } else { EXIT_ENV },
                e.to_string(),
            )
        })?;
    let img: &Image = &prepared.images[0];
    let accel = &prepared.accel;
    let runs = args.runs.max(1);
    let mut figures = Vec::new();

    eprintln!("kspec: bench: warm build x{runs}");
    let mut builds = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        image::build_images(&project, &kernels, &BuildOptions::default(), &Quiet).map_err(env)?;
        builds.push(t.elapsed().as_secs_f64());
    }
    figures.push(Figure::from_samples(
        "warm `kspec build` (no change)",
        "s",
        builds,
        Target::AtMost(2.0),
    ));
    figures.extend(module_edit(&project, img)?);

    let settings: &RunSettings = &prepared.settings;
    let mut cfg = exec::vm_config(img, settings, exec::DEFAULT_CPUS);
    cfg.snapshots = None;
    eprintln!("kspec: bench: cold boot x{runs}");
    let (mut boots, mut uptimes) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let vm = Vm::boot(&cfg, None).map_err(env)?;
        boots.push(vm.boot_time.as_secs_f64());
        uptimes.push(vm.guest_ready_uptime);
        vm.shutdown();
    }
    figures.push(Figure::from_samples(
        "boot: QEMU start -> guest ready (cold)",
        "s",
        boots,
        Target::AtMost(0.8),
    ));
    figures.push(Figure::from_samples(
        "boot: guest uptime at ready",
        "s",
        uptimes,
        Target::None,
    ));
    // A snapshot of its own, so the figures are of this build and nothing else.
    let snaps = tempfile::tempdir().map_err(env)?;
    cfg.snapshots = Some(snaps.path().to_owned());
    eprintln!("kspec: bench: snapshot save, then restore x{runs}");
    let first = Vm::boot(&cfg, None).map_err(env)?;
    let saved = first.snapshot_saved;
    first.shutdown();
    if let Some(saved) = saved {
        figures.push(Figure::from_samples(
            "snapshot: save (once per image)",
            "s",
            vec![saved.as_secs_f64()],
            Target::None,
        ));
    }
    let mut restores = Vec::new();
    let mut phases: Vec<(&str, Vec<f64>)> = Vec::new();
    for _ in 0..runs {
        let vm = Vm::boot(&cfg, None).map_err(env)?;
        if !vm.restored {
            return Err(env(format!(
                "the VM was not restored from its snapshot: {:?}",
                vm.boot_note
            )));
        }
        restores.push(vm.boot_time.as_secs_f64());
        for (i, (name, d)) in vm.boot_phases.iter().enumerate() {
            if phases.len() <= i {
                phases.push((name, Vec::new()));
            }
            phases[i].1.push(d.as_secs_f64());
        }
        vm.shutdown();
    }
    figures.push(Figure::from_samples(
        "boot: QEMU start -> agent answers (from snapshot)",
        "s",
        restores,
        Target::AtMost(0.15),
    ));
    for (name, samples) in phases {
        figures.push(Figure::from_samples(
            &format!("  of which: {name}"),
            "s",
            samples,
            Target::None,
        ));
    }

    eprintln!("kspec: bench: per-step overhead and channels");
    let mut vm = Vm::boot(&cfg, None).map_err(env)?;
    let step_timeout = Duration::from_secs(30);
    let (mut steps, mut in_guest) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let out = vm
            .run(&StepRequest::new("true", step_timeout))
            .map_err(env)?;
        steps.push(out.elapsed.as_secs_f64() * 1000.0);
        in_guest.push(out.end.result.elapsed_us as f64 / 1000.0);
    }
    let rest: Vec<f64> = steps.iter().zip(&in_guest).map(|(a, b)| a - b).collect();
    figures.push(Figure::from_samples(
        "per-step overhead (`true`)",
        "ms",
        steps,
        Target::AtMost(8.0),
    ));
    figures.push(Figure::from_samples(
        "  of which fork, exec and exit of sh",
        "ms",
        in_guest,
        Target::None,
    ));
    figures.push(Figure::from_samples(
        "  of which protocol, agent and host",
        "ms",
        rest,
        Target::None,
    ));
    // Random bytes: the worst case for the protocol's byte stuffing.
    let mut port = Vec::new();
    for _ in 0..3 {
        let out = vm
            .run(&StepRequest::new(
                "head -c 1048576 /dev/urandom",
                step_timeout,
            ))
            .map_err(env)?;
        if out.stdout.len() != 1 << 20 {
            return Err(env(format!(
                "1 MiB of output arrived as {} bytes",
                out.stdout.len()
            )));
        }
        port.push(1024.0 / out.elapsed.as_secs_f64());
    }
    figures.push(Figure::from_samples(
        "protocol port throughput (stdout)",
        "KiB/s",
        port,
        Target::AtLeast(100.0),
    ));
    figures.extend(project_figures(&project, img, &mut vm, args.iterations)?);
    vm.shutdown();

    if !args.no_suite {
        eprintln!("kspec: bench: warm suite (every spec, VMs in parallel)");
        let specs = project
            .load_specs(&[])
            .map_err(|e| (EXIT_INVALID, e.to_string()))?;
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (tx, _rx) = mpsc::channel();
        let t = Instant::now();
        let reports = exec::run_all(
            std::slice::from_ref(img),
            &specs,
            &|_| true,
            settings,
            jobs,
            &tx,
        );
        let secs = t.elapsed().as_secs_f64();
        let c = crate::report::count(&reports);
        eprintln!(
            "kspec: bench: suite: {} passed, {} failed, {} skipped",
            c.passed, c.failed, c.skipped
        );
        figures.push(Figure::from_samples(
            &format!("warm suite ({} cases, {jobs} jobs)", reports.len()),
            "s",
            vec![secs],
            Target::AtMost(10.0),
        ));
    }

    let accel_name = match accel.accel {
        vm::Accel::Kvm => "kvm",
        vm::Accel::Tcg => "tcg",
    };
    let _ = writeln!(
        std::io::stdout(),
        "kspec bench: kernel {} ({}), {accel_name}, {runs} runs\n",
        img.kernel.name,
        img.kernel.version
    );
    let _ = write!(std::io::stdout(), "{}", render_table(&figures));
    if let Some(p) = &args.json {
        let v = to_json(&img.kernel.name, accel_name, &figures);
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap_or_default())
            .map_err(|e| env(format!("{}: {e}", p.display())))?;
    }
    if let Some(p) = &args.chart {
        let title = format!(
            "kspec bench: kernel {} ({accel_name}) — median against target",
            img.kernel.name
        );
        let shown: Vec<Figure> = figures
            .into_iter()
            .filter(|f| f.ratio().is_some_and(|r| r.is_finite() && r > 0.0))
            .collect();
        std::fs::write(p, to_svg(&title, &shown))
            .map_err(|e| env(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}
