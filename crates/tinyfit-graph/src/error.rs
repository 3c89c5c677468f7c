//! Errors of graph loading, validation and shape inference.

use std::path::PathBuf;

/// Everything that can be wrong with a graph, always naming where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The file could not be read.
    #[error("cannot read graph file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON/TOML, or a field has the wrong type.
    #[error("graph file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column where it knows them.
        message: String,
    },
    /// A node's description could not be read (unknown layer kind, missing or unknown field).
    #[error("node #{index} '{name}': {message}")]
    Node {
        /// Position in the node list.
        index: usize,
        /// The node's name (`?` when it has none).
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The graph's structure is wrong (names, wiring, input count).
    #[error("graph: {0}")]
    Structure(String),
    /// A node's input shapes do not fit its op.
    #[error("layer '{node}' ({kind}): {message}")]
    Shape {
        /// The node's name.
        node: String,
        /// The op kind.
        kind: &'static str,
        /// What does not fit, with the shapes involved.
        message: String,
    },
    /// A weights file is unreadable or does not match the graph.
    #[error("weights {path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Result alias for graph operations.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;
