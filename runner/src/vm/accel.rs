//! Choosing the accelerator: KVM only when it really works. On some hosts /dev/kvm exists but
//! is emulated (no vmx/svm in /proc/cpuinfo) and runs thousands of times slower than TCG.

use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(format!("unknown accelerator {s:?} (auto, kvm or tcg)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// The accelerator and why it was chosen (every run prints this).
#[derive(Debug, Clone)]
pub struct AccelDecision {
    pub accel: Accel,
    pub reason: String,
}

impl fmt::Display for AccelDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        };
        write!(f, "{name} ({})", self.reason)
    }
}

const KVM_GET_API_VERSION: u64 = 0xAE00;

/// Why KVM is unusable, or None when it works.
pub fn kvm_problem() -> Option<String> {
    let dev = match OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(f) => f,
        Err(e) => return Some(format!("/dev/kvm: {e}")),
    };
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an int.
    let api = unsafe { nix::libc::ioctl(dev.as_raw_fd(), KVM_GET_API_VERSION as _) };
    if api != 12 {
        return Some(format!("/dev/kvm answers API version {api}, expected 12"));
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !virt {
        return Some(
            "/dev/kvm exists but the CPU has no vmx/svm flag (nested KVM is emulated here)".into(),
        );
    }
    None
}

pub fn decide(choice: AccelChoice) -> Result<AccelDecision, String> {
    match choice {
        AccelChoice::Tcg => Ok(AccelDecision {
            accel: Accel::Tcg,
            reason: "requested with --accel tcg".into(),
        }),
        AccelChoice::Kvm => match kvm_problem() {
            Some(p) if p.starts_with("/dev/kvm:") => Err(format!("--accel kvm: {p}")),
            Some(p) => Ok(AccelDecision {
                accel: Accel::Kvm,
                reason: format!("requested with --accel kvm, although {p}"),
            }),
            None => Ok(AccelDecision {
                accel: Accel::Kvm,
                reason: "requested with --accel kvm".into(),
            }),
        },
        AccelChoice::Auto => Ok(match kvm_problem() {
            None => AccelDecision {
                accel: Accel::Kvm,
                reason: "auto: /dev/kvm works and the CPU has vmx/svm".into(),
            },
            Some(p) => AccelDecision {
                accel: Accel::Tcg,
                reason: format!("auto: {p}"),
            },
        }),
    }
}
