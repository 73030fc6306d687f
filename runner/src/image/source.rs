//! Kernel sources: an installed Debian linux-source package, one from another Debian suite
//! (downloaded with a private apt configuration that reuses this machine's mirror), a verified
//! release tarball (tarball.rs), or a local tree. Trees are unpacked once into the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::Cache;
use super::kernels::Source;
use super::progress::Progress;
use super::run::run_logged;
use super::tarball;
use super::Error;

/// A source tree ready to configure, and the identity that keys everything built from it.
pub struct SourceTree {
    pub dir: PathBuf,
    pub identity: String,
    /// A developer's own tree: build out of tree (O=) and never modify it.
    pub external: bool,
}

/// What identifies a source, without fetching it: cache keys are made of this.
pub fn identity(source: &Source, cache: &Cache) -> Result<String, Error> {
    match source {
        Source::Path(p) => local_tree(p).map(|t| t.identity),
        Source::Debian {
            package,
            suite: None,
        } => dpkg_version(package)
            .map(|v| format!("{package}_{v}"))
            .ok_or_else(|| {
                Error::Host(format!(
                    "Debian package {package} is not installed: run images/setup-host.sh"
                ))
            }),
        Source::Debian {
            package,
            suite: Some(_),
        } => find_deb(package, cache)
            .and_then(|d| d.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .ok_or_else(|| {
                Error::Host(format!(
                    "{package} is not downloaded yet: run `kspec build` once"
                ))
            }),
        Source::Tarball { url, check } => Ok(tarball::identity(url, check)),
    }
}

/// The newest downloaded .deb of `package`, if any.
fn find_deb(package: &str, cache: &Cache) -> Option<PathBuf> {
    let dl = cache.dir(&["downloads"]).ok()?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dl)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
        })
        .collect();
    debs.sort();
    debs.pop()
}

/// The tree of `source`, fetched and unpacked if it is not in the cache yet. `keys` holds the
/// public keys that `signed_by` fingerprints name.
pub fn obtain(
    source: &Source,
    keys: &Path,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<SourceTree, Error> {
    match source {
        Source::Path(p) => local_tree(p),
        Source::Debian {
            package,
            suite: None,
        } => {
            let version = dpkg_version(package).ok_or_else(|| {
                Error::Host(format!("Debian package {package} is not installed: run images/setup-host.sh (or apt-get install {package})"))
            })?;
            let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
            if !tarball.is_file() {
                return Err(Error::Host(format!(
                    "{} is missing although {package} is installed",
                    tarball.display()
                )));
            }
            extract(&tarball, &format!("{package}_{version}"), cache, progress)
        }
        Source::Debian {
            package,
            suite: Some(suite),
        } => {
            let deb = download_deb(package, suite, cache, progress)?;
            let name = deb
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let unpacked = cache.dir(&["downloads", &format!("{name}.root")])?;
            let lock = cache.lock(&unpacked, progress)?;
            let tarball = unpacked.join(format!("usr/src/{package}.tar.xz"));
            if !tarball.is_file() {
                progress.message(&format!("unpacking {}", deb.display()));
                let mut c = Command::new("dpkg-deb");
                c.arg("-x").arg(&deb).arg(&unpacked);
                run_logged(c, &unpacked.with_extension("log"), "dpkg-deb -x", &|_| {})?;
            }
            drop(lock);
            extract(&tarball, &name, cache, progress)
        }
        Source::Tarball { url, check } => {
            let id = tarball::identity(url, check);
            // A tree unpacked (and so verified) before needs no download.
            if let Some(tree) = unpacked(&id, cache)? {
                return Ok(tree);
            }
            let mirror = std::env::var("KSPEC_KERNEL_MIRROR").ok();
            let url = tarball::mirrored(url, mirror.as_deref());
            let dl = tarball::download(&url, check, keys, cache, progress)?;
            extract(&dl, &id, cache, progress)
        }
    }
}

fn local_tree(p: &Path) -> Result<SourceTree, Error> {
    let dir = p.canonicalize().map_err(|e| Error::io(p, e))?;
    if !dir.join("Makefile").is_file() || !dir.join("Kconfig").is_file() {
        return Err(Error::Config(format!(
            "{} does not look like a kernel source tree (no Makefile/Kconfig)",
            dir.display()
        )));
    }
    // The path plus git's idea of the tree; make's own dependency tracking does the rest.
    let head = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["describe", "--always", "--dirty", "--abbrev=16"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(SourceTree {
        identity: format!("path:{}:{head}", dir.display()),
        dir,
        external: true,
    })
}

fn dpkg_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}|${Version}", package])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, version) = s.split_once('|')?;
    (out.status.success() && status.ends_with("installed")).then(|| version.to_owned())
}

