//! kspec-agent: the guest side of kspec's step protocol (see the kspec-protocol crate).
//!
//! It runs as PID 1 once /init has mounted the file systems: so a step's `kill -9 -1` cannot
//! reach it, and every orphan is reaped here. One poll loop serves the protocol port, the
//! kernel log, child exits, the steps' pipes and their deadlines; nothing in it blocks for long.
//! Kernel log records are forwarded as they arrive, and drained again right before a step
//! starts and right after it ends, so the order of frames tells which step a record belongs to.

mod cgroup;
mod kmsg;
mod link;
mod reap;
mod resume;
mod step;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use kspec_protocol::{Frame, Msg};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use kmsg::Kmsg;
use link::Link;
use step::{read_taint, Step};

/// Past this much unsent data the agent stops reading the kernel log: a flood of records is then
/// overwritten in the kernel and reported as lost (the host sees the gap in record numbers),
/// instead of holding every later step behind megabytes of records on a slow port.
const MAX_QUEUED: usize = 512 << 10;

struct Settle {
    step: u32,
    quiet: Duration,
    started: Instant,
    until: Instant,
}

struct Agent {
    link: Link,
    kmsg: Kmsg,
    cgroups: Option<cgroup::Pool>,
    steps: BTreeMap<u32, Step>,
    settle: Option<Settle>,
    /// The last time a record arrived or a step ended: the start of the current quiet period.
    last_activity: Instant,
}

