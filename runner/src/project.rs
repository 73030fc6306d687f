//! The project file, `kspec.toml`: what is under test — the modules, the guest programs, the
//! spec directories, the kernel list and the bench figures. The layers above get what they
//! need from here as plain data, so none of them names a module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::{self, LoadAllError, LoadedSpec, ParamValue};

pub const FILE_NAME: &str = "kspec.toml";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot find {FILE_NAME}: run inside a kspec project or set KSPEC_ROOT")]
    NotFound,
    #[error("KSPEC_ROOT={0} has no {FILE_NAME}")]
    BadRoot(PathBuf),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A module the project builds against every kernel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleDef {
    /// The module's name: `<name>.ko`, what rmmod takes.
    pub name: String,
    /// The directory holding its Kbuild (or a Makefile with obj-m) and sources.
    pub source: PathBuf,
    /// Parameters insmod gets unless a spec sets them.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestDef {
    /// Packages of the project's cargo workspace, built static; each is installed as
    /// /usr/bin/<package>.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Files and directories the packages are built from (their cache key).
    #[serde(default)]
    pub sources: Vec<PathBuf>,
    /// Ready-made static programs, each installed as /usr/bin/<file name>.
    #[serde(default)]
    pub programs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchDef {
    /// Run in the guest with the first module loaded; prints a JSON array of rows
    /// `{name, unit, min, median, p99}`. `{iterations}` is replaced.
    pub command: Option<String>,
    #[serde(default)]
    pub figure: Vec<BenchFigure>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchFigure {
    pub name: String,
    pub row: String,
    /// Divide by this row's median.
    pub against: Option<String>,
    /// Divide by this constant.
    pub divide_by: Option<f64>,
    pub at_most: Option<f64>,
    pub at_least: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    kernels: PathBuf,
    #[serde(default)]
    specs: Vec<PathBuf>,
    #[serde(default)]
    module: Vec<ModuleDef>,
    #[serde(default)]
    guest: GuestDef,
    #[serde(default)]
    bench: BenchDef,
}

/// A loaded project: every path is absolute.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    /// The kspec checkout whose guest agent, /init and rootfs every image gets.
    pub framework: PathBuf,
    /// The kernel list; its directory holds kconfig/ and keys/.
    pub kernels: PathBuf,
    pub specs: Vec<PathBuf>,
    pub modules: Vec<ModuleDef>,
    pub guest: GuestDef,
    pub bench: BenchDef,
}

impl Project {
    /// `$KSPEC_ROOT`, else the nearest ancestor of the working directory holding kspec.toml,
    /// else the checkout this binary was built from.
    pub fn locate() -> Result<Self, Error> {
        if let Some(r) = std::env::var_os("KSPEC_ROOT").filter(|r| !r.is_empty()) {
            let root = PathBuf::from(r);
            if !root.join(FILE_NAME).is_file() {
                return Err(Error::BadRoot(root));
            }
            return Project::load(&root);
        }
        let has_file = |p: &Path| p.join(FILE_NAME).is_file();
        if let Some(root) = std::env::current_dir()
            .ok()
            .and_then(|cwd| cwd.ancestors().find(|p| has_file(p)).map(Path::to_owned))
        {
            return Project::load(&root);
        }
        match Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
            Some(root) if has_file(root) => Project::load(root),
            _ => Err(Error::NotFound),
        }
    }

    /// Read and check `<root>/kspec.toml`.
    pub fn load(root: &Path) -> Result<Self, Error> {
        let path = root.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        Project::parse(root, &text).map_err(|message| Error::Invalid { path, message })
    }

    fn parse(root: &Path, text: &str) -> Result<Self, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let abs = |p: &Path| root.join(p);
        let mut seen = std::collections::HashSet::new();
        for m in &f.module {
            let valid = !m.name.is_empty()
                && m.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(format!(
                    "module name {:?}: letters, digits, `_` and `-` only",
                    m.name
                ));
            }
            if !seen.insert(m.name.replace('-', "_")) {
                return Err(format!("module {:?} is listed twice", m.name));
            }
        }
        for p in &f.guest.packages {
            if p.is_empty() || p.contains('/') {
                return Err(format!("guest package {p:?} is not a package name"));
            }
        }
        let mut names: std::collections::HashSet<String> =
            f.guest.packages.iter().cloned().collect();
        for p in &f.guest.programs {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            match name {
                Some(n) if names.insert(n.clone()) => {}
                Some(n) => return Err(format!("guest program {n:?} is given twice")),
                None => return Err(format!("guest program {} is not a file name", p.display())),
            }
        }
        Ok(Project {
            root: root.to_owned(),
            framework: framework_root(),
            kernels: abs(&f.kernels),
            specs: f.specs.iter().map(|p| abs(p)).collect(),
            modules: f
                .module
                .into_iter()
                .map(|m| ModuleDef {
                    source: abs(&m.source),
                    ..m
                })
                .collect(),
            guest: GuestDef {
                packages: f.guest.packages,
                sources: f.guest.sources.iter().map(|p| abs(p)).collect(),
                programs: f.guest.programs.iter().map(|p| abs(p)).collect(),
            },
            bench: f.bench,
        })
    }

    fn kernels_dir(&self) -> PathBuf {
        self.kernels
            .parent()
            .map_or_else(|| self.root.clone(), Path::to_owned)
    }

    /// The Kconfig fragments the kernel list names.
    pub fn kconfig_dir(&self) -> PathBuf {
        self.kernels_dir().join("kconfig")
    }

    /// The public keys `signed_by` fingerprints in the kernel list name.
    pub fn keys_dir(&self) -> PathBuf {
        self.kernels_dir().join("keys")
    }

    /// The guest's /init and the files of its root file system: kspec's own.
    pub fn guest_init(&self) -> PathBuf {
        self.framework.join("images/init")
    }

    pub fn guest_rootfs(&self) -> PathBuf {
        self.framework.join("images/rootfs")
    }

    /// The specs under `paths` (default: the project's spec directories), checked against the
    /// project too: a spec that names a module it does not have is an error.
    pub fn load_specs(&self, paths: &[PathBuf]) -> Result<Vec<LoadedSpec>, LoadAllError> {
        let paths = if paths.is_empty() { &self.specs } else { paths };
        let specs = spec::load_all(paths)?;
        let errors = self.unknown_modules(&specs);
        if errors.is_empty() {
            Ok(specs)
        } else {
            Err(LoadAllError::Specs(errors))
        }
    }

    /// Every spec whose `module:` names a module the project does not have, as file:line.
    fn unknown_modules(&self, specs: &[LoadedSpec]) -> Vec<String> {
        let mut errors = Vec::new();
        for s in specs {
            let Some(m) = &s.spec.module else { continue };
            let known = match &m.name {
                Some(n) => self.modules.iter().any(|d| &d.name == n),
                None => !self.modules.is_empty(),
            };
            if !known {
                let pos = s.locator.find("module");
                let names: Vec<&str> = self.modules.iter().map(|d| d.name.as_str()).collect();
                errors.push(format!(
                    "{}:{}:{}: the project ({}) has no module {} (it has: {})",
                    s.path.display(),
                    pos.line,
                    pos.col,
                    self.root.join(FILE_NAME).display(),
                    m.name
                        .as_deref()
                        .map_or("at all".into(), |n| format!("{n:?}")),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ));
            }
        }
        errors
    }
}

