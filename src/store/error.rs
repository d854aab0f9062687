//! Errors of the storage layer.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("glommio I/O error: {0}")]
    Glommio(String),
    /// The device is full (ENOSPC, EDQUOT, or a short write, which is how
    /// a write that runs out of space ends): a refusal, not a device fault.
    /// Nothing failed that a retry with space cannot redo.
    #[error("disk full: {0}")]
    NoSpace(String),
    #[error("corrupt store file {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    /// A request the store refuses in its current state (nothing changed).
    #[error("refused: {0}")]
    Refused(String),
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// A failed glommio call, classified like the kernel's answer: ENOSPC
    /// and EDQUOT become [`StoreError::NoSpace`], anything else
    /// [`StoreError::Glommio`]. `what` names the call and the file.
    pub fn glommio(what: impl std::fmt::Display, e: glommio::GlommioError<()>) -> StoreError {
        let source = match &e {
            glommio::GlommioError::IoError(s) | glommio::GlommioError::EnhancedIoError { source: s, .. } => Some(s),
            _ => None,
        };
        let full = source.is_some_and(|s| {
            matches!(s.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) || s.kind() == std::io::ErrorKind::StorageFull
        });
        if full {
            StoreError::NoSpace(format!("{what}: {e}"))
        } else {
            StoreError::Glommio(format!("{what}: {e}"))
        }
    }

    /// Whether this is a full disk (see [`StoreError::NoSpace`]).
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::NoSpace(_) => true,
            StoreError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
                    || source.kind() == std::io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }
}

impl From<glommio::GlommioError<()>> for StoreError {
    fn from(e: glommio::GlommioError<()>) -> StoreError {
        let what = e.to_string();
        match StoreError::glommio("", e) {
            StoreError::NoSpace(_) => StoreError::NoSpace(what),
            _ => StoreError::Glommio(what),
        }
    }
}
