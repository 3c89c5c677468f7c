//! Structured channel pruning: whole channels leave the graph, so the pruned model is physically
//! smaller (fewer weights, fewer MACs, smaller activations) on every runtime.
//!
//! [`channels::units`] finds the channels that must go together (a dependency graph over
//! channel slots: residual sums, concatenations, depthwise convolutions and flatten → linear
//! couple them); [`importance::scores`] rates them (L1, L2, batch-norm γ); [`plan::plan`]
//! picks the least important for a MACs target, ranked globally or layer by layer; and
//! [`apply::remove`] cuts them out of the graph and its weights. Fine-tuning the result is the
//! trainer's job. [`magnitude`] is the unstructured counterpart: masks over the smallest
//! weights.

pub mod apply;
pub mod channels;
pub mod importance;
pub mod magnitude;
pub mod plan;

use serde::{Deserialize, Serialize};
use tinyfit_graph::{Graph, GraphError, Weights};

pub use channels::{Unit, Units};
pub use importance::Criterion;
pub use plan::{Ranking, Resource};

/// Why pruning could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The graph or the pruned graph does not check.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A weight tensor the graph needs is missing.
    #[error("weights lack tensor '{0}'")]
    MissingTensor(String),
    /// A unit index out of range.
    #[error("no prunable unit {0}")]
    NoSuchUnit(usize),
    /// Every channel of a layer would go.
    #[error("pruning would remove every channel of layer '{0}'")]
    EmptyLayer(String),
    /// The batch-norm criterion on a graph whose prunable channels pass no batch norm.
    #[error(
        "the bn_gamma criterion needs batch norms on the prunable channels; this graph has none"
    )]
    NoBatchNorm,
    /// The target needs more than the prunable channels allow.
    #[error(
        "cannot reach {target} ({resource:?}): removing every prunable channel the keep fraction allows leaves {reachable}"
    )]
    TargetOutOfReach {
        /// What the target limits.
        resource: Resource,
        /// The amount asked for.
        target: u64,
        /// The least pruning can reach.
        reachable: u64,
    },
    /// A target outside (0, 1].
    #[error("the fraction to keep must be in (0, 1], got {0}")]
    BadTarget(f64),
    /// The Taylor criterion without gradients.
    #[error("the taylor criterion needs gradients of the loss on training batches")]
    NoGradients,
    /// A sparsity outside [0, 1).
    #[error("the sparsity must be in [0, 1), got {0}")]
    BadSparsity(f64),
}

/// What to prune for, and how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PruneConfig {
    /// Channel importance.
    pub criterion: Criterion,
    /// Global or layer-wise ranking.
    pub ranking: Ranking,
    /// What the target limits.
    pub resource: Resource,
    /// Fraction of `resource` to keep, in (0, 1].
    pub keep: f64,
    /// Fraction of every layer's channels that stays (at least one).
    pub min_keep: f64,
}

/// What a pruning step did.
#[derive(Debug, Clone)]
pub struct Pruned {
    /// The smaller graph.
    pub graph: Graph,
    /// Its weights.
    pub weights: Weights,
    /// Units removed, of how many prunable.
    pub removed: usize,
    /// Prunable units before.
    pub prunable: usize,
    /// MACs per sample before and after.
    pub macs: (u64, u64),
    /// Parameters before and after.
    pub params: (u64, u64),
    /// The target's resource before and after.
    pub resource: (u64, u64),
}

/// Prunes `graph` to at most `config.keep` of its `config.resource`; `gradients` (the
/// loss's gradients on training batches, as weights) serve the Taylor criterion.
pub fn prune(
    graph: &Graph,
    weights: &Weights,
    config: &PruneConfig,
    gradients: &[Weights],
) -> Result<Pruned, PruneError> {
    if !(config.keep > 0.0 && config.keep <= 1.0) {
        return Err(PruneError::BadTarget(config.keep));
    }
    let analysis = graph.analyze()?;
    let units = channels::units(graph, &analysis).units;
    let scores = importance::scores(graph, weights, &units, config.criterion, gradients)?;
    let before = config.resource.measure(graph, &analysis);
    let target = (before as f64 * config.keep).floor() as u64;
    let removed = plan::plan(
        graph,
        weights,
        &units,
        &scores,
        config.ranking,
        config.resource,
        target,
        config.min_keep,
    )?;
    let (pruned, pruned_weights) = apply::remove(graph, &analysis, weights, &units, &removed)?;
    let after = pruned.analyze()?;
    Ok(Pruned {
        resource: (before, config.resource.measure(&pruned, &after)),
        graph: pruned,
        weights: pruned_weights,
        removed: removed.len(),
        prunable: units.len(),
        macs: (analysis.macs(), after.macs()),
        params: (analysis.params(), after.params()),
    })
}
