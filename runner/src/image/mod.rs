//! Image build: the kernel, the project's modules and guest programs, kspec-agent and busybox
//! packed into an initramfs, each piece cached under a key of its inputs. Knows the project's
//! description (below it), nothing above.

pub mod cache;
mod error;
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use cache::Cache;
pub use error::Error;
pub use kernel::BuiltKernel;
pub use kernels::{Kernel, KernelList, Source};
pub use progress::{Progress, Quiet, StderrProgress};
pub use toolchain::Toolchain;

use crate::project::Project;

/// The kernel list a project names.
pub fn kernel_list(project: &Project) -> Result<KernelList, Error> {
    KernelList::load(&project.kernels)
}

/// A module as the image holds it.
#[derive(Debug, Clone)]
pub struct GuestModule {
    pub name: String,
    /// The built .ko on the host.
    pub ko: PathBuf,
    /// Where the guest finds it.
    pub guest_path: String,
    /// The project's default parameters, rendered for insmod.
    pub params: BTreeMap<String, String>,
}

/// Everything needed to boot one kernel's test VM.
#[derive(Debug, Clone)]
pub struct Image {
    pub kernel: Kernel,
    pub built: BuiltKernel,
    /// In the project's order; the first is the default.
    pub modules: Vec<GuestModule>,
    /// The project's guest programs (host paths; in the guest under their file name in
    /// [`initramfs::TOOLS_DIR`]).
    pub programs: Vec<PathBuf>,
    pub agent: PathBuf,
    pub initramfs: PathBuf,
}

impl GuestModule {
    /// The project's module `def`, built as `ko`.
    fn of(def: &crate::project::ModuleDef, ko: PathBuf) -> Self {
        GuestModule {
            name: def.name.clone(),
            ko,
            guest_path: initramfs::module_path(&def.name),
            params: def
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        }
    }

    /// The guest command that loads it with its parameters, `over` on top of its own.
    pub fn insmod(&self, over: &BTreeMap<String, String>) -> String {
        let mut params = self.params.clone();
        params.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut cmd = format!("insmod {}", self.guest_path);
        for (k, v) in &params {
            cmd.push_str(&format!(" {k}={}", shell_quote(v)));
        }
        cmd
    }
}

/// `s` as one word of the guest's shell.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Image {
    /// The module `name`, or the first without one.
    pub fn module(&self, name: Option<&str>) -> Option<&GuestModule> {
        match name {
            Some(n) => self.modules.iter().find(|m| m.name == n),
            None => self.modules.first(),
        }
    }
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
    project: &Project,
    kernels: &[&Kernel],
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<Vec<Image>, Error> {
    if opts.kernel_src.is_some() && kernels.len() != 1 {
        return Err(Error::Usage(
            "--kernel-src needs exactly one --kernel".into(),
        ));
    }
    let cache = Cache::from_env()?;
    let tc = Toolchain::detect(&cache)?;
    progress.message(&format!(
        "kernel rustc: {} — {}; bindgen: {}; clang: {}",
        tc.rustc_version, tc.rustc_choice, tc.bindgen_version, tc.clang_version
    ));
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err(Error::Host(
            "/bin/busybox not found (Debian package busybox-static): run images/setup-host.sh"
                .into(),
        ));
    }
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.jobs
    };
    let guest = &project.guest;
    let tools = tools::build(
        &project.root,
        &guest.packages,
        &guest.sources,
        &cache,
        progress,
    )?;
    let agent = tools::build_agent(&project.framework, &cache, progress)?;
    let mut programs = tools.programs.clone();
    for p in &guest.programs {
        if !p.is_file() {
            return Err(Error::Config(format!(
                "{}: guest program {} is not a file",
                project.root.join(crate::project::FILE_NAME).display(),
                p.display()
            )));
        }
        programs.push(p.clone());
    }
    let init = project.guest_init();
    let rootfs = project.guest_rootfs();
    let mut images = Vec::new();
    for k in kernels {
        let source = k.effective_source(opts.kernel_src.as_deref());
        let tree = source::obtain(&source, &project.keys_dir(), &cache, progress)?;
        let built = kernel::build(
            k,
            &tree,
            &project.kconfig_dir(),
            &tc,
            &cache,
            progress,
            jobs,
        )?;
        let mut key = cache::Key::new("initramfs-4");
        let mut modules = Vec::new();
        for def in &project.modules {
            let m = module::build(
                &k.name,
                &built,
                &def.source,
                &def.name,
                &tc,
                &cache,
                progress,
            )?;
            key = key.str("module", &m.key);
            modules.push(GuestModule::of(def, m.ko));
        }
        let tree_modules = tree_modules(k, &built)?;
        for (name, ko) in &tree_modules {
            key = key.file(&format!("tree module {name}"), ko)?;
        }
        let release = built.release()?;
        let mut key = key
            .str("tools", &tools.key)
            .file("agent", &agent)?
            .str("release", &release)
            .file("init", &init)?
            .dir("rootfs", &rootfs, &|_| true)?
            .file("busybox", busybox)?;
        for p in &guest.programs {
            key = key.file(&format!("program {}", p.display()), p)?;
        }
        let key = key.finish();
        let initramfs = cache
            .dir(&["images"])?
            .join(format!("{}-{key}.cpio", k.name));
        let _lock = cache.lock(&initramfs, progress)?;
        if !initramfs.is_file() {
            let module_files: Vec<(&str, &Path)> = modules
                .iter()
                .map(|m| (m.name.as_str(), m.ko.as_path()))
                .chain(
                    tree_modules
                        .iter()
                        .map(|(n, ko)| (n.as_str(), ko.as_path())),
                )
                .collect();
            let program_files: Vec<&Path> = programs.iter().map(PathBuf::as_path).collect();
            let inputs = initramfs::BaseInputs {
                busybox,
                init: &init,
                rootfs: &rootfs,
                modules: &module_files,
                programs: &program_files,
                agent: &agent,
                release: &release,
            };
            let data = initramfs::base(&inputs)?;
            let tmp = initramfs.with_extension("tmp");
            std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &initramfs).map_err(|e| Error::io(&initramfs, e))?;
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
            modules,
            programs: programs.clone(),
            agent: agent.clone(),
            initramfs,
        });
    }
    Ok(images)
}

