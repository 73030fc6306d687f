// SPDX-License-Identifier: GPL-2.0
//! The only place that knows which kernel it is built for. Kbuild passes `--cfg kver_ge_7`
//! for 7.x kernels; every API difference between 6.12 and 7.3 that kchan meets is bridged
//! here so the other files compile unchanged on both.

use kernel::uaccess::UserSlice;

/// A user-space buffer of `len` bytes at `addr`.
#[cfg(not(kver_ge_7))]
pub(crate) fn user_slice<T>(addr: *const T, len: usize) -> UserSlice {
    // 6.12: `UserPtr` is a plain `usize`.
    UserSlice::new(addr as usize, len)
}

/// A user-space buffer of `len` bytes at `addr`.
#[cfg(kver_ge_7)]
pub(crate) fn user_slice<T>(addr: *const T, len: usize) -> UserSlice {
    // 7.x: `UserPtr` is a newtype around the address.
    UserSlice::new(kernel::uaccess::UserPtr::from_addr(addr as usize), len)
}

/// 7.x: `pr_*!` format their `{}` arguments through `kernel::fmt::Display`, the kernel's own copy
/// of the trait, not `core::fmt::Display` (6.12 has no `kernel::fmt` and uses core's directly).
/// kchan's log text type implements core's trait in text.rs; this forwards to it.
#[cfg(kver_ge_7)]
impl kernel::fmt::Display for crate::text::Esc<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

/// Error codes kchan uses that the 6.12 kernel crate does not name (its `code` module has a
/// fixed list). Functions, not constants: `Error::from_errno` is not `const` on 6.12.
pub(crate) mod errno {
    use kernel::bindings;
    use kernel::error::Error;

    fn code(errno: u32) -> Error {
        Error::from_errno(-(errno as i32))
    }

    pub(crate) fn econnrefused() -> Error {
        code(bindings::ECONNREFUSED)
    }

    pub(crate) fn emsgsize() -> Error {
        code(bindings::EMSGSIZE)
    }

    pub(crate) fn enotconn() -> Error {
        code(bindings::ENOTCONN)
    }

    pub(crate) fn eopnotsupp() -> Error {
        code(bindings::EOPNOTSUPP)
    }

    pub(crate) fn enoprotoopt() -> Error {
        code(bindings::ENOPROTOOPT)
    }

    pub(crate) fn eshutdown() -> Error {
        code(bindings::ESHUTDOWN)
    }
}
