// SPDX-License-Identifier: GPL-2.0
//! Turning untrusted bytes into log text: never `%s` on foreign memory (the seeds' printk
//! over-reads), never raw control bytes in the log.

use core::fmt;

/// Displays bytes with printable ASCII (0x20..=0x7e) as is and every other byte as `\xNN`
/// (two lowercase hex digits). Bounded by the slice, no NUL needed; printk truncates very
/// long records itself.
pub(crate) struct Esc<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for run in self.0.split_inclusive(|b| !is_printable(*b)) {
            let (text, special) = match run.split_last() {
                Some((last, head)) if !is_printable(*last) => (head, Some(*last)),
                _ => (run, None),
            };
            // Only printable ASCII reaches here, which is valid UTF-8.
            f.write_str(core::str::from_utf8(text).map_err(|_| fmt::Error)?)?;
            if let Some(b) = special {
                write!(f, "\\x{:02x}", b)?;
            }
        }
        Ok(())
    }
}

fn is_printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// The bytes before the first NUL (the whole slice if there is none).
pub(crate) fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// Drops one trailing `\n`, as `echo` and the seed's messages add one.
pub(crate) fn strip_newline(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}