fn main() {
    let port = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/ttyS0".into());
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    // SAFETY: ignoring SIGPIPE; children reset every disposition before exec.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC);
    let link = Link::open(&port);
    let (link, sigfd) = match (link, sigfd) {
        (Ok(l), Ok(s)) => (l, s),
        (l, s) => {
            // PID 1 must not exit: say why on the console and wait for the host to give up.
            eprintln!(
                "kspec-agent: cannot start: port {port}: {:?}, signalfd: {:?}",
                l.err(),
                s.err()
            );
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    };
    let mut agent = Agent {
        link,
        kmsg: Kmsg::open(),
        cgroups: cgroup::Pool::new(),
        steps: BTreeMap::new(),
        settle: None,
        last_activity: Instant::now(),
    };
    agent.forward_kmsg();
    agent.link.send(0, ready());
    loop {
        agent.turn(&sigfd);
    }
}

/// The frame that says the agent takes steps: at boot, and again after a snapshot restore.
fn ready() -> Msg {
    let uptime = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
    Msg::Ready {
        uptime_ms: uptime,
        cpus,
        taint: read_taint(),
    }
}

impl Agent {
    fn forward_kmsg(&mut self) {
        if self.link.queued() > MAX_QUEUED {
            return;
        }
        let link = &mut self.link;
        let mut any = false;
        self.kmsg.read_available(|record| {
            any = true;
            link.send(0, Msg::Kmsg { record });
        });
        if any {
            self.last_activity = Instant::now();
        }
    }

    /// One poll and everything it woke.
    fn turn(&mut self, sigfd: &SignalFd) {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        for s in self.steps.values() {
            if let Some(d) = s.deadline {
                wake = wake.min(d);
            }
        }
        if let Some(s) = &self.settle {
            wake = wake.min(s.until).min(self.last_activity + s.quiet);
        }
        let timeout = wake.saturating_duration_since(now);
        // Descriptors: 0 port, 1 signals, 2 kernel log (if open), then the steps' pipes.
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut owners: Vec<(u32, usize)> = Vec::new();
        let pfd = |fd: BorrowedFd, events| libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        let port_events = libc::POLLIN
            | if self.link.queued() > 0 {
                libc::POLLOUT
            } else {
                0
            };
        fds.push(pfd(self.link.fd(), port_events));
        fds.push(pfd(sigfd.as_fd(), libc::POLLIN));
        let kmsg_slot = match self.kmsg.fd() {
            Some(fd) if self.link.queued() <= MAX_QUEUED => {
                fds.push(pfd(fd, libc::POLLIN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        for (id, s) in &self.steps {
            for (i, fd) in s.pipe_fds() {
                fds.push(pfd(fd, libc::POLLIN));
                owners.push((*id, i));
            }
        }
        let ms = timeout.as_millis().min(1000) as i32;
        // SAFETY: fds is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            return;
        }
        let ready = |i: usize| fds[i].revents != 0;
        if ready(1) {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            reap::reap_orphans();
        }
        if kmsg_slot.is_some_and(ready) {
            self.forward_kmsg();
        }
        let base = fds.len() - owners.len();
        for (k, (id, i)) in owners.iter().enumerate() {
            if ready(base + k) {
                if let Some(s) = self.steps.get_mut(id) {
                    s.read_pipe(*i, &mut self.link);
                }
            }
        }
        if ready(0) {
            for f in self.link.receive() {
                match f {
                    Ok(frame) => self.handle(frame),
                    Err(e) => self.link.send(0, Msg::Error { message: e }),
                }
            }
        }
        self.advance();
        let _ = self.link.flush();
    }

    fn handle(&mut self, frame: Frame) {
        let id = frame.step;
        let error = |message: String| Msg::Error { message };
        match frame.msg {
            Msg::Run(req) => {
                if self.steps.contains_key(&id) {
                    self.link
                        .send(id, error(format!("step {id} exists already")));
                    return;
                }
                // Records logged before the step starts are not the step's.
                self.forward_kmsg();
                match Step::spawn(id, &req, self.cgroups.as_mut()) {
                    Ok(s) => {
                        self.link.send(
                            id,
                            Msg::Started {
                                taint: read_taint(),
                            },
                        );
                        self.steps.insert(id, s);
                    }
                    Err(e) => self.link.send(id, error(e)),
                }
            }
            Msg::Wait {
                target,
                signal,
                timeout_ms,
            } => {
                self.forward_kmsg();
                match self.steps.get_mut(&target) {
                    Some(s) if s.background && s.waiter.is_none() => {
                        self.link.send(
                            id,
                            Msg::Started {
                                taint: read_taint(),
                            },
                        );
                        if signal != 0 {
                            s.signal(signal as i32);
                        }
                        s.waiter = Some(id);
                        s.deadline = Some(Instant::now() + Duration::from_millis(timeout_ms));
                    }
                    _ => self.link.send(
                        id,
                        error(format!("no background step {target} to wait for")),
                    ),
                }
            }
            Msg::Resume {
                entropy,
                wall_clock_ns,
            } => match resume::resume(&entropy, wall_clock_ns) {
                Ok(()) => self.link.send(0, ready()),
                Err(e) => self.link.send(id, error(e)),
            },
            Msg::Settle { quiet_ms, max_ms } => {
                let now = Instant::now();
                self.forward_kmsg();
                self.settle = Some(Settle {
                    step: id,
                    quiet: Duration::from_millis(quiet_ms.into()),
                    started: now,
                    until: now + Duration::from_millis(max_ms.into()),
                });
            }
            other => self.link.send(
                id,
                error(format!(
                    "not a request: {:?}",
                    std::mem::discriminant(&other)
                )),
            ),
        }
    }

    /// Deadlines, ended steps, a settle that is done.
    fn advance(&mut self) {
        let now = Instant::now();
        let mut done = Vec::new();
        for (id, s) in self.steps.iter_mut() {
            let ended = s.ended();
            if !ended && s.deadline.is_some_and(|d| now >= d) {
                s.expire();
            }
            if ended && (!s.background || s.waiter.is_some()) {
                done.push(*id);
            }
        }
        for id in done {
            let Some(s) = self.steps.remove(&id) else {
                continue;
            };
            let answer = s.waiter.unwrap_or(id);
            let result = s.finish(&mut self.link, self.cgroups.as_mut());
            // Records the step caused are in the ring buffer by now: send them before its end.
            self.forward_kmsg();
            self.last_activity = Instant::now();
            self.link.send(answer, Msg::Finished(result));
        }
        if let Some(s) = &self.settle {
            if now >= s.until || now >= self.last_activity + s.quiet {
                let waited = s.started.elapsed().as_millis() as u64;
                let step = s.step;
                self.settle = None;
                self.forward_kmsg();
                self.link.send(
                    step,
                    Msg::Settled {
                        taint: read_taint(),
                        waited_ms: waited,
                    },
                );
            }
        }
    }
}
