//! Choosing which units to remove for a target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tinyfit_graph::Summary;
use tinyfit_graph::{Analysis, Graph, Op, Weights};

use super::channels::Unit;
use super::{PruneError, apply};

/// How units of different layers are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranking {
    /// One ranking over the whole graph, each score divided by the mean score of its layer
    /// (the units sharing its first producing layer), so that layers of different scales
    /// compete fairly; the target decides how many go.
    Global,
    /// The same fraction of every layer's units, that layer's lowest first (Li et al.); the
    /// fraction is the smallest that meets the target.
    LayerWise,
}

/// What a pruning target limits, by the cost model of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Multiply-accumulates per sample.
    Macs,
    /// Trainable parameters.
    Params,
    /// Constant bytes deployed: int8 weights of convolutions and linear layers, and per output
    /// channel a 4-byte bias and an 8-byte requantisation multiplier (batch norms fold away).
    Flash,
    /// Activation bytes (int8) of the largest layer's inputs and output: the least any
    /// layer-by-layer arena can be, which the planner meets on sequential graphs.
    Sram,
}

impl Resource {
    /// The resource `graph` needs.
    pub fn measure(self, graph: &Graph, analysis: &Analysis) -> u64 {
        match self {
            Resource::Macs => analysis.macs(),
            Resource::Params => analysis.params(),
            Resource::Flash => graph
                .nodes
                .iter()
                .zip(&analysis.nodes)
                .filter_map(|(node, a)| {
                    let channels = match &node.op {
                        Op::Conv1d(c) | Op::Conv2d(c) => c.out_channels,
                        Op::Linear(l) => l.out_features,
                        _ => return None,
                    };
                    let weights = a.shape.tensors.iter().find(|t| t.name == "weight")?;
                    let count: usize = weights.shape.iter().product();
                    Some((count + 12 * channels) as u64)
                })
                .sum(),
            Resource::Sram => Summary::new(graph, analysis).peak_layer_bytes,
        }
    }
}

/// The units to remove (indices into `units`) so that the pruned graph needs at most `target`
/// of `resource`, keeping at least `min_keep` (a fraction, at least one unit) of every layer's
/// units and every unit without a score. Fails if even the most that may go is not enough.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    graph: &Graph,
    weights: &Weights,
    units: &[Unit],
    scores: &[Option<f64>],
    ranking: Ranking,
    resource: Resource,
    target: u64,
    min_keep: f64,
) -> Result<Vec<usize>, PruneError> {
    // A layer's scored units: those whose first producing row is in it.
    let mut layers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut score = vec![0.0; units.len()];
    for (i, unit) in units.iter().enumerate() {
        if let Some(s) = scores[i] {
            layers.entry(unit.rows[0].0).or_default().push(i);
            score[i] = s;
        }
    }
    let quota = |n: usize| n - ((min_keep * n as f64).ceil() as usize).clamp(1, n);
    // Each layer's units, lowest score first, cut to its quota.
    let ranked: Vec<Vec<usize>> = layers
        .values()
        .map(|members| {
            let mut m = members.clone();
            m.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
            m.truncate(quota(members.len()));
            m
        })
        .collect();
    // Candidate removals that grow with `step` in 0..=steps.
    let (steps, select): (usize, Box<dyn Fn(usize) -> Vec<usize>>) = match ranking {
        Ranking::Global => {
            let mut normalised = vec![0.0; units.len()];
            for members in layers.values() {
                let mean = members.iter().map(|&i| score[i]).sum::<f64>() / members.len() as f64;
                for &i in members {
                    normalised[i] = if mean > 0.0 { score[i] / mean } else { 0.0 };
                }
            }
            let mut order: Vec<usize> = ranked.iter().flatten().copied().collect();
            order.sort_by(|&a, &b| normalised[a].total_cmp(&normalised[b]).then(a.cmp(&b)));
            (order.len(), Box::new(move |k| order[..k].to_vec()))
        }
        Ranking::LayerWise => {
            // Step s of 1000 takes ⌈s/1000 · n⌉ of a layer of n units (within its quota).
            let sizes: Vec<usize> = layers.values().map(Vec::len).collect();
            let select = move |s: usize| {
                ranked
                    .iter()
                    .zip(&sizes)
                    .flat_map(|(m, &n)| m[..(n * s).div_ceil(1000).min(m.len())].iter().copied())
                    .collect()
            };
            (1000, Box::new(select))
        }
    };
    let analysis = graph.analyze()?;
    let after = |step: usize| -> Result<u64, PruneError> {
        let (g, _) = apply::remove(graph, &analysis, weights, units, &select(step))?;
        Ok(resource.measure(&g, &g.analyze()?))
    };
    let reachable = after(steps)?;
    if reachable > target {
        return Err(PruneError::TargetOutOfReach {
            resource,
            target,
            reachable,
        });
    }
    // The first step that meets the target: every resource falls as the steps grow.
    let (mut lo, mut hi) = (0, steps);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if after(mid)? <= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(select(lo))
}
