//! VM layer: accelerator choice, QEMU command lines, the serial session and the kernel log.

pub mod accel;
pub mod kmsg;
pub mod protocol;
pub mod qemu;
pub mod session;

pub use accel::{Accel, AccelChoice, AccelDecision};
pub use kmsg::KmsgRecord;
pub use qemu::VmConfig;
pub use session::{StepOutput, Vm, VmError};
