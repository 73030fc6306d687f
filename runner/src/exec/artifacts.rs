//! What a failed case leaves behind for a person to read (`kspec run --artifacts DIR`): the
//! VM's kernel log and console, and the guest files its spec lists, under
//! DIR/<kernel>/<spec>/<case>/.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::event::CaseId;
use crate::vm::{StepRequest, Vm};

/// A path component from a name that may hold anything.
fn component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('.').to_owned()
}

/// Where the artifacts of `id` go under `dir`.
pub fn case_dir(dir: &Path, id: &CaseId) -> PathBuf {
    dir.join(component(&id.kernel))
        .join(component(&id.spec))
        .join(component(&id.case))
}

/// Copy what `vm` can still give: its kernel log and console always, the guest files in
/// `files` while the guest runs. Returns the files written; a file that cannot be had is
/// named in `missing.txt` instead.
pub fn collect(
    dir: &Path,
    id: &CaseId,
    vm: Option<&mut Vm>,
    console: Option<Vec<u8>>,
    files: &[String],
) -> Vec<PathBuf> {
    let out = case_dir(dir, id);
    if std::fs::create_dir_all(&out).is_err() {
        return vec![];
    }
    let mut written = Vec::new();
    let mut missing = Vec::new();
    let put = |name: &str, data: &[u8], written: &mut Vec<PathBuf>| {
        let p = out.join(name);
        if std::fs::write(&p, data).is_ok() {
            written.push(p);
        }
    };
    if let Some(c) = console {
        put("console.log", &c, &mut written);
    }
    let Some(vm) = vm else {
        return written;
    };
    let log: String = vm
        .kmsg_tail(usize::MAX)
        .iter()
        .map(|r| {
            let ts = r.ts_us as f64 / 1e6;
            format!("[{ts:12.6}] {}\n", r.text)
        })
        .collect();
    put("kernel.log", log.as_bytes(), &mut written);
    for f in files {
        let script = format!("cat -- '{}'", f.replace('\'', "'\\''"));
        let got = vm.run(&StepRequest::new(&script, Duration::from_secs(30)));
        match got {
            Ok(o) if o.exit() == 0 => {
                let name = format!("files/{}", component(f.trim_start_matches('/')));
                let _ = std::fs::create_dir_all(out.join("files"));
                put(&name, &o.stdout, &mut written);
            }
            Ok(o) => missing.push(format!(
                "{f}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => missing.push(format!("{f}: {e}")),
        }
    }
    if !missing.is_empty() {
        put(
            "missing.txt",
            (missing.join("\n") + "\n").as_bytes(),
            &mut written,
        );
    }
    written
}
