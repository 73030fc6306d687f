//! The receiving side: a byte stream in, frames out. Never panics on any input.

use crate::wire::{parse, Frame, HEADER, MAX_PAYLOAD};
use crate::{ESC, MAGIC, STUFFED, SYNC};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Frame(Frame),
    /// Something that started like a frame (SYNC + magic) but is not a valid one.
    Corrupt(String),
}

#[derive(Debug, Default)]
pub struct Decoder {
    /// Unstuffed bytes of the frame being received, None between frames.
    frame: Option<Vec<u8>>,
    escaped: bool,
    /// Bytes dropped between frames (console noise).
    pub garbage: u64,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes as they arrive; complete frames and corrupt ones are appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Decoded>) {
        for &b in data {
            self.byte(b, out);
        }
    }

    /// True while a frame is partly received.
    pub fn in_frame(&self) -> bool {
        self.frame.is_some()
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Decoded>) {
        if b == SYNC {
            if let Some(partial) = self.frame.take() {
                self.abandon(&partial, "frame cut short by the next frame", out);
            }
            self.frame = Some(Vec::new());
            self.escaped = false;
            return;
        }
        let Some(buf) = self.frame.as_mut() else {
            self.garbage += 1;
            return;
        };
        let v = if self.escaped {
            self.escaped = false;
            let v = b ^ 0x20;
            if !STUFFED.contains(&v) {
                let partial = self.frame.take().unwrap_or_default();
                self.abandon(&partial, "invalid escape sequence", out);
                return;
            }
            v
        } else if b == ESC {
            self.escaped = true;
            return;
        } else if STUFFED.contains(&b) {
            // A byte the sender always stuffs: something else wrote into this frame.
            let partial = self.frame.take().unwrap_or_default();
            self.abandon(&partial, "unescaped control byte inside a frame", out);
            self.garbage += 1;
            return;
        } else {
            b
        };
        buf.push(v);
        let n = buf.len();
        if n <= MAGIC.len() && buf[n - 1] != MAGIC[n - 1] {
            // SYNC followed by something else: noise, not a frame.
            self.garbage += n as u64 + 1;
            self.frame = None;
            return;
        }
        if n >= HEADER {
            let len = u32::from_le_bytes(buf[12..16].try_into().expect("4")) as usize;
            if len > MAX_PAYLOAD {
                self.frame = None;
                out.push(Decoded::Corrupt(format!(
                    "payload length {len} over the limit"
                )));
                return;
            }
            if n == HEADER + len + 4 {
                let raw = self.frame.take().unwrap_or_default();
                out.push(match parse(&raw) {
                    Ok(f) => Decoded::Frame(f),
                    Err(e) => Decoded::Corrupt(e),
                });
            }
        }
    }

    fn abandon(&mut self, partial: &[u8], why: &str, out: &mut Vec<Decoded>) {
        if partial.len() >= MAGIC.len() {
            out.push(Decoded::Corrupt(why.into()));
        } else {
            self.garbage += partial.len() as u64 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, ExitStatus, Msg, RunRequest, StepResult, Stream};
    use proptest::prelude::*;

    fn result(exit: i32) -> Msg {
        Msg::Finished(StepResult {
            status: ExitStatus::Code(exit),
            timed_out: false,
            stdout_exceeded: false,
            stderr_exceeded: true,
            stdout_bytes: 5,
            stderr_bytes: 1 << 33,
            taint_before: 4096,
            taint_after: 4096 | 512,
            elapsed_us: 1234,
            cpu_us: 99,
            memory_peak: 1 << 20,
            survivors: 2,
            cpu_busy_ms: vec![700, 12],
        })
    }

    fn samples() -> Vec<Frame> {
        let msgs = vec![
            Msg::Run(RunRequest {
                background: true,
                timeout_ms: 30_000,
                stdout_limit: 4 << 20,
                stderr_limit: 1,
                script: b"echo \x7e\x7d\n\r\x11\x13 ok".to_vec(),
                env: vec![(b"A".to_vec(), b"b\n".to_vec())],
            }),
            Msg::Wait {
                target: 7,
                signal: 15,
                timeout_ms: 1,
            },
            Msg::Settle {
                quiet_ms: 300,
                max_ms: 3000,
            },
            Msg::Resume {
                entropy: (0..64).collect(),
                wall_clock_ns: 1_796_000_000_123_456_789,
            },
            Msg::Ready {
                uptime_ms: 700,
                cpus: 2,
                taint: 0,
            },
            Msg::Started { taint: 1 << 12 },
            Msg::Output {
                stream: Stream::Stderr,
                data: (0..=255).collect(),
            },
            Msg::Kmsg {
                record: b"4,812,1234,-,caller=T1;WARNING: CPU: 0".to_vec(),
            },
            result(3),
            Msg::Settled {
                taint: 3,
                waited_ms: 301,
            },
            Msg::Error {
                message: "no such step".into(),
            },
        ];
        msgs.into_iter()
            .enumerate()
            .map(|(i, msg)| Frame {
                seq: i as u32,
                step: 0x7e7d0a0d,
                msg,
            })
            .collect()
    }

    fn decode_all(bytes: &[u8]) -> (Vec<Decoded>, u64) {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.push(bytes, &mut out);
        (out, d.garbage)
    }

    #[test]
    fn every_message_round_trips_and_frames_hold_no_control_bytes() {
        for f in samples() {
            let wire = encode(&f);
            assert!(!wire[1..].iter().any(|b| *b != ESC && STUFFED.contains(b)));
            assert_eq!(decode_all(&wire).0, vec![Decoded::Frame(f)]);
        }
    }

    #[test]
    fn noise_between_frames_is_dropped_and_counted() {
        let mut wire = b"[  1.0] noise\r\n".to_vec();
        let frames = samples();
        for f in &frames {
            wire.extend(encode(f));
            wire.extend_from_slice(b"~~ KS? \x7eK no frame\n");
        }
        let (out, garbage) = decode_all(&wire);
        let got: Vec<_> = out
            .into_iter()
            .map(|d| match d {
                Decoded::Frame(f) => f,
                Decoded::Corrupt(e) => panic!("corrupt: {e}"),
            })
            .collect();
        assert_eq!(got, frames);
        assert!(garbage > 100);
    }

    #[test]
    fn a_bad_checksum_is_corrupt_not_a_result() {
        let mut wire = encode(&Frame {
            seq: 1,
            step: 2,
            msg: result(0),
        });
        let last = wire.len() - 10;
        wire[last] ^= 0x01;
        let (out, _) = decode_all(&wire);
        assert!(matches!(&out[..], [Decoded::Corrupt(_)]), "{out:?}");
    }

    #[test]
    fn a_truncated_frame_is_corrupt_when_the_next_arrives() {
        let f = Frame {
            seq: 1,
            step: 2,
            msg: result(0),
        };
        let mut wire = encode(&f);
        wire.truncate(wire.len() - 3);
        let g = Frame { seq: 2, ..f };
        wire.extend(encode(&g));
        let (out, _) = decode_all(&wire);
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0], Decoded::Corrupt(_)));
        assert_eq!(out[1], Decoded::Frame(g));
    }

    #[test]
    fn fields_that_do_not_parse_are_errors() {
        // A Finished payload one byte short, a flag of 2 and a signal of 0: each refused.
        let (ty, payload) = result(0).encode();
        assert!(Msg::decode(ty, &payload[..payload.len() - 1]).is_err());
        let mut p = payload.clone();
        p.push(0);
        assert!(Msg::decode(ty, &p).is_err());
        let mut p = payload.clone();
        p[5] = 2;
        assert!(Msg::decode(ty, &p).is_err());
        let mut p = payload;
        p[0] = 2;
        p[1..5].copy_from_slice(&0u32.to_le_bytes());
        assert!(Msg::decode(ty, &p).is_err());
        assert!(Msg::decode(0x99, &[]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = decode_all(&bytes);
        }

        #[test]
        fn one_corrupted_byte_never_decodes_to_another_frame(
            which in 0usize..10, pos in any::<prop::sample::Index>(), xor in 1u8..=255
        ) {
            let f = samples().swap_remove(which);
            let mut wire = encode(&f);
            let i = pos.index(wire.len());
            wire[i] ^= xor;
            for d in decode_all(&wire).0 {
                if let Decoded::Frame(g) = d {
                    prop_assert_eq!(g, f.clone());
                }
            }
        }

        #[test]
        fn noise_spliced_anywhere_loses_at_most_the_frame_it_hits(
            cut in any::<prop::sample::Index>(),
            noise in proptest::collection::vec(any::<u8>(), 1..64)
        ) {
            let frames = samples();
            let mut wire = Vec::new();
            for f in &frames {
                wire.extend(encode(f));
            }
            let at = cut.index(wire.len());
            let mut spliced = wire[..at].to_vec();
            spliced.extend(&noise);
            spliced.extend(&wire[at..]);
            let got: Vec<Frame> = decode_all(&spliced).0.into_iter().filter_map(|d| match d {
                Decoded::Frame(f) => Some(f),
                Decoded::Corrupt(_) => None,
            }).collect();
            // Every decoded frame is one that was sent, in order, and at most two are lost
            // (the one the noise lands in, and the next if the noise ends in a partial frame).
            let mut it = frames.iter();
            for g in &got {
                prop_assert!(it.any(|f| f == g), "decoded a frame never sent: {:?}", g);
            }
            prop_assert!(got.len() + 2 >= frames.len());
        }
    }
}
