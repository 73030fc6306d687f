//! kspec: QEMU-based integration tests for Linux kernel <-> userspace channels.
//!
//! Layers (a layer uses only those it lists):
//! - `project`: the project file (kspec.toml), what is under test; uses `spec` to check names.
//! - `spec`: the YAML spec model, loading and validation.
//! - `image`: building and caching kernels, modules, guest programs and the initramfs; uses
//!   `project`.
//! - `vm`: QEMU, the guest agent's protocol, snapshots; knows nothing above it.
//! - `exec`: runs specs on images in VMs and emits `exec::Event`s; joins spec, image and vm.
//! - `report`: renders exec's events and reports (human, JUnit, GitHub, JSON).
//! - `cli`, `bench` and `init`: the subcommands, on top of everything (`init` writes a new
//!   project; it uses `project` only, for the kspec checkout).

pub mod bench;
pub mod cli;
pub mod exec;
pub mod image;
pub mod init;
pub mod project;
pub mod report;
pub mod spec;
pub mod vm;

/// Exit codes of every subcommand.
pub mod exit {
    /// Cases failed.
    pub const FAILED: u8 = 1;
    /// Invalid specs, project file or usage.
    pub const INVALID: u8 = 2;
    /// The environment or a build failed.
    pub const ENV: u8 = 3;
}
