//! Build an out-of-tree module (guest-kmod's kchan.ko, or a test module) against a built kernel,
//! in a cache directory keyed by the kernel and the module sources: editing the module rebuilds
//! it, never the kernel.

use std::path::{Path, PathBuf};

use super::cache::{Cache, Key};
use super::kernel::BuiltKernel;
use super::progress::Progress;
use super::run::run_logged;
use super::toolchain::Toolchain;
use super::Error;

fn is_module_source(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A developer's in-tree build leaves the generated kchan.mod.c beside the sources.
    if name.ends_with(".mod.c") {
        return false;
    }
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("rs" | "c" | "h")
    ) || name == "Kbuild"
        || name == "Makefile"
}

/// Make `work` hold exactly the module sources of `src`: changed or new files are copied
/// (a fresh mtime), unchanged ones are left as they are, sources gone from `src` are removed;
/// build products are Kbuild's to manage.
pub fn sync_sources(src: &Path, work: &Path) -> Result<(), Error> {
    let io = |p: &Path, e: std::io::Error| Error::io(p, e);
    let mut wanted = std::collections::HashSet::new();
    for e in std::fs::read_dir(src).map_err(|e| io(src, e))? {
        let p = e.map_err(|e| io(src, e))?.path();
        if !(p.is_file() && is_module_source(&p)) {
            continue;
        }
        let name = p.file_name().unwrap_or_default().to_owned();
        let dest = work.join(&name);
        let new = std::fs::read(&p).map_err(|e| io(&p, e))?;
        if std::fs::read(&dest).ok().as_deref() != Some(&new[..]) {
            std::fs::write(&dest, &new).map_err(|e| io(&dest, e))?;
        }
        wanted.insert(name);
    }
    for e in std::fs::read_dir(work).map_err(|e| io(work, e))? {
        let p = e.map_err(|e| io(work, e))?.path();
        if p.is_file()
            && is_module_source(&p)
            && !wanted.contains(p.file_name().unwrap_or_default())
        {
            std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
        }
    }
    Ok(())
}

/// A module build and where its time went.
pub struct ModuleBuild {
    pub ko: PathBuf,
    pub key: String,
    /// (phase, seconds) in order: make's walk of the kernel tree before the first command,
    /// then each Kbuild step (RUSTC, CC, MODPOST, LD, ...) until the next starts. Empty
    /// when the module was up to date.
    pub phases: Vec<(String, f64)>,
}

/// The phase a quiet-Kbuild line starts ("  RUSTC [M] /x/kchan_main.o" -> "RUSTC kchan_main.o").
fn phase_of(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let verb = words.next()?;
    if !verb.chars().all(|c| c.is_ascii_uppercase() || c == '_') || verb.len() < 2 {
        return None;
    }
    let target = words.find(|w| *w != "[M]")?;
    let file = target.rsplit('/').next().unwrap_or(target);
    Some(format!("{verb} {file}"))
}

/// Build `<name>.ko` from the Kbuild sources in `module_src` for kernel `kname`, timing each
/// phase of make's output.
pub fn build(
    kname: &str,
    kernel: &BuiltKernel,
    module_src: &Path,
    name: &str,
    tc: &Toolchain,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<ModuleBuild, Error> {
    let key = Key::new("module-1")
        .str("kernel", &kernel.key)
        .str("name", name)
        .dir("src", module_src, &is_module_source)?
        .finish();
    let dir = cache.dir(&["modules", &format!("{kname}-{key}")])?;
    let _lock = cache.lock(&dir, progress)?;
    let file = format!("{name}.ko");
    let ko = dir.join(&file);
    if ko.is_file() {
        progress.message(&format!("{kname}: module up to date ({key})"));
        return Ok(ModuleBuild {
            ko,
            key,
            phases: vec![],
        });
    }
    // Build in a copy (Kbuild writes its objects next to the sources) that lives on between
    // builds for this kernel: only files whose content changed are rewritten, so make
    // recompiles only what an edit touched (a Rust edit leaves the C glue's object alone).
    let work = cache.dir(&["modules", &format!("{kname}-{}-{name}-work", kernel.key)])?;
    let _work_lock = cache.lock(&work, progress)?;
    sync_sources(module_src, &work)?;
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    progress.message(&format!(
        "{kname}: building {file} (log: {})",
        log.display()
    ));
    let mut c = kernel.make(tc);
    c.arg(format!("M={}", work.display())).arg("modules");
    let started = std::time::Instant::now();
    let marks = std::sync::Mutex::new(vec![("make: reading the kernel tree".to_owned(), started)]);
    run_logged(c, &log, &format!("{kname}: module build"), &|line| {
        if let Some(p) = phase_of(line) {
            marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((p, std::time::Instant::now()));
        }
    })?;
    let ended = std::time::Instant::now();
    let marks = marks.into_inner().unwrap_or_else(|e| e.into_inner());
    let phases = marks
        .iter()
        .enumerate()
        .map(|(i, (p, t))| {
            let next = marks.get(i + 1).map_or(ended, |m| m.1);
            (p.clone(), (next - *t).as_secs_f64())
        })
        .collect();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for w in text.lines().filter(|l| l.contains("warning:")) {
        progress.message(&format!("{kname}: module build warning: {}", w.trim()));
    }
    std::fs::copy(work.join(&file), &ko).map_err(|e| {
        Error::Command(format!(
            "module build produced no {file} ({e}); log: {}",
            log.display()
        ))
    })?;
    Ok(ModuleBuild { ko, key, phases })
}

#[cfg(test)]
mod tests {
    #[test]
    fn kbuild_lines_name_their_phase() {
        assert_eq!(
            super::phase_of("  RUSTC [M] /c/modules/6.12-x/build/kchan_main.o").as_deref(),
            Some("RUSTC kchan_main.o")
        );
        assert_eq!(
            super::phase_of("  MODPOST /c/build/Module.symvers").as_deref(),
            Some("MODPOST Module.symvers")
        );
        assert_eq!(super::phase_of("make: Entering directory '/x'"), None);
        assert_eq!(super::phase_of("warning: unused"), None);
    }
}
