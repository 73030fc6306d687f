//! Whether a spec's and a case's requirements hold on a kernel: before the build, from the
//! Kconfig fragments, or after it, from the built .config. A case needs its file's
//! requirements and its own.

use crate::image::{Image, Kernel};
use crate::spec::{version_matches, LoadedSpec, Requires};

/// Why case `case` of `spec` (None: every case, the file's requirements only) will not run on
/// `kernel`, as far as can be known before anything is built (for test harnesses that list
/// cases as ignored up front): the version range, and the Kconfig symbols its fragments leave
/// disabled. tinyconfig enables almost nothing, and the build verifies every fragment symbol,
/// so this agrees with `unmet_requirements` unless a required symbol is only selected by
/// another one.
pub fn unmet_before_build(
    spec: &LoadedSpec,
    case: Option<usize>,
    kernel: &Kernel,
    fragments: &[String],
) -> Option<String> {
    let mut set = std::collections::HashMap::new();
    for text in fragments {
        set.extend(crate::image::kernel::parse_fragment(text));
    }
    let enabled = |sym: &str| matches!(set.get(sym).map(String::as_str), Some("y" | "m"));
    requirements(spec, case).find_map(|r| {
        unmet(
            r,
            kernel,
            enabled,
            " (its Kconfig fragments do not enable it)",
        )
    })
}

/// Why case `case` of `spec` (None: the file's requirements only) cannot run on `image`.
pub fn unmet_requirements(spec: &LoadedSpec, case: Option<usize>, image: &Image) -> Option<String> {
    requirements(spec, case)
        .find_map(|r| unmet(r, &image.kernel, |sym| image.built.has_symbol(sym), ""))
}

/// The file's requirements, then the case's.
fn requirements(spec: &LoadedSpec, case: Option<usize>) -> impl Iterator<Item = &Requires> {
    let own = case
        .and_then(|c| spec.spec.cases.get(c))
        .map(|c| &c.requires);
    std::iter::once(&spec.spec.requires).chain(own)
}

/// Why `r` rules out `kernel`, given which Kconfig symbols (without CONFIG_) it enables; `why`
/// says where that knowledge came from.
fn unmet(
    r: &Requires,
    kernel: &Kernel,
    enabled: impl Fn(&str) -> bool,
    why: &str,
) -> Option<String> {
    let missing: Vec<&str> = r
        .kconfig
        .iter()
        .map(String::as_str)
        .filter(|s| !enabled(s.strip_prefix("CONFIG_").unwrap_or(s)))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "kernel {} lacks {}{why}",
            kernel.name,
            missing.join(", ")
        ));
    }
    match &r.kernel {
        Some(req) if !version_matches(req, &kernel.version) => {
            Some(format!("kernel {} does not satisfy {req}", kernel.version))
        }
        _ => None,
    }
}
