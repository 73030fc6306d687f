//! How VMs are run: the settings every front end passes to exec, and the VM configuration
//! of an image under them.

use std::path::PathBuf;
use std::time::Duration;

use crate::image::Image;
use crate::spec::Isolation;
use crate::vm::{Accel, VmConfig};

pub const DEFAULT_MEMORY_MB: u32 = 256;
pub const DEFAULT_CPUS: u32 = 2;
pub const DEFAULT_OUTPUT_LIMIT: u64 = 4 << 20;
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub accel: Accel,
    /// Guest memory; None: the kernel list's `memory_mb`, else DEFAULT_MEMORY_MB.
    pub memory_mb: Option<u32>,
    pub boot_timeout: Duration,
    /// Where VM snapshots are kept (None: every VM boots cold).
    pub snapshots: Option<PathBuf>,
    /// For spec files that do not say: do their cases share a VM?
    pub isolation: Isolation,
    /// Runs of each case (`kspec run --repeat`).
    pub repeat: u32,
    /// Where failed cases leave their kernel log, console and listed files (`--artifacts`).
    pub artifacts: Option<PathBuf>,
    /// Go on past steps whose only problems `--bless` rewrites.
    pub bless: bool,
}

impl RunSettings {
    /// The settings every front end uses: the boot bound for `accel`, and snapshots in the
    /// build cache unless `KSPEC_SNAPSHOTS=off`.
    pub fn new(accel: Accel, memory_mb: Option<u32>) -> Self {
        let snapshots = match std::env::var("KSPEC_SNAPSHOTS").as_deref() {
            Ok("off" | "0" | "no") => None,
            _ => crate::image::Cache::from_env()
                .and_then(|c| c.dir(&["snapshots"]))
                .ok(),
        };
        RunSettings {
            accel,
            memory_mb,
            boot_timeout: boot_timeout(accel),
            snapshots,
            isolation: Isolation::Spec,
            repeat: 1,
            artifacts: None,
            bless: false,
        }
    }
}

/// TCG boots take seconds; leave room for slow or loaded machines and debug kernels.
pub fn boot_timeout(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => Duration::from_secs(60),
        Accel::Tcg => Duration::from_secs(180),
    }
}

/// How to boot `image` with `cpus` vCPUs: its vmlinux and initramfs, the memory the settings or
/// the kernel list ask for, its extra command line.
pub fn vm_config(image: &Image, settings: &RunSettings, cpus: u32) -> VmConfig {
    VmConfig {
        kernel: image.built.vmlinux.clone(),
        initramfs: image.initramfs.clone(),
        accel: settings.accel,
        memory_mb: settings
            .memory_mb
            .or(image.kernel.memory_mb)
            .unwrap_or(DEFAULT_MEMORY_MB),
        cpus,
        cmdline: image.kernel.cmdline.clone().unwrap_or_default(),
        boot_timeout: settings.boot_timeout,
        snapshots: settings.snapshots.clone(),
    }
}
