//! Image build: kernel + kchan.ko + kchanctl + busybox packed into an initramfs, each piece
//! cached under a key of its inputs. Uses only the spec layer below it.

pub mod cache;
pub mod initramfs;
pub mod kernel;
pub mod kernels;
pub mod module;
pub mod progress;
mod run;
pub mod source;
pub mod tarball;
pub mod toolchain;
pub mod tools;

use std::path::{Path, PathBuf};

pub use cache::Cache;
pub use kernel::BuiltKernel;
pub use kernels::{Kernel, KernelList, Source};
pub use progress::{Progress, Quiet, StderrProgress};
pub use toolchain::Toolchain;

/// The checkout kspec works on: images/, guest-kmod/, guest-tools/, specs/.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
}

impl Repo {
    /// `$KSPEC_ROOT`, else the nearest ancestor of the working directory holding
    /// images/kernels.yaml, else the checkout this binary was built from.
    pub fn locate() -> Result<Self, String> {
        let is_root = |p: &Path| p.join("images/kernels.yaml").is_file();
        if let Some(r) = std::env::var_os("KSPEC_ROOT").filter(|r| !r.is_empty()) {
            let root = PathBuf::from(r);
            return if is_root(&root) {
                Ok(Repo { root })
            } else {
                Err(format!(
                    "KSPEC_ROOT={} has no images/kernels.yaml",
                    root.display()
                ))
            };
        }
        if let Ok(cwd) = std::env::current_dir() {
            if let Some(root) = cwd.ancestors().find(|p| is_root(p)) {
                return Ok(Repo {
                    root: root.to_owned(),
                });
            }
        }
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_owned);
        match built_from {
            Some(root) if is_root(&root) => Ok(Repo { root }),
            _ => Err("cannot find the kspec checkout (images/kernels.yaml): run inside it or set KSPEC_ROOT".into()),
        }
    }

    pub fn kernel_list(&self) -> Result<KernelList, String> {
        KernelList::load(&self.root.join("images/kernels.yaml"))
    }

    /// The Kconfig fragments the kernel list names.
    pub fn kconfig_dir(&self) -> PathBuf {
        self.root.join("images/kconfig")
    }

    /// The public keys `signed_by` fingerprints in the kernel list name.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("images/keys")
    }

    pub fn specs_dir(&self) -> PathBuf {
        self.root.join("specs")
    }
}

/// Everything needed to boot one kernel's test VM.
#[derive(Debug, Clone)]
pub struct Image {
    pub kernel: Kernel,
    pub built: BuiltKernel,
    pub module: PathBuf,
    pub kchanctl: PathBuf,
    pub agent: PathBuf,
    pub initramfs: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Use this local kernel tree instead of the list's source (only with a single kernel).
    pub kernel_src: Option<PathBuf>,
    /// make -j; 0 = number of CPUs.
    pub jobs: usize,
}

/// Build (or find up to date in the cache) the images of `kernels`.
pub fn build_images(
    repo: &Repo,
    kernels: &[&Kernel],
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<Vec<Image>, String> {
    if opts.kernel_src.is_some() && kernels.len() != 1 {
        return Err("--kernel-src needs exactly one --kernel".into());
    }
    let cache = Cache::from_env()?;
    let tc = Toolchain::detect(&cache)?;
    progress.message(&format!(
        "kernel rustc: {} — {}; bindgen: {}; clang: {}",
        tc.rustc_version, tc.rustc_choice, tc.bindgen_version, tc.clang_version
    ));
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err(
            "/bin/busybox not found (Debian package busybox-static): run images/setup-host.sh"
                .into(),
        );
    }
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.jobs
    };
    let tools = tools::build(&repo.root, &cache, progress)?;
    let init = repo.root.join("images/init");
    let mut images = Vec::new();
    for k in kernels {
        let source = k.effective_source(opts.kernel_src.as_deref());
        let tree = source::obtain(&source, &repo.keys_dir(), &cache, progress)?;
        let built = kernel::build(k, &tree, &repo.kconfig_dir(), &tc, &cache, progress, jobs)?;
        let module = module::build(
            &k.name,
            &built,
            &repo.root.join("guest-kmod"),
            "kchan",
            &tc,
            &cache,
            progress,
        )?;
        let release = built.release()?;
        let rootfs = repo.root.join("images/rootfs");
        let key = cache::Key::new("initramfs-3")
            .str("module", &module.key)
            .str("tools", &tools.key)
            .str("release", &release)
            .file("init", &init)?
            .dir("rootfs", &rootfs, &|_| true)?
            .file("busybox", busybox)?
            .finish();
        let initramfs = cache
            .dir(&["images"])?
            .join(format!("{}-{key}.cpio", k.name));
        let _lock = cache.lock(&initramfs, progress)?;
        if !initramfs.is_file() {
            let inputs = initramfs::BaseInputs {
                busybox,
                init: &init,
                rootfs: &rootfs,
                module: &module.ko,
                kchanctl: &tools.kchanctl,
                agent: &tools.agent,
                release: &release,
            };
            let data = initramfs::base(&inputs)?;
            let tmp = initramfs.with_extension("tmp");
            std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &initramfs)
                .map_err(|e| format!("{}: {e}", initramfs.display()))?;
            progress.message(&format!(
                "{}: initramfs packed: {}",
                k.name,
                initramfs.display()
            ));
        } else {
            progress.message(&format!("{}: image up to date", k.name));
        }
        images.push(Image {
            kernel: (*k).clone(),
            built,
            module: module.ko,
            kchanctl: tools.kchanctl.clone(),
            agent: tools.agent.clone(),
            initramfs,
        });
    }
    Ok(images)
}

/// Fetch, verify and unpack the source trees of `kernels` (what `kspec build --fetch-only`
/// does): the tree of each, in order, without building anything.
pub fn fetch_sources(
    repo: &Repo,
    kernels: &[&Kernel],
    kernel_src: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, String> {
    let cache = Cache::from_env()?;
    kernels
        .iter()
        .map(|k| {
            let source = k.effective_source(kernel_src);
            source::obtain(&source, &repo.keys_dir(), &cache, progress).map(|t| t.dir)
        })
        .collect()
}

/// The cache key each kernel's build would have, without building (for CI caches).
pub fn kernel_keys(
    repo: &Repo,
    kernels: &[&Kernel],
    kernel_src: Option<&Path>,
) -> Result<Vec<String>, String> {
    let cache = Cache::from_env()?;
    let tc = Toolchain::detect(&cache)?;
    kernels
        .iter()
        .map(|k| {
            let id = source::identity(&k.effective_source(kernel_src), &cache)?;
            kernel::cache_key(k, &id, &repo.kconfig_dir(), &tc)
        })
        .collect()
}
