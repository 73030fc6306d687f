//! Build the static guest tools (kchanctl) with the host's cargo. They do not depend on the
//! kernel, so one build serves every kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::{Cache, Key};
use super::progress::Progress;
use super::run::run_logged;

pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

fn is_tool_source(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("rs" | "toml"))
}

pub fn build(
    repo: &Path,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<(PathBuf, String), String> {
    let mut key = Key::new("tools-1")
        .dir("guest-tools", &repo.join("guest-tools"), &is_tool_source)?
        .file("abi.rs", &repo.join("guest-kmod/abi.rs"))?
        .file("Cargo.toml", &repo.join("Cargo.toml"))?;
    if repo.join("Cargo.lock").is_file() {
        key = key.file("Cargo.lock", &repo.join("Cargo.lock"))?;
    }
    let key = key.str("cargo", &cargo_version()).finish();
    let dir = cache.dir(&["tools", &key])?;
    let bin = dir.join("kchanctl");
    if bin.is_file() {
        progress.message(&format!("guest tools up to date ({key})"));
        return Ok((bin, key));
    }
    let target_dir = cache.dir(&["target-guest"])?;
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    progress.message(&format!(
        "building static kchanctl (log: {})",
        log.display()
    ));
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(repo)
        .args([
            "build",
            "--release",
            "-p",
            "kchanctl",
            "--target",
            GUEST_TARGET,
            "--target-dir",
        ])
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
        progress.tick("building kchanctl", l)
    })?;
    let built = target_dir.join(GUEST_TARGET).join("release/kchanctl");
    std::fs::copy(&built, &bin).map_err(|e| format!("{}: {e}", built.display()))?;
    Ok((bin, key))
}

fn cargo_version() -> String {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
