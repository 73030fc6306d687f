//! VM layer: accelerator choice, QEMU command lines, the serial session and the kernel log.

pub mod accel;
pub mod inbox;
pub mod kmsg;
pub mod live;
pub mod qemu;
mod qmp;
pub mod session;
pub mod snapshot;

pub use accel::{Accel, AccelChoice, AccelDecision, AccelError};
pub use inbox::{End, KmsgBatch, Settled, Start};
pub use kmsg::KmsgRecord;
pub use qemu::VmConfig;
pub use session::{StepOutput, StepRequest, Vm, VmError};

/// CRLF -> LF: what specs compare against.
pub fn normalise_newlines(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
