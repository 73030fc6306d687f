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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccelError {
    #[error("unknown accelerator {0:?} (auto, kvm or tcg)")]
    Unknown(String),
    #[error("--accel kvm: {0}")]
    KvmUnusable(String),
}

impl std::str::FromStr for AccelChoice {
    type Err = AccelError;
    fn from_str(s: &str) -> Result<Self, AccelError> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(AccelError::Unknown(s.into())),
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
    if !has_virtualization(&cpuinfo) {
        return Some(
            "/dev/kvm exists but the CPU has no vmx/svm flag (nested KVM is emulated here)".into(),
        );
    }
    None
}

/// Whether /proc/cpuinfo's flags include hardware virtualization.
fn has_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// The accelerator for `choice` on this host.
pub fn decide(choice: AccelChoice) -> Result<AccelDecision, AccelError> {
    decide_given(choice, kvm_problem())
}

/// The decision given what is wrong with KVM here (None: nothing).
fn decide_given(
    choice: AccelChoice,
    kvm_problem: Option<String>,
) -> Result<AccelDecision, AccelError> {
    match choice {
        AccelChoice::Tcg => Ok(AccelDecision {
            accel: Accel::Tcg,
            reason: "requested with --accel tcg".into(),
        }),
        AccelChoice::Kvm => match kvm_problem {
            // No device at all: QEMU would fail; a device without vmx/svm is slow but works.
            Some(p) if p.starts_with("/dev/kvm:") => Err(AccelError::KvmUnusable(p)),
            Some(p) => Ok(AccelDecision {
                accel: Accel::Kvm,
                reason: format!("requested with --accel kvm, although {p}"),
            }),
            None => Ok(AccelDecision {
                accel: Accel::Kvm,
                reason: "requested with --accel kvm".into(),
            }),
        },
        AccelChoice::Auto => Ok(match kvm_problem {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_kvm_only_when_nothing_is_wrong_with_it() {
        let d = decide_given(AccelChoice::Auto, None).unwrap();
        assert_eq!(d.accel, Accel::Kvm);
        let d = decide_given(AccelChoice::Auto, Some("/dev/kvm: No such file".into())).unwrap();
        assert_eq!(d.accel, Accel::Tcg);
        assert_eq!(d.to_string(), "tcg (auto: /dev/kvm: No such file)");
        let emulated = "/dev/kvm exists but the CPU has no vmx/svm flag".to_owned();
        let d = decide_given(AccelChoice::Auto, Some(emulated)).unwrap();
        assert_eq!(d.accel, Accel::Tcg);
    }

    #[test]
    fn an_explicit_choice_is_kept_unless_there_is_no_device() {
        let d = decide_given(AccelChoice::Tcg, None).unwrap();
        assert_eq!(d.accel, Accel::Tcg);
        let slow = "/dev/kvm exists but the CPU has no vmx/svm flag".to_owned();
        let d = decide_given(AccelChoice::Kvm, Some(slow)).unwrap();
        assert_eq!(d.accel, Accel::Kvm);
        assert!(d.reason.contains("although"), "{}", d.reason);
        let e = decide_given(AccelChoice::Kvm, Some("/dev/kvm: Permission denied".into()));
        assert_eq!(
            e.unwrap_err().to_string(),
            "--accel kvm: /dev/kvm: Permission denied"
        );
    }

    #[test]
    fn choices_parse_and_unknown_ones_are_named() {
        assert_eq!("kvm".parse::<AccelChoice>(), Ok(AccelChoice::Kvm));
        assert_eq!(
            "qemu".parse::<AccelChoice>().unwrap_err().to_string(),
            "unknown accelerator \"qemu\" (auto, kvm or tcg)"
        );
    }

    #[test]
    fn virtualization_flags_are_read_from_the_flags_lines_only() {
        assert!(has_virtualization("flags\t\t: fpu vme svm sse\n"));
        assert!(has_virtualization("model name : x\nflags : fpu vmx\n"));
        assert!(!has_virtualization("flags : fpu vmxe\nmodel name : vmx\n"));
        assert!(!has_virtualization(""));
    }
}
