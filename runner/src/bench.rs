//! `kspec bench`: framework and channel numbers side by side. Boots the image several times,
//! measures per-step overhead, a warm build and the warm suite, and runs `kchanctl bench all` in
//! the guest; prints one table (min/median/max, target, ratio to target), optionally JSON and an
//! SVG chart. Benchmarks print numbers; nothing here asserts a time.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{load_specs, EXIT_ENV, EXIT_INVALID};
use crate::exec::{self, RunSettings};
use crate::image::{self, BuildOptions, Image, Quiet, Repo, StderrProgress};
use crate::vm::{self, AccelChoice, StepRequest, Vm};

/// The seed 002 async netlink model's measured rate (messages/s).
pub const SEED_BURST_RATE: f64 = 4013.0;

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
    pub accel: String,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG chart (each figure against its target) here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At most this much (times).
    AtMost(f64),
    /// At least this much (rates, ratios where bigger is better).
    AtLeast(f64),
    /// No target: a figure shown for what it tells (a breakdown, a baseline).
    None,
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub target: Target,
}

impl Figure {
    fn from_samples(name: &str, unit: &str, mut samples: Vec<f64>, target: Target) -> Figure {
        samples.retain(|v| v.is_finite());
        samples.sort_by(f64::total_cmp);
        let median = if samples.is_empty() {
            f64::NAN
        } else {
            samples[samples.len() / 2]
        };
        Figure {
            name: name.into(),
            unit: unit.into(),
            min: samples.first().copied().unwrap_or(f64::NAN),
            median,
            max: samples.last().copied().unwrap_or(f64::NAN),
            target,
        }
    }

    /// median / target: <= 1 meets an AtMost target, >= 1 meets an AtLeast one.
    pub fn ratio(&self) -> Option<f64> {
        match self.target {
            Target::AtMost(t) | Target::AtLeast(t) => Some(self.median / t),
            Target::None => None,
        }
    }

    /// Whether the target is met; None without one.
    pub fn met(&self) -> Option<bool> {
        match self.target {
            Target::AtMost(t) => Some(self.median <= t),
            Target::AtLeast(t) => Some(self.median >= t),
            Target::None => None,
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::AtMost(t) => format!("<= {}", num(t)),
            Target::AtLeast(t) => format!(">= {}", num(t)),
            Target::None => "-".into(),
        }
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

pub fn render_table(figures: &[Figure]) -> String {
    let mut s = format!(
        "{:<50} {:<7} {:>10} {:>10} {:>10} {:>12} {:>6}  {}\n",
        "figure", "unit", "min", "median", "max", "target", "ratio", "met"
    );
    for f in figures {
        s.push_str(&format!(
            "{:<50} {:<7} {:>10} {:>10} {:>10} {:>12} {:>6}  {}\n",
            f.name,
            f.unit,
            num(f.min),
            num(f.median),
            num(f.max),
            f.target_text(),
            f.ratio().map_or("-".into(), |r| format!("{r:.2}")),
            match f.met() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        ));
    }
    s
}

pub fn to_json(kernel: &str, accel: &str, figures: &[Figure]) -> serde_json::Value {
    json!({
        "kernel": kernel,
        "accel": accel,
        "figures": figures.iter().map(|f| json!({
            "name": f.name, "unit": f.unit, "min": f.min, "median": f.median, "max": f.max,
            "target": match f.target { Target::AtMost(t) | Target::AtLeast(t) => Some(t), Target::None => None },
            "target_kind": match f.target { Target::AtMost(_) => "at_most", Target::AtLeast(_) => "at_least", Target::None => "none" },
            "ratio": f.ratio(), "met": f.met(),
        })).collect::<Vec<_>>(),
    })
}

/// A horizontal bar per figure, scaled so that the target is the dashed line: for "at most"
/// figures a bar left of the line is good, for "at least" ones a bar right of it.
pub fn to_svg(title: &str, figures: &[Figure]) -> String {
    let row = 28.0;
    let left = 260.0;
    let width = 420.0;
    // Only figures with a target have a place on an axis scaled by it.
    let figures: Vec<&Figure> = figures.iter().filter(|f| f.ratio().is_some()).collect();
    let height = 60.0 + row * figures.len() as f64;
    // The axis spans 0..2 x target, bars are clamped at the edge.
    let scale = width / 2.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">{}</text>\n",
        xml(title),
        w = left + width + 240.0
    );
    for (i, f) in figures.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let r = f.ratio().unwrap_or(f64::NAN);
        let bar = if r.is_finite() {
            (r.min(2.0)) * scale
        } else {
            0.0
        };
        let color = if f.met() == Some(true) {
            "#3a9a4a"
        } else {
            "#c0392b"
        };
        let how = match f.target {
            Target::AtMost(_) => "lower is better",
            Target::AtLeast(_) | Target::None => "higher is better",
        };
        s.push_str(&format!(
            "<text x=\"10\" y=\"{ty}\">{}</text>\n<rect x=\"{left}\" y=\"{y}\" width=\"{bar:.1}\" height=\"18\" fill=\"{color}\"/>\n\
             <text x=\"{tx:.1}\" y=\"{ty}\">{r:.2}x target ({how})</text>\n",
            xml(&f.name),
            ty = y + 13.0,
            tx = left + bar + 6.0,
        ));
    }
    let x = left + scale;
    s.push_str(&format!(
        "<line x1=\"{x}\" y1=\"32\" x2=\"{x}\" y2=\"{}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n\
         <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">target</text>\n</svg>\n",
        height - 14.0,
        height - 2.0
    ));
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Channel rows of `kchanctl bench all --json`, by name: (min, median, p99).
fn parse_kchanctl(
    json: &str,
) -> Result<std::collections::HashMap<String, (f64, f64, f64)>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("kchanctl bench output: {e}"))?;
    let rows = v
        .as_array()
        .ok_or("kchanctl bench output is not a JSON array")?;
    let mut out = std::collections::HashMap::new();
    for r in rows {
        let name = r["name"].as_str().unwrap_or("").to_owned();
        let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        out.insert(name, (g("min"), g("median"), g("p99")));
    }
    Ok(out)
}

