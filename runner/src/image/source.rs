//! Kernel sources: an installed Debian linux-source package, one from another Debian suite
//! (downloaded with a private apt configuration that reuses this machine's mirror), a tarball
//! checked against its sha256, or a local tree.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::{sha256_file, Cache};
use super::kernels::{Source, TarballCheck};
use super::progress::Progress;
use super::run::run_logged;

/// A source tree ready to configure, and the identity that keys everything built from it.
pub struct SourceTree {
    pub dir: PathBuf,
    pub identity: String,
    /// A developer's own tree: build out of tree (O=) and never modify it.
    pub external: bool,
}

/// What identifies a source, without fetching it: cache keys are made of this.
pub fn identity(source: &Source, cache: &Cache) -> Result<String, String> {
    match source {
        Source::Path(p) => local_tree(p).map(|t| t.identity),
        Source::Debian {
            package,
            suite: None,
        } => dpkg_version(package)
            .map(|v| format!("{package}_{v}"))
            .ok_or_else(|| {
                format!("Debian package {package} is not installed: run images/setup-host.sh")
            }),
        Source::Debian {
            package,
            suite: Some(_),
        } => find_deb(package, cache)
            .and_then(|d| d.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .ok_or_else(|| format!("{package} is not downloaded yet: run `kspec build` once")),
        Source::Tarball { url, check } => Ok(tarball_identity(url, check)),
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

pub fn obtain(
    source: &Source,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<SourceTree, String> {
    match source {
        Source::Path(p) => local_tree(p),
        Source::Debian {
            package,
            suite: None,
        } => {
            let version = dpkg_version(package).ok_or_else(|| {
                format!("Debian package {package} is not installed: run images/setup-host.sh (or apt-get install {package})")
            })?;
            let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
            if !tarball.is_file() {
                return Err(format!(
                    "{} is missing although {package} is installed",
                    tarball.display()
                ));
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
            let dl = download_tarball(url, check, cache, progress)?;
            extract(&dl, &tarball_identity(url, check), cache, progress)
        }
    }
}

/// Release tarballs never change: the file name (or the pinned sha256) identifies the tree.
pub fn tarball_identity(url: &str, check: &TarballCheck) -> String {
    match check {
        TarballCheck::Sha256(sha) => format!("tarball-{}", &sha[..16]),
        TarballCheck::SignedSums { .. } => format!(
            "tarball-{}",
            tarball_name(url)
                .trim_end_matches(".tar.xz")
                .trim_end_matches(".tar.gz")
        ),
    }
}

fn tarball_name(url: &str) -> &str {
    url.rsplit('/')
        .next()
        .filter(|f| !f.is_empty())
        .unwrap_or("linux.tar.xz")
}

fn fetch(url: &str, to: &Path, log: &Path) -> Result<(), String> {
    let part = to.with_extension("part");
    let mut c = Command::new("curl");
    c.args(["-fsSL", "--retry", "3", "-o"]).arg(&part).arg(url);
    run_logged(c, log, &format!("download {url}"), &|_| {})?;
    std::fs::rename(&part, to).map_err(|e| format!("{}: {e}", to.display()))
}

/// Download (once) and verify a release tarball.
fn download_tarball(
    url: &str,
    check: &TarballCheck,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<PathBuf, String> {
    let dir = cache.dir(&["downloads"])?;
    let name = tarball_name(url);
    let dl = dir.join(name);
    let _lock = cache.lock(&dl, progress)?;
    let verified = dir.join(format!("{name}.sha256"));
    let log = dir.join(format!("{name}.log"));
    if dl.is_file()
        && std::fs::read_to_string(&verified)
            .ok()
            .is_some_and(|v| sha256_file(&dl).ok() == Some(v))
    {
        return Ok(dl);
    }
    let expected = match check {
        TarballCheck::Sha256(sha) => sha.clone(),
        TarballCheck::SignedSums { fingerprint } => {
            signed_sha256(url, fingerprint, cache, progress, &log)?
        }
    };
    progress.message(&format!("downloading {url}"));
    fetch(url, &dl, &log)?;
    let got = sha256_file(&dl)?;
    if got != expected {
        let _ = std::fs::remove_file(&dl);
        return Err(format!(
            "{url}: sha256 mismatch: expected {expected}, got {got}"
        ));
    }
    std::fs::write(&verified, &got).map_err(|e| format!("{}: {e}", verified.display()))?;
    Ok(dl)
}

/// The sha256 of `url` from kernel.org's clearsigned `sha256sums.asc` in the same directory,
/// accepted only when gpg reports a valid signature by the key `fingerprint` (fetched by WKD).
fn signed_sha256(
    url: &str,
    fingerprint: &str,
    cache: &Cache,
    progress: &dyn Progress,
    log: &Path,
) -> Result<String, String> {
    let (base, name) = url
        .rsplit_once('/')
        .ok_or_else(|| format!("{url}: not a URL"))?;
    let sums = cache
        .dir(&["downloads"])?
        .join(format!("{name}.sha256sums.asc"));
    progress.message(&format!(
        "fetching {base}/sha256sums.asc and checking its signature"
    ));
    fetch(&format!("{base}/sha256sums.asc"), &sums, log)?;
    let home = cache.dir(&["gnupg"])?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700));
    let mut locate = Command::new("gpg");
    locate.arg("--homedir").arg(&home).args([
        "--batch",
        "--auto-key-locate",
        "clear,wkd",
        "--locate-external-keys",
        "autosigner@kernel.org",
    ]);
    run_logged(
        locate,
        log,
        "gpg: fetching the kernel.org checksum key",
        &|_| {},
    )?;
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(&home)
        .args(["--batch", "--status-fd", "1", "--verify"])
        .arg(&sums)
        .output()
        .map_err(|e| format!("cannot run gpg: {e}"))?;
    let status = String::from_utf8_lossy(&out.stdout);
    let signer = status
        .lines()
        .find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .and_then(|rest| rest.split_whitespace().last())
        .map(str::to_ascii_uppercase);
    if !out.status.success() || signer.as_deref() != Some(fingerprint) {
        return Err(format!(
            "{}: signature not valid or not by {fingerprint} (gpg: {})",
            sums.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let text = std::fs::read_to_string(&sums).map_err(|e| format!("{}: {e}", sums.display()))?;
    sha_for(&text, name).ok_or_else(|| format!("{base}/sha256sums.asc lists no {name}"))
}

/// The hash of `name` in the signed part of a clearsigned sha256sums file.
pub fn sha_for(clearsigned: &str, name: &str) -> Option<String> {
    let body = clearsigned.split("-----BEGIN PGP SIGNATURE-----").next()?;
    body.lines().find_map(|l| {
        let (sha, file) = l.split_once(char::is_whitespace)?;
        (file.trim() == name && sha.len() == 64).then(|| sha.to_ascii_lowercase())
    })
}

fn local_tree(p: &Path) -> Result<SourceTree, String> {
    let dir = p
        .canonicalize()
        .map_err(|e| format!("kernel source {}: {e}", p.display()))?;
    if !dir.join("Makefile").is_file() || !dir.join("Kconfig").is_file() {
        return Err(format!(
            "{} does not look like a kernel source tree (no Makefile/Kconfig)",
            dir.display()
        ));
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
fn extract(
    tarball: &Path,
    id: &str,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<SourceTree, String> {
    let base = cache.dir(&["src"])?;
    let dir = base.join(id);
    let _lock = cache.lock(&dir, progress)?;
    let stamp = base.join(format!("{id}.ok"));
    if !stamp.is_file() {
        progress.message(&format!("unpacking {}", tarball.display()));
        let tmp = base.join(format!("{id}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut c = Command::new("tar");
        c.arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&tmp)
            .arg("--strip-components=1");
        run_logged(c, &base.join(format!("{id}.log")), "tar -x", &|_| {})?;
        std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(&stamp, id).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    Ok(SourceTree {
        dir,
        identity: id.to_owned(),
        external: false,
    })
}

/// The Debian mirror this machine already uses (never a host written in the repository).
pub fn debian_mirror() -> Result<String, String> {
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
        .ok_or_else(|| "no Debian mirror found in /etc/apt/sources.list{,.d}".to_owned())
}

fn download_deb(
    package: &str,
    suite: &str,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<PathBuf, String> {
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
        std::fs::create_dir_all(apt.join(d)).map_err(|e| format!("{}: {e}", apt.display()))?;
    }
    let list = apt.join("sources.list");
    std::fs::write(&list, format!("deb {mirror} {suite} main\n"))
        .map_err(|e| format!("{}: {e}", list.display()))?;
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
        format!(
            "apt-get download {package} produced no .deb; log: {}",
            log.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_read_from_the_signed_part_only() {
        let asc = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n\
            0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  linux-6.12.117.tar.xz\n\
            1111111111111111111111111111111111111111111111111111111111111111  linux-6.12.117.tar.gz\n\
            -----BEGIN PGP SIGNATURE-----\n\
            2222222222222222222222222222222222222222222222222222222222222222  linux-7.0.tar.xz\n";
        assert_eq!(
            sha_for(asc, "linux-6.12.117.tar.xz").unwrap(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert!(
            sha_for(asc, "linux-7.0.tar.xz").is_none(),
            "lines after the signature are not signed"
        );
        assert!(sha_for(asc, "linux-6.12.tar.xz").is_none());
    }

    #[test]
    fn tarball_identity_is_stable() {
        let c = TarballCheck::SignedSums {
            fingerprint: "X".into(),
        };
        assert_eq!(
            tarball_identity("https://h/v6.x/linux-6.12.117.tar.xz", &c),
            "tarball-linux-6.12.117"
        );
    }
}
