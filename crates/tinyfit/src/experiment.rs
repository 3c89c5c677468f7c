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

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tinyfit_data::DataConfig;
use tinyfit_train::{Precision, TrainConfig};

use crate::run_dir::{config_folder, read_toml, resolve};

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
    /// Knowledge distillation from a trained run (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillSection>,
    /// Weight precision below int8, per layer (optional): training quantises those weights
    /// in the forward pass (QAT) and `tinyfit quantize` exports them on the same grids.
    ///
    /// ```toml
    /// [weight_bits]
    /// conv2 = "int4"      # or "ternary", "binary"; unnamed layers stay int8
    /// ```
    #[serde(default, skip_serializing_if = "Precision::is_empty")]
    pub weight_bits: Precision,
}

/// The `[distill]` section: a teacher run and Hinton's T and α.
///
/// ```toml
/// [distill]
/// teacher = "../../runs/train"   # a run folder, relative to this file
/// temperature = 4.0
/// alpha = 0.9
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSection {
    /// Run folder of the teacher (written by `tinyfit train`).
    pub teacher: PathBuf,
    /// Softmax temperature T (default 4).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight α of the soft targets (default 0.9).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// FitNets hints (optional): a first stage in which the student's guided layer learns to
    /// predict the teacher's hint layer through a 1×1 regressor.
    ///
    /// ```toml
    /// [distill.hints]
    /// teacher = "relu3"   # the teacher's hint layer
    /// student = "relu3"   # the student's guided layer
    /// epochs = 10
    /// ```
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<tinyfit_train::HintConfig>,
}

fn default_temperature() -> f64 {
    tinyfit_train::DistillConfig::default().temperature
}

fn default_alpha() -> f64 {
    tinyfit_train::DistillConfig::default().alpha
}

impl DistillSection {
    /// T and α for the trainer.
    pub fn settings(&self) -> tinyfit_train::DistillConfig {
        tinyfit_train::DistillConfig {
            temperature: self.temperature,
            alpha: self.alpha,
        }
    }
}

/// The `[model]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Graph file (`.json` or `.toml`).
    pub graph: PathBuf,
    /// The model's input resolution, where it differs from the data's: every window resampled
    /// to this many time steps (samples of a sensor window, frames of a spectrogram).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_steps: Option<usize>,
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
        let mut only: DataOnly = read_toml(path, "config")?;
        only.data.resolve_paths(config_folder(path));
        Ok(only.data)
    }

    /// The data split as configured, normalised with `norm` when given (else fitted on the
    /// training split), at the model's input resolution.
    pub fn splits(&self, norm: Option<tinyfit_data::ChannelNorm>) -> Result<tinyfit_data::Splits> {
        let splits = self.data.load(norm)?;
        Ok(match self.model.time_steps {
            Some(steps) => splits.resampled(steps)?,
            None => splits,
        })
    }

    /// Reads `path`, resolving relative paths in it against the file's folder.
    pub fn load(path: &Path) -> Result<Experiment> {
        let mut exp: Experiment = read_toml(path, "config")?;
        let base = config_folder(path);
        exp.data.resolve_paths(base);
        resolve(
            base,
            std::iter::once(&mut exp.model.graph)
                .chain(exp.distill.as_mut().map(|d| &mut d.teacher)),
        );
        Ok(exp)
    }
}
