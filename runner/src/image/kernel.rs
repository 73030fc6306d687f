//! Configure (tinyconfig + fragments, then verify every symbol stuck) and build a kernel.

use std::path::{Path, PathBuf};

use super::cache::{Cache, Key};
use super::kernels::Kernel;
use super::progress::Progress;
use super::run::run_logged;
use super::source::SourceTree;
use super::toolchain::Toolchain;
use super::Error;

/// A built kernel: what VMs boot and what modules build against.
#[derive(Debug, Clone)]
pub struct BuiltKernel {
    pub key: String,
    /// The tree modules build against (`make -C`): the source tree, or the O= dir for a local tree.
    pub build_dir: PathBuf,
    /// Source tree when building out of tree (`make -C src O=build_dir`).
    pub src_dir: Option<PathBuf>,
    pub bzimage: PathBuf,
    pub vmlinux: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl BuiltKernel {
    /// `make` for this tree, with the toolchain variables.
    pub fn make(&self, tc: &Toolchain) -> std::process::Command {
        match &self.src_dir {
            Some(src) => {
                let mut c = tc.make(src);
                c.arg(format!("O={}", self.build_dir.display()));
                c
            }
            None => tc.make(&self.build_dir),
        }
    }

    /// `uname -r` of this kernel, as the build recorded it.
    pub fn release(&self) -> Result<String, Error> {
        let p = self.build_dir.join("include/config/kernel.release");
        std::fs::read_to_string(&p)
            .map(|s| s.trim().to_owned())
            .map_err(|e| Error::io(&p, e))
    }

    /// Is `sym` (with or without CONFIG_) =y or =m in the final .config?
    pub fn has_symbol(&self, sym: &str) -> bool {
        let sym = sym.strip_prefix("CONFIG_").unwrap_or(sym);
        let text = std::fs::read_to_string(&self.config).unwrap_or_default();
        text.lines()
            .any(|l| l == format!("CONFIG_{sym}=y") || l == format!("CONFIG_{sym}=m"))
    }
}

/// Bumped when the recipe below changes in a way that needs a rebuild.
const RECIPE: &str = "kernel-recipe-2";

/// The kernel's cache key: recipe, source identity, toolchain and fragments. CI caches the
/// built tree under the same key (`kspec build --print-key`).
pub fn cache_key(
    kernel: &Kernel,
    source_identity: &str,
    fragments_dir: &Path,
    tc: &Toolchain,
) -> Result<String, Error> {
    let mut key = Key::new(RECIPE)
        .str("source", source_identity)
        .str("toolchain", &tc.identity());
    for f in &kernel.fragments {
        key = key.file(f, &fragments_dir.join(f))?;
    }
    Ok(key.finish())
}

pub fn build(
    kernel: &Kernel,
    src: &SourceTree,
    fragments_dir: &Path,
    tc: &Toolchain,
    cache: &Cache,
    progress: &dyn Progress,
    jobs: usize,
) -> Result<BuiltKernel, Error> {
    let key = cache_key(kernel, &src.identity, fragments_dir, tc)?;
    let out = cache.dir(&["kernels", &format!("{}-{key}", kernel.name)])?;
    let _lock = cache.lock(&out, progress)?;
    // Always out of tree: one unpacked source serves several configurations (a debug variant),
    // and a developer's own tree is never written to.
    let build_dir = out.join("build");
    let src_dir = Some(src.dir.clone());
    let built = BuiltKernel {
        key: key.clone(),
        bzimage: out.join("bzImage"),
        vmlinux: out.join("vmlinux"),
        config: out.join("config"),
        log: out.join("build.log"),
        build_dir,
        src_dir,
    };
    let stamp = out.join("done");
    // A local tree is always handed to make: its own dependency tracking sees edits.
    if stamp.is_file() && !src.external && built.bzimage.is_file() {
        progress.message(&format!(
            "{}: kernel {} up to date ({key})",
            kernel.name, kernel.version
        ));
        return Ok(built);
    }
    let _ = std::fs::remove_file(&stamp);
    let _ = std::fs::remove_file(&built.log);
    std::fs::create_dir_all(&built.build_dir).map_err(|e| Error::io(&built.build_dir, e))?;
    // Kbuild refuses O= builds from a source tree that was built in place (older kspec did).
    if !src.external && src.dir.join(".config").exists() {
        progress.message(&format!(
            "{}: cleaning the unpacked source for out-of-tree builds",
            kernel.name
        ));
        let mut c = tc.make(&src.dir);
        c.arg("mrproper");
        run_logged(
            c,
            &built.log,
            &format!("{}: make mrproper", kernel.name),
            &|_| {},
        )?;
    }
    let name = &kernel.name;
    let tick = |l: &str| progress.tick(&format!("{name}: building kernel"), l);

    progress.message(&format!(
        "{name}: configuring kernel {} (log: {})",
        kernel.version,
        built.log.display()
    ));
    let mut c = built.make(tc);
    c.arg("tinyconfig");
    run_logged(c, &built.log, &format!("{name}: make tinyconfig"), &|_| {})?;
    let dotconfig = built.build_dir.join(".config");
    let mut config = std::fs::read_to_string(&dotconfig).map_err(|e| Error::io(&dotconfig, e))?;
    let mut wanted = Vec::new();
    for f in &kernel.fragments {
        let path = fragments_dir.join(f);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        wanted.extend(parse_fragment(&text));
        config.push_str(&text);
        config.push('\n');
    }
    std::fs::write(&dotconfig, config).map_err(|e| Error::io(&dotconfig, e))?;
    let mut c = built.make(tc);
    c.arg("olddefconfig");
    run_logged(
        c,
        &built.log,
        &format!("{name}: make olddefconfig"),
        &|_| {},
    )?;
    let final_config = std::fs::read_to_string(&dotconfig).map_err(|e| Error::io(&dotconfig, e))?;
    let missing = missing_symbols(&wanted, &final_config);
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "{name}: Kconfig symbols did not stick (unmet dependencies?): {}; config: {}",
            missing.join(", "),
            dotconfig.display()
        )));
    }

    progress.message(&format!(
        "{name}: building kernel {} with {jobs} jobs (~6 min on 2 cores)",
        kernel.version
    ));
    let started = std::time::Instant::now();
    let mut c = built.make(tc);
    c.arg(format!("-j{jobs}")).args(["bzImage", "modules"]);
    run_logged(c, &built.log, &format!("{name}: kernel build"), &tick)?;
    let bz = built.build_dir.join("arch/x86/boot/bzImage");
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(drop)
            .map_err(|e| Error::io(from, e))
    };
    copy(&bz, &built.bzimage)?;
    copy(&built.build_dir.join("vmlinux"), &built.vmlinux)?;
    copy(&dotconfig, &built.config)?;
    std::fs::write(&stamp, &key).map_err(|e| Error::io(&stamp, e))?;
    let secs = started.elapsed().as_secs();
    progress.message(&format!(
        "{name}: kernel built in {}m{:02}s",
        secs / 60,
        secs % 60
    ));
    Ok(built)
}

