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

/// Built static programs, one per package, named as the package.
pub struct GuestTools {
    pub programs: Vec<PathBuf>,
    pub key: String,
}

/// Build `packages` in the cargo workspace at `root`; `sources` (files or directories) are
/// what they are built from, and make their cache key.
pub fn build(
    root: &Path,
    packages: &[String],
    sources: &[PathBuf],
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<GuestTools, Error> {
    if packages.is_empty() {
        return Ok(GuestTools {
            programs: vec![],
            key: "none".into(),
        });
    }
    let mut key = Key::new("tools-4").str("packages", &packages.join(","));
    for s in sources {
        let name = s.strip_prefix(root).unwrap_or(s).to_string_lossy();
        if !s.exists() {
            return Err(Error::Config(format!(
                "guest program source {} does not exist (kspec.toml [guest] sources)",
                s.display()
            )));
        }
        key = if s.is_dir() {
            key.dir(&name, s, &is_tool_source)?
        } else {
            key.file(&name, s)?
        };
    }
    let key = key.str("cargo", &cargo_version()).finish();
    let dir = cache.dir(&["tools", &key])?;
    let _lock = cache.lock(&dir, progress)?;
    let tools = GuestTools {
        programs: packages.iter().map(|p| dir.join(p)).collect(),
        key: key.clone(),
    };
    if tools.programs.iter().all(|p| p.is_file()) {
        progress.message(&format!(
            "guest programs up to date: {} ({key})",
            packages.join(", ")
        ));
        return Ok(tools);
    }
    let target_dir = cache.dir(&["target-guest"])?;
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    progress.message(&format!(
        "building static {} (log: {})",
        packages.join(", "),
        log.display()
    ));
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root).args(["build", "--release"]);
    for p in packages {
        c.args(["-p", p]);
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
    run_logged(c, &log, "guest programs build", &|l| {
        progress.tick("building guest programs", l)
    })?;
    for (p, dest) in packages.iter().zip(&tools.programs) {
        let built = target_dir.join(GUEST_TARGET).join("release").join(p);
        std::fs::copy(&built, dest).map_err(|e| Error::io(&built, e))?;
    }
    Ok(tools)
}

/// kspec-agent, from the kspec checkout `framework` (its own sources make its key).
pub fn build_agent(
    framework: &Path,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<PathBuf, Error> {
    let sources: Vec<PathBuf> = [
        "guest-tools/agent",
        "guest-tools/protocol",
        "Cargo.toml",
        "Cargo.lock",
    ]
    .iter()
    .map(|p| framework.join(p))
    .filter(|p| p.exists())
    .collect();
    let built = build(
        framework,
        &[AGENT_PACKAGE.to_owned()],
        &sources,
        cache,
        progress,
    )?;
    Ok(built.programs.into_iter().next().unwrap_or_default())
}

fn cargo_version() -> String {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
