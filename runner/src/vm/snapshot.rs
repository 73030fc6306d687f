//! Snapshot boot: the first VM of an image boots cold to the ready agent and saves its state
//! (QEMU migration to a file: zero pages are not stored); every later VM of that image starts
//! from the file instead, in about a tenth of the time. The file is keyed by everything that
//! shapes the saved state, so a changed kernel, initramfs, QEMU or machine option never meets
//! an old snapshot; one that cannot be restored is removed and the VM boots cold.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::qemu::VmConfig;
use super::qmp::{Qmp, QmpError};

/// Bumped when what a snapshot holds changes (the agent's resume handshake, QEMU's options).
const RECIPE: &str = "snapshot-2";

/// Frames the host has sent when a snapshot is saved (one settle): a restored VM's agent
/// expects the host's frames to go on from there.
pub const HOST_FRAMES: u32 = 1;

/// Saving is migration to a local file: seconds at most, even for a debug kernel's memory.
const SAVE_TIMEOUT: Duration = Duration::from_secs(60);

fn qemu_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        std::process::Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    })
}

/// A file's identity for the key: path, size and modification time (kernels and initramfs
/// live in content-keyed cache paths; size and mtime catch a local tree rebuilt in place).
fn file_identity(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) => format!(
            "{}:{}:{:?}",
            p.display(),
            m.len(),
            m.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        ),
        Err(_) => format!("{}:missing", p.display()),
    }
}

/// The snapshot file for `cfg` booted with `extra` (the spec's files) appended to the
/// initramfs, inside `dir`.
pub fn path_for(dir: &Path, cfg: &VmConfig, extra: Option<&[u8]>) -> PathBuf {
    let mut h = Sha256::new();
    for part in [
        RECIPE.to_owned(),
        qemu_version().to_owned(),
        format!("{:?}", cfg.accel),
        cfg.memory_mb.to_string(),
        cfg.cpus.to_string(),
        cfg.cmdline.clone(),
        file_identity(&cfg.kernel),
        file_identity(&cfg.initramfs),
        format!("{:x}", Sha256::digest(extra.unwrap_or_default())),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let key: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("{key}.vmstate"))
}

/// A shell word for QEMU's `exec:` migration URIs.
fn quoted(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// QEMU's `-incoming` argument that restores `snapshot`.
pub fn incoming(snapshot: &Path) -> String {
    format!("exec:cat {}", quoted(snapshot))
}

/// Save the running VM behind `qmp` to `path` (atomically: a reader sees a whole file or
/// none), then let it run on. Costs its migration time once per image.
pub fn save(qmp: &mut Qmp, path: &Path) -> Result<Duration, QmpError> {
    let started = Instant::now();
    let file_error = |path: &Path| {
        let path = path.to_owned();
        move |source| QmpError::File { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    }
    // One temporary file per save: VMs of one image booting at once each save their own.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("part{}-{n}", std::process::id()));
    let uri = format!("exec:cat > {}", quoted(&tmp));
    let saved = qmp
        .execute("migrate", serde_json::json!({ "uri": uri }))
        .and_then(|_| qmp.wait_migration(Instant::now() + SAVE_TIMEOUT));
    // The source stops at the end of a migration; it is the VM the caller goes on using.
    let resumed = qmp.execute("cont", serde_json::json!({}));
    let result = saved
        .and(resumed.map(|_| ()))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(file_error(path)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| started.elapsed())
}

/// What a restored agent is told before its first step: fresh host entropy (so that no two
/// VMs restored from one snapshot share their random numbers) and the wall clock (the saved
/// one is stale).
pub fn resume_message() -> Result<kspec_protocol::Msg, QmpError> {
    use std::io::Read;
    let mut entropy = vec![0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut entropy))
        .map_err(|source| QmpError::File {
            path: "/dev/urandom".into(),
            source,
        })?;
    let wall_clock_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Ok(kspec_protocol::Msg::Resume {
        entropy,
        wall_clock_ns,
    })
}
