//! /dev/kmsg, read without blocking: one record per read. A reader that falls behind gets EPIPE
//! once and continues at the oldest record left; the host sees the gap in the sequence numbers.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

pub struct Kmsg {
    file: Option<File>,
}

impl Kmsg {
    pub fn open() -> Kmsg {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/kmsg")
            .ok();
        Kmsg { file }
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(|f| f.as_fd())
    }

    /// Every record available now: the header and text line, without the dictionary lines.
    pub fn read_available(&mut self, mut each: impl FnMut(Vec<u8>)) {
        let Some(f) = self.file.as_mut() else { return };
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let rec = &buf[..n];
                    let end = rec.iter().position(|&b| b == b'\n').unwrap_or(n);
                    each(rec[..end].to_vec());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(_) => return,
            }
        }
    }
}
