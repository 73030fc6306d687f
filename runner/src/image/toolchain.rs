//! The toolchain that builds kernels and modules: a rustc with rust-src, bindgen-cli, clang/LLVM.
//! Detected, never installed here (images/setup-host.sh installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::Cache;
use super::Error;

pub const BINDGEN_VERSION: &str = "0.73.2";
pub const LLVM_VERSION: &str = "19";

#[derive(Debug, Clone)]
pub struct Toolchain {
    pub rustc: PathBuf,
    pub rustc_version: String,
    pub bindgen: PathBuf,
    pub bindgen_version: String,
    /// Value of make's LLVM= ("-19").
    pub llvm_suffix: String,
    pub clang_version: String,
    pub libclang_path: PathBuf,
    /// Why this rustc: shown to the user.
    pub rustc_choice: String,
}

fn version_of(cmd: &Path, arg: &str) -> Option<String> {
    let out = Command::new(cmd).arg(arg).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

fn has_rust_src(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib/src/rust/library/core/src/lib.rs")
        .is_file()
}

impl Toolchain {
    pub fn detect(cache: &Cache) -> Result<Self, Error> {
        let setup = "run images/setup-host.sh";
        // The kernel needs rust-src: Debian's rustc-web provides it at /usr; rustup can add it.
        let (rustc, rustc_choice) =
            if has_rust_src(Path::new("/usr")) && Path::new("/usr/bin/rustc").is_file() {
                (
                    PathBuf::from("/usr/bin/rustc"),
                    "Debian rustc-web (/usr/bin/rustc, rust-src at /usr/lib/rustlib)".to_owned(),
                )
            } else {
                let out = Command::new("rustup")
                    .args(["which", "rustc"])
                    .output()
                    .ok()
                    .filter(|o| o.status.success());
                let path = out.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
                match path {
                    Some(p) if p.parent().and_then(Path::parent).is_some_and(has_rust_src) => {
                        (p, "rustup toolchain with the rust-src component".to_owned())
                    }
                    _ => {
                        return Err(Error::Host(format!(
                            "no rustc with rust-src found (kernel Rust support needs it): {setup}"
                        )))
                    }
                }
            };
        let rustc_version = version_of(&rustc, "--version")
            .ok_or_else(|| Error::Host(format!("{} does not run: {setup}", rustc.display())))?;
        let bindgen = cache
            .root()
            .join(format!("tools/bindgen-{BINDGEN_VERSION}/bin/bindgen"));
        let bindgen_version = version_of(&bindgen, "--version").ok_or_else(|| {
            Error::Host(format!(
                "bindgen-cli {BINDGEN_VERSION} not found at {}: {setup}",
                bindgen.display()
            ))
        })?;
        let clang = PathBuf::from(format!("/usr/bin/clang-{LLVM_VERSION}"));
        let clang_version = version_of(&clang, "--version")
            .ok_or_else(|| Error::Host(format!("clang-{LLVM_VERSION} not found: {setup}")))?;
        for tool in ["ld.lld", "llvm-ar", "llvm-nm", "llvm-objcopy"] {
            let p = PathBuf::from(format!("/usr/bin/{tool}-{LLVM_VERSION}"));
            if !p.exists() {
                return Err(Error::Host(format!("{} not found: {setup}", p.display())));
            }
        }
        for tool in ["make", "flex", "bison", "bc", "qemu-system-x86_64"] {
            if which(tool).is_none() {
                return Err(Error::Host(format!("`{tool}` not found in PATH: {setup}")));
            }
        }
        Ok(Toolchain {
            rustc,
            rustc_version,
            bindgen,
            bindgen_version,
            llvm_suffix: format!("-{LLVM_VERSION}"),
            clang_version,
            libclang_path: PathBuf::from(format!("/usr/lib/llvm-{LLVM_VERSION}/lib")),
            rustc_choice,
        })
    }

    /// Identity for cache keys: a different compiler means a different kernel.
    pub fn identity(&self) -> String {
        format!(
            "{}|{}|{}",
            self.rustc_version, self.bindgen_version, self.clang_version
        )
    }

    /// `make` with the toolchain variables every kernel/module build needs.
    pub fn make(&self, dir: &Path) -> Command {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(dir)
            .arg(format!("LLVM={}", self.llvm_suffix))
            .arg(format!("RUSTC={}", self.rustc.display()))
            .arg(format!("BINDGEN={}", self.bindgen.display()))
            .env("LIBCLANG_PATH", &self.libclang_path);
        // A cargo-invoked runner must not leak its own Rust settings into the kernel build.
        for v in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "MAKEFLAGS",
            "MFLAGS",
        ] {
            c.env_remove(v);
        }
        c
    }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}
