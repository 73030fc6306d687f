//! The guest's initramfs (cpio newc, uncompressed: the kernel unpacks it fastest that way):
//! busybox, /init, kchan.ko and kchanctl. Spec files ride in a second archive appended to it.

use std::io::Write;
use std::path::Path;

use cpio::newc::{Builder, ModeFileType};

pub const MODULE_PATH: &str = "/lib/modules/kchan.ko";
pub const TOOLS_DIR: &str = "/usr/bin";

/// One entry to put in an archive.
pub enum Entry<'a> {
    Dir(&'a str),
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

/// The base image: everything every VM needs.
pub fn base(
    busybox: &Path,
    init: &Path,
    module: &Path,
    kchanctl: &Path,
) -> Result<Vec<u8>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("sbin"),
        Entry::Dir("usr"),
        Entry::Dir("usr/bin"),
        Entry::Dir("usr/sbin"),
        Entry::Dir("lib"),
        Entry::Dir("lib/modules"),
        Entry::Dir("dev"),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        Entry::Dir("tmp"),
        Entry::Dir("run"),
        Entry::Dir("root"),
        Entry::Dir("etc"),
        // The kernel opens /dev/console for init before /init can mount devtmpfs.
        Entry::CharDev {
            path: "dev/console",
            major: 5,
            minor: 1,
        },
        Entry::File {
            path: "bin/busybox",
            data: read(busybox)?,
            mode: 0o755,
        },
        Entry::File {
            path: "init",
            data: read(init)?,
            mode: 0o755,
        },
        Entry::File {
            path: MODULE_PATH,
            data: read(module)?,
            mode: 0o644,
        },
        Entry::File {
            path: "usr/bin/kchanctl",
            data: read(kchanctl)?,
            mode: 0o755,
        },
    ];
    let mut out = Vec::new();
    write_archive(&mut out, &entries).map_err(|e| format!("writing initramfs: {e}"))?;
    Ok(out)
}

/// A second archive with host files for one spec; parent directories are created.
pub fn extra(files: &[(String, Vec<u8>, u32)]) -> Result<Vec<u8>, String> {
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
    write_archive(&mut out, &entries).map_err(|e| format!("writing spec files archive: {e}"))?;
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
