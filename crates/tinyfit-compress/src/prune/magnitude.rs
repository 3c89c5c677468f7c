//! Unstructured magnitude pruning: the smallest weights of convolutions and linear layers become
//! zero, by one threshold per layer or one for the whole graph; [`GradualMagnitude`] tells the
//! trainer which to hold at zero each epoch, pacing the sparsity with [`polynomial_sparsity`]
//! (Zhu and Gupta, 2017).

use serde::{Deserialize, Serialize};
use tinyfit_graph::{Graph, Op, Weights};
use tinyfit_train::{EpochMasks, KeepMasks, Masking};

use super::PruneError;

/// Where the magnitude threshold is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every layer loses the same fraction of its weights.
    LayerWise,
    /// One threshold over all layers: large layers lose more, small ones less.
    Global,
}

/// Masks that zero `sparsity` (in [0, 1)) of the weights of every convolution and linear
/// layer by magnitude, per layer or globally; ties go by position, so the count is exact.
pub fn magnitude_masks(
    graph: &Graph,
    weights: &Weights,
    sparsity: f64,
    scope: Scope,
) -> Result<KeepMasks, PruneError> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(PruneError::BadSparsity(sparsity));
    }
    let mut tensors: Vec<(String, &[f32])> = Vec::new();
    for node in &graph.nodes {
        if matches!(node.op, Op::Conv1d(_) | Op::Conv2d(_) | Op::Linear(_)) {
            let name = format!("{}.weight", node.name);
            let t = weights
                .tensors
                .get(&name)
                .ok_or_else(|| PruneError::MissingTensor(name.clone()))?;
            tensors.push((name, &t.data));
        }
    }
    // The positions to zero: the `count` smallest magnitudes among `values`.
    let smallest = |values: &[(f32, usize, usize)], count: usize| -> Vec<(usize, usize)> {
        let mut order: Vec<&(f32, usize, usize)> = values.iter().collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        order[..count].iter().map(|&&(_, t, i)| (t, i)).collect()
    };
    let magnitudes = |t: usize| -> Vec<(f32, usize, usize)> {
        tensors[t]
            .1
            .iter()
            .enumerate()
            .map(|(i, w)| (w.abs(), t, i))
            .collect()
    };
    let zeroed: Vec<(usize, usize)> = match scope {
        Scope::LayerWise => (0..tensors.len())
            .flat_map(|t| {
                let m = magnitudes(t);
                let count = (sparsity * m.len() as f64).floor() as usize;
                smallest(&m, count)
            })
            .collect(),
        Scope::Global => {
            let all: Vec<(f32, usize, usize)> = (0..tensors.len()).flat_map(magnitudes).collect();
            let count = (sparsity * all.len() as f64).floor() as usize;
            smallest(&all, count)
        }
    };
    let mut keep: Vec<Vec<bool>> = tensors.iter().map(|(_, d)| vec![true; d.len()]).collect();
    for (t, i) in zeroed {
        keep[t][i] = false;
    }
    Ok(tensors.into_iter().map(|(n, _)| n).zip(keep).collect())
}

/// Sets the weights `masks` drop to zero.
pub fn apply_masks(masks: &KeepMasks, weights: &mut Weights) -> Result<(), PruneError> {
    for (name, keep) in masks {
        let t = weights
            .tensors
            .get_mut(name)
            .ok_or_else(|| PruneError::MissingTensor(name.clone()))?;
        for (w, &k) in t.data.iter_mut().zip(keep) {
            if !k {
                *w = 0.0;
            }
        }
    }
    Ok(())
}

/// Magnitude pruning paced over epochs: epoch e holds the smallest
/// [`polynomial_sparsity`]`(0, target, e + 1, 0, ramp_epochs)` of the weights at zero, chosen
/// afresh from the weights it starts with (weights already at zero are the smallest, so a
/// weight once pruned stays pruned). `ramp_epochs = 1` prunes to the target at once
/// (one-shot); the epochs after the ramp fine-tune under the final masks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GradualMagnitude {
    /// Final fraction of the weights at zero, in [0, 1).
    pub target: f64,
    /// One threshold per layer or one for the graph.
    pub scope: Scope,
    /// Epochs over which the sparsity rises to the target (at least one).
    pub ramp_epochs: usize,
}

impl Masking for GradualMagnitude {
    fn masks(&self, epoch: usize, graph: &Graph, weights: &Weights) -> Result<EpochMasks, String> {
        let ramp = self.ramp_epochs.max(1);
        let sparsity = polynomial_sparsity(0.0, self.target, epoch + 1, 0, ramp);
        let keep =
            magnitude_masks(graph, weights, sparsity, self.scope).map_err(|e| e.to_string())?;
        Ok(EpochMasks {
            keep,
            at_target: epoch + 1 >= ramp,
        })
    }
}

