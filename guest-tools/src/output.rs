//! Writing to stdout without panicking (println! panics on EPIPE). Every line is flushed at
//! once, so background commands (`netlink listen`) are observable line by line.

use crate::error::{Error, Result};
use std::io::Write;

/// Print one line (a newline is appended) and flush.
pub fn line(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write stdout", &e))
}

/// Print bytes exactly as they are and flush.
pub fn raw(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write stdout", &e))
}

/// Print a diagnostic line on stderr (only used with --verbose); errors are ignored.
pub fn diag(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "kchanctl: {s}");
}
