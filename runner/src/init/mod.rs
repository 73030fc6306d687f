//! `kspec init [DIR] [--lang rust|c] [--name NAME]`: a new project in DIR — a minimal module
//! with one /proc file (Rust with a thin C glue, or C), its project file, one spec, a README,
//! the GitHub workflow and a copy of kspec's kernel list (so the project is self-contained and
//! its kernels share kspec's cache keys). Writes only new files: if any of them exists, nothing
//! is written. On top of `project` (for the kspec checkout the kernel list comes from).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::exit::{ENV as EXIT_ENV, INVALID as EXIT_INVALID};
use crate::project;

/// The language of the new project's module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
}

impl Lang {
    fn label(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::C => "C",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} already exists: kspec init writes only new files (nothing was written)")]
    Exists(PathBuf),
    #[error(
        "module name {0:?}: a lowercase letter, then lowercase letters, digits or `_`, \
         at most {MAX_NAME} in all"
    )]
    BadName(String),
    #[error("no module name can be made of {0:?}: pass --name")]
    NoName(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code: the user's mistake (2) or the machine's (3).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Exists(_) | Error::BadName(_) | Error::NoName(_) => EXIT_INVALID,
            Error::Io { .. } => EXIT_ENV,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The longest module name the kernel takes (MODULE_NAME_LEN less its NUL).
pub const MAX_NAME: usize = 55;

/// One file of the new project: its path relative to the project and its content.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub path: PathBuf,
    pub content: Vec<u8>,
}

/// The templates; `@name@`, `@lang@` and `@sources@` are replaced.
mod templates {
    pub const KSPEC_TOML: &str = include_str!("templates/kspec.toml");
    pub const README: &str = include_str!("templates/README.md");
    pub const WORKFLOW: &str = include_str!("templates/kspec.yml");
    pub const SPEC: &str = include_str!("templates/spec.yaml");
    pub const MAKEFILE: &str = include_str!("templates/Makefile");
    pub const KBUILD_RUST: &str = include_str!("templates/Kbuild.rust");
    pub const RUST_MAIN: &str = include_str!("templates/rust_main.rs");
    pub const RUST_GLUE: &str = include_str!("templates/glue.c");
    pub const KBUILD_C: &str = include_str!("templates/Kbuild.c");
    pub const C_MODULE: &str = include_str!("templates/module.c");
}

/// The module directory's files for `lang`: (file name, template).
fn module_templates(name: &str, lang: Lang) -> Vec<(String, &'static str)> {
    let mut files = vec![("Makefile".to_owned(), templates::MAKEFILE)];
    match lang {
        Lang::Rust => files.extend([
            ("Kbuild".to_owned(), templates::KBUILD_RUST),
            (format!("{name}_main.rs"), templates::RUST_MAIN),
            ("glue.c".to_owned(), templates::RUST_GLUE),
        ]),
        Lang::C => files.extend([
            ("Kbuild".to_owned(), templates::KBUILD_C),
            (format!("{name}.c"), templates::C_MODULE),
        ]),
    }
    files
}

fn render(template: &str, name: &str, lang: Lang) -> Vec<u8> {
    let sources = match lang {
        Lang::Rust => {
            format!("`Kbuild`, the Rust crate `{name}_main.rs` and its C glue for /proc (`glue.c`)")
        }
        Lang::C => format!("`Kbuild` and `{name}.c`"),
    };
    template
        .replace("@name@", name)
        .replace("@lang@", lang.label())
        .replace("@sources@", &sources)
        .into_bytes()
}

/// Every file of a new project named `name`, the kernel list copied from the kspec checkout
/// `framework`.
pub fn plan(name: &str, lang: Lang, framework: &Path) -> Result<Vec<NewFile>, Error> {
    check_name(name)?;
    let mut files = Vec::new();
    let mut add = |path: PathBuf, template: &str| {
        files.push(NewFile {
            path,
            content: render(template, name, lang),
        })
    };
    add("kspec.toml".into(), templates::KSPEC_TOML);
    add("README.md".into(), templates::README);
    add(".github/workflows/kspec.yml".into(), templates::WORKFLOW);
    add(format!("specs/{name}.yaml").into(), templates::SPEC);
    for (file, template) in module_templates(name, lang) {
        add(Path::new("module").join(file), template);
    }
    files.extend(kernel_files(framework)?);
    Ok(files)
}

/// kspec's kernel list, its Kconfig fragments and keys, byte for byte: the same contents give
/// the same kernel cache keys (which hash the fragments' names and contents, not their path).
fn kernel_files(framework: &Path) -> Result<Vec<NewFile>, Error> {
    let images = framework.join("images");
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(p, e));
    let mut files = vec![NewFile {
        path: "kernels/kernels.yaml".into(),
        content: read(&images.join("kernels.yaml"))?,
    }];
    for sub in ["kconfig", "keys"] {
        let dir = images.join(sub);
        let mut names = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let e = e.map_err(|e| Error::io(&dir, e))?;
            if e.file_type()
                .map_err(|err| Error::io(&e.path(), err))?
                .is_file()
            {
                names.push(e.file_name());
            }
        }
        names.sort();
        for n in names {
            files.push(NewFile {
                path: Path::new("kernels").join(sub).join(&n),
                content: read(&dir.join(&n))?,
            });
        }
    }
    Ok(files)
}

