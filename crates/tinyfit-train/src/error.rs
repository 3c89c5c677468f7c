//! Errors of training.

use std::path::{Path, PathBuf};

use tinyfit_graph::GraphError;

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The model is invalid or its weights do not fit it.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The configuration cannot work with this model or data.
    #[error("{0}")]
    Config(String),
    /// A checkpoint could not be read back.
    #[error("checkpoint {0}")]
    Checkpoint(String),
    /// Reading or writing the run folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged in epoch {} (loss is not finite); lower the learning rate", epoch + 1)]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
    },
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
