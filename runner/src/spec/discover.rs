//! Finding spec files and loading a set of them: every error of every file, and spec names
//! that two files share.

use std::collections::HashMap;
use std::path::PathBuf;

use super::load::{load_file, LoadedSpec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadAllError {
    /// A path is missing or nothing was found: one message.
    #[error("{0}")]
    Paths(String),
    /// The spec files hold errors, each as file:line:col: message.
    #[error("{}", .0.join("\n"))]
    Specs(Vec<String>),
}

/// The spec files under `paths` (files as given, directories searched for *.yaml / *.yml), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

/// Load every spec file under `paths`.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<LoadedSpec>, LoadAllError> {
    let files = discover(paths).map_err(LoadAllError::Paths)?;
    if files.is_empty() {
        return Err(LoadAllError::Paths("no spec files (*.yaml) found".into()));
    }
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match load_file(&f) {
            Ok(s) => specs.push(s),
            Err(es) => errors.extend(es.iter().map(ToString::to_string)),
        }
    }
    let mut names = HashMap::new();
    for s in &specs {
        if let Some(prev) = names.insert(s.name.clone(), s.path.clone()) {
            errors.push(format!(
                "{}:1:1: spec name {:?} is also used by {}",
                s.path.display(),
                s.name,
                prev.display()
            ));
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(LoadAllError::Specs(errors))
    }
}