/// (symbol, wanted value) pairs; `# CONFIG_X is not set` wants "n".
pub fn parse_fragment(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(rest) = l.strip_prefix("# CONFIG_") {
                return rest
                    .strip_suffix(" is not set")
                    .map(|s| (s.to_owned(), "n".to_owned()));
            }
            let (k, v) = l.strip_prefix("CONFIG_")?.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The fragment's requests that the final .config does not honour, as "SYMBOL=value".
pub fn missing_symbols(wanted: &[(String, String)], config: &str) -> Vec<String> {
    let actual: std::collections::HashMap<&str, &str> = config
        .lines()
        .filter_map(|l| l.strip_prefix("CONFIG_")?.split_once('='))
        .collect();
    let mut missing: Vec<String> = wanted
        .iter()
        .filter(|(k, v)| match (actual.get(k.as_str()), v.as_str()) {
            (None, "n") => false,
            (Some(a), "n") => *a == "y" || *a == "m",
            (Some(a), want) => a != &want,
            (None, _) => true,
        })
        .map(|(k, v)| format!("CONFIG_{k}={v}"))
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_verification() {
        let wanted = parse_fragment("CONFIG_NET=y\n# CONFIG_CFI_CLANG is not set\nCONFIG_RUST=y\n# comment\nCONFIG_LOG=\"x\"\n");
        assert_eq!(wanted.len(), 4);
        let cfg = "CONFIG_NET=y\nCONFIG_CFI_CLANG=y\nCONFIG_LOG=\"x\"\n";
        assert_eq!(
            missing_symbols(&wanted, cfg),
            vec!["CONFIG_CFI_CLANG=n", "CONFIG_RUST=y"]
        );
        assert!(
            missing_symbols(&wanted, "CONFIG_NET=y\nCONFIG_RUST=y\nCONFIG_LOG=\"x\"\n").is_empty()
        );
    }
}
