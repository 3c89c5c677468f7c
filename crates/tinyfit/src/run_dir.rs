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

/// The arguments every resumable, config-driven method shares.
#[derive(clap::Args)]
pub struct ResumableArgs {
    /// Config file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Output folder (default: runs/<config file name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in the output folder from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
}

impl ResumableArgs {
    /// The run folder: `--out`, else `runs/<config file name>`.
    pub fn run_dir(&self) -> RunDir {
        RunDir(self.out.clone().unwrap_or_else(|| {
            let stem = self.config.file_stem().unwrap_or_default();
            PathBuf::from("runs").join(stem)
        }))
    }
}

/// Paths inside a run folder.
pub struct RunDir(pub PathBuf);

/// A finished run, read back: its experiment, the fitted normalisation and the selected model.
pub struct TrainedRun {
    /// The experiment config.
    pub experiment: crate::experiment::Experiment,
    /// Normalisation fitted on the training split.
    pub norm: tinyfit_data::ChannelNorm,
    /// The model graph.
    pub graph: tinyfit_graph::Graph,
    /// The selected weights, checked against the graph.
    pub weights: tinyfit_graph::Weights,
}

impl TrainedRun {
    /// The run's train/validation/test splits, normalised as in training.
    pub fn splits(&self) -> Result<tinyfit_data::Splits> {
        self.experiment.splits(Some(self.norm.clone()))
    }
}

impl RunDir {
    /// Reads the experiment, normalisation, graph and selected weights of a finished run.
    pub fn load(&self) -> Result<TrainedRun> {
        if !self.0.is_dir() {
            anyhow::bail!("run folder not found: {}", self.0.display());
        }
        let graph = tinyfit_graph::Graph::load(&self.file("model.json"))?;
        let weights_path = self.file("model.safetensors");
        let weights = tinyfit_graph::Weights::load(&weights_path)?;
        weights.check(&graph, &graph.analyze()?, &weights_path)?;
        Ok(TrainedRun {
            experiment: self.read_json("experiment.json")?,
            norm: self.read_json("normalization.json")?,
            graph,
            weights,
        })
    }

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

    /// The saved `progress.json` of a resumable `method` run here (with `resume`), or a fresh
    /// start that records `config` as `config.json`. Refuses to overwrite a run without
    /// `resume` and to continue one started with another config (its `[section]`).
    pub fn start_or_resume<C, P>(
        &self,
        config: &C,
        resume: bool,
        method: &str,
        section: &str,
    ) -> Result<P>
    where
        C: Serialize + DeserializeOwned + PartialEq,
        P: Default + DeserializeOwned,
    {
        if self.file("progress.json").exists() {
            if !resume {
                anyhow::bail!(
                    "{} already holds a {method} run; pass --resume to continue it, or choose another --out",
                    self.0.display()
                );
            }
            let saved: C = self.read_json("config.json")?;
            if saved != *config {
                anyhow::bail!(
                    "{} was started with another [{section}] config (see its config.json); resume with the same config",
                    self.0.display()
                );
            }
            return self.read_json("progress.json");
        }
        std::fs::create_dir_all(&self.0)
            .with_context(|| format!("cannot create {}", self.0.display()))?;
        self.write_json("config.json", config)?;
        Ok(P::default())
    }
}

/// Reads and parses the TOML `what` (a config, a pipeline) at `path`, naming it in errors.
pub fn read_toml<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))
}

/// The folder of the config file `path`, against which its relative paths resolve.
pub fn config_folder(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Each relative path of `paths` resolved against `base`.
pub fn resolve<'a>(base: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    for p in paths {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

/// Reads and parses a JSON file, naming it in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
