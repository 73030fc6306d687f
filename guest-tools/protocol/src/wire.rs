//! Frame layout: header, payload, checksum and byte stuffing.

use crate::msg::Msg;
use crate::{ESC, MAGIC, STUFFED, SYNC, VERSION};

/// Largest payload a frame may carry; a longer length field is corruption.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// magic (2), version, type, seq (4), step (4), length (4).
pub(crate) const HEADER: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Per-direction counter: a gap means a frame was lost.
    pub seq: u32,
    /// The step the frame is about (0: none).
    pub step: u32,
    pub msg: Msg,
}

/// The bytes on the wire for `frame`.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let (ty, payload) = frame.msg.encode();
    assert!(payload.len() <= MAX_PAYLOAD, "payload over MAX_PAYLOAD");
    let mut raw = Vec::with_capacity(HEADER + payload.len() + 4);
    raw.extend_from_slice(&MAGIC);
    raw.push(VERSION);
    raw.push(ty);
    raw.extend_from_slice(&frame.seq.to_le_bytes());
    raw.extend_from_slice(&frame.step.to_le_bytes());
    raw.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    raw.extend_from_slice(&payload);
    let crc = crc32fast::hash(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32 + 2);
    out.push(SYNC);
    for b in raw {
        if STUFFED.contains(&b) {
            out.push(ESC);
            out.push(b ^ 0x20);
        } else {
            out.push(b);
        }
    }
    out
}

/// Parse an unstuffed frame (everything after SYNC). Err says why it is not a valid frame.
pub(crate) fn parse(raw: &[u8]) -> Result<Frame, String> {
    if raw.len() < HEADER + 4 {
        return Err(format!(
            "frame of {} bytes is shorter than a header",
            raw.len()
        ));
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    let want = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32fast::hash(body) != want {
        return Err("checksum mismatch".into());
    }
    if body[2] != VERSION {
        return Err(format!("protocol version {} (expected {VERSION})", body[2]));
    }
    let ty = body[3];
    let word = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().expect("4 bytes"));
    let (seq, step, len) = (word(4), word(8), word(12) as usize);
    if len != body.len() - HEADER {
        return Err(format!(
            "length field {len} but {} payload bytes",
            body.len() - HEADER
        ));
    }
    let msg = Msg::decode(ty, &body[HEADER..])?;
    Ok(Frame { seq, step, msg })
}
