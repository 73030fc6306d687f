//! The workers' reports as the parent reads them, and the summary lines and failures made of
//! them.

use crate::error::Error;

use super::{violation, Channel, Counts};

/// One worker's results as the parent sees them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub index: usize,
    pub seed: u64,
    pub done: Vec<(Channel, Counts)>,
    pub fail: Option<(Channel, String)>,
}

/// Parse a worker's pipe output; `status` says how it ended (None: it could not be waited for).
pub(super) fn parse_report(
    index: usize,
    seed: u64,
    channels: &[Channel],
    text: &str,
    status: Option<String>,
) -> WorkerReport {
    let mut r = WorkerReport {
        index,
        seed,
        ..Default::default()
    };
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (kind, ch) = (parts.next(), parts.next().and_then(Channel::from_name));
        let rest = parts.next().unwrap_or("");
        match (kind, ch) {
            (Some("done"), Some(ch)) => {
                let v: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [iterations, ok, errors] = v[..] {
                    r.done.push((
                        ch,
                        Counts {
                            iterations,
                            ok,
                            errors,
                        },
                    ));
                }
            }
            (Some("fail"), Some(ch)) if r.fail.is_none() => r.fail = Some((ch, rest.to_string())),
            _ => {}
        }
    }
    if r.fail.is_none() {
        let unfinished = channels
            .iter()
            .find(|c| !r.done.iter().any(|(d, _)| d == *c));
        if let (Some(&ch), Some(s)) = (unfinished, status.as_ref()) {
            r.fail = Some((ch, s.clone()));
        } else if let Some(&ch) = unfinished {
            r.fail = Some((ch, "ended without a report".to_string()));
        }
    }
    r
}

/// How a child ended, unless it exited 0.
pub(super) fn describe_status(status: libc::c_int) -> Option<String> {
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => None,
            c => Some(format!("exited with status {c}")),
        }
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {sig}"));
        Some(format!("killed by {name}"))
    } else {
        Some(format!("ended with wait status {status:#x}"))
    }
}

/// The summary lines (channels every worker finished) and the failures, in channel order.
pub fn summarize(
    channels: &[Channel],
    seed: u64,
    reports: &[WorkerReport],
) -> (Vec<String>, Vec<Error>) {
    let mut lines = Vec::new();
    for &ch in channels {
        let mut total = Counts::default();
        let mut complete = true;
        for r in reports {
            match r.done.iter().find(|(c, _)| *c == ch) {
                Some((_, c)) => total.add(c),
                None => complete = false,
            }
        }
        if complete {
            lines.push(total.line(ch, seed));
        }
    }
    let mut failures = Vec::new();
    for &ch in channels {
        for r in reports {
            if let Some((c, what)) = &r.fail {
                if *c == ch {
                    failures.push(violation(
                        ch,
                        format!("{what} (worker {}, seed {})", r.index, r.seed),
                    ));
                }
            }
        }
    }
    (lines, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_and_summary() {
        let chans = Channel::ALL.to_vec();
        let a = parse_report(
            0,
            5,
            &chans,
            "done sockopt 10 7 3\ndone netlink 10 10 0\ndone proc 10 1 9\ndone mmap 10 5 5\n",
            None,
        );
        assert!(a.fail.is_none());
        let b = parse_report(
            1,
            6,
            &chans,
            "done sockopt 10 6 4\nfail netlink echo reply seq 1: differs\n",
            Some("exited with status 1".into()),
        );
        let (lines, fails) = summarize(&chans, 5, &[a, b]);
        assert_eq!(
            lines,
            vec!["fuzz sockopt: iterations=20 ok=13 errors=7 seed=5".to_string()]
        );
        assert_eq!(fails.len(), 1);
        assert_eq!(
            fails[0].to_string(),
            "fuzz netlink: echo reply seq 1: differs (worker 1, seed 6)"
        );
        let c = parse_report(
            2,
            7,
            &chans,
            "done sockopt 1 1 0\n",
            Some("killed by SIGSEGV".into()),
        );
        assert_eq!(c.fail, Some((Channel::Netlink, "killed by SIGSEGV".into())));
        let d = parse_report(3, 8, &chans[..1], "", None);
        assert!(d.fail.is_some());
        assert_eq!(describe_status(0), None);
        assert_eq!(describe_status(9).as_deref(), Some("killed by SIGKILL"));
        assert_eq!(
            describe_status(1 << 8).as_deref(),
            Some("exited with status 1")
        );
    }
}