/// Zhu and Gupta's gradual schedule: the sparsity at `step`, rising from `initial` at `begin`
/// to `target` at `end` as s_f + (s_i − s_f)·(1 − (t − begin)/(end − begin))³ — fast at first,
/// while the network has redundancy to spare, slowly at the end; flat outside [begin, end].
pub fn polynomial_sparsity(
    initial: f64,
    target: f64,
    step: usize,
    begin: usize,
    end: usize,
) -> f64 {
    if step <= begin || end <= begin {
        return if step < end { initial } else { target };
    }
    let progress = ((step - begin) as f64 / (end - begin) as f64).min(1.0);
    target + (initial - target) * (1.0 - progress).powi(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyfit_graph::Tensor;

    fn graph_and_weights() -> (Graph, Weights) {
        let graph = Graph::from_value(serde_json::json!({
            "inputs": [{"name": "x", "shape": [1, 8]}],
            "nodes": [
                {"name": "c", "op": "conv1d", "out_channels": 2, "kernel": 2, "bias": false},
                {"name": "flat", "op": "flatten"},
                {"name": "fc", "op": "linear", "out_features": 2, "bias": false}
            ]
        }))
        .unwrap();
        let mut w = Weights::default();
        // Small weights in the convolution, large ones in the linear layer.
        w.tensors.insert(
            "c.weight".into(),
            Tensor {
                shape: vec![2, 1, 2],
                data: vec![0.1, -0.4, 0.3, -0.2],
            },
        );
        w.tensors.insert(
            "fc.weight".into(),
            Tensor {
                shape: vec![2, 14],
                data: (0..28).map(|i| (i as f32 - 13.5) * 0.5).collect(),
            },
        );
        (graph, w)
    }

    #[test]
    fn layer_wise_masks_take_the_same_fraction_of_every_layer() {
        let (g, w) = graph_and_weights();
        let masks = magnitude_masks(&g, &w, 0.5, Scope::LayerWise).unwrap();
        assert_eq!(masks["c.weight"], vec![false, true, true, false]);
        let fc = &masks["fc.weight"];
        assert_eq!(fc.iter().filter(|&&k| !k).count(), 14);
        // The fourteen smallest magnitudes: indices 7..=20 (|i − 13.5| ≤ 6.5).
        assert!(
            fc.iter()
                .enumerate()
                .all(|(i, &k)| k != (7..=20).contains(&i))
        );
        let epoch = EpochMasks {
            keep: masks.clone(),
            at_target: true,
        };
        assert!((epoch.sparsity() - 0.5).abs() < 1e-12);
        let mut pruned = w.clone();
        apply_masks(&masks, &mut pruned).unwrap();
        assert_eq!(pruned.tensors["c.weight"].data, vec![0.0, -0.4, 0.3, 0.0]);
    }

    #[test]
    fn a_global_threshold_takes_the_smallest_weights_anywhere() {
        let (g, w) = graph_and_weights();
        let masks = magnitude_masks(&g, &w, 0.25, Scope::Global).unwrap();
        // 8 of 32: the four convolution weights (all below 0.5) and the four smallest of fc.
        assert!(masks["c.weight"].iter().all(|&k| !k));
        assert_eq!(masks["fc.weight"].iter().filter(|&&k| !k).count(), 4);
        assert!(magnitude_masks(&g, &w, 1.0, Scope::Global).is_err());
    }

    #[test]
    fn gradual_masks_grow_nested_and_reach_the_target_at_the_ramp_end() {
        let (g, w) = graph_and_weights();
        let schedule = GradualMagnitude {
            target: 0.5,
            scope: Scope::Global,
            ramp_epochs: 3,
        };
        let mut weights = w.clone();
        let mut previous: Option<KeepMasks> = None;
        for epoch in 0..4 {
            let m = schedule.masks(epoch, &g, &weights).unwrap();
            assert_eq!(m.at_target, epoch >= 2, "epoch {epoch}");
            if let Some(prev) = &previous {
                // A weight once dropped stays dropped.
                for (name, keep) in &m.keep {
                    assert!(keep.iter().zip(&prev[name]).all(|(&k, &p)| p || !k));
                }
            }
            apply_masks(&m.keep, &mut weights).unwrap();
            previous = Some(m.keep);
        }
        let last = EpochMasks {
            keep: previous.unwrap(),
            at_target: true,
        };
        assert!((last.sparsity() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn polynomial_schedule_starts_fast_and_ends_at_the_target() {
        let s = |t| polynomial_sparsity(0.0, 0.8, t, 2, 12);
        assert_eq!(s(0), 0.0);
        assert_eq!(s(2), 0.0);
        assert!((s(12) - 0.8).abs() < 1e-12);
        assert!((s(20) - 0.8).abs() < 1e-12);
        // Half way in time, seven eighths of the way in sparsity.
        assert!((s(7) - 0.7).abs() < 1e-12);
        assert!((1..20).all(|t| s(t) >= s(t - 1)));
    }
}
