//! The image layer's errors: what went wrong, by kind, so the layers above can tell a user's
//! mistake from a broken machine.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A build, fetch or tool command failed; the message names its log.
    #[error("{0}")]
    Command(String),
    /// The kernel list (or a source it names) is not usable as written.
    #[error("{0}")]
    Config(String),
    /// A download did not verify: checksum, signature or key.
    #[error("{0}")]
    Verify(String),
    /// The host lacks something images/setup-host.sh provides.
    #[error("{0}")]
    Host(String),
    /// Options that do not fit together.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}
