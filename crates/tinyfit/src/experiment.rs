//! Experiment configs: one TOML file naming the data, the model and how to train it.
//!
//! ```toml
//! [data]
//! kind = "hapt"
//! path = "../../../shared/data/hapt"   # relative to this file
//!
//! [model]
//! graph = "../graphs/har_cnn.json"     # relative to this file
//!
//! [train]
//! epochs = 30
//! [train.optimizer]
//! kind = "adam_w"
//! lr = 0.003
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tinyfit_data::DataConfig;
use tinyfit_train::TrainConfig;

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Dataset and split protocol.
    pub data: DataConfig,
    /// The model to train.
    pub model: ModelSection,
    /// Training hyper-parameters.
    pub train: TrainConfig,
}

/// The `[model]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Graph file (`.json` or `.toml`).
    pub graph: PathBuf,
}

/// A config file read only for its `[data]` section.
#[derive(Deserialize)]
struct DataOnly {
    data: DataConfig,
}

impl Experiment {
    /// Reads only the `[data]` section of a config (an experiment or a data-only file),
    /// resolving its paths against the file's folder.
    pub fn load_data(path: &Path) -> Result<DataConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut only: DataOnly =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        only.data
            .resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(only.data)
    }

    /// Reads `path`, resolving relative paths in it against the file's folder.
    pub fn load(path: &Path) -> Result<Experiment> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut exp: Experiment =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        exp.data.resolve_paths(base);
        if exp.model.graph.is_relative() {
            exp.model.graph = base.join(&exp.model.graph);
        }
        Ok(exp)
    }
}
