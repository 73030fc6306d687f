//! The build cache outside the repository (`$KSPEC_CACHE`, default `~/.cache/kspec`) and the
//! content hashes that key it: an artifact is rebuilt exactly when something it depends on changed.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::progress::Progress;
use super::Error;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn from_env() -> Result<Self, Error> {
        let root = match std::env::var_os("KSPEC_CACHE") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .ok_or_else(|| Error::Host("neither KSPEC_CACHE nor HOME is set".into()))?;
                base.join("kspec")
            }
        };
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Cache { root })
    }

    /// A cache rooted at `root` (a scratch cache for measurements).
    pub fn at(root: PathBuf) -> Result<Self, Error> {
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Cache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, parts: &[&str]) -> Result<PathBuf, Error> {
        let mut p = self.root.clone();
        for part in parts {
            p.push(part);
        }
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }
}

/// An exclusive lock on one cache entry: a `flock` on `<entry>.lock` beside it, held from the
/// "is it built?" check to the end of the build. A second kspec (another terminal, nextest's
/// parallel test processes) waits for it, then finds the entry built; the kernel drops the lock
/// when a process dies, so a killed build never leaves one behind.
pub struct EntryLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Cache {
    pub fn lock(&self, entry: &Path, progress: &dyn Progress) -> Result<EntryLock, Error> {
        use nix::fcntl::{Flock, FlockArg};
        let path = PathBuf::from(format!("{}.lock", entry.display()));
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))
        };
        let failed = |e: nix::errno::Errno| Error::io(&path, e.into());
        match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(EntryLock { _lock: l }),
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                progress.message(&format!(
                    "waiting for another kspec building {}",
                    entry.display()
                ));
                Flock::lock(file, FlockArg::LockExclusive)
                    .map(|l| EntryLock { _lock: l })
                    .map_err(|(_, e)| failed(e))
            }
            Err((_, e)) => Err(failed(e)),
        }
    }
}

/// Builds a cache key from labelled inputs.
pub struct Key(Sha256);

impl Key {
    pub fn new(kind: &str) -> Self {
        let mut h = Sha256::new();
        h.update(kind.as_bytes());
        Key(h)
    }

    pub fn str(mut self, label: &str, value: &str) -> Self {
        self.field(label, value.as_bytes());
        self
    }

    fn field(&mut self, label: &str, value: &[u8]) {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    pub fn file(mut self, label: &str, path: &Path) -> Result<Self, Error> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.field(label, &data);
        Ok(self)
    }

    /// Every source file under `dir` (recursively, sorted), skipping build output.
    pub fn dir(
        mut self,
        label: &str,
        dir: &Path,
        keep: &dyn Fn(&Path) -> bool,
    ) -> Result<Self, Error> {
        let mut files = Vec::new();
        walk(dir, &mut files).map_err(|e| Error::io(dir, e))?;
        files.sort();
        for f in files.into_iter().filter(|f| keep(f)) {
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            self = self.file(&format!("{label}/{rel}"), &f)?;
        }
        Ok(self)
    }

    /// Hex digest; 16 characters are plenty to tell builds apart.
    pub fn finish(self) -> String {
        let d = self.0.finalize();
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') || name == "target" {
            continue;
        }
        if e.file_type()?.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: dir.path().to_owned(),
        };
        let entry = cache.dir(&["kernels", "x-1"]).unwrap();
        let first = cache.lock(&entry, &crate::image::Quiet).unwrap();
        let (tx, rx) = mpsc::channel();
        let (c, e) = (cache.clone(), entry.clone());
        let waiter = std::thread::spawn(move || {
            let _second = c.lock(&e, &crate::image::Quiet).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the second lock was granted while the first was held"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the second lock after the first was dropped");
        waiter.join().unwrap();
    }
}
