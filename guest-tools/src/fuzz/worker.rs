//! Worker processes: each forked worker runs the channels from its own seed and reports
//! through a pipe.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

use super::report::{describe_status, parse_report, WorkerReport};
use super::{errno, run_channel, Channel, Config, Options};

/// What a worker reports through its pipe, one line each: `done <channel> <iterations> <ok>
/// <errors>` or `fail <channel> <what>`.
fn worker_lines(
    channels: &[Channel],
    cfg: &Config,
    seed: u64,
    n: u64,
    out: &mut impl Write,
) -> i32 {
    for &ch in channels {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_channel(ch, cfg, seed, n)
        }));
        let line = match r {
            Ok(Ok(c)) => format!("done {} {} {} {}", ch.name(), c.iterations, c.ok, c.errors),
            Ok(Err(e)) => {
                let what = match e {
                    Error::Msg { op, msg } if op.starts_with("fuzz ") => msg,
                    e => e.to_string(),
                };
                format!("fail {} {}", ch.name(), what.replace('\n', " "))
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("fail {} panicked: {}", ch.name(), msg.replace('\n', " "))
            }
        };
        let failed = line.starts_with("fail");
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() || failed {
            return 1;
        }
    }
    0
}

/// Fork `procs` workers (worker i: seed + i), collect their reports.
pub fn run_workers(o: &Options) -> Result<Vec<WorkerReport>> {
    let channels = o.target.channels();
    let mut started = Vec::new();
    let mut spawn_error = None;
    for i in 0..o.procs {
        let seed = o.seed.wrapping_add(i as u64);
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            spawn_error = Some(Error::last("pipe"));
            break;
        }
        // SAFETY: fresh descriptors owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the parent is single-threaded here (fuzz starts threads only in workers);
        // the child only runs the worker and _exits.
        match unsafe { libc::fork() } {
            -1 => {
                spawn_error = Some(Error::last("fork"));
                break;
            }
            0 => {
                drop(r);
                let mut out = std::fs::File::from(w);
                let code = worker_lines(&channels, &o.config, seed, o.iterations, &mut out);
                drop(out);
                // SAFETY: leave without running the parent's exit handlers.
                unsafe { libc::_exit(code) }
            }
            pid => {
                drop(w);
                started.push((i, seed, pid, r));
            }
        }
    }
    let mut reports = Vec::new();
    for (i, seed, pid, r) in started {
        let mut text = Vec::new();
        let _ = std::fs::File::from(r).read_to_end(&mut text);
        let mut status = 0;
        let waited = loop {
            // SAFETY: waiting for our own child.
            let w = unsafe { libc::waitpid(pid, &mut status, 0) };
            if w == pid {
                break true;
            }
            if w < 0 && errno() != libc::EINTR {
                break false;
            }
        };
        let st = if waited {
            describe_status(status)
        } else {
            Some("could not be waited for".to_string())
        };
        reports.push(parse_report(
            i,
            seed,
            &channels,
            &String::from_utf8_lossy(&text),
            st,
        ));
    }
    if let Some(e) = spawn_error {
        return Err(e);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::report::summarize;
    use crate::fuzz::tests::temp_files;
    use crate::fuzz::Target;

    #[test]
    fn workers_report_through_pipes() {
        let (dir, cfg) = temp_files("workers");
        let o = Options {
            target: Target::Proc,
            iterations: 300,
            seed: 40,
            procs: 3,
            config: Config {
                strict: false,
                ..cfg
            },
        };
        let reports = run_workers(&o).unwrap();
        assert_eq!(reports.len(), 3);
        for (i, r) in reports.iter().enumerate() {
            assert_eq!((r.index, r.seed), (i, 40 + i as u64));
            assert!(r.fail.is_none(), "{r:?}");
        }
        let (lines, fails) = summarize(&[Channel::Proc], 40, &reports);
        assert!(fails.is_empty());
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("fuzz proc: iterations=900 ok="),
            "{}",
            lines[0]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