fn channel_figures(
    rows: &std::collections::HashMap<String, (f64, f64, f64)>,
) -> Result<Vec<Figure>, String> {
    let get = |n: &str| {
        rows.get(n)
            .copied()
            .ok_or_else(|| format!("kchanctl bench has no `{n}` row"))
    };
    let null = get("null_syscall")?;
    let mut figs = vec![Figure {
        name: "null syscall (getppid)".into(),
        unit: "ns".into(),
        min: null.0,
        median: null.1,
        max: null.2,
        target: Target::None,
    }];
    // Each channel against the same class of work done by the kernel's own code.
    let vs = |row: &str, reference: &str| -> Result<(f64, f64, f64), String> {
        let (r, b) = (get(row)?, get(reference)?);
        // Ratios to the reference's median; min/max pair the extremes to show the spread.
        Ok((r.0 / b.1, r.1 / b.1, r.2 / b.1))
    };
    for (row, reference, label, target) in [
        (
            "netlink_echo",
            "unix_dgram_rtt",
            "netlink echo / UNIX datagram round trip",
            1.5,
        ),
        (
            "sockopt_get",
            "ip_ttl_get",
            "sockopt get / getsockopt(IP_TTL)",
            2.0,
        ),
        (
            "proc_read",
            "proc_ref_read",
            "proc read / read of /proc/version",
            2.0,
        ),
    ] {
        let (min, median, max) = vs(row, reference)?;
        figs.push(Figure {
            name: label.into(),
            unit: "x".into(),
            min,
            median,
            max,
            target: Target::AtMost(target),
        });
    }
    for (row, label) in [
        ("sockopt_get", "sockopt get / null syscall"),
        ("proc_read", "proc read / null syscall"),
        ("netlink_echo", "netlink echo / null syscall"),
    ] {
        let (min, median, max) = vs(row, "null_syscall")?;
        figs.push(Figure {
            name: label.into(),
            unit: "x".into(),
            min,
            median,
            max,
            target: Target::None,
        });
    }
    let burst = get("netlink_burst")?;
    figs.push(Figure {
        name: "netlink burst".into(),
        unit: "msgs/s".into(),
        min: burst.0,
        median: burst.1,
        max: burst.2,
        target: Target::AtLeast(25.0 * SEED_BURST_RATE),
    });
    figs.push(Figure {
        name: "netlink burst / the seed's 4013 msgs/s".into(),
        unit: "x".into(),
        min: burst.0 / SEED_BURST_RATE,
        median: burst.1 / SEED_BURST_RATE,
        max: burst.2 / SEED_BURST_RATE,
        target: Target::AtLeast(25.0),
    });
    let unix = get("unix_dgram_burst")?;
    figs.push(Figure {
        name: "netlink burst / UNIX datagram burst".into(),
        unit: "x".into(),
        min: burst.0 / unix.1,
        median: burst.1 / unix.1,
        max: burst.2 / unix.1,
        target: Target::AtLeast(0.5),
    });
    let memcpy = get("memcpy")?;
    let mmap = get("mmap_write")?;
    figs.push(Figure {
        name: "mmap write / in-guest memcpy".into(),
        unit: "x".into(),
        min: mmap.0 / memcpy.1,
        median: mmap.1 / memcpy.1,
        max: mmap.2 / memcpy.1,
        target: Target::AtLeast(0.9),
    });
    Ok(figs)
}

