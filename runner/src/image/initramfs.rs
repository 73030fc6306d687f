//! The guest's initramfs (cpio newc, uncompressed: the kernel unpacks it fastest that way):
//! busybox with its applet links, /init, the rootfs files, the project's modules in /lib/modules,
//! an empty modules.dep for the kernel's release (busybox modinfo wants one), the project's guest
//! programs and kspec-agent in /usr/bin. Everything the guest would otherwise create at boot is
//! here: each fork costs milliseconds under TCG.
//! Spec files ride in a second archive appended to it.

use std::io::Write;
use std::path::Path;

use super::Error;
use cpio::newc::{Builder, ModeFileType};

pub const TOOLS_DIR: &str = "/usr/bin";
pub const AGENT_PATH: &str = "usr/bin/kspec-agent";

/// One entry to put in an archive.
pub enum Entry<'a> {
    Dir(&'a str),
    Symlink {
        path: String,
        target: &'a str,
    },
    File {
        path: &'a str,
        data: Vec<u8>,
        mode: u32,
    },
    CharDev {
        path: &'a str,
        major: u32,
        minor: u32,
    },
}

pub fn write_archive(out: &mut Vec<u8>, entries: &[Entry]) -> std::io::Result<()> {
    for (ino, e) in entries.iter().enumerate() {
        let ino = ino as u32 + 1;
        // Fixed mtime and owners: the same inputs give the same bytes.
        let b = |p: &str| {
            Builder::new(p.trim_start_matches('/'))
                .ino(ino)
                .uid(0)
                .gid(0)
                .mtime(0)
                .nlink(1)
        };
        match e {
            Entry::Dir(p) => {
                let w = b(p)
                    .mode(0o755)
                    .set_mode_file_type(ModeFileType::Directory)
                    .nlink(2)
                    .write(&mut *out, 0);
                w.finish()?;
            }
            Entry::Symlink { path, target } => {
                let mut w = b(path)
                    .mode(0o777)
                    .set_mode_file_type(ModeFileType::Symlink)
                    .write(&mut *out, target.len() as u32);
                w.write_all(target.as_bytes())?;
                w.finish()?;
            }
            Entry::File { path, data, mode } => {
                let len = u32::try_from(data.len())
                    .map_err(|_| std::io::Error::other(format!("{path}: too large for cpio")))?;
                let mut w = b(path)
                    .mode(*mode)
                    .set_mode_file_type(ModeFileType::Regular)
                    .write(&mut *out, len);
                w.write_all(data)?;
                w.finish()?;
            }
            Entry::CharDev { path, major, minor } => {
                let w = b(path)
                    .mode(0o600)
                    .set_mode_file_type(ModeFileType::Char)
                    .rdev_major(*major)
                    .rdev_minor(*minor)
                    .write(&mut *out, 0);
                w.finish()?;
            }
        }
    }
    cpio::newc::trailer(&mut *out)?;
    Ok(())
}

/// What the base image is made of.
pub struct BaseInputs<'a> {
    pub busybox: &'a Path,
    pub init: &'a Path,
    /// images/rootfs: copied as is (relative paths, modes kept).
    pub rootfs: &'a Path,
    /// (name, built .ko): each becomes [`module_path`]`(name)`.
    pub modules: &'a [(&'a str, &'a Path)],
    /// Guest programs, each installed under its file name in [`TOOLS_DIR`].
    pub programs: &'a [&'a Path],
    /// kspec-agent: PID 1 of a test VM.
    pub agent: &'a Path,
    /// `uname -r` of the kernel the image is for.
    pub release: &'a str,
}

/// Where the image holds module `name`.
pub fn module_path(name: &str) -> String {
    format!("/lib/modules/{name}.ko")
}