/// Write `files` under `dir` (created if missing). If any of them exists, nothing is written.
pub fn write(dir: &Path, files: &[NewFile]) -> Result<(), Error> {
    if let Some(f) = files
        .iter()
        .find(|f| dir.join(&f.path).symlink_metadata().is_ok())
    {
        return Err(Error::Exists(shown(dir, &f.path)));
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        // create_new: a file that appeared since the check above is not overwritten either.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::Exists(shown(dir, &f.path)),
                _ => Error::io(&path, e),
            })?;
        std::io::Write::write_all(&mut out, &f.content).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// `rel` under `dir` as the user named it (`specs/x.yaml`, not `./specs/x.yaml`).
fn shown(dir: &Path, rel: &Path) -> PathBuf {
    let p = dir.join(rel);
    p.strip_prefix(".").map_or(p.clone(), Path::to_owned)
}

/// A valid module name: a lowercase letter, then lowercase letters, digits and `_`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_NAME;
    if valid {
        Ok(())
    } else {
        Err(Error::BadName(name.to_owned()))
    }
}

/// The module name a directory name gives: lowercased, every run of other characters one `_`,
/// no `_` at either end, `m_` before a leading digit, at most [`MAX_NAME`] characters.
pub fn name_from(dir_name: &str) -> Result<String, Error> {
    let mut name = String::new();
    for c in dir_name.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    let mut name = name.trim_end_matches('_').to_owned();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "m_");
    }
    name.truncate(MAX_NAME);
    let name = name.trim_end_matches('_').to_owned();
    check_name(&name).map_err(|_| Error::NoName(dir_name.to_owned()))?;
    Ok(name)
}

/// What `kspec init` does: create `dir`, write the project, return what to print.
pub fn init(dir: &Path, lang: Lang, name: Option<&str>) -> Result<String, Error> {
    let name = match name {
        Some(n) => {
            check_name(n)?;
            n.to_owned()
        }
        None => {
            let abs = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
            let base = normalised(&abs)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name_from(&base)?
        }
    };
    let files = plan(&name, lang, &project::framework_root())?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write(dir, &files)?;
    let mut out = format!(
        "kspec: new project `{name}` ({} module) in {}:\n",
        lang.label(),
        dir.display()
    );
    for f in &files {
        let _ = writeln!(out, "  {}", f.path.display());
    }
    let here = std::env::current_dir().ok();
    let next = match here.as_deref().zip(std::path::absolute(dir).ok()) {
        Some((cwd, abs)) if normalised(&abs) == normalised(cwd) => "kspec run".to_owned(),
        _ => format!("cd {} && kspec run", dir.display()),
    };
    let _ = writeln!(out, "next: {next}");
    Ok(out)
}

/// `p` without `.` and with each `..` taking away the component before it (no file system
/// access: the directory may not exist yet).
fn normalised(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The subcommand: print what was written and the next command, or the error; the exit code.
pub fn run(dir: &Path, lang: Lang, name: Option<&str>) -> u8 {
    match init(dir, lang, name) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("kspec: error: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_module_names() {
        assert_eq!(name_from("demo").unwrap(), "demo");
        assert_eq!(name_from("My-Module.v2").unwrap(), "my_module_v2");
        assert_eq!(name_from("--x  y--").unwrap(), "x_y");
        assert_eq!(name_from("2fast").unwrap(), "m_2fast");
        assert_eq!(name_from(&"a".repeat(80)).unwrap().len(), MAX_NAME);
        assert!(matches!(name_from("..."), Err(Error::NoName(_))));
        assert!(matches!(name_from("ü"), Err(Error::NoName(_))));
    }

    #[test]
    fn explicit_names_are_checked_not_changed() {
        assert!(check_name("kchan_2").is_ok());
        for bad in ["", "Demo", "2x", "a-b", "_a", &"a".repeat(MAX_NAME + 1)] {
            assert!(matches!(check_name(bad), Err(Error::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn every_placeholder_is_replaced() {
        let root = project::framework_root();
        for lang in [Lang::Rust, Lang::C] {
            for f in plan("demo", lang, &root).unwrap() {
                let text = String::from_utf8_lossy(&f.content);
                for p in ["@name@", "@lang@", "@sources@"] {
                    assert!(!text.contains(p), "{}: {p}", f.path.display());
                }
            }
        }
    }

    #[test]
    fn paths_are_normalised_without_the_file_system() {
        assert_eq!(normalised(Path::new("/a/./b/../c")), Path::new("/a/c"));
        assert_eq!(normalised(Path::new("/a/b/.")), Path::new("/a/b"));
    }
}
