//! The subcommands, on top of every layer. Exit codes: 0 ok, 1 failed cases, 2 invalid specs
//! or usage, 3 environment or build errors.

use std::path::PathBuf;

use crate::exec::{self, PrepareOptions};
use crate::image::{self, BuildOptions, StderrProgress};
use crate::project::Project;
use crate::report::{self};
use crate::spec::{self, LoadedSpec};
use crate::vm::{self, AccelChoice};

use crate::exit::{ENV as EXIT_ENV, FAILED as EXIT_FAILED, INVALID as EXIT_INVALID};

mod run;
pub use run::{run, RunArgs};

/// The project and the kernels a `--kernel` argument names; errors already printed.
pub(super) fn project_and_kernels(
    kernel: Option<&str>,
) -> Result<(Project, Vec<image::Kernel>), u8> {
    let project = Project::locate().map_err(|e| err(EXIT_ENV, e))?;
    let list = image::kernel_list(&project).map_err(|e| image_err(&e))?;
    let kernels = list
        .select(kernel)
        .map_err(|e| image_err(&e))?
        .into_iter()
        .cloned()
        .collect();
    Ok((project, kernels))
}

pub(super) fn err(code: u8, msg: impl std::fmt::Display) -> u8 {
    eprintln!("kspec: error: {msg}");
    code
}

/// An image error's exit code (printed): the user's mistake or the machine's.
fn image_err(e: &image::Error) -> u8 {
    let code = match e {
        image::Error::Usage(_) => EXIT_INVALID,
        _ => EXIT_ENV,
    };
    err(code, e)
}

pub(super) fn prepare_err(e: &exec::PrepareError) -> u8 {
    err(if e.is_usage() { EXIT_INVALID } else { EXIT_ENV }, e)
}

/// Load and validate specs (the project's spec directories when `paths` is empty), and
/// check the modules they name against the project; print every error as file:line:col.
pub fn load_specs(project: Option<&Project>, paths: &[PathBuf]) -> Result<Vec<LoadedSpec>, u8> {
    let loaded = match project {
        Some(p) => p.load_specs(paths),
        None if paths.is_empty() => Err(spec::LoadAllError::Paths(
            "no spec paths given and no kspec project found".into(),
        )),
        None => spec::load_all(paths),
    };
    loaded.map_err(|e| match e {
        spec::LoadAllError::Paths(e) => err(EXIT_INVALID, e),
        spec::LoadAllError::Specs(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("kspec: {} error(s) in spec files", errors.len());
            EXIT_INVALID
        }
    })
}

pub fn check(paths: &[PathBuf]) -> u8 {
    let project = Project::locate().ok();
    match load_specs(project.as_ref(), paths) {
        Ok(specs) => {
            let cases: usize = specs.iter().map(|s| s.spec.cases.len()).sum();
            println!("kspec: {} spec files, {cases} cases: ok", specs.len());
            0
        }
        Err(code) => code,
    }
}

pub fn list(paths: &[PathBuf]) -> u8 {
    let project = Project::locate().ok();
    match load_specs(project.as_ref(), paths) {
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
    let (project, kernels) = match project_and_kernels(kernel) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let refs: Vec<&image::Kernel> = kernels.iter().collect();
    match image::kernel_keys(&project, &refs, kernel_src.as_deref()) {
        Ok(keys) => {
            for k in keys {
                println!("{k}");
            }
            0
        }
        Err(e) => image_err(&e),
    }
}

pub fn fetch_sources(kernel: Option<&str>, kernel_src: Option<PathBuf>) -> u8 {
    let (project, kernels) = match project_and_kernels(kernel) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let refs: Vec<&image::Kernel> = kernels.iter().collect();
    let progress = StderrProgress::default();
    match image::fetch_sources(&project, &refs, kernel_src.as_deref(), &progress) {
        Ok(trees) => {
            for (k, tree) in kernels.iter().zip(trees) {
                println!("{}: {}", k.name, tree.display());
            }
            0
        }
        Err(e) => image_err(&e),
    }
}

pub fn build(kernel: Option<&str>, kernel_src: Option<PathBuf>, jobs: usize) -> u8 {
    let started = std::time::Instant::now();
    let (project, kernels) = match project_and_kernels(kernel) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let kernels: Vec<&image::Kernel> = kernels.iter().collect();
    let progress = StderrProgress::default();
    match image::build_images(
        &project,
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
        Err(e) => image_err(&e),
    }
}

pub fn shell(kernel: Option<&str>, accel: AccelChoice) -> u8 {
    let (project, kernels) = match project_and_kernels(kernel) {
        Ok(x) if x.1.len() == 1 => x,
        Ok(_) => return err(EXIT_INVALID, "kspec shell boots exactly one kernel"),
        Err(code) => return code,
    };
    let kernels: Vec<&image::Kernel> = kernels.iter().collect();
    let opts = PrepareOptions {
        accel,
        ..Default::default()
    };
    let prepared = match exec::prepare(&project, &kernels, &opts, &StderrProgress::default()) {
        Ok(p) => p,
        Err(e) => return prepare_err(&e),
    };
    let img = &prepared.images[0];
    let loads: Vec<String> = img
        .modules
        .iter()
        .map(|m| format!("insmod {}", m.guest_path))
        .collect();
    eprintln!(
        "kspec: booting {} — Ctrl-A X or `poweroff` leaves{}{}",
        img.kernel.name,
        if loads.is_empty() { "" } else { "; modules: " },
        loads.join(", ")
    );
    let cfg = exec::vm_config(img, &prepared.settings, exec::DEFAULT_CPUS);
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
    let project = match Project::locate() {
        Ok(p) => p,
        Err(e) => return err(EXIT_ENV, e),
    };
    let list = match image::kernel_list(&project) {
        Ok(l) => l,
        Err(e) => return image_err(&e),
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
