//! The QEMU command line for a test VM and for an interactive shell.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::accel::Accel;

#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The uncompressed vmlinux: QEMU boots it directly through its PVH entry point
    /// (CONFIG_PVH), about a second faster under TCG than a bzImage through the BIOS.
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub accel: Accel,
    pub memory_mb: u32,
    /// vCPUs (multi-threaded TCG runs them in parallel on the host's cores).
    pub cpus: u32,
    /// Extra kernel command line.
    pub cmdline: String,
    pub boot_timeout: std::time::Duration,
    /// Where snapshots of booted VMs are kept (None: every VM boots cold).
    pub snapshots: Option<PathBuf>,
}

/// Kernel command line shared by every mode: printk stays off the console (only emergencies
/// reach it, so a panic is still visible), a panic ends QEMU at once. `console` is the port
/// the kernel console (and so /dev/console) uses.
fn base_cmdline(cfg: &VmConfig, console: &str) -> String {
    // tsc=reliable: no clocksource watchdog and no late "Switched to clocksource tsc" lines in
    // a step's log; no i8042 probing (nothing is attached); two UARTs are all we use; expedited
    // RCU makes rmmod's grace periods short.
    let mut s = String::from(
        "panic=-1 loglevel=1 printk.devkmsg=on tsc=reliable \
         i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=2 rcupdate.rcu_expedited=1",
    );
    s.push_str(" console=");
    s.push_str(console);
    if !cfg.cmdline.is_empty() {
        s.push(' ');
        s.push_str(&cfg.cmdline);
    }
    s
}

fn common(cfg: &VmConfig) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    match cfg.accel {
        Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => c.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
    };
    c.args([
        "-m",
        &cfg.memory_mb.to_string(),
        "-smp",
        // One CPU per socket: the MP table (no ACPI in the guest) lists one CPU per package.
        &format!("{n},sockets={n}", n = cfg.cpus.max(1)),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
    ])
    .arg("-no-reboot")
    .arg("-kernel")
    .arg(&cfg.kernel)
    .arg("-initrd")
    .arg(&cfg.initramfs);
    // Whatever happens to the runner, QEMU must not outlive it.
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        let parent = nix::unistd::getpid();
        c.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("parent already gone"));
            }
            Ok(())
        });
    }
    c
}

/// Test VM: ttyS0 is the agent's framed protocol on stdio and nothing else; ttyS1 is the kernel
/// console (so also /dev/console), written to `console_file`. The kernel log itself reaches the
/// host through the agent, record by record. QMP listens on `qmp` (snapshots); `incoming`
/// restores a saved state instead of booting.
pub fn agent_command(
    cfg: &VmConfig,
    console_file: &Path,
    qmp: &Path,
    incoming: Option<&str>,
) -> Command {
    let mut c = common(cfg);
    c.args([
        "-chardev",
        "stdio,id=con,signal=off",
        "-serial",
        "chardev:con",
    ])
    .arg("-serial")
    .arg(format!("file:{}", console_file.display()))
    .args(["-monitor", "none"])
    .arg("-qmp")
    .arg(format!("unix:{},server=on,wait=off", qmp.display()))
    .arg("-append")
    .arg(format!("{} kspec.agent", base_cmdline(cfg, "ttyS1")));
    if let Some(from) = incoming {
        c.arg("-incoming").arg(from);
    }
    c
}

/// Interactive VM: the console on the terminal, Ctrl-A X quits (QEMU's mux).
pub fn shell_command(cfg: &VmConfig) -> Command {
    let mut c = common(cfg);
    c.args(["-serial", "mon:stdio"])
        .arg("-append")
        .arg(base_cmdline(cfg, "ttyS0").replace("loglevel=1", "loglevel=4"));
    c
}
