//! Build the static guest programs (the project's packages and kspec-agent) with the host's
//! cargo. They do not depend on the kernel, so one build serves every kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::{Cache, Key};
use super::progress::Progress;
use super::run::run_logged;
use super::Error;

pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// PID 1 of every test VM; a package of the kspec workspace.
pub const AGENT_PACKAGE: &str = "kspec-agent";

fn is_tool_source(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("rs" | "toml" | "lock")
    )
}

/// The built guest programs and their cache key.
pub struct GuestTools {
    /// One per package, named as the package.
    pub programs: Vec<PathBuf>,
    pub agent: PathBuf,
    pub key: String,
}

/// Build `packages` and the agent in the cargo workspace at `root`; `sources` (files or
/// directories) are what they are built from.
pub fn build(
    root: &Path,
    packages: &[String],
    sources: &[PathBuf],
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<GuestTools, Error> {
    let mut key = Key::new("tools-3").str("packages", &packages.join(","));
    for s in sources {
        let name = s.strip_prefix(root).unwrap_or(s).to_string_lossy();
        key = if s.is_dir() {
            key.dir(&name, s, &is_tool_source)?
        } else {
            key.file(&name, s)?
        };
    }
    let key = key.str("cargo", &cargo_version()).finish();
    let dir = cache.dir(&["tools", &key])?;
    let _lock = cache.lock(&dir, progress)?;
    let mut names: Vec<&str> = packages.iter().map(String::as_str).collect();
    names.push(AGENT_PACKAGE);
    let tools = GuestTools {
        programs: packages.iter().map(|p| dir.join(p)).collect(),
        agent: dir.join(AGENT_PACKAGE),
        key: key.clone(),
    };
    if names.iter().all(|n| dir.join(n).is_file()) {
        progress.message(&format!("guest tools up to date ({key})"));
        return Ok(tools);
    }
    let target_dir = cache.dir(&["target-guest"])?;
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    progress.message(&format!(
        "building static {} (log: {})",
        names.join(", "),
        log.display()
    ));
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root).args(["build", "--release"]);
    for n in &names {
        c.args(["-p", n]);
    }
    c.args(["--target", GUEST_TARGET, "--target-dir"])
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
    for n in &names {
        let built = target_dir.join(GUEST_TARGET).join("release").join(n);
        std::fs::copy(&built, dir.join(n)).map_err(|e| Error::io(&built, e))?;
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
