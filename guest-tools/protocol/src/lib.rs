//! The step protocol between the kspec runner (host) and `kspec-agent` (guest), over the guest's
//! first serial port. Both directions use the same frames:
//!
//! `SYNC`, then, byte-stuffed: magic `KS`, version, type, frame sequence (u32), step id (u32),
//! payload length (u32), payload, CRC-32 of everything after `SYNC` (u32, little endian).
//!
//! Stuffing sends each byte of [`STUFFED`] as `ESC, byte ^ 0x20`, so a frame never holds `SYNC`
//! (the decoder resynchronises on it), CR or LF (a terminal's newline translation cannot touch a
//! frame) or XON/XOFF. Anything between frames is dropped and counted; a frame whose magic
//! matches but whose length, escape, checksum or fields are wrong is reported as corrupt, never
//! decoded into a message. Sequence numbers let the receiver see a frame that went missing.

mod decode;
mod msg;
mod wire;

pub use decode::{Decoded, Decoder};
pub use msg::{ExitStatus, Msg, RunRequest, StepResult, Stream};
pub use wire::{encode, Frame, MAX_PAYLOAD};

pub const SYNC: u8 = 0x7e;
pub const ESC: u8 = 0x7d;
/// Bytes that never appear raw inside a frame.
pub const STUFFED: [u8; 6] = [SYNC, ESC, b'\n', b'\r', 0x11, 0x13];
pub const MAGIC: [u8; 2] = *b"KS";
pub const VERSION: u8 = 1;
