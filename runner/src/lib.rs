//! kspec: QEMU-based integration tests for Linux kernel <-> userspace channels.
//!
//! Layers, lowest first; a layer only uses those below it:
//! `spec` (model) → `image` (build and cache) → `vm` (QEMU + serial session) → `exec` (steps,
//! events) → `report` (human, JUnit, GitHub, JSON).

pub mod bench;
pub mod cli;
pub mod exec;
pub mod image;
pub mod report;
pub mod spec;
pub mod vm;
