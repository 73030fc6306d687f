//! Build the static guest programs (kchanctl and kspec-agent) with the host's cargo. They do
//! not depend on the kernel, so one build serves every kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::{Cache, Key};
use super::progress::Progress;
use super::run::run_logged;

pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

fn is_tool_source(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("rs" | "toml"))
}

/// The built guest programs and their cache key.
pub struct GuestTools {
    pub kchanctl: PathBuf,
    pub agent: PathBuf,
    pub key: String,
}

const PACKAGES: [&str; 2] = ["kchanctl", "kspec-agent"];

pub fn build(repo: &Path, cache: &Cache, progress: &dyn Progress) -> Result<GuestTools, String> {
    let mut key = Key::new("tools-2")
        .dir("guest-tools", &repo.join("guest-tools"), &is_tool_source)?
        .file("abi.rs", &repo.join("guest-kmod/abi.rs"))?
        .file("Cargo.toml", &repo.join("Cargo.toml"))?;
    if repo.join("Cargo.lock").is_file() {
        key = key.file("Cargo.lock", &repo.join("Cargo.lock"))?;
    }
    let key = key.str("cargo", &cargo_version()).finish();
    let dir = cache.dir(&["tools", &key])?;
    let _lock = cache.lock(&dir, progress)?;
    let tools = GuestTools {
        kchanctl: dir.join(PACKAGES[0]),
        agent: dir.join(PACKAGES[1]),
        key: key.clone(),
    };
    if tools.kchanctl.is_file() && tools.agent.is_file() {
        progress.message(&format!("guest tools up to date ({key})"));
        return Ok(tools);
    }
    let target_dir = cache.dir(&["target-guest"])?;
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    progress.message(&format!(
        "building static kchanctl and kspec-agent (log: {})",
        log.display()
    ));
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(repo)
        .args(["build", "--release", "-p", PACKAGES[0], "-p", PACKAGES[1]])
        .args(["--target", GUEST_TARGET, "--target-dir"])
        .arg(&target_dir)
        // An explicit --target keeps build scripts dynamic while the binary is static.
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    for v in [
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
    ] {
        c.env_remove(v);
    }
    run_logged(c, &log, "guest tools build", &|l| {
        progress.tick("building guest tools", l)
    })?;
    for (name, dest) in PACKAGES.iter().zip([&tools.kchanctl, &tools.agent]) {
        let built = target_dir.join(GUEST_TARGET).join("release").join(name);
        std::fs::copy(&built, dest).map_err(|e| format!("{}: {e}", built.display()))?;
    }
    Ok(tools)
}

fn cargo_version() -> String {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
