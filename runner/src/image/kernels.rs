//! The kernel list (`images/kernels.yaml`): which kernels exist, where their source comes from
//! and what they need. One source of truth for build, tests, `kspec matrix` and CI.

use std::path::{Path, PathBuf};

use super::Error;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KernelList {
    pub default: String,
    pub kernels: Vec<Kernel>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    pub name: String,
    pub version: String,
    /// Where the source comes from on this machine kind (Debian).
    pub source: Source,
    /// Where it comes from on GitHub runners (defaults to `source`).
    #[serde(default)]
    pub github_source: Option<Source>,
    /// Kconfig fragments under images/kconfig, applied in order on top of tinyconfig.
    pub fragments: Vec<String>,
    pub toolchain: ToolchainReq,
    /// Built and tested by `cargo test` and .ci/run here; otherwise only on GitHub.
    #[serde(default)]
    pub local: bool,
    /// Guest memory for this kernel's VMs (debug kernels need more).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Extra kernel command line for this kernel's VMs.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// Modules of the kernel tree itself (paths in the build, e.g. "lib/list-test.ko", built
    /// because the fragments make them =m), packed as /lib/modules/<file name>.
    #[serde(default)]
    pub tree_modules: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(try_from = "SourceFields")]
pub enum Source {
    Debian {
        package: String,
        suite: Option<String>,
    },
    /// A release tarball checked against `sha256`, or against the sha256 that kernel.org's
    /// `sha256sums.asc` beside it lists, once that file's signature is verified to come from the
    /// key `signed_by` (a full fingerprint).
    Tarball {
        url: String,
        check: TarballCheck,
    },
    Path(PathBuf),
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum TarballCheck {
    Sha256(String),
    SignedSums { fingerprint: String },
}

/// The YAML shape: exactly one of `debian`, `tarball`, `path`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFields {
    #[serde(default)]
    debian: Option<DebianFields>,
    #[serde(default)]
    tarball: Option<TarballFields>,
    #[serde(default)]
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DebianFields {
    package: String,
    #[serde(default)]
    suite: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TarballFields {
    url: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    signed_by: Option<String>,
}

impl TryFrom<SourceFields> for Source {
    type Error = String;
    fn try_from(f: SourceFields) -> Result<Self, String> {
        match (f.debian, f.tarball, f.path) {
            (Some(d), None, None) => Ok(Source::Debian {
                package: d.package,
                suite: d.suite,
            }),
            (None, Some(t), None) => {
                let hex =
                    |v: &str, n: usize| v.len() == n && v.chars().all(|c| c.is_ascii_hexdigit());
                let check = match (t.sha256, t.signed_by) {
                    (Some(sha), None) if hex(&sha, 64) => {
                        TarballCheck::Sha256(sha.to_ascii_lowercase())
                    }
                    (None, Some(fpr)) if hex(&fpr, 40) => TarballCheck::SignedSums {
                        fingerprint: fpr.to_ascii_uppercase(),
                    },
                    (Some(_), None) => {
                        return Err(format!("tarball {}: sha256 must be 64 hex digits", t.url))
                    }
                    (None, Some(_)) => {
                        return Err(format!(
                            "tarball {}: signed_by must be a 40-digit key fingerprint",
                            t.url
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "tarball {}: give exactly one of sha256 or signed_by",
                            t.url
                        ))
                    }
                };
                Ok(Source::Tarball { url: t.url, check })
            }
            (None, None, Some(p)) => Ok(Source::Path(p)),
            _ => Err("a source needs exactly one of debian, tarball or path".into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolchainReq {
    pub rustc: String,
    pub bindgen: String,
    pub llvm: String,
}

impl KernelList {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let list: KernelList = serde_yaml::from_str(&text).map_err(|e| {
            let loc = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            Error::Config(format!("{}{loc}: {e}", path.display()))
        })?;
        if list.kernels.is_empty() {
            return Err(Error::Config(format!(
                "{}: no kernels listed",
                path.display()
            )));
        }
        if list.get(&list.default).is_none() {
            return Err(Error::Config(format!(
                "{}: default kernel {:?} is not in the list",
                path.display(),
                list.default
            )));
        }
        Ok(list)
    }

    pub fn get(&self, name: &str) -> Option<&Kernel> {
        self.kernels.iter().find(|k| k.name == name)
    }

    /// Resolve a `--kernel` argument: a name, "all" (every kernel), "local" (those tested here)
    /// or a comma-separated list of names.
    pub fn select(&self, arg: Option<&str>) -> Result<Vec<&Kernel>, Error> {
        match arg.unwrap_or(&self.default) {
            "all" => Ok(self.kernels.iter().collect()),
            "local" => Ok(self.kernels.iter().filter(|k| k.local).collect()),
            names => names
                .split(',')
                .map(|n| {
                    self.get(n.trim()).ok_or_else(|| {
                        let known: Vec<_> = self.kernels.iter().map(|k| k.name.as_str()).collect();
                        Error::Usage(format!(
                            "unknown kernel {n:?}; known: {}, all, local",
                            known.join(", ")
                        ))
                    })
                })
                .collect(),
        }
    }
}

impl Kernel {
    /// The source to use here: a developer's tree (`--kernel-src`) when given; else
    /// `github_source` (when present) on GitHub Actions or with KSPEC_SOURCE=github; `source`
    /// otherwise or with KSPEC_SOURCE=local.
    pub fn effective_source(&self, kernel_src: Option<&Path>) -> Source {
        if let Some(p) = kernel_src {
            return Source::Path(p.to_owned());
        }
        let github = match std::env::var("KSPEC_SOURCE").as_deref() {
            Ok("github") => true,
            Ok("local") => false,
            _ => std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true"),
        };
        match &self.github_source {
            Some(g) if github => g.clone(),
            _ => self.source.clone(),
        }
    }

    /// "6.12.117" -> (6, 12)
    pub fn major_minor(&self) -> (u32, u32) {
        let mut it = self.version.split('.').map(|p| p.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"
default: "6.12"
kernels:
  - name: "6.12"
    version: 6.12.117
    source: { debian: { package: linux-source-6.12 } }
    fragments: [base.config]
    toolchain: { rustc: "1.78", bindgen: "0.65.1", llvm: "13" }
    local: true
  - name: "7.3"
    version: 7.3.1
    source: { path: /src/linux }
    fragments: [base.config]
    toolchain: { rustc: "1.85", bindgen: "0.71.1", llvm: "15" }
    local: false
"#;

    fn list() -> KernelList {
        serde_yaml::from_str(LIST).unwrap()
    }

    fn names(ks: Vec<&Kernel>) -> Vec<&str> {
        ks.into_iter().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn a_kernel_argument_selects_by_name_list_local_or_all() {
        let l = list();
        assert_eq!(names(l.select(None).unwrap()), ["6.12"]);
        assert_eq!(names(l.select(Some("7.3")).unwrap()), ["7.3"]);
        assert_eq!(names(l.select(Some("7.3, 6.12")).unwrap()), ["7.3", "6.12"]);
        assert_eq!(names(l.select(Some("local")).unwrap()), ["6.12"]);
        assert_eq!(names(l.select(Some("all")).unwrap()), ["6.12", "7.3"]);
    }

    #[test]
    fn an_unknown_kernel_is_a_usage_error_that_lists_the_known_ones() {
        let e = list().select(Some("6.12,2.4")).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "unknown kernel \"2.4\"; known: 6.12, 7.3, all, local"
        );
    }

    #[test]
    fn a_local_tree_replaces_the_listed_source() {
        let l = list();
        let k = l.get("6.12").unwrap();
        let src = k.effective_source(Some(Path::new("/home/me/linux")));
        assert!(matches!(src, Source::Path(p) if p == Path::new("/home/me/linux")));
    }
}
