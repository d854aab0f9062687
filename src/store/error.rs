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
    #[error("corrupt store file {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<glommio::GlommioError<()>> for StoreError {
    fn from(e: glommio::GlommioError<()>) -> StoreError {
        StoreError::Glommio(e.to_string())
    }
}
