//! Release tarballs: downloaded once through an optional mirror, with bounded timeouts and
//! retries, and accepted only when their sha256 matches a pinned value or the one kernel.org's
//! signed `sha256sums.asc` lists, verified against a public key kept in the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::{sha256_file, Cache};
use super::kernels::TarballCheck;
use super::progress::Progress;
use super::run::run_logged;
use super::Error;

/// Release tarballs never change: the file name (or the pinned sha256) identifies the tree.
pub fn identity(url: &str, check: &TarballCheck) -> String {
    match check {
        TarballCheck::Sha256(sha) => format!("tarball-{}", &sha[..16]),
        TarballCheck::SignedSums { .. } => format!(
            "tarball-{}",
            file_name(url)
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

fn file_name(url: &str) -> &str {
    url.rsplit('/')
        .next()
        .filter(|f| !f.is_empty())
        .unwrap_or("linux.tar.xz")
}

/// Seconds a download may go below 1 KiB/s before it is abandoned (`KSPEC_STALL_TIMEOUT`).
fn stall_timeout() -> u32 {
    std::env::var("KSPEC_STALL_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60)
}

/// Download `url` to `to`; on any failure nothing is left at `to` or beside it.
fn fetch(url: &str, to: &Path, log: &Path) -> Result<(), Error> {
    let part = to.with_extension("part");
    let mut c = Command::new("curl");
    // A stalled mirror fails in a minute instead of hanging until the job dies: connect within
    // 20 s, never slower than 1 KiB/s for the stall timeout, three more tries.
    c.args(["-fsSL", "--connect-timeout", "20", "--speed-limit", "1024"])
        .arg("--speed-time")
        .arg(stall_timeout().to_string())
        .args(["--retry", "3", "--retry-delay", "2", "-o"])
        .arg(&part)
        .arg(url);
    let done = run_logged(c, log, &format!("download {url}"), &|_| {})
        .and_then(|()| std::fs::rename(&part, to).map_err(|e| Error::io(to, e)));
    if done.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    done
}

/// Download (once) and verify a release tarball; the path of the verified file.
pub fn download(
    url: &str,
    check: &TarballCheck,
    keys: &Path,
    cache: &Cache,
    progress: &dyn Progress,
) -> Result<PathBuf, Error> {
    let dir = cache.dir(&["downloads"])?;
    let name = file_name(url);
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
    let _ = std::fs::remove_file(&verified);
    let expected = match check {
        TarballCheck::Sha256(sha) => sha.clone(),
        TarballCheck::SignedSums { fingerprint } => {
            signed_sha256(url, fingerprint, keys, &dir, progress, &log)?
        }
    };
    progress.message(&format!("downloading {url}"));
    fetch(url, &dl, &log)?;
    let got = sha256_file(&dl)?;
    if got != expected {
        let _ = std::fs::remove_file(&dl);
        return Err(Error::Verify(format!(
            "{url}: sha256 mismatch: expected {expected}, got {got} (the file was removed)"
        )));
    }
    std::fs::write(&verified, &got).map_err(|e| Error::io(&verified, e))?;
    Ok(dl)
}

/// The public key a `signed_by` fingerprint names: `<keys>/<FINGERPRINT>.asc`.
pub fn key_file(keys: &Path, fingerprint: &str) -> PathBuf {
    keys.join(format!("{fingerprint}.asc"))
}

/// The sha256 of `url` from the clearsigned `sha256sums.asc` in the same directory, accepted
/// only when its signature verifies with the repository's copy of the key `fingerprint` (no
/// key server, no WKD: what is trusted is reviewed in the repository).
fn signed_sha256(
    url: &str,
    fingerprint: &str,
    keys: &Path,
    downloads: &Path,
    progress: &dyn Progress,
    log: &Path,
) -> Result<String, Error> {
    let (base, name) = url
        .rsplit_once('/')
        .ok_or_else(|| Error::Config(format!("{url}: not a URL")))?;
    let key = key_file(keys, fingerprint);
    if !key.is_file() {
        return Err(Error::Config(format!(
            "signed_by {fingerprint}: no public key at {} (signed_by names a key kept in the repository)",
            key.display()
        )));
    }
    let sums = downloads.join(format!("{name}.sha256sums.asc"));
    progress.message(&format!(
        "fetching {base}/sha256sums.asc and checking its signature"
    ));
    fetch(&format!("{base}/sha256sums.asc"), &sums, log)?;
    let text = verified_plaintext(&key, &sums, fingerprint);
    let _ = std::fs::remove_file(&sums);
    sha_for(&text?, name)
        .ok_or_else(|| Error::Verify(format!("{base}/sha256sums.asc lists no {name}")))
}

/// gpg options for a keyring that holds kernel.org's key as published without a self-signed
/// user ID (only the key packet, which the fingerprint covers, is what is trusted).
const GPG_OPTS: &[&str] = &[
    "--batch",
    "--no-tty",
    "--allow-non-selfsigned-uid",
    "--trust-model",
    "always",
];

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.arg("--homedir").arg(home).args(GPG_OPTS);
    c
}

/// The text that a valid signature by `fingerprint` covers in the clearsigned file `signed`,
/// checked in a private keyring holding nothing but `key` (which must be that key). gpg prints
/// only the signed part, so a line put before the signed message or after the signature is
/// not part of it.
pub fn verified_plaintext(key: &Path, signed: &Path, fingerprint: &str) -> Result<String, Error> {
    let home = tempfile::Builder::new()
        .prefix("kspec-gnupg")
        .tempdir()
        .map_err(|e| Error::Host(format!("cannot create a gpg home: {e}")))?;
    let import = gpg(home.path())
        .arg("--import")
        .arg(key)
        .output()
        .map_err(|e| {
            Error::Host(format!(
                "cannot run gpg (images/setup-host.sh installs gnupg): {e}"
            ))
        })?;
    let listed = gpg(home.path())
        .args(["--with-colons", "--list-keys"])
        .output()
        .map_err(|e| Error::Host(format!("cannot run gpg: {e}")))?;
    let primaries = primary_fingerprints(&String::from_utf8_lossy(&listed.stdout));
    if !import.status.success() {
        return Err(Error::Verify(format!(
            "{}: not a usable public key ({})",
            key.display(),
            last_line(&import.stderr)
        )));
    }
    if primaries != [fingerprint] {
        return Err(Error::Verify(format!(
            "{}: must hold exactly the key {fingerprint}, holds {primaries:?}",
            key.display()
        )));
    }
    let plain = home.path().join("plaintext");
    let out = gpg(home.path())
        .args(["--status-fd", "1", "--output"])
        .arg(&plain)
        .arg("--decrypt")
        .arg(signed)
        .output()
        .map_err(|e| Error::Host(format!("cannot run gpg: {e}")))?;
    let status = String::from_utf8_lossy(&out.stdout);
    let signer = status
        .lines()
        .find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .and_then(|rest| rest.split_whitespace().last())
        .map(str::to_ascii_uppercase);
    if !out.status.success() || signer.as_deref() != Some(fingerprint) {
        return Err(Error::Verify(format!(
            "{}: signature not valid or not by {fingerprint} ({})",
            signed.display(),
            last_line(&out.stderr)
        )));
    }
    std::fs::read_to_string(&plain).map_err(|e| Error::io(&plain, e))
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

/// The primary keys' fingerprints in `gpg --with-colons --list-keys` output.
fn primary_fingerprints(colons: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_pub = false;
    for line in colons.lines() {
        if line.starts_with("pub:") {
            after_pub = true;
        } else if let Some(rest) = line.strip_prefix("fpr:") {
            if after_pub {
                out.push(rest.trim_matches(':').to_ascii_uppercase());
            }
            after_pub = false;
        }
    }
    out
}

/// The hash of `name` in verified sha256sums text (`<sha256>  <file>` lines).
pub fn sha_for(plaintext: &str, name: &str) -> Option<String> {
    plaintext.lines().find_map(|l| {
        let (sha, file) = l.split_once(char::is_whitespace)?;
        (file.trim() == name && sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| sha.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const EVIL: &str = "6666666666666666666666666666666666666666666666666666666666666666";

    fn gpg_ok(home: &Path, args: &[&str]) -> std::process::Output {
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

    /// A throwaway signing key: its home, fingerprint and exported public key file.
    fn throwaway_key(dir: &Path) -> (PathBuf, String, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let home = dir.join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        gpg_ok(
            &home,
            &[
                "--quick-gen-key",
                "kspec test <t@invalid>",
                "ed25519",
                "sign",
                "1d",
            ],
        );
        let listed = gpg_ok(&home, &["--with-colons", "--list-keys"]);
        let fpr = primary_fingerprints(&String::from_utf8_lossy(&listed.stdout))
            .pop()
            .unwrap();
        let key = dir.join(format!("{fpr}.asc"));
        gpg_ok(
            &home,
            &[
                "--armor",
                "--output",
                key.to_str().unwrap(),
                "--export",
                &fpr,
            ],
        );
        (home, fpr, key)
    }

    /// A throwaway key signs a sums file; the hash must come from what the signature covers.
    #[test]
    fn the_hash_comes_only_from_what_the_signature_covers() {
        let dir = tempfile::tempdir().unwrap();
        let (home, fpr, key) = throwaway_key(dir.path());
        let sums = dir.path().join("sums");
        std::fs::write(&sums, format!("{GOOD}  linux-9.9.tar.xz\n")).unwrap();
        let asc = dir.path().join("sums.asc");
        gpg_ok(
            &home,
            &[
                "--clearsign",
                "--output",
                asc.to_str().unwrap(),
                sums.to_str().unwrap(),
            ],
        );
        let signed = std::fs::read_to_string(&asc).unwrap();

        let text = verified_plaintext(&key, &asc, &fpr).unwrap();
        assert_eq!(sha_for(&text, "linux-9.9.tar.xz").as_deref(), Some(GOOD));

        // gpg ignores text around the signed message, so the signature still verifies: the
        // hash must still be the signed one.
        let evil = dir.path().join("evil.asc");
        std::fs::write(
            &evil,
            format!("{EVIL}  linux-9.9.tar.xz\n{signed}{EVIL}  linux-9.9.tar.xz\n"),
        )
        .unwrap();
        let text = verified_plaintext(&key, &evil, &fpr).unwrap();
        assert_eq!(sha_for(&text, "linux-9.9.tar.xz").as_deref(), Some(GOOD));

        // A changed signed line, or a key file that is not the pinned key, is refused.
        let forged = dir.path().join("forged.asc");
        std::fs::write(&forged, signed.replace(GOOD, EVIL)).unwrap();
        let e = verified_plaintext(&key, &forged, &fpr).unwrap_err();
        assert!(
            matches!(&e, Error::Verify(m) if m.contains("signature not valid")),
            "{e}"
        );
        let other = "0000000000000000000000000000000000000000";
        let e = verified_plaintext(&key, &asc, other).unwrap_err();
        assert!(
            matches!(&e, Error::Verify(m) if m.contains("must hold exactly the key")),
            "{e}"
        );
    }

    /// The kernel.org key kept in the repository is the one its file name and kernels.yaml pin.
    #[test]
    fn the_repository_key_is_the_pinned_autosigner() {
        let fpr = "B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1";
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/keys");
        let home = tempfile::tempdir().unwrap();
        let out = gpg(home.path())
            .arg("--import")
            .arg(key_file(&keys, fpr))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", last_line(&out.stderr));
        let listed = gpg(home.path())
            .args(["--with-colons", "--list-keys"])
            .output()
            .unwrap();
        assert_eq!(
            primary_fingerprints(&String::from_utf8_lossy(&listed.stdout)),
            [fpr]
        );
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
    fn identity_is_stable() {
        let c = TarballCheck::SignedSums {
            fingerprint: "X".into(),
        };
        assert_eq!(
            identity("https://h/v6.x/linux-6.12.117.tar.xz", &c),
            "tarball-linux-6.12.117"
        );
    }
}
