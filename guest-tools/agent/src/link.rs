//! The protocol port: raw mode, frames in through the decoder, frames out through a queue
//! that drains whenever the port can take bytes (a slow UART never blocks the agent). Frames
//! get their sequence number when they leave the queue, so output dropped from the queue
//! (a step over its limit) leaves no gap.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use kspec_protocol::{encode, Decoded, Decoder, Frame, Msg};
use nix::sys::termios;

pub struct Link {
    port: File,
    /// The same port opened blocking, for writing: a tty holds its write lock for a whole
    /// blocking write(), so each frame goes out in one piece even if someone re-created the
    /// device node and writes into it too (their bytes land between frames, and are dropped).
    writer: File,
    decoder: Decoder,
    /// Frames not yet encoded, and the bytes of the one being written.
    frames: VecDeque<(u32, Msg)>,
    queued_bytes: usize,
    out: VecDeque<u8>,
    seq_out: u32,
    seq_in: Option<u32>,
    /// Steps some of whose output has gone out already.
    output_sent: HashSet<u32>,
}

impl Link {
    pub fn open(path: &str) -> std::io::Result<Link> {
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)?;
        let mut t = termios::tcgetattr(&port)?;
        termios::cfmakeraw(&mut t);
        // The fastest divisor: QEMU does not pace bytes by the baud rate, but it raises the
        // receive interrupt for the tail of a frame only after 4 character times (4.2 ms at
        // the serial default of 9600 baud, 0.35 ms at 115200).
        // (The speed sits in c_cflag's CBAUD bits: static glibc has no cfset*speed.)
        let mut raw: libc::termios = t.into();
        raw.c_cflag = (raw.c_cflag & !libc::CBAUD) | libc::B115200;
        // SAFETY: a valid termios for an open descriptor.
        if unsafe { libc::tcsetattr(port.as_raw_fd(), libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)?;
        // Nobody else may write into the protocol: without its node the port cannot be opened.
        let _ = std::fs::remove_file(path);
        Ok(Link {
            port,
            writer,
            decoder: Decoder::new(),
            frames: VecDeque::new(),
            queued_bytes: 0,
            out: VecDeque::new(),
            seq_out: 0,
            seq_in: None,
            output_sent: HashSet::new(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.port.as_fd()
    }

    /// Bytes waiting to be written (about: payloads of queued frames plus the current frame).
    pub fn queued(&self) -> usize {
        self.queued_bytes + self.out.len()
    }

    pub fn send(&mut self, step: u32, msg: Msg) {
        self.queued_bytes += payload_len(&msg);
        self.frames.push_back((step, msg));
    }

    /// Forget the step's output that has not gone out yet, keeping its first chunk if none
    /// has: what the host shows of a step killed for too much output.
    pub fn drop_unsent_output(&mut self, step: u32) {
        let mut keep_first = !self.output_sent.contains(&step);
        let mut dropped = 0;
        self.frames.retain(|(s, m)| {
            if *s != step || !matches!(m, Msg::Output { .. }) {
                return true;
            }
            if keep_first {
                keep_first = false;
                return true;
            }
            dropped += payload_len(m);
            false
        });
        self.queued_bytes -= dropped;
    }

    /// Encode the next frame into the write buffer.
    fn next_frame(&mut self) -> bool {
        let Some((step, msg)) = self.frames.pop_front() else {
            return false;
        };
        self.queued_bytes -= payload_len(&msg);
        if matches!(msg, Msg::Output { .. }) {
            self.output_sent.insert(step);
        }
        let frame = Frame {
            seq: self.seq_out,
            step,
            msg,
        };
        self.seq_out = self.seq_out.wrapping_add(1);
        self.out.extend(encode(&frame));
        true
    }

    /// Write what the port takes now.
    /// Write whole frames, each in one blocking write(), about 4 KiB per call (the poll loop
    /// calls again when the port has room): a frame blocks the agent for at most ~10 ms.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let mut written = 0;
        while written < 4096 && self.next_frame() {
            let frame: Vec<u8> = self.out.drain(..).collect();
            (&self.writer).write_all(&frame)?;
            written += frame.len();
        }
        Ok(())
    }

    /// Frames the host sent, with the sequence checked; a problem comes back as Err(text).
    pub fn receive(&mut self) -> Vec<Result<Frame, String>> {
        let mut buf = [0u8; 4096];
        let mut decoded = Vec::new();
        loop {
            match (&self.port).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.decoder.push(&buf[..n], &mut decoded),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        decoded
            .into_iter()
            .map(|d| match d {
                Decoded::Frame(f) => {
                    let expected = self.seq_in.map_or(f.seq, |s| s.wrapping_add(1));
                    self.seq_in = Some(f.seq);
                    if f.seq == expected {
                        Ok(f)
                    } else {
                        Err(format!(
                            "host frame {} arrived after {:?}: frames lost",
                            f.seq,
                            expected.wrapping_sub(1)
                        ))
                    }
                }
                Decoded::Corrupt(e) => Err(format!("corrupt frame from the host: {e}")),
            })
            .collect()
    }
}

fn payload_len(m: &Msg) -> usize {
    match m {
        Msg::Output { data, .. } => data.len(),
        Msg::Kmsg { record } => record.len(),
        _ => 64,
    }
}
