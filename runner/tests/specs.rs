//! `cargo test` runs every spec case as its own trial, named `<spec>::<case>` with the kernel
//! as its kind: `cargo test -- netlink` filters, `cargo test -- --list` lists (without building).
//! One more trial per kernel, `image::boot`, checks the image itself: `uname -r` in the guest is
//! the version of the kernel list, both vCPUs are online and kchan.ko loads.
//!
//! Cases whose requirements a kernel's Kconfig fragments or version rule out are listed as
//! ignored, so that nextest (a process per trial) shows them as skipped; one that turns out to
//! be unmet only once the kernel is built is reported as ignored by `cargo test` and as a
//! failure under nextest, which would otherwise count it as passed.
//!
//! Environment: KSPEC_KERNELS (default "local": every kernel of images/kernels.yaml tested on
//! this machine kind), KSPEC_ACCEL (auto|kvm|tcg, default auto).
//! The cases of one spec file share one VM, like `kspec run`: the first trial of a file runs the
//! file's selected cases, the others collect their result.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use kspec::exec::RunSettings;
use kspec::exec::{self, CaseReport, Outcome, PrepareOptions, Prepared};
use kspec::image::Image;
use kspec::image::{self, StderrProgress};
use kspec::project::Project;
use kspec::report::human::failure_text;
use kspec::spec::{self, LoadedSpec};
use kspec::vm::{self, AccelChoice};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// (kernel, spec name): a group of cases that share one VM.
type GroupKey = (String, String);
/// The results of one group, filled by whichever trial of the group runs first.
type GroupResults = Arc<OnceLock<HashMap<String, CaseReport>>>;
/// What main() needs before it can make trials.
type Setup = (Project, Vec<image::Kernel>, Vec<LoadedSpec>, Vec<Trial>);

struct Harness {
    project: Project,
    kernels: Vec<image::Kernel>,
    specs: Vec<LoadedSpec>,
    prepared: OnceLock<Result<Prepared, String>>,
    /// (kernel, spec) -> the selected case names of that group.
    selected: HashMap<GroupKey, HashSet<String>>,
    results: Mutex<HashMap<GroupKey, GroupResults>>,
}

impl Harness {
    fn prepared(&self) -> &Result<Prepared, String> {
        self.prepared.get_or_init(|| {
            let refs: Vec<&image::Kernel> = self.kernels.iter().collect();
            let accel: AccelChoice = std::env::var("KSPEC_ACCEL")
                .unwrap_or_else(|_| "auto".into())
                .parse()
                .map_err(|e| format!("KSPEC_ACCEL: {e}"))?;
            let opts = PrepareOptions {
                accel,
                ..Default::default()
            };
            exec::prepare(&self.project, &refs, &opts, &StderrProgress::default())
                .map_err(|e| e.to_string())
        })
    }

    /// The built image of `kernel` and the run settings (building every image on first use).
    fn image(&self, kernel: &str) -> Result<(&Image, &RunSettings), Failed> {
        let prepared = self
            .prepared()
            .as_ref()
            .map_err(|e| Failed::from(format!("image build failed: {e}")))?;
        let image = prepared
            .images
            .iter()
            .find(|i| i.kernel.name == kernel)
            .ok_or("image missing")?;
        Ok((image, &prepared.settings))
    }

    /// Boot the image of `kernel`: the guest runs the listed version and kchan.ko loads.
    fn boot_check(&self, kernel: &str) -> Result<(), Failed> {
        let (image, settings) = self.image(kernel)?;
        let cfg = exec::vm_config(image, settings, exec::DEFAULT_CPUS);
        let mut guest = vm::Vm::boot(&cfg, None)
            .map_err(|e| format!("{e}\n{}", e.console_tail().join("\n")))?;
        if guest.cpus != exec::DEFAULT_CPUS {
            return Err(format!(
                "the guest has {} CPUs online, not {}",
                guest.cpus,
                exec::DEFAULT_CPUS
            )
            .into());
        }
        let step = std::time::Duration::from_secs(30);
        let uname = guest
            .run(&vm::StepRequest::new("uname -r", step))
            .map_err(|e| e.to_string())?;
        let release = String::from_utf8_lossy(&uname.stdout).trim().to_owned();
        if !(release == image.kernel.version
            || release.starts_with(&format!("{}-", image.kernel.version)))
        {
            return Err(format!(
                "guest runs {release:?}, the kernel list says {}",
                image.kernel.version
            )
            .into());
        }
        let module = image.module(None).ok_or("the project has no module")?;
        let insmod = module.insmod(&Default::default());
        let insmod = guest
            .run(&vm::StepRequest::new(&insmod, step))
            .map_err(|e| e.to_string())?;
        if insmod.exit() != 0 {
            return Err(format!(
                "insmod failed ({}): {}",
                insmod.exit(),
                String::from_utf8_lossy(&insmod.stderr)
            )
            .into());
        }
        if !insmod
            .end
            .during
            .records
            .iter()
            .any(|r| r.text.starts_with("kchan: loaded"))
        {
            return Err("insmod succeeded but the kernel log has no `kchan: loaded` line".into());
        }
        Ok(())
    }

