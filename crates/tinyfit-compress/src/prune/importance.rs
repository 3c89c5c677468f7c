//! How much each unit matters, by the classic criteria.

use serde::{Deserialize, Serialize};
use tinyfit_graph::{Graph, Weights};

use super::PruneError;
use super::channels::Unit;

/// A unit's importance score: lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Σ|w| of the unit's weight rows (Li et al., "Pruning filters for efficient ConvNets").
    L1,
    /// ‖w‖₂ of the unit's weight rows.
    L2,
    /// Σ|γ| of the unit's batch norms (Liu et al., network slimming; train with an L1 penalty
    /// on γ, `[train] bn_gamma_l1`, for it to separate channels).
    BnGamma,
    /// First-order Taylor estimate of the loss change when the unit goes (Molchanov et al.,
    /// 2019): per training batch (Σ g·w)² over the unit's weight rows, biases and per-channel
    /// parameters, averaged over the batches.
    Taylor,
}

/// The importance of every unit by `criterion`; `None` where the criterion does not apply
/// (a unit that passes no batch norm, under [`Criterion::BnGamma`]), which pruning then keeps.
pub fn scores(
    graph: &Graph,
    weights: &Weights,
    units: &[Unit],
    criterion: Criterion,
    gradients: &[Weights],
) -> Result<Vec<Option<f64>>, PruneError> {
    if criterion == Criterion::Taylor && gradients.is_empty() {
        return Err(PruneError::NoGradients);
    }
    let tensor = |node: usize, param: &str| {
        let name = format!("{}.{param}", graph.nodes[node].name);
        weights
            .tensors
            .get(&name)
            .ok_or(PruneError::MissingTensor(name))
    };
    let scores = units
        .iter()
        .map(|unit| match criterion {
            Criterion::L1 | Criterion::L2 => {
                let mut sum = 0.0;
                for &(node, row) in &unit.rows {
                    let w = tensor(node, "weight")?;
                    let len = w.data.len() / w.shape[0];
                    for v in &w.data[row * len..(row + 1) * len] {
                        let v = f64::from(*v);
                        sum += if criterion == Criterion::L1 {
                            v.abs()
                        } else {
                            v * v
                        };
                    }
                }
                Ok(Some(if criterion == Criterion::L2 {
                    sum.sqrt()
                } else {
                    sum
                }))
            }
            Criterion::Taylor => {
                // Channel `c` of a tensor whose first axis is the channel.
                let channel = |t: &'_ tinyfit_graph::Tensor, c: usize| {
                    let len = t.data.len() / t.shape[0].max(1);
                    c * len..(c + 1) * len
                };
                let mut total = 0.0;
                for g in gradients {
                    let mut sum = 0.0;
                    for &(node, c) in unit.rows.iter().chain(&unit.per_channel) {
                        for param in ["weight", "bias"] {
                            let name = format!("{}.{param}", graph.nodes[node].name);
                            let (Some(w), Some(d)) =
                                (weights.tensors.get(&name), g.tensors.get(&name))
                            else {
                                continue;
                            };
                            let (ws, ds) = (&w.data[channel(w, c)], &d.data[channel(d, c)]);
                            sum += ws
                                .iter()
                                .zip(ds)
                                .map(|(w, d)| f64::from(*w) * f64::from(*d))
                                .sum::<f64>();
                        }
                    }
                    total += sum * sum;
                }
                Ok(Some(total / gradients.len() as f64))
            }
            Criterion::BnGamma => {
                let mut gammas = None;
                for &(node, c) in &unit.per_channel {
                    if graph.nodes[node].op.kind() == "batch_norm" {
                        let g = f64::from(tensor(node, "weight")?.data[c]).abs();
                        *gammas.get_or_insert(0.0) += g;
                    }
                }
                Ok(gammas)
            }
        })
        .collect::<Result<Vec<_>, PruneError>>()?;
    if !units.is_empty() && scores.iter().all(Option::is_none) {
        return Err(PruneError::NoBatchNorm);
    }
    Ok(scores)
}
