//! The `[stitch]` section of a stitching config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::space::{Direction, Window};

/// How the stitching layers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Least squares on a batch of training samples (the reference).
    #[default]
    LeastSquares,
    /// PyTorch's default (Kaiming-uniform) initialisation of a 1×1 convolution: the ablation.
    Default,
}

/// Which stitches share a stitching layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LayerSharing {
    /// The stitches of one window share one (the reference).
    #[default]
    PerWindow,
    /// Every stitch has its own ([`crate::space::Space::with_layer_per_stitch`]).
    PerStitch,
}

/// Everything `tinyfit stitch` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StitchConfig {
    /// Trained runs of one design, from the smallest.
    pub anchors: Vec<PathBuf>,
    /// The last node of each block (the same names in every anchor).
    pub blocks: Vec<String>,
    /// The last node before block 0, if a stem precedes the blocks.
    #[serde(default)]
    pub stem: Option<String>,
    /// Which anchor of a pair comes first.
    #[serde(default)]
    pub direction: DirectionConfig,
    /// Paired stitching's sliding window.
    #[serde(default)]
    pub window: WindowConfig,
    /// Which stitches share a stitching layer.
    #[serde(default)]
    pub layers: LayerSharing,
    /// How the stitching layers start.
    #[serde(default)]
    pub init: Init,
    /// Training samples the least-squares fit reads (the reference's 100).
    #[serde(default = "default_init_samples")]
    pub init_samples: usize,
    /// Joint-training epochs (0: evaluate the initialised SN-Net).
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// AdamW's peak learning rate (cosine schedule).
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Keep the anchors' batch-norm statistics as trained during joint training
    /// ([`crate::model::SnNet::with_frozen_batch_norms`]); by default (the reference's full
    /// fine-tuning) every route's batches update them.
    #[serde(default)]
    pub freeze_batch_norms: bool,
    /// Weight α of hard distillation from the largest anchor (as trained, frozen); 0 for none.
    #[serde(default)]
    pub distill_alpha: f64,
    /// Seeds the sample order, the routes drawn and the initialisation.
    #[serde(default)]
    pub seed: u64,
    /// Independently trained runs of the anchors' design at intermediate sizes, measured and
    /// compared with the stitched frontier at their budgets.
    #[serde(default)]
    pub baselines: Vec<PathBuf>,
    /// The board whose cost model estimates each route's int8 latency (as `tinyfit deploy
    /// --board` names it); none: routes get flash and SRAM figures but no latency.
    #[serde(default)]
    pub board: Option<String>,
}

/// [`Direction`] in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DirectionConfig {
    /// Smaller anchor in front.
    #[default]
    FastToSlow,
    /// Larger anchor in front.
    SlowToFast,
}

impl From<DirectionConfig> for Direction {
    fn from(d: DirectionConfig) -> Self {
        match d {
            DirectionConfig::FastToSlow => Direction::FastToSlow,
            DirectionConfig::SlowToFast => Direction::SlowToFast,
        }
    }
}

/// [`Window`] in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Blocks per window.
    pub kernel: usize,
    /// Blocks the window moves by.
    pub stride: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        let w = Window::default();
        WindowConfig {
            kernel: w.kernel,
            stride: w.stride,
        }
    }
}

impl From<WindowConfig> for Window {
    fn from(w: WindowConfig) -> Self {
        Window {
            kernel: w.kernel,
            stride: w.stride,
        }
    }
}

fn default_init_samples() -> usize {
    100
}

impl StitchConfig {
    /// Checks what serde cannot: at least two anchors and one block, positive sizes.
    pub fn validate(&self) -> Result<(), String> {
        if self.anchors.len() < 2 {
            return Err(format!(
                "stitch.anchors lists {} run(s); stitching needs at least two",
                self.anchors.len()
            ));
        }
        if self.blocks.is_empty() {
            return Err("stitch.blocks is empty; name the last node of each block".into());
        }
        if self.window.kernel == 0 || self.window.stride == 0 {
            return Err("stitch.window.kernel and stride must be at least 1".into());
        }
        if self.batch_size == 0 || self.init_samples == 0 {
            return Err("stitch.batch_size and stitch.init_samples must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.distill_alpha) {
            return Err(format!(
                "stitch.distill_alpha is {}; expected a weight in [0, 1]",
                self.distill_alpha
            ));
        }
        Ok(())
    }
}
