//! The files of a training run folder, written atomically.
//!
//! | file | content |
//! |---|---|
//! | `experiment.json` | the experiment config with resolved paths |
//! | `model.json` | the graph |
//! | `model.safetensors` | the selected (best on validation) weights |
//! | `normalization.json` | per-channel statistics fitted on the training split |
//! | `report.json` | split sizes, per-epoch history, validation and test metrics |
//! | `checkpoints/` | the newest resumable checkpoint |

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Serialize, de::DeserializeOwned};
use tinyfit_data::SplitSizes;
use tinyfit_train::{EpochRecord, Metrics};

/// The final figures of a run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    /// Samples per split.
    pub split_sizes: SplitSizes,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Trainable parameters of the model.
    pub params: u64,
    /// MACs per inference.
    pub macs: u64,
    /// Per-epoch training and validation figures.
    pub history: Vec<EpochRecord>,
    /// 0-based epoch of the selected weights.
    pub best_epoch: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Metrics of the selected weights on the validation split.
    pub validation: Metrics,
    /// Metrics of the selected weights on the test split (computed once, at the end).
    pub test: Metrics,
    /// Wall time of training in seconds (this invocation, resumed epochs included in history).
    pub train_seconds: f64,
}

/// Paths inside a run folder.
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// A file of the run.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `value` as pretty JSON, atomically.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let path = self.file(name);
        let text = serde_json::to_string_pretty(value).expect("run files serialise");
        tinyfit_graph::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads a JSON file of the run.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        read_json(&self.file(name))
    }
}

/// Reads and parses a JSON file, naming it in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
