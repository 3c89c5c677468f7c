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
    /// on γ for it to separate channels).
    BnGamma,
}

/// The importance of every unit by `criterion`; `None` where the criterion does not apply
/// (a unit that passes no batch norm, under [`Criterion::BnGamma`]), which pruning then keeps.
pub fn scores(
    graph: &Graph,
    weights: &Weights,
    units: &[Unit],
    criterion: Criterion,
) -> Result<Vec<Option<f64>>, PruneError> {
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