/// The kspec checkout: `$KSPEC_HOME`, else the one this binary was built from.
pub fn framework_root() -> PathBuf {
    match std::env::var_os("KSPEC_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Project, String> {
        Project::parse(Path::new("/p"), text)
    }

    #[test]
    fn paths_are_relative_to_the_project() {
        let p = parse(
            "kernels = \"images/kernels.yaml\"\nspecs = [\"specs\"]\n\
             [[module]]\nname = \"m\"\nsource = \"kmod\"\nparams = { pages = 4 }\n\
             [guest]\npackages = [\"tool\"]\nsources = [\"tools\"]\n",
        )
        .unwrap();
        assert_eq!(p.kernels, Path::new("/p/images/kernels.yaml"));
        assert_eq!(p.kconfig_dir(), Path::new("/p/images/kconfig"));
        assert_eq!(p.specs, [PathBuf::from("/p/specs")]);
        assert_eq!(p.modules[0].source, Path::new("/p/kmod"));
        assert_eq!(p.modules[0].params["pages"].to_string(), "4");
        assert_eq!(p.guest.sources, [PathBuf::from("/p/tools")]);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = parse("specs = []\n").unwrap_err();
        assert!(e.contains("missing field `kernels`"), "{e}");
        let e = parse("kernels = \"k\"\nmodules = []\n").unwrap_err();
        assert!(e.contains("unknown field `modules`"), "{e}");
        let two = "kernels = \"k\"\n[[module]]\nname = \"a_b\"\nsource = \"x\"\n\
                   [[module]]\nname = \"a-b\"\nsource = \"y\"\n";
        assert_eq!(parse(two).unwrap_err(), "module \"a-b\" is listed twice");
        let bad = "kernels = \"k\"\n[[module]]\nname = \"a b\"\nsource = \"x\"\n";
        assert!(parse(bad).unwrap_err().contains("letters, digits"));
    }

    #[test]
    fn the_checkouts_own_project_file_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let p = Project::load(root).unwrap();
        assert!(p.kernels.is_file());
        assert!(p.modules.iter().all(|m| m.source.is_dir()));
        assert!(p.guest.sources.iter().all(|s| s.exists()));
        assert!(p.specs.iter().all(|s| s.is_dir()));
    }
}
