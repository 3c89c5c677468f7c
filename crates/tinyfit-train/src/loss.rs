//! Losses the methods build their objectives from.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Per-sample cross-entropy `[N]` of logits `[N, C]` against labels `[N]` (DiTMoS masks and
/// weighs it per sample; SN-Net mixes it with hard distillation targets).
pub fn per_sample_cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let n = labels.dims()[0];
    log_softmax(logits, 1)
        .gather(1, labels.reshape([n, 1]))
        .reshape([n])
        .neg()
}
