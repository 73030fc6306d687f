//! Error values. Every failure is an [`Error`]: the name of the operation that failed plus an
//! errno (or a message), printed by `main` as `kchanctl: <op>: <ERRNO> (<description>)` on stderr
//! with exit status 1. Usage errors are clap's (exit status 2).

use nix::errno::Errno;
use std::fmt;

/// A failed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A system call (or the kernel through a netlink error message) failed with an errno.
    Sys { op: String, errno: i32 },
    /// Anything else: a check failed, the kernel sent something unexpected, etc.
    Msg { op: String, msg: String },
    /// A bad argument found after parsing (e.g. MSG with --hex): reported like clap's
    /// usage errors, exit status 2.
    Usage(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn sys(op: impl Into<String>, errno: Errno) -> Self {
        Error::Sys {
            op: op.into(),
            errno: errno as i32,
        }
    }

    /// An errno given as a raw positive number (e.g. the negated `error` of an NLMSG_ERROR).
    pub fn raw(op: impl Into<String>, errno: i32) -> Self {
        Error::Sys {
            op: op.into(),
            errno,
        }
    }

    /// The current `errno` (after a libc call returned -1).
    pub fn last(op: impl Into<String>) -> Self {
        Error::sys(op, Errno::last())
    }

    pub fn msg(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Msg {
            op: op.into(),
            msg: msg.into(),
        }
    }

    /// Map a `std::io::Error` (from `File`/`stdout`) to an error value.
    pub fn io(op: impl Into<String>, e: &std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Error::raw(op, n),
            None => Error::msg(op, e.to_string()),
        }
    }

    /// The errno, when there is one.
    #[cfg(test)]
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            Error::Msg { .. } | Error::Usage(_) => None,
        }
    }
}

/// The symbolic name of an errno value: `EPERM`, or `E<n>` when it has none (e.g. the
/// kernel-internal ENOTSUPP 524 leaking through netlink).
pub fn errno_name(errno: i32) -> String {
    let e = Errno::from_raw(errno);
    if e == Errno::UnknownErrno {
        format!("E{errno}")
    } else {
        format!("{e:?}")
    }
}

/// The description of an errno value ("Operation not permitted"), from nix's fixed table so
/// it does not depend on the C library.
pub fn errno_desc(errno: i32) -> &'static str {
    Errno::from_raw(errno).desc()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys { op, errno } => {
                write!(f, "{op}: {} ({})", errno_name(*errno), errno_desc(*errno))
            }
            Error::Msg { op, msg } => write!(f, "{op}: {msg}"),
            Error::Usage(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_sys() {
        let e = Error::sys("setsockopt", Errno::EPERM);
        assert_eq!(e.to_string(), "setsockopt: EPERM (Operation not permitted)");
        assert_eq!(e.errno(), Some(1));
        let e = Error::raw("netlink listen", libc::ETIMEDOUT);
        assert_eq!(
            e.to_string(),
            "netlink listen: ETIMEDOUT (Connection timed out)"
        );
    }

    #[test]
    fn display_unknown_errno() {
        let e = Error::raw("netlink echo", 524);
        assert!(e.to_string().starts_with("netlink echo: E524 ("));
        assert_eq!(errno_name(22), "EINVAL");
    }

    #[test]
    fn display_msg() {
        let e = Error::msg("mmap verify", "page 17 offset 24: expected 0x1 got 0x2");
        assert_eq!(
            e.to_string(),
            "mmap verify: page 17 offset 24: expected 0x1 got 0x2"
        );
        assert_eq!(e.errno(), None);
    }
}
