//! Errors of dataset reading, always naming the file and, where there is one, the line.

use std::path::PathBuf;

/// What can be wrong with a dataset on disk or its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder the layout needs is not there.
    #[error("{what} not found: {path}")]
    Missing {
        /// What was looked for ("HAPT folder", "labels file", ...).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a file does not have the expected form.
    #[error("{path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// The files disagree with each other or with the configuration.
    #[error("{path}: {message}")]
    Invalid {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The configuration asks for something impossible.
    #[error("data config: {0}")]
    Config(String),
}

/// Result alias for dataset operations.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
