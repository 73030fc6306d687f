//! `--as-user UID`: become an unprivileged user before the operation.

use crate::error::{Error, Result};
use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};

/// Drop the supplementary groups, then set the real, effective and saved gid and uid to `uid`.
/// For a non-zero uid this also clears every capability (no SECBIT_KEEP_CAPS). Fails (EPERM
/// from setgroups) unless the process is privileged.
pub fn drop_to(uid: u32) -> Result<()> {
    setgroups(&[]).map_err(|e| Error::sys("setgroups", e))?;
    setgid(Gid::from_raw(uid)).map_err(|e| Error::sys("setgid", e))?;
    setuid(Uid::from_raw(uid)).map_err(|e| Error::sys("setuid", e))?;
    // Make sure there is no way back (setuid(0) must fail now) when dropping to non-root.
    if uid != 0 && setuid(Uid::from_raw(0)).is_ok() {
        return Err(Error::msg("setuid", "privileges could not be dropped"));
    }
    Ok(())
}
