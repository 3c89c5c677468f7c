//! tinyfit's model IR: models are data.
//!
//! A [`Graph`] is a serde-serialisable DAG of layers ([`Op`]) listed in execution order. Every
//! stage of tinyfit — training, pruning surgery, stitching, NAS, quantisation, code generation —
//! reads and rewrites this one description. [`Graph::analyze`] checks the wiring and infers every
//! shape, parameter count and MAC count; [`Summary`] turns that into the per-layer table that
//! `tinyfit inspect` prints; [`Weights`] holds the float weights as safetensors.

mod error;
mod graph;
mod op;
pub mod quant;
pub mod shape;
mod summary;
mod weights;

pub use error::{GraphError, Result};
pub use graph::{Analysis, Graph, Input, Node, NodeAnalysis, ValueRef};
pub use op::{
    BatchNorm, ChannelShuffle, Concat, Conv, Dropout, Extent, Linear, Mean, Op, Pad, PadMode,
    Padding, Pool, Reshape,
};
pub use summary::{LayerRow, Summary};
pub use weights::{Tensor, Weights};

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then
/// renamed over the target, so a reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