/// Unpack a tarball once into the cache; the tree is reused by every build of that source.
/// The tree `id` if it was unpacked completely before.
fn unpacked(id: &str, cache: &Cache) -> Result<Option<SourceTree>, Error> {
    let base = cache.dir(&["src"])?;
    Ok(base.join(format!("{id}.ok")).is_file().then(|| SourceTree {
        dir: base.join(id),
        identity: id.to_owned(),
        external: false,
    }))
}

fn extract(
    tarball: &Path,
    id: &str,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<SourceTree, Error> {
    let base = cache.dir(&["src"])?;
    let dir = base.join(id);
    let _lock = cache.lock(&dir, progress)?;
    let stamp = base.join(format!("{id}.ok"));
    if !stamp.is_file() {
        progress.message(&format!("unpacking {}", tarball.display()));
        let tmp = base.join(format!("{id}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut c = Command::new("tar");
        c.arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&tmp)
            .arg("--strip-components=1");
        // A failed or interrupted unpack leaves nothing that looks like a tree.
        let unpacked = run_logged(c, &base.join(format!("{id}.log")), "tar -x", &|_| {})
            .and_then(|()| std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e)));
        if let Err(e) = unpacked {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::Command(format!("{}: {e}", tarball.display())));
        }
        std::fs::write(&stamp, id).map_err(|e| Error::io(&stamp, e))?;
    }
    Ok(SourceTree {
        dir,
        identity: id.to_owned(),
        external: false,
    })
}

/// The Debian mirror this machine already uses (never a host written in the repository).
pub fn debian_mirror() -> Result<String, Error> {
    let mut candidates = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "sources"))
        {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                };
                if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) {
                    if !suites.split_whitespace().all(|s| s.ends_with("-security")) {
                        candidates.extend(uris.split_whitespace().map(str::to_owned));
                    }
                }
            }
        }
    }
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in list
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("deb "))
    {
        let words: Vec<_> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('[') && !w.ends_with(']'))
            .collect();
        if let (Some(uri), Some(suite)) = (words.get(1), words.get(2)) {
            if !suite.ends_with("-security") {
                candidates.push((*uri).to_owned());
            }
        }
    }
    candidates
        .into_iter()
        .find(|u| u.contains("/debian") && !u.contains("security"))
        .ok_or_else(|| Error::Host("no Debian mirror found in /etc/apt/sources.list{,.d}".into()))
}

fn download_deb(
    package: &str,
    suite: &str,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<PathBuf, Error> {
    let dl = cache.dir(&["downloads"])?;
    let apt = cache.dir(&["apt", suite])?;
    let _lock = cache.lock(&apt, progress)?;
    if let Some(deb) = find_deb(package, cache) {
        return Ok(deb);
    }
    let mirror = debian_mirror()?;
    progress.message(&format!(
        "downloading {package} from {suite} (private apt configuration)"
    ));
    for d in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(apt.join(d)).map_err(|e| Error::io(&apt, e))?;
    }
    let list = apt.join("sources.list");
    std::fs::write(&list, format!("deb {mirror} {suite} main\n"))
        .map_err(|e| Error::io(&list, e))?;
    let opts = |c: &mut Command| {
        c.arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", list.display()));
        c.args(["-o", "Dir::Etc::SourceParts=/dev/null"]);
        c.arg("-o")
            .arg(format!("Dir::State::Lists={}", apt.join("lists").display()));
        c.arg("-o")
            .arg(format!("Dir::Cache={}", apt.join("cache").display()));
        c.args(["-o", "APT::Sandbox::User=root", "-q"]);
    };
    let log = apt.join("apt.log");
    let mut update = Command::new("apt-get");
    opts(&mut update);
    update.arg("update");
    run_logged(
        update,
        &log,
        "apt-get update (private configuration)",
        &|_| {},
    )?;
    let mut download = Command::new("apt-get");
    opts(&mut download);
    download.arg("download").arg(package).current_dir(&dl);
    run_logged(
        download,
        &log,
        &format!("apt-get download {package}"),
        &|_| {},
    )?;
    find_deb(package, cache).ok_or_else(|| {
        Error::Command(format!(
            "apt-get download {package} produced no .deb; log: {}",
            log.display()
        ))
    })
}