/// The kernel tree's own modules `k` lists, as (name, built .ko).
fn tree_modules(k: &Kernel, built: &BuiltKernel) -> Result<Vec<(String, PathBuf)>, Error> {
    k.tree_modules
        .iter()
        .map(|rel| {
            let ko = built.build_dir.join(rel);
            let name = Path::new(rel).file_stem().map(|s| s.to_string_lossy().into_owned());
            match name {
                Some(name) if ko.is_file() && rel.ends_with(".ko") => Ok((name, ko)),
                _ => Err(Error::Config(format!(
                    "{}: tree_modules names {rel}, which the build did not make (is it =m in the fragments?)",
                    k.name
                ))),
            }
        })
        .collect()
}

/// Fetch, verify and unpack the source trees of `kernels` (what `kspec build --fetch-only`
/// does): the tree of each, in order, without building anything.
pub fn fetch_sources(
    project: &Project,
    kernels: &[&Kernel],
    kernel_src: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>, Error> {
    let cache = Cache::from_env()?;
    kernels
        .iter()
        .map(|k| {
            let source = k.effective_source(kernel_src);
            source::obtain(&source, &project.keys_dir(), &cache, progress).map(|t| t.dir)
        })
        .collect()
}

/// The cache key each kernel's build would have, without building (for CI caches).
pub fn kernel_keys(
    project: &Project,
    kernels: &[&Kernel],
    kernel_src: Option<&Path>,
) -> Result<Vec<String>, Error> {
    let cache = Cache::from_env()?;
    let tc = Toolchain::detect(&cache)?;
    kernels
        .iter()
        .map(|k| {
            let id = source::identity(&k.effective_source(kernel_src), &cache)?;
            kernel::cache_key(k, &id, &project.kconfig_dir(), &tc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insmod_puts_a_specs_parameters_over_the_projects_and_quotes_them() {
        let m = GuestModule {
            name: "m".into(),
            ko: PathBuf::from("/c/m.ko"),
            guest_path: "/lib/modules/m.ko".into(),
            params: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
        };
        let over = BTreeMap::from([("b".into(), "it's".into())]);
        assert_eq!(m.insmod(&over), "insmod /lib/modules/m.ko a=1 b='it'\\''s'");
        assert_eq!(
            m.insmod(&BTreeMap::new()),
            "insmod /lib/modules/m.ko a=1 b=2"
        );
    }
}
