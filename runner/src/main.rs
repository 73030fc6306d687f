//! The kspec command line. Exit codes: 0 success, 1 failed cases, 2 invalid specs or usage,
//! 3 environment or build errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kspec::cli;

#[derive(Parser)]
#[command(
    name = "kspec",
    version,
    about = "QEMU integration tests for Linux kernel <-> userspace channels"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or verify up to date) kernel, module, guest tools and initramfs.
    Build {
        /// Kernel name from images/kernels.yaml, a comma list, "local" or "all".
        #[arg(long)]
        kernel: Option<String>,
        /// Build this local kernel tree instead of the list's source.
        #[arg(long)]
        kernel_src: Option<PathBuf>,
        /// Parallel make jobs (default: number of CPUs).
        #[arg(short = 'j', long, default_value_t = 0)]
        jobs: usize,
        /// Only print each kernel's cache key (what CI caches the build under) and exit.
        #[arg(long, conflicts_with = "fetch_only")]
        print_key: bool,
        /// Only fetch, verify and unpack each kernel's source; print the tree's path.
        #[arg(long)]
        fetch_only: bool,
    },
    /// Run spec files (default: specs/) in VMs.
    Run(cli::RunArgs),
    /// Write a new project in DIR: a module with one /proc file, its spec, kspec.toml, a
    /// README, the GitHub workflow and a copy of the kernel list. Never overwrites a file.
    Init {
        /// The project directory (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The module's language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: kspec::init::Lang,
        /// The module's name (default: the directory's name, as [a-z0-9_]).
        #[arg(long)]
        name: Option<String>,
    },
    /// Validate spec files without booting anything.
    Check { paths: Vec<PathBuf> },
    /// List the cases of spec files as `<spec>::<case>`.
    List { paths: Vec<PathBuf> },
    /// Boot a kernel's image with the console on this terminal (Ctrl-A X or `poweroff` leaves).
    Shell {
        #[arg(long)]
        kernel: Option<String>,
        #[arg(long, default_value = "auto")]
        accel: kspec::vm::AccelChoice,
    },
    /// Measure boot, per-step overhead, warm build, the warm suite and every channel; one table.
    Bench(kspec::bench::BenchArgs),
    /// Print a Markdown summary (specs by kernel, failed cases) of `run --json-file` reports.
    Summary {
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the spec format.
    Schema,
    /// Print the kernel list as a JSON matrix for CI.
    Matrix {
        /// Only kernels built and tested on this machine kind.
        #[arg(long)]
        local: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Build {
            kernel,
            kernel_src,
            print_key: true,
            ..
        } => cli::print_keys(kernel.as_deref(), kernel_src),
        Cmd::Build {
            kernel,
            kernel_src,
            fetch_only: true,
            ..
        } => cli::fetch_sources(kernel.as_deref(), kernel_src),
        Cmd::Build {
            kernel,
            kernel_src,
            jobs,
            ..
        } => cli::build(kernel.as_deref(), kernel_src, jobs),
        Cmd::Run(args) => cli::run(args),
        Cmd::Init { dir, lang, name } => kspec::init::run(&dir, lang, name.as_deref()),
        Cmd::Check { paths } => cli::check(&paths),
        Cmd::List { paths } => cli::list(&paths),
        Cmd::Shell { kernel, accel } => cli::shell(kernel.as_deref(), accel),
        Cmd::Bench(args) => kspec::bench::bench(args),
        Cmd::Schema => {
            println!("{}", kspec::spec::schema_json());
            0
        }
        Cmd::Matrix { local } => cli::matrix(local),
        Cmd::Summary { reports } => cli::summary(&reports),
    };
    ExitCode::from(code)
}