    fn run_case(&self, kernel: &str, spec_idx: usize, case: &str) -> Result<Completion, Failed> {
        let (image, settings) = self.image(kernel)?;
        let spec = &self.specs[spec_idx];
        let key = (kernel.to_owned(), spec.name.clone());
        let cell = self
            .results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let reports = cell.get_or_init(|| {
            let wanted = self.selected.get(&key).cloned().unwrap_or_default();
            let (tx, _rx) = mpsc::channel();
            exec::run_spec(image, spec, &|c| wanted.contains(c), settings, &tx)
                .into_iter()
                .map(|r| (r.id.case.clone(), r))
                .collect()
        });
        let r = reports.get(case).ok_or("case was not run")?;
        match &r.outcome {
            Outcome::Passed => Ok(Completion::Completed),
            Outcome::Skipped(why) if std::env::var_os("NEXTEST").is_some() => Err(format!(
                "skipped: {why} (known only once the kernel was built; nextest cannot report \
                 a skip at run time and would count it as passed)"
            )
            .into()),
            Outcome::Skipped(why) => Ok(Completion::ignored_with(why)),
            Outcome::XFailed { .. } => Ok(Completion::Completed),
            Outcome::Failed(_) | Outcome::XPassed(_) => Err(failure_text(r).into()),
        }
    }
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let setup = || -> Result<Setup, String> {
        let project = Project::locate().map_err(|e| e.to_string())?;
        let list = image::kernel_list(&project).map_err(|e| e.to_string())?;
        let which = std::env::var("KSPEC_KERNELS").unwrap_or_else(|_| "local".into());
        let kernels: Vec<image::Kernel> = list
            .select(Some(&which))
            .map_err(|e| e.to_string())?
            .into_iter()
            .cloned()
            .collect();
        let files = spec::discover(&project.specs)?;
        let mut specs = Vec::new();
        let mut broken = Vec::new();
        for f in files {
            match spec::load_file(&f) {
                Ok(s) => specs.push(s),
                Err(errs) => {
                    let msg = errs
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let name = f
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    broken.push(Trial::test(format!("{name}::<invalid spec>"), move || {
                        Err(msg.into())
                    }));
                }
            }
        }
        Ok((project, kernels, specs, broken))
    };
    let (project, kernels, specs, broken) = match setup() {
        Ok(s) => s,
        Err(e) => {
            let trial = Trial::test("kspec::setup", move || Err(e.into()));
            return libtest_mimic::run(&args, vec![trial]).exit_code();
        }
    };

    // Trials interleaved across (kernel, spec) groups so that the test threads start different
    // VMs instead of waiting on the same one.
    let mut groups: Vec<Vec<(String, usize, String)>> = Vec::new();
    for k in &kernels {
        for (si, s) in specs.iter().enumerate() {
            groups.push(
                s.spec
                    .cases
                    .iter()
                    .map(|c| (k.name.clone(), si, c.name.clone()))
                    .collect(),
            );
        }
    }
    let mut order = Vec::new();
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for g in &groups {
            if let Some(t) = g.get(i) {
                order.push(t.clone());
            }
        }
    }
    let name_of = |si: usize, case: &str| format!("{}::{case}", specs[si].name);
    let fragments: HashMap<String, Vec<String>> = kernels
        .iter()
        .map(|k| {
            let texts = k
                .fragments
                .iter()
                .map(|f| std::fs::read_to_string(project.kconfig_dir().join(f)))
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_default();
            (k.name.clone(), texts)
        })
        .collect();
    // (kernel, spec, case) whose file's or own requirements the kernel cannot meet.
    let mut ruled_out: HashSet<(String, usize, String)> = HashSet::new();
    for k in &kernels {
        for (si, s) in specs.iter().enumerate() {
            for (ci, c) in s.spec.cases.iter().enumerate() {
                if exec::unmet_before_build(s, Some(ci), k, &fragments[&k.name]).is_some() {
                    ruled_out.insert((k.name.clone(), si, c.name.clone()));
                }
            }
        }
    }
    let mut selected: HashMap<GroupKey, HashSet<String>> = HashMap::new();
    for (k, si, case) in &order {
        let probe = Trial::test(name_of(*si, case), || Ok(()))
            .with_kind(k.clone())
            .with_ignored_flag(ruled_out.contains(&(k.clone(), *si, case.clone())));
        if !args.is_filtered_out(&probe) && !args.is_ignored(&probe) {
            selected
                .entry((k.clone(), specs[*si].name.clone()))
                .or_default()
                .insert(case.clone());
        }
    }
    let trial_names: Vec<(String, String, usize, String)> = order
        .into_iter()
        .map(|(k, si, case)| (name_of(si, &case), k, si, case))
        .collect();
    let harness = Arc::new(Harness {
        project,
        kernels,
        specs,
        prepared: OnceLock::new(),
        selected,
        results: Mutex::new(HashMap::new()),
    });
    let mut trials = broken;
    for k in &harness.kernels {
        let h = harness.clone();
        let name = k.name.clone();
        trials.push(
            Trial::test("image::boot", move || h.boot_check(&name)).with_kind(k.name.clone()),
        );
    }
    for (name, kernel, si, case) in trial_names {
        let h = harness.clone();
        let k = kernel.clone();
        let ignored = ruled_out.contains(&(kernel.clone(), si, case.clone()));
        trials.push(
            Trial::ignorable_test(name, move || h.run_case(&k, si, &case))
                .with_kind(kernel)
                .with_ignored_flag(ignored),
        );
    }
    libtest_mimic::run(&args, trials).exit_code()
}
