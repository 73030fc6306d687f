//! After a snapshot restore: fresh entropy, a reseeded CRNG and the host's wall clock, so that
//! VMs restored from one snapshot share neither their random numbers nor a stale time.

use std::os::fd::AsRawFd;

/// `_IOW('R', 0x03, int[2])` and `_IO('R', 0x07)` from <linux/random.h>.
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

pub fn resume(entropy: &[u8], wall_clock_ns: u64) -> Result<(), String> {
    if entropy.is_empty() || entropy.len() > 4096 {
        return Err(format!("resume: {} bytes of entropy", entropy.len()));
    }
    let random = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/urandom")
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }, u32-aligned.
    let words = entropy.len().div_ceil(4);
    let mut info = vec![0u32; 2 + words];
    info[0] = (entropy.len() * 8) as u32;
    info[1] = entropy.len() as u32;
    for (i, chunk) in entropy.chunks(4).enumerate() {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        info[2 + i] = u32::from_ne_bytes(w);
    }
    // SAFETY: `info` is a valid rand_pool_info of buf_size bytes; the fd is open for writing.
    if unsafe { libc::ioctl(random.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) } != 0 {
        return Err(format!(
            "RNDADDENTROPY: {}",
            std::io::Error::last_os_error()
        ));
    }
    // Credited entropy alone reaches the CRNG only at its next periodic reseed: force one now.
    // SAFETY: RNDRESEEDCRNG takes no argument.
    if unsafe { libc::ioctl(random.as_raw_fd(), RNDRESEEDCRNG) } != 0 {
        return Err(format!(
            "RNDRESEEDCRNG: {}",
            std::io::Error::last_os_error()
        ));
    }
    let ts = nix::sys::time::TimeSpec::new(
        (wall_clock_ns / 1_000_000_000) as libc::time_t,
        (wall_clock_ns % 1_000_000_000) as libc::c_long,
    );
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts)
        .map_err(|e| format!("clock_settime: {e}"))
}