/// The base image: everything every VM needs.
pub fn base(inp: &BaseInputs) -> Result<Vec<u8>, Error> {
    use std::os::unix::fs::PermissionsExt;
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(p, e));
    let applets = std::process::Command::new(inp.busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::io(inp.busybox, e))?;
    let applets = String::from_utf8_lossy(&applets.stdout).into_owned();
    let mut rootfs_files = Vec::new();
    collect(inp.rootfs, inp.rootfs, &mut rootfs_files).map_err(|e| Error::io(inp.rootfs, e))?;
    rootfs_files.sort();
    let modules_dir = format!("lib/modules/{}", inp.release);
    let modules_dep = format!("{modules_dir}/modules.dep");
    let mut entries = vec![Entry::Dir(".")];
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "lib",
        "lib/modules",
        &modules_dir,
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "root",
        "etc",
    ] {
        entries.push(Entry::Dir(d));
    }
    // The kernel opens /dev/console for init before /init can mount devtmpfs.
    entries.push(Entry::CharDev {
        path: "dev/console",
        major: 5,
        minor: 1,
    });
    entries.push(Entry::File {
        path: "bin/busybox",
        data: read(inp.busybox)?,
        mode: 0o755,
    });
    for a in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "bin/busybox" && a.contains('/'))
    {
        entries.push(Entry::Symlink {
            path: a.to_owned(),
            target: "/bin/busybox",
        });
    }
    entries.push(Entry::File {
        path: "init",
        data: read(inp.init)?,
        mode: 0o755,
    });
    for (rel, path) in &rootfs_files {
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        entries.push(Entry::File {
            path: rel,
            data: read(path)?,
            mode,
        });
    }
    entries.push(Entry::File {
        path: &modules_dep,
        data: Vec::new(),
        mode: 0o644,
    });
    let module_paths: Vec<String> = inp.modules.iter().map(|(n, _)| module_path(n)).collect();
    for (path, (_, ko)) in module_paths.iter().zip(inp.modules) {
        entries.push(Entry::File {
            path,
            data: read(ko)?,
            mode: 0o644,
        });
    }
    let mut program_paths = Vec::new();
    for p in inp.programs {
        let name = p
            .file_name()
            .ok_or_else(|| Error::Config(format!("{}: not a program file", p.display())))?;
        program_paths.push(format!("{TOOLS_DIR}/{}", name.to_string_lossy()));
    }
    for (path, program) in program_paths.iter().zip(inp.programs) {
        entries.push(Entry::File {
            path,
            data: read(program)?,
            mode: 0o755,
        });
    }
    entries.push(Entry::File {
        path: AGENT_PATH,
        data: read(inp.agent)?,
        mode: 0o755,
    });
    let mut out = Vec::new();
    write_archive(&mut out, &entries).map_err(|e| Error::io(Path::new("initramfs"), e))?;
    Ok(out)
}

/// Regular files under `dir` as (path relative to `root`, path).
fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect(root, &p, out)?;
        } else if p.is_file() {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            out.push((rel, p));
        }
    }
    Ok(())
}

/// A second archive with host files for one spec; parent directories are created.
pub fn extra(files: &[(String, Vec<u8>, u32)]) -> Result<Vec<u8>, Error> {
    let mut dirs: Vec<String> = Vec::new();
    for (dest, _, _) in files {
        let mut acc = String::new();
        let parts: Vec<&str> = dest.trim_start_matches('/').split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            acc = if acc.is_empty() {
                (*p).to_owned()
            } else {
                format!("{acc}/{p}")
            };
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
            }
        }
    }
    let mut entries: Vec<Entry> = dirs.iter().map(|d| Entry::Dir(d)).collect();
    for (dest, data, mode) in files {
        entries.push(Entry::File {
            path: dest,
            data: data.clone(),
            mode: *mode,
        });
    }
    let mut out = Vec::new();
    write_archive(&mut out, &entries).map_err(|e| Error::io(Path::new("spec files archive"), e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_round_trips() {
        let a = extra(&[("/opt/x/prog".into(), b"hello".to_vec(), 0o755)]).unwrap();
        let mut r = cpio::NewcReader::new(&a[..]).unwrap();
        assert_eq!(r.entry().name(), "opt");
        let mut names = vec![];
        loop {
            if r.entry().is_trailer() {
                break;
            }
            names.push((
                r.entry().name().to_owned(),
                r.entry().mode(),
                r.entry().file_size(),
            ));
            r = cpio::NewcReader::new(r.finish().unwrap()).unwrap();
        }
        assert_eq!(
            names,
            vec![
                ("opt".into(), 0o40755, 0),
                ("opt/x".into(), 0o40755, 0),
                ("opt/x/prog".into(), 0o100755, 5)
            ]
        );
    }
}