/// The module edit loop's build: guest-kmod copied into a cache of its own, built whole, then
/// again after a one-comment Rust edit (incremental, as `kspec run` after an edit), timed
/// phase by phase.
fn module_edit(repo: &Repo, img: &Image) -> Result<Vec<Figure>, String> {
    eprintln!("kspec: bench: module rebuild after an edit");
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let src = scratch.path().join("guest-kmod");
    std::fs::create_dir(&src).map_err(|e| e.to_string())?;
    let from = repo.root.join("guest-kmod");
    for e in std::fs::read_dir(&from).map_err(|e| format!("{}: {e}", from.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.is_file() {
            std::fs::copy(&p, src.join(p.file_name().unwrap_or_default()))
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    let real = image::Cache::from_env()?;
    let tc = image::Toolchain::detect(&real)?;
    let cache = image::Cache::at(scratch.path().join("cache"))?;
    let build = |src: &std::path::Path| {
        image::module::build(
            &img.kernel.name,
            &img.built,
            src,
            "kchan",
            &tc,
            &cache,
            &Quiet,
        )
    };
    // First the whole module (what a new kernel costs), then again after a Rust edit.
    let t = Instant::now();
    build(&src)?;
    let full = t.elapsed().as_secs_f64();
    let main = src.join("kchan_main.rs");
    let mut text = std::fs::read_to_string(&main).map_err(|e| e.to_string())?;
    text.push_str(&format!("// kspec bench edit {:?}\n", Instant::now()));
    std::fs::write(&main, text).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let built = build(&src)?;
    let total = t.elapsed().as_secs_f64();
    let mut figs = vec![
        Figure::from_samples(
            "module: full build of kchan.ko",
            "s",
            vec![full],
            Target::None,
        ),
        Figure::from_samples(
            "module edit: rebuild kchan.ko",
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

pub fn bench(args: BenchArgs) -> u8 {
    crate::cli::stop_vms_on_interrupt();
    match run_bench(&args) {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("kspec: error: {e}");
            code
        }
    }
}

fn run_bench(args: &BenchArgs) -> Result<(), (u8, String)> {
    let env = |e: String| (EXIT_ENV, e);
    let repo = Repo::locate().map_err(env)?;
    let list = repo.kernel_list().map_err(env)?;
    let kernels = list
        .select(args.kernel.as_deref())
        .map_err(|e| (EXIT_INVALID, e))?;
    if kernels.len() != 1 {
        return Err((
            EXIT_INVALID,
            "kspec bench measures one kernel at a time".into(),
        ));
    }
    let choice: AccelChoice = args.accel.parse().map_err(|e| (EXIT_INVALID, e))?;
    let accel = vm::accel::decide(choice).map_err(env)?;
    let images = image::build_images(
        &repo,
        &kernels,
        &BuildOptions::default(),
        &StderrProgress::default(),
    )
    .map_err(env)?;
    let img: &Image = &images[0];
    eprintln!("kspec: accelerator: {accel}");
    let runs = args.runs.max(1);
    let mut figures = Vec::new();

    eprintln!("kspec: bench: warm build x{runs}");
    let mut builds = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        image::build_images(&repo, &kernels, &BuildOptions::default(), &Quiet).map_err(env)?;
        builds.push(t.elapsed().as_secs_f64());
    }
    figures.push(Figure::from_samples(
        "warm `kspec build` (no change)",
        "s",
        builds,
        Target::AtMost(2.0),
    ));
    figures.extend(module_edit(&repo, img).map_err(env)?);

    let settings = RunSettings::new(accel.accel, None);
    let mut cfg = exec::vm_config(img, &settings, exec::DEFAULT_CPUS);
    cfg.snapshots = None;
    eprintln!("kspec: bench: cold boot x{runs}");
    let (mut boots, mut uptimes) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let vm = Vm::boot(&cfg, None).map_err(|e| env(e.to_string()))?;
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
    let snaps = tempfile::tempdir().map_err(|e| env(e.to_string()))?;
    cfg.snapshots = Some(snaps.path().to_owned());
    eprintln!("kspec: bench: snapshot save, then restore x{runs}");
    let first = Vm::boot(&cfg, None).map_err(|e| env(e.to_string()))?;
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
        let vm = Vm::boot(&cfg, None).map_err(|e| env(e.to_string()))?;
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
    let mut vm = Vm::boot(&cfg, None).map_err(|e| env(e.to_string()))?;
    let step_timeout = Duration::from_secs(30);
    let (mut steps, mut in_guest) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let out = vm
            .run(&StepRequest::new("true", step_timeout))
            .map_err(|e| env(e.to_string()))?;
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
            .map_err(|e| env(e.to_string()))?;
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
    let insmod = format!("insmod {}", image::initramfs::MODULE_PATH);
    let load = vm
        .run(&StepRequest::new(&insmod, step_timeout))
        .map_err(|e| env(e.to_string()))?;
    if load.exit() != 0 {
        return Err(env(format!(
            "insmod failed: {}",
            String::from_utf8_lossy(&load.stderr)
        )));
    }
    let cmd = format!("kchanctl bench all --json --iterations {}", args.iterations);
    let out = vm
        .run(&StepRequest::new(&cmd, Duration::from_secs(600)))
        .map_err(|e| env(e.to_string()))?;
    if out.exit() != 0 {
        return Err(env(format!(
            "`{cmd}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    vm.shutdown();
    let rows = parse_kchanctl(&String::from_utf8_lossy(&out.stdout)).map_err(env)?;
    figures.extend(channel_figures(&rows).map_err(env)?);

    if !args.no_suite {
        eprintln!("kspec: bench: warm suite (every spec, VMs in parallel)");
        let specs = load_specs(Some(&repo), &[]).map_err(|c| (c, "invalid specs".to_owned()))?;
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        let settings = RunSettings::new(accel.accel, None);
        let (tx, _rx) = mpsc::channel();
        let t = Instant::now();
        let reports = exec::run_all(
            std::slice::from_ref(img),
            &specs,
            &|_| true,
            &settings,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_compare_medians_with_targets() {
        let f = Figure::from_samples("boot", "s", vec![1.2, 0.4, 0.9], Target::AtMost(0.5));
        assert_eq!((f.min, f.median, f.max), (0.4, 0.9, 1.2));
        assert_eq!(f.met(), Some(false));
        assert!((f.ratio().unwrap() - 1.8).abs() < 1e-9);
        let g = Figure::from_samples("burst", "msgs/s", vec![200000.0], Target::AtLeast(100325.0));
        assert_eq!(g.met(), Some(true));
        let info = Figure::from_samples("phase", "s", vec![1.0], Target::None);
        assert_eq!((info.met(), info.ratio()), (None, None));
        assert!(render_table(&[info]).contains(" -  "));
    }

    #[test]
    fn channel_rows_become_ratios_to_their_references() {
        let json = r#"[{"name":"null_syscall","unit":"ns","min":400,"median":500,"p99":600,"ratio":1.0},
            {"name":"sockopt_get","unit":"ns","min":1000,"median":1500,"p99":2000,"ratio":3.0},
            {"name":"ip_ttl_get","unit":"ns","min":500,"median":600,"p99":700,"ratio":1.2},
            {"name":"proc_read","unit":"ns","min":900,"median":1000,"p99":1200,"ratio":2.0},
            {"name":"proc_ref_read","unit":"ns","min":900,"median":1000,"p99":1100,"ratio":2.0},
            {"name":"netlink_echo","unit":"ns","min":5000,"median":6000,"p99":9000,"ratio":12.0},
            {"name":"unix_dgram_rtt","unit":"ns","min":2000,"median":3000,"p99":4000,"ratio":6.0},
            {"name":"netlink_burst","unit":"msgs/s","min":1,"median":150000,"p99":2,"ratio":null},
            {"name":"unix_dgram_burst","unit":"msgs/s","min":1,"median":200000,"p99":2,"ratio":null},
            {"name":"memcpy","unit":"MB/s","min":1000,"median":1000,"p99":1000,"ratio":1.0},
            {"name":"mmap_write","unit":"MB/s","min":800,"median":900,"p99":950,"ratio":0.9}]"#;
        let figs = channel_figures(&parse_kchanctl(json).unwrap()).unwrap();
        let by = |n: &str| figs.iter().find(|f| f.name.starts_with(n)).unwrap().clone();
        // 1500 / 600 = 2.5 > 2: a sockopt get slower than twice the kernel's own getsockopt.
        let sockopt = by("sockopt get / getsockopt");
        assert!((sockopt.median - 2.5).abs() < 1e-9 && sockopt.met() == Some(false));
        let echo = by("netlink echo / UNIX");
        assert!((echo.median - 2.0).abs() < 1e-9 && echo.met() == Some(false));
        assert_eq!(by("proc read / read of").met(), Some(true));
        assert!((by("netlink burst / UNIX").median - 0.75).abs() < 1e-9);
        assert_eq!(by("netlink burst / the seed").met(), Some(true));
        assert_eq!(by("netlink burst").met(), Some(true));
        let mmap = by("mmap");
        assert!((mmap.median - 0.9).abs() < 1e-9 && mmap.met() == Some(true));
        let svg = to_svg("t", &figs[1..]);
        assert!(svg.starts_with("<svg") && svg.contains("target"));
        assert!(render_table(&figs).contains("NO"));
        // A kchanctl without a reference row is an error, not a figure against nothing.
        let old = json.replace("ip_ttl_get", "something_else");
        assert!(channel_figures(&parse_kchanctl(&old).unwrap()).is_err());
    }
}
