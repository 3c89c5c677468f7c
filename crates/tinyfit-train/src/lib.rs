//! Float training of tinyfit graphs on burn.
//!
//! [`GraphModel`] turns any [`tinyfit_graph::Graph`] into a trainable burn module;
//! [`init::pytorch_default`] gives it PyTorch's initial weights from a seed; [`train`] runs the
//! epoch loop with validation-based selection, early stopping and resumable checkpoints, from
//! given weights (fine-tuning) and with a teacher's soft targets ([`distill`]) and with weights held at zero ([`masks`]) if
//! asked.

pub mod batch;
pub mod channel_map;
mod checkpoint;
mod config;
pub mod distill;
mod error;
pub mod hints;
pub mod init;
pub mod layers;
pub mod loss;
pub mod masks;
mod metrics;
mod model;
mod trainer;
pub mod value;
pub mod weight_quant;

pub use checkpoint::{TrainState, exists as has_checkpoint};
pub use config::{OptimizerConfig, Schedule, TrainConfig};
pub use distill::{DistillConfig, Distillation};
pub use error::TrainError;
pub use hints::{HintConfig, HintOutcome, train_hints};
pub use masks::{EpochMasks, KeepMasks, Masking};
pub use metrics::{Metrics, MetricsBuilder};
pub use model::GraphModel;
pub use trainer::{
    EpochRecord, Observer, TrainOptions, TrainOutcome, best_weights_path, cpu, evaluate,
    loss_gradients, optimizer, train,
};
pub use value::Value;
pub use weight_quant::{Precision, WeightBits};
