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
            let id = tarball_identity(url, check);
            // A tree unpacked (and so verified) before needs no download.
            if let Some(tree) = unpacked(&id, cache)? {
                return Ok(tree);
            }
            let mirror = std::env::var("KSPEC_KERNEL_MIRROR").ok();
            let url = mirrored(url, mirror.as_deref());
            let dl = download_tarball(&url, check, cache, progress)?;
            extract(&dl, &id, cache, progress)
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

/// `url` through the mirror in `KSPEC_KERNEL_MIRROR`, if set: the part after kernel.org's
/// `/pub/linux/kernel/` is appended to the mirror's base URL. The checks stay the same.
pub fn mirrored(url: &str, mirror: Option<&str>) -> String {
    const TREE: &str = "/pub/linux/kernel/";
    match (mirror.filter(|m| !m.is_empty()), url.find(TREE)) {
        (Some(m), Some(i)) => format!("{}/{}", m.trim_end_matches('/'), &url[i + TREE.len()..]),
        _ => url.to_owned(),
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
    // A stalled mirror fails in a minute instead of hanging until the job dies: connect
    // within 20 s, never slower than 1 KiB/s for 60 s, three more tries.
    c.args(["-fsSL", "--connect-timeout", "20", "--speed-limit", "1024"])
        .args([
            "--speed-time",
            "60",
            "--retry",
            "3",
            "--retry-delay",
            "2",
            "-o",
        ])
        .arg(&part)
        .arg(url);
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
    let text = verified_plaintext(&home, &sums, fingerprint)?;
    sha_for(&text, name).ok_or_else(|| format!("{base}/sha256sums.asc lists no {name}"))
}

/// The text that a valid signature by `fingerprint` covers in the clearsigned file `signed`,
/// as gpg itself prints it: whatever else the file holds (a line put before the signed
/// message, after the signature) is not part of it.
pub fn verified_plaintext(home: &Path, signed: &Path, fingerprint: &str) -> Result<String, String> {
    let plain = signed.with_extension("verified");
    let _ = std::fs::remove_file(&plain);
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--yes", "--status-fd", "1", "--output"])
        .arg(&plain)
        .arg("--decrypt")
        .arg(signed)
        .output()
        .map_err(|e| format!("cannot run gpg: {e}"))?;
    let status = String::from_utf8_lossy(&out.stdout);
    let signer = status
        .lines()
        .find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .and_then(|rest| rest.split_whitespace().last())
        .map(str::to_ascii_uppercase);
    if !out.status.success() || signer.as_deref() != Some(fingerprint) {
        let _ = std::fs::remove_file(&plain);
        return Err(format!(
            "{}: signature not valid or not by {fingerprint} (gpg: {})",
            signed.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let text = std::fs::read_to_string(&plain).map_err(|e| format!("{}: {e}", plain.display()));
    let _ = std::fs::remove_file(&plain);
    text
}

/// The hash of `name` in verified sha256sums text (`<sha256>  <file>` lines).
pub fn sha_for(plaintext: &str, name: &str) -> Option<String> {
    plaintext.lines().find_map(|l| {
        let (sha, file) = l.split_once(char::is_whitespace)?;
        (file.trim() == name && sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| sha.to_ascii_lowercase())
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
/// The tree `id` if it was unpacked completely before.
fn unpacked(id: &str, cache: &Cache) -> Result<Option<SourceTree>, String> {
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

    const GOOD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const EVIL: &str = "6666666666666666666666666666666666666666666666666666666666666666";

    fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("gpg (images/setup-host.sh installs gnupg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A throwaway key signs a sums file; the hash must come from what the signature covers.
    #[test]
    fn the_hash_comes_only_from_what_the_signature_covers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        gpg(
            &home,
            &[
                "--quick-gen-key",
                "kspec test <test@invalid>",
                "ed25519",
                "sign",
                "1d",
            ],
        );
        let listed = gpg(&home, &["--with-colons", "--list-keys"]);
        let fpr = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_owned())
            })
            .unwrap();
        let sums = dir.path().join("sums");
        std::fs::write(&sums, format!("{GOOD}  linux-9.9.tar.xz\n")).unwrap();
        let asc = dir.path().join("sums.asc");
        gpg(
            &home,
            &[
                "--clearsign",
                "--output",
                asc.to_str().unwrap(),
                sums.to_str().unwrap(),
            ],
        );
        let signed = std::fs::read_to_string(&asc).unwrap();

        let text = verified_plaintext(&home, &asc, &fpr).unwrap();
        assert_eq!(sha_for(&text, "linux-9.9.tar.xz").as_deref(), Some(GOOD));

        // gpg ignores text around the signed message, so the signature still verifies: the
        // hash must still be the signed one.
        let evil = dir.path().join("evil.asc");
        std::fs::write(
            &evil,
            format!("{EVIL}  linux-9.9.tar.xz\n{signed}{EVIL}  linux-9.9.tar.xz\n"),
        )
        .unwrap();
        let text = verified_plaintext(&home, &evil, &fpr).unwrap();
        assert_eq!(sha_for(&text, "linux-9.9.tar.xz").as_deref(), Some(GOOD));

        // A changed signed line, or another signer, is refused.
        let forged = dir.path().join("forged.asc");
        std::fs::write(&forged, signed.replace(GOOD, EVIL)).unwrap();
        assert!(verified_plaintext(&home, &forged, &fpr).is_err());
        let other = "0000000000000000000000000000000000000000";
        assert!(verified_plaintext(&home, &asc, other).is_err());
    }

    #[test]
    fn a_mirror_replaces_the_host_and_keeps_the_path() {
        let u = "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.117.tar.xz";
        assert_eq!(
            mirrored(u, Some("http://127.0.0.1:8080/kernel/")),
            "http://127.0.0.1:8080/kernel/v6.x/linux-6.12.117.tar.xz"
        );
        assert_eq!(mirrored(u, None), u);
        assert_eq!(mirrored(u, Some("")), u);
        assert_eq!(
            mirrored("https://h/other.tar.xz", Some("http://m")),
            "https://h/other.tar.xz"
        );
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
