//! A DiTMoS run's settings, with the released code's values as defaults (`ditmos.md` §4).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::train::{LossWeights, Phase, SelectorTarget};

/// Which split chooses the checkpoint that is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The best routed accuracy on the validation split (the default: the test split is
    /// touched once, at the end).
    Validation,
    /// The released code's protocol, kept to compare with its numbers: the best routed
    /// accuracy on the *test* split over every epoch, which is optimistic.
    TestCompatibility,
}

/// How the training samples are split among the classifiers for pre-training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Splitting {
    /// k-means on the strong model's features (the method).
    KMeans,
    /// Equal random parts (the ablation without diverse splitting).
    Random,
}

/// The `[ditmos]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DitmosConfig {
    /// The trained strong model's run folder (its data, split and normalisation are used).
    pub strong: PathBuf,
    /// The strong model's layer whose flattened output is clustered.
    pub feature_layer: String,
    /// The selector graph (outputs: m routing logits, then the shared feature maps).
    pub selector: PathBuf,
    /// The classifier graph (inputs: the sample, then the selector's feature maps).
    pub classifier: PathBuf,
    /// Number of classifiers m.
    pub classifiers: usize,
    /// Seed of initialisation, clustering and shuffling.
    #[serde(default)]
    pub seed: u64,
    /// Samples per step (the reference: 8).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// How the training samples are split for pre-training.
    #[serde(default = "default_splitting")]
    pub splitting: Splitting,
    /// k-means restarts (the reference: 50).
    #[serde(default = "default_restarts")]
    pub restarts: usize,
    /// What the selector is trained against.
    #[serde(default = "default_target")]
    pub selector_target: SelectorTarget,
    /// Which split selects the reported checkpoint.
    #[serde(default = "default_selection")]
    pub selection: Selection,
    /// Classifier pre-training on clusters.
    #[serde(default = "default_pretrain")]
    pub pretrain: Phase,
    /// Selector pre-training.
    #[serde(default = "default_selector")]
    pub selector_pretrain: Phase,
    /// Adversarial rounds: each `epochs` selector epochs then `epochs` classifier epochs, the
    /// learning rate running on across rounds.
    #[serde(default = "default_adversarial")]
    pub adversarial: Adversarial,
    /// The adversarial classifier loss.
    #[serde(default)]
    pub loss: LossWeights,
}

/// The adversarial schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adversarial {
    /// Rounds (the reference: 40).
    pub rounds: usize,
    /// Epochs of each side per round (the reference: 6).
    pub epochs: usize,
    /// Learning rate of the first epoch (the reference: 0.001).
    pub lr: f64,
    /// Epochs between halvings, counted across rounds (the reference: 30).
    pub halve_every: usize,
}

fn default_batch() -> usize {
    8
}
fn default_splitting() -> Splitting {
    Splitting::KMeans
}
fn default_restarts() -> usize {
    50
}
fn default_target() -> SelectorTarget {
    SelectorTarget::SingleLabel
}
fn default_selection() -> Selection {
    Selection::Validation
}
fn default_pretrain() -> Phase {
    Phase {
        epochs: 30,
        lr: 0.01,
        halve_every: 6,
    }
}
fn default_selector() -> Phase {
    Phase {
        epochs: 20,
        lr: 0.01,
        halve_every: 8,
    }
}
fn default_adversarial() -> Adversarial {
    Adversarial {
        rounds: 40,
        epochs: 6,
        lr: 0.001,
        halve_every: 30,
    }
}

impl DitmosConfig {
    /// Checks the values that would fail late.
    pub fn validate(&self) -> Result<(), String> {
        if self.classifiers < 2 {
            return Err(format!(
                "ditmos.classifiers must be at least 2, got {}",
                self.classifiers
            ));
        }
        if self.batch_size == 0 {
            return Err("ditmos.batch_size must be at least 1".into());
        }
        for (name, lr) in [
            ("pretrain", self.pretrain.lr),
            ("selector_pretrain", self.selector_pretrain.lr),
            ("adversarial", self.adversarial.lr),
        ] {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(format!("ditmos.{name}.lr must be positive, got {lr}"));
            }
        }
        Ok(())
    }
}
