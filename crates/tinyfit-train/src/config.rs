//! The `[train]` section of an experiment config.

use serde::{Deserialize, Serialize};

/// How to train: epochs, batches, optimiser, schedule, early stopping, seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Samples per training step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Samples per evaluation batch (does not change results beyond float rounding).
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Seed of the initial weights, the shuffling and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Optimiser and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule over epochs.
    #[serde(default)]
    pub schedule: Schedule,
    /// Stop when validation accuracy has not improved for this many epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Weight λ of an L1 penalty λ·Σ|γ| on every batch norm's scale (network slimming, Liu et
    /// al. 2017), which drives unimportant channels' γ towards zero for `prune --criterion
    /// bn-gamma`; 0 for none (typical: 1e-5 to 1e-4).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bn_gamma_l1: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn default_batch() -> usize {
    64
}

fn default_eval_batch() -> usize {
    256
}

/// Optimisers with PyTorch's semantics and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD` (dampening 0).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor (0 = none).
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.Adam` (weight decay as an L2 term in the gradient).
    Adam {
        /// Learning rate.
        lr: f64,
        /// β₁, β₂.
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// ε.
        #[serde(default = "default_adam_eps")]
        eps: f64,
        /// L2 penalty.
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW {
        /// Learning rate.
        lr: f64,
        /// β₁, β₂.
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// ε.
        #[serde(default = "default_adam_eps")]
        eps: f64,
        /// Decoupled weight decay (PyTorch default 0.01).
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
    },
}

fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_adamw_decay() -> f64 {
    0.01
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. } => *lr,
        }
    }

    /// The same optimiser with the base learning rate `lr` (fine-tuning usually wants less).
    pub fn with_lr(mut self, new: f64) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. } => *lr = new,
        }
        self
    }
}

/// Learning rate as a function of the epoch, stepped once per epoch as PyTorch's schedulers
/// usually are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// `StepLR`: multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `CosineAnnealingLR` with `T_max` = the configured epochs.
    Cosine {
        /// Rate at the end.
        #[serde(default)]
        min_lr: f64,
    },
}

fn default_gamma() -> f64 {
    0.1
}

impl Schedule {
    /// Learning rate of 0-based `epoch` out of `epochs`, from `base`.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => {
                base * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            Schedule::Cosine { min_lr } => {
                let t = epoch as f64 / epochs.max(1) as f64;
                min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }
}

impl TrainConfig {
    /// Checks values a typo could make meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("train.epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err("train.batch_size and train.eval_batch_size must be at least 1".into());
        }
        let lr = self.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("train.optimizer.lr must be positive, got {lr}"));
        }
        if let Schedule::Step { step_size: 0, .. } = self.schedule {
            return Err("train.schedule.step_size must be at least 1".into());
        }
        if !(self.bn_gamma_l1.is_finite() && self.bn_gamma_l1 >= 0.0) {
            return Err(format!(
                "train.bn_gamma_l1 must be zero or positive, got {}",
                self.bn_gamma_l1
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_pytorch() {
        let step = Schedule::Step {
            step_size: 10,
            gamma: 0.5,
        };
        assert_eq!(step.lr(0.1, 9, 30), 0.1);
        assert_eq!(step.lr(0.1, 10, 30), 0.05);
        let cos = Schedule::Cosine { min_lr: 0.0 };
        assert_eq!(cos.lr(0.1, 0, 10), 0.1);
        assert!((cos.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn reads_toml() {
        let c: TrainConfig = toml::from_str(
            "epochs = 3\n[optimizer]\nkind = \"sgd\"\nlr = 0.01\nmomentum = 0.9\nnesterov = true\n[schedule]\nkind = \"cosine\"\n",
        )
        .unwrap();
        assert_eq!(c.batch_size, 64);
        assert!(matches!(
            c.optimizer,
            OptimizerConfig::Sgd { nesterov: true, .. }
        ));
        assert!(c.validate().is_ok());
    }
}
