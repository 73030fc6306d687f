//! Verified kernel downloads end to end: `kspec build --fetch-only` against a loopback HTTP
//! mirror this test starts, serving a tarball of a small fake tree and a `sha256sums.asc`
//! signed by a throwaway key generated here (its public key sits in the fake checkout's
//! images/keys/, as kernel.org's does in the real one). A good download is unpacked and reused
//! without a second request; every attack or failure is refused with a one-line cause and
//! leaves nothing in the cache that a later run could mistake for a tree.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use support::{sh, sums_line, Reply, Server, SigningKey};

const TARBALL: &str = "linux-9.9.1.tar.xz";
const KERNEL_DIR: &str = "/pub/linux/kernel/v9.x";
const FAKE_HOST: &str = "https://kernel.invalid";

/// Everything one scenario needs: a fake checkout, a signing key, an empty cache.
struct World {
    dir: tempfile::TempDir,
    key: SigningKey,
    fingerprint: String,
    good: Vec<u8>,
    evil: Vec<u8>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::new(dir.path());
        let fingerprint = key.fingerprint.clone();
        let root = dir.path().join("checkout");
        std::fs::create_dir_all(root.join("images/keys")).unwrap();
        key.export(&root.join(format!("images/keys/{fingerprint}.asc")));
        std::fs::write(
            root.join("kspec.toml"),
            "kernels = \"images/kernels.yaml\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("images/kernels.yaml"),
            format!(
                "default: fake\nkernels:\n  - name: fake\n    version: 9.9.1\n    source:\n      \
                 tarball:\n        url: {FAKE_HOST}{KERNEL_DIR}/{TARBALL}\n        \
                 signed_by: {fingerprint}\n    fragments: []\n    \
                 toolchain: {{ rustc: \"1.78\", bindgen: \"0.65.1\", llvm: \"13\" }}\n"
            ),
        )
        .unwrap();
        let good = fake_tarball(dir.path(), "good", "fake kernel\n");
        let evil = fake_tarball(dir.path(), "evil", "rootkit\n");
        World {
            dir,
            key,
            fingerprint,
            good,
            evil,
        }
    }

    fn sums_for(&self, tarball: &[u8]) -> String {
        sums_line(tarball, TARBALL)
    }

    /// sha256sums.asc for `tarball`, signed by the pinned key.
    fn signed_sums(&self, tarball: &[u8]) -> Vec<u8> {
        self.key.clearsign(&self.sums_for(tarball))
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `kspec build --fetch-only` against `server`; (success, stdout, stderr, elapsed).
    fn fetch(&self, server: &Server) -> (bool, String, String, Duration) {
        let started = Instant::now();
        let out = Command::cargo_bin("kspec")
            .unwrap()
            .args(["build", "--fetch-only", "--kernel", "fake"])
            .env("KSPEC_ROOT", self.dir.path().join("checkout"))
            .env("KSPEC_CACHE", self.cache())
            .env("KSPEC_KERNEL_MIRROR", &server.base)
            .env("KSPEC_STALL_TIMEOUT", "2")
            .env_remove("KSPEC_SOURCE")
            .env_remove("GITHUB_ACTIONS")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            started.elapsed(),
        )
    }

    /// Nothing of the tree or the tarball may be left after a refused download.
    fn assert_nothing_left(&self) {
        let mut left = Vec::new();
        for sub in ["src", "downloads"] {
            let Ok(rd) = std::fs::read_dir(self.cache().join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // Locks and logs are expected; a tree, a tarball or a half-written file is not.
                if !(name.ends_with(".lock") || name.ends_with(".log")) {
                    left.push(format!("{sub}/{name}"));
                }
            }
        }
        assert!(left.is_empty(), "left in the cache: {left:?}");
    }
}

fn fake_tarball(dir: &Path, tag: &str, content: &str) -> Vec<u8> {
    let tree = dir.join(tag).join("linux-9.9.1");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("Makefile"), content).unwrap();
    std::fs::write(tree.join("Kconfig"), content).unwrap();
    let out = dir.join(format!("{tag}.tar.xz"));
    sh(Command::new("tar")
        .arg("-cJf")
        .arg(&out)
        .arg("-C")
        .arg(dir.join(tag))
        .arg("linux-9.9.1"));
    std::fs::read(out).unwrap()
}

fn routes(tarball: Reply, sums: Vec<u8>) -> HashMap<String, Reply> {
    HashMap::from([
        (format!("/v9.x/{TARBALL}"), tarball),
        ("/v9.x/sha256sums.asc".to_owned(), Reply::Serve(sums)),
    ])
}

