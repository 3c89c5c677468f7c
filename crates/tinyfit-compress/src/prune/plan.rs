//! Choosing which units to remove for a target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tinyfit_graph::{Graph, Weights};

use super::channels::Unit;
use super::{PruneError, apply};

/// How units of different layers are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranking {
    /// One ranking over the whole graph, each score divided by the mean score of its layer
    /// (the units sharing its first producing layer), so that layers of different scales
    /// compete fairly; the MACs target decides how many go.
    Global,
    /// The same fraction of every layer's units, that layer's lowest first (Li et al.); the
    /// fraction is the smallest that meets the MACs target.
    LayerWise,
}

/// The units to remove (indices into `units`) so that the pruned graph needs at most
/// `target_macs` per sample, keeping at least `min_keep` (a fraction, at least one unit) of
/// every layer's units and every unit without a score. Fails if even the most that may go is
/// not enough.
pub fn plan(
    graph: &Graph,
    weights: &Weights,
    units: &[Unit],
    scores: &[Option<f64>],
    ranking: Ranking,
    target_macs: u64,
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
    let macs_after = |step: usize| -> Result<u64, PruneError> {
        let (g, _) = apply::remove(graph, &analysis, weights, units, &select(step))?;
        Ok(g.analyze()?.macs())
    };
    let reachable = macs_after(steps)?;
    if reachable > target_macs {
        return Err(PruneError::TargetOutOfReach {
            target: target_macs,
            reachable,
        });
    }
    // The first step that meets the target: MACs fall as the steps grow.
    let (mut lo, mut hi) = (0, steps);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if macs_after(mid)? <= target_macs {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(select(lo))
}
