//! Weights held at zero through training: the masks of unstructured pruning.
//!
//! A [`Masking`] decides, at the start of every epoch, which weights stay (from the weights the
//! epoch starts with, so gradual schedules can prune a little more each epoch); the trainer
//! zeroes the others and zeroes them again after every optimiser step, so that neither the
//! gradient nor momentum can revive them.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use tinyfit_graph::{Graph, Weights};

use crate::error::TrainError;

/// Which weights stay, per weight tensor (`{node}.weight`), in PyTorch's row-major layout.
pub type KeepMasks = BTreeMap<String, Vec<bool>>;

/// The masks of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMasks {
    /// Which weights stay.
    pub keep: KeepMasks,
    /// Whether these are the run's final masks. Only epochs under the final masks compete for
    /// the best on validation: an earlier, denser model is not what was asked for.
    pub at_target: bool,
}

impl EpochMasks {
    /// The fraction of masked weights over every masked tensor.
    pub fn sparsity(&self) -> f64 {
        let total: usize = self.keep.values().map(Vec::len).sum();
        let zero: usize = self
            .keep
            .values()
            .map(|k| k.iter().filter(|&&b| !b).count())
            .sum();
        zero as f64 / total.max(1) as f64
    }
}

/// Decides the masks of each epoch.
pub trait Masking {
    /// The masks for `epoch` (0-based) of `graph`, given the weights it starts with.
    fn masks(&self, epoch: usize, graph: &Graph, weights: &Weights) -> Result<EpochMasks, String>;
}

/// Masks as 0/1 tensors on the training device, one per masked weight tensor in burn's layout.
#[derive(Debug, Clone)]
pub(crate) struct DeviceMasks {
    /// Per graph node (`None` for nodes without a mask).
    pub(crate) layers: Vec<Option<DeviceMask>>,
}

/// One layer's mask, of its weight's rank.
#[derive(Debug, Clone)]
pub(crate) enum DeviceMask {
    /// A linear layer's, transposed to burn's `[in, out]`.
    Rank2(Tensor<2>),
    /// A 1-D convolution's.
    Rank3(Tensor<3>),
    /// A 2-D convolution's.
    Rank4(Tensor<4>),
}

impl DeviceMasks {
    /// Uploads `keep` for `graph`, checking every mask against its weight tensor.
    pub(crate) fn new(
        graph: &Graph,
        weights: &Weights,
        keep: &KeepMasks,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let mut layers: Vec<Option<DeviceMask>> = vec![None; graph.nodes.len()];
        for (name, flags) in keep {
            let fail = |why: String| TrainError::Config(format!("pruning mask '{name}': {why}"));
            let node = name
                .strip_suffix(".weight")
                .and_then(|n| graph.nodes.iter().position(|node| node.name == n))
                .ok_or_else(|| fail("names no weight of the graph".into()))?;
            let w = weights
                .tensors
                .get(name)
                .ok_or_else(|| fail("the weights lack this tensor".into()))?;
            if w.data.len() != flags.len() {
                return Err(fail(format!(
                    "{} flags for a tensor of {} weights",
                    flags.len(),
                    w.data.len()
                )));
            }
            let values: Vec<f32> = flags.iter().map(|&k| f32::from(u8::from(k))).collect();
            let data = TensorData::new(values, w.shape.clone());
            layers[node] = Some(match w.shape.len() {
                2 => DeviceMask::Rank2(Tensor::<2>::from_data(data, device).transpose()),
                3 => DeviceMask::Rank3(Tensor::from_data(data, device)),
                4 => DeviceMask::Rank4(Tensor::from_data(data, device)),
                r => return Err(fail(format!("a weight of rank {r} cannot be masked"))),
            });
        }
        Ok(DeviceMasks { layers })
    }
}
