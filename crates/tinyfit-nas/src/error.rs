//! Why a search stops.

use std::path::PathBuf;

/// A search error; each names the file or the trial it concerns.
#[derive(Debug, thiserror::Error)]
pub enum NasError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A trial log line is not a trial of this search.
    #[error("{} line {line}: {message}", path.display())]
    Log {
        /// The log.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The search config is invalid.
    #[error("{0}")]
    Config(String),
    /// Evaluating a candidate failed (the trials finished before it are kept).
    #[error("trial {index} ({architecture}): {message}")]
    Evaluation {
        /// The trial.
        index: usize,
        /// Its architecture, described.
        architecture: String,
        /// The cause.
        message: String,
    },
}