/// A refusal: exit code 3, the cause on the one error line, nothing left in the cache.
fn assert_refused(world: &World, server: &Server, cause: &str) {
    let (ok, _, stderr, took) = world.fetch(server);
    assert!(!ok, "accepted; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kspec: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    assert!(
        errors[0].contains(cause),
        "cause {cause:?} not in {:?}",
        errors[0]
    );
    world.assert_nothing_left();
    eprintln!("refused in {:.1}s: {}", took.as_secs_f64(), errors[0]);
}

#[test]
fn a_good_download_is_unpacked_once_and_reused_without_a_request() {
    let w = World::new();
    let sums = w.signed_sums(&w.good);
    let server = Server::start(routes(Reply::Serve(w.good.clone()), sums));
    let (ok, stdout, stderr, _) = w.fetch(&server);
    assert!(ok, "{stderr}");
    let tree = PathBuf::from(stdout.trim().strip_prefix("fake: ").unwrap());
    assert_eq!(
        std::fs::read_to_string(tree.join("Makefile")).unwrap(),
        "fake kernel\n"
    );
    let first = server.requests();
    assert_eq!(first.len(), 2, "the sums file and the tarball: {first:?}");
    assert!(
        first.iter().all(|r| r.starts_with("/mirror/v9.x/")),
        "{first:?}"
    );

    let (ok, again, stderr, _) = w.fetch(&server);
    assert!(ok, "{stderr}");
    assert_eq!(again, stdout);
    assert_eq!(server.requests(), first, "a cached tree needs no download");
}

#[test]
fn a_prepended_hash_does_not_replace_the_signed_one() {
    let w = World::new();
    // The attacker serves its own tarball and puts its hash before the signed message: gpg
    // still reports a good signature, the hash must come from the signed part.
    let mut sums = w.sums_for(&w.evil).into_bytes();
    sums.extend(w.signed_sums(&w.good));
    let server = Server::start(routes(Reply::Serve(w.evil.clone()), sums));
    assert_refused(&w, &server, "sha256 mismatch");
}

#[test]
fn a_bad_signature_is_refused() {
    let w = World::new();
    let signed = String::from_utf8(w.signed_sums(&w.good)).unwrap();
    let evil_sha = w.sums_for(&w.evil);
    let good_sha = w.sums_for(&w.good);
    let forged = signed.replace(good_sha.trim(), evil_sha.trim());
    assert_ne!(forged, signed);
    let server = Server::start(routes(Reply::Serve(w.evil.clone()), forged.into_bytes()));
    assert_refused(&w, &server, "signature not valid");
}

#[test]
fn a_key_other_than_the_pinned_one_is_refused() {
    let w = World::new();
    let sums = w.signed_sums(&w.good);
    // The checkout pins another fingerprint, whose key file is the throwaway key.
    let root = w.dir.path().join("checkout/images");
    let other = "0123456789ABCDEF0123456789ABCDEF01234567";
    let yaml = std::fs::read_to_string(root.join("kernels.yaml")).unwrap();
    std::fs::write(
        root.join("kernels.yaml"),
        yaml.replace(&w.fingerprint, other),
    )
    .unwrap();
    std::fs::copy(
        root.join(format!("keys/{}.asc", w.fingerprint)),
        root.join(format!("keys/{other}.asc")),
    )
    .unwrap();
    let server = Server::start(routes(Reply::Serve(w.good.clone()), sums));
    assert_refused(&w, &server, "must hold exactly the key");
}

#[test]
fn a_wrong_sha_is_refused() {
    let w = World::new();
    // Correctly signed, but for other bytes than the mirror serves.
    let sums = w.signed_sums(&w.evil);
    let server = Server::start(routes(Reply::Serve(w.good.clone()), sums));
    assert_refused(&w, &server, "sha256 mismatch");
}

#[test]
fn a_truncated_download_is_refused() {
    let w = World::new();
    let sums = w.signed_sums(&w.good);
    let server = Server::start(routes(Reply::Truncate(w.good.clone()), sums));
    assert_refused(&w, &server, "curl: (18)");
}

#[test]
fn a_stalled_mirror_is_abandoned() {
    let w = World::new();
    let sums = w.signed_sums(&w.good);
    let server = Server::start(routes(Reply::Stall, sums));
    assert_refused(&w, &server, "curl: (28)");
}

#[test]
fn a_mirror_without_the_file_is_refused() {
    let w = World::new();
    let server = Server::start(HashMap::new());
    assert_refused(&w, &server, "404");
}
