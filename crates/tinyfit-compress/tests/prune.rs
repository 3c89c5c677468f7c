//! Structured pruning: coupled channels go together, the pruned graph is smaller and computes
//! what the original computes with those channels silenced.

use tinyfit_compress::prune::{
    self, Criterion, PruneConfig, PruneError, Ranking, Resource, Unit, apply, channels,
};
use tinyfit_graph::{Graph, Weights};
use tinyfit_train::{GraphModel, Value, cpu, init};

/// conv → bn → relu → conv → bn, summed with the first relu (a residual), then depthwise, a
/// pointwise projection, global pooling and a classifier.
fn residual() -> Graph {
    Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [3, 16]}],
        "nodes": [
            {"name": "c1", "op": "conv1d", "out_channels": 8, "kernel": 3, "padding": 1},
            {"name": "bn1", "op": "batch_norm"},
            {"name": "r1", "op": "relu"},
            {"name": "c2", "op": "conv1d", "out_channels": 8, "kernel": 3, "padding": 1},
            {"name": "bn2", "op": "batch_norm"},
            {"name": "sum", "op": "add", "inputs": ["bn2", "r1"]},
            {"name": "r2", "op": "relu"},
            {"name": "dw", "op": "conv1d", "out_channels": 8, "kernel": 3, "padding": 1, "groups": 8},
            {"name": "bn3", "op": "batch_norm"},
            {"name": "pw", "op": "conv1d", "out_channels": 6, "kernel": 1},
            {"name": "pool", "op": "max_pool1d", "kernel": 2},
            {"name": "gap", "op": "global_avg_pool"},
            {"name": "fc", "op": "linear", "out_features": 4}
        ]
    }))
    .unwrap()
}

/// Two branches concatenated (feature aggregation), a 1×1 mix, then flatten → linear.
fn concat() -> Graph {
    Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [2, 12]}],
        "nodes": [
            {"name": "a", "op": "conv1d", "out_channels": 4, "kernel": 3, "padding": 1},
            {"name": "b", "op": "conv1d", "out_channels": 3, "kernel": 5, "padding": 2, "inputs": ["x"]},
            {"name": "cat", "op": "concat", "inputs": ["a", "b"]},
            {"name": "r", "op": "relu"},
            {"name": "mix", "op": "conv1d", "out_channels": 5, "kernel": 1},
            {"name": "flat", "op": "flatten"},
            {"name": "fc", "op": "linear", "out_features": 3}
        ]
    }))
    .unwrap()
}

/// 2-D: conv → padding → pooling → flatten → linear → linear.
fn two_d() -> Graph {
    Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [1, 6, 6]}],
        "nodes": [
            {"name": "c", "op": "conv2d", "out_channels": 5, "kernel": 3, "stride": 2, "padding": "same"},
            {"name": "pad", "op": "pad", "padding": [[1, 0], [0, 1]]},
            {"name": "pool", "op": "avg_pool2d", "kernel": 2},
            {"name": "flat", "op": "flatten"},
            {"name": "fc1", "op": "linear", "out_features": 7},
            {"name": "r", "op": "relu"},
            {"name": "fc2", "op": "linear", "out_features": 2}
        ]
    }))
    .unwrap()
}

fn node(graph: &Graph, name: &str) -> usize {
    graph.nodes.iter().position(|n| n.name == name).unwrap()
}

fn weights(graph: &Graph, seed: u64) -> Weights {
    let mut w = init::pytorch_default(graph, &graph.analyze().unwrap(), seed);
    // Batch norms with non-trivial statistics and affine terms.
    for (name, t) in w.tensors.iter_mut() {
        let ramp = |i: usize, a: f32, b: f32| a + b * ((i * 7 % 5) as f32);
        if name.ends_with("running_mean") {
            t.data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = ramp(i, -0.1, 0.05));
        } else if name.ends_with("running_var") {
            t.data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = ramp(i, 0.5, 0.2));
        } else if name.starts_with("bn") && name.ends_with("weight") {
            t.data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = ramp(i, 0.6, 0.3));
        } else if name.starts_with("bn") && name.ends_with("bias") {
            t.data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = ramp(i, -0.2, 0.1));
        }
    }
    w
}

/// The float model's outputs on a fixed batch of four.
fn outputs(graph: &Graph, w: &Weights) -> Vec<f32> {
    let device = cpu();
    let shape = graph.inputs[0].shape.clone();
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..4 * n)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let t = burn::tensor::Tensor::<2>::from_data(burn::tensor::TensorData::new(x, [4, n]), &device);
    let out = GraphModel::new(graph, w, &device)
        .unwrap()
        .forward(vec![Value::R2(t).reshape(&shape)]);
    out[0].to_vec()
}

/// `w` with `unit` silenced: its weight rows, biases and batch-norm affine terms zero, so its
/// channel carries zeros everywhere.
fn silence(graph: &Graph, w: &mut Weights, unit: &Unit) {
    for &(n, c) in unit.rows.iter().chain(&unit.per_channel) {
        for param in ["weight", "bias"] {
            if let Some(t) = w
                .tensors
                .get_mut(&format!("{}.{param}", graph.nodes[n].name))
            {
                let len = t.data.len() / t.shape[0];
                t.data[c * len..(c + 1) * len].fill(0.0);
            }
        }
    }
}

/// Removing `chosen` units gives the original graph's outputs with those units silenced.
fn assert_removal_is_silencing(graph: &Graph, chosen: impl Fn(usize) -> bool) {
    let analysis = graph.analyze().unwrap();
    let units = channels::units(graph, &analysis).units;
    let w = weights(graph, 11);
    let removed: Vec<usize> = (0..units.len()).filter(|&u| chosen(u)).collect();
    assert!(!removed.is_empty());
    let mut silenced = w.clone();
    for &u in &removed {
        silence(graph, &mut silenced, &units[u]);
    }
    let (pruned, pw) = apply::remove(graph, &analysis, &w, &units, &removed).unwrap();
    let after = pruned.analyze().unwrap();
    assert!(after.params() < analysis.params());
    assert!(after.macs() < analysis.macs());
    let (a, b) = (outputs(graph, &silenced), outputs(&pruned, &pw));
    assert_eq!(a.len(), b.len());
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-5 * (1.0 + p.abs()), "{a:?}\nvs\n{b:?}");
    }
    // Silencing changed something: the test is not vacuous.
    assert_ne!(outputs(graph, &w), a);
}

#[test]
fn residual_sum_couples_both_branches_and_depthwise_follows() {
    let g = residual();
    let units = channels::units(&g, &g.analyze().unwrap()).units;
    let (c1, c2, dw, pw, fc) = (
        node(&g, "c1"),
        node(&g, "c2"),
        node(&g, "dw"),
        node(&g, "pw"),
        node(&g, "fc"),
    );
    // Channel 3 of the sum: both convolutions' rows, three batch norms, the depthwise channel,
    // and the columns of c2 (reading r1) and pw.
    let unit = units.iter().find(|u| u.rows.contains(&(c1, 3))).unwrap();
    assert_eq!(unit.rows, vec![(c1, 3), (c2, 3)]);
    assert_eq!(unit.per_channel.len(), 4, "bn1, bn2, dw, bn3: {unit:?}");
    assert!(unit.per_channel.contains(&(dw, 3)));
    assert_eq!(unit.columns, vec![(c2, 3), (pw, 3)]);
    // The projection's channels reach the classifier through pooling; the classifier's own
    // outputs are the graph's and stay.
    let proj = units.iter().find(|u| u.rows == vec![(pw, 5)]).unwrap();
    assert_eq!(proj.columns, vec![(fc, 5)]);
    assert!(units.iter().all(|u| u.rows.iter().all(|&(n, _)| n != fc)));
    assert_eq!(units.len(), 8 + 6);
    assert_removal_is_silencing(&g, |u| u % 3 == 1);
}

#[test]
fn concatenation_maps_each_branch_to_its_offset_and_flatten_to_feature_blocks() {
    let g = concat();
    let units = channels::units(&g, &g.analyze().unwrap()).units;
    let (b, mix, fc) = (node(&g, "b"), node(&g, "mix"), node(&g, "fc"));
    let second = units.iter().find(|u| u.rows == vec![(b, 1)]).unwrap();
    assert_eq!(second.columns, vec![(mix, 4 + 1)]);
    // mix's channel 2 is twelve flattened features.
    let mixed = units.iter().find(|u| u.rows == vec![(mix, 2)]).unwrap();
    assert_eq!(mixed.columns, (24..36).map(|f| (fc, f)).collect::<Vec<_>>());
    assert_removal_is_silencing(&g, |u| u == 0 || u == 5 || u == 8);
}

#[test]
fn two_d_padding_pooling_and_flatten_carry_channels() {
    let g = two_d();
    let units = channels::units(&g, &g.analyze().unwrap()).units;
    let (c, fc1) = (node(&g, "c"), node(&g, "fc1"));
    let first = units.iter().find(|u| u.rows == vec![(c, 0)]).unwrap();
    // [5, 3, 3] after the stride, [5, 4, 4] padded, [5, 2, 2] pooled: four features a channel.
    assert_eq!(first.columns, (0..4).map(|f| (fc1, f)).collect::<Vec<_>>());
    assert_removal_is_silencing(&g, |u| u % 2 == 0);
}

#[test]
fn shape_bound_operations_pin_their_channels() {
    let g = Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [4, 10]}],
        "nodes": [
            {"name": "c", "op": "conv1d", "out_channels": 4, "kernel": 1},
            {"name": "dw2", "op": "conv1d", "out_channels": 8, "kernel": 3, "groups": 4},
            {"name": "g", "op": "conv1d", "out_channels": 6, "kernel": 1, "groups": 2},
            {"name": "d", "op": "conv1d", "out_channels": 6, "kernel": 1},
            {"name": "shape", "op": "reshape", "shape": [3, 16]},
            {"name": "e", "op": "conv1d", "out_channels": 2, "kernel": 1}
        ]
    }))
    .unwrap();
    let units = channels::units(&g, &g.analyze().unwrap()).units;
    // c feeds a channel-multiplying depthwise, dw2 and g are grouped, d feeds a reshape, e is
    // the output: nothing is free.
    assert!(units.is_empty(), "{units:?}");
}

fn config(criterion: Criterion, ranking: Ranking, resource: Resource, keep: f64) -> PruneConfig {
    PruneConfig {
        criterion,
        ranking,
        resource,
        keep,
        min_keep: 0.25,
    }
}

#[test]
fn pruning_meets_a_macs_target_by_either_ranking() {
    let g = residual();
    let w = weights(&g, 5);
    // Gradients for the Taylor criterion: any tensors shaped like the weights.
    let gradients = vec![weights(&g, 6), weights(&g, 7)];
    for ranking in [Ranking::Global, Ranking::LayerWise] {
        for criterion in [
            Criterion::L1,
            Criterion::L2,
            Criterion::BnGamma,
            Criterion::Taylor,
        ] {
            let c = config(criterion, ranking, Resource::Macs, 0.5);
            let p = prune::prune(&g, &w, &c, &gradients).unwrap();
            assert!(
                p.macs.1 <= p.macs.0 / 2,
                "{ranking:?} {criterion:?}: {:?}",
                p.macs
            );
            assert!(p.params.1 < p.params.0);
            // Not far past the target: the shortest removal that meets it.
            assert!(
                p.macs.1 > p.macs.0 / 4,
                "{ranking:?} {criterion:?}: {:?}",
                p.macs
            );
            let analysis = p.graph.analyze().unwrap();
            p.weights
                .check(&p.graph, &analysis, std::path::Path::new("pruned"))
                .unwrap();
        }
    }
    // A target beyond what the keep fraction allows is refused with the figures.
    let mut c = config(Criterion::L1, Ranking::Global, Resource::Macs, 0.01);
    c.min_keep = 0.5;
    let err = prune::prune(&g, &w, &c, &[]).unwrap_err();
    assert!(matches!(err, PruneError::TargetOutOfReach { .. }), "{err}");
    assert!(err.to_string().contains("Macs"), "{err}");
    // Taylor without gradients says so.
    let c = config(Criterion::Taylor, Ranking::Global, Resource::Macs, 0.5);
    let err = prune::prune(&g, &w, &c, &[]).unwrap_err();
    assert!(matches!(err, PruneError::NoGradients), "{err}");
}

#[test]
fn pruning_meets_parameter_flash_and_sram_targets() {
    let g = residual();
    let w = weights(&g, 5);
    let full = g.analyze().unwrap();
    for resource in [Resource::Params, Resource::Flash, Resource::Sram] {
        let c = config(Criterion::L1, Ranking::Global, resource, 0.6);
        let p = prune::prune(&g, &w, &c, &[]).unwrap();
        assert_eq!(p.resource.0, resource.measure(&g, &full), "{resource:?}");
        assert!(
            p.resource.1 as f64 <= 0.6 * p.resource.0 as f64,
            "{resource:?}: {:?}",
            p.resource
        );
        let after = p.graph.analyze().unwrap();
        assert_eq!(p.resource.1, resource.measure(&p.graph, &after));
    }
}

#[test]
fn batch_norm_criterion_needs_batch_norms() {
    let g = concat();
    let w = weights(&g, 1);
    let c = config(Criterion::BnGamma, Ranking::Global, Resource::Macs, 0.5);
    let err = prune::prune(&g, &w, &c, &[]).unwrap_err();
    assert!(matches!(err, PruneError::NoBatchNorm), "{err}");
}

/// A channel whose parameters the loss does not depend on (zero gradient) has Taylor
/// importance zero and goes first.
#[test]
fn taylor_criterion_removes_the_channel_the_loss_ignores() {
    let g = concat();
    let w = weights(&g, 2);
    let mut grad = weights(&g, 3);
    let t = grad.tensors.get_mut("a.weight").unwrap();
    let len = t.data.len() / t.shape[0];
    t.data[2 * len..3 * len].iter_mut().for_each(|v| *v = 0.0);
    if let Some(b) = grad.tensors.get_mut("a.bias") {
        b.data[2] = 0.0;
    }
    let analysis = g.analyze().unwrap();
    let units = channels::units(&g, &analysis).units;
    let scores = prune::importance::scores(&g, &w, &units, Criterion::Taylor, &[grad]).unwrap();
    let zero: Vec<(usize, usize)> = units
        .iter()
        .zip(&scores)
        .filter(|(_, s)| **s == Some(0.0))
        .map(|(u, _)| u.rows[0])
        .collect();
    assert_eq!(zero, [(node(&g, "a"), 2)]);
}

#[test]
fn global_ranking_removes_the_smallest_filters_first() {
    let g = concat();
    let mut w = weights(&g, 2);
    // Shrink a's filter 2 and mix's filter 4 far below the rest of their layers.
    for (layer, row) in [("a", 2), ("mix", 4)] {
        let t = w.tensors.get_mut(&format!("{layer}.weight")).unwrap();
        let len = t.data.len() / t.shape[0];
        t.data[row * len..(row + 1) * len]
            .iter_mut()
            .for_each(|v| *v *= 1e-3);
    }
    let analysis = g.analyze().unwrap();
    let units = channels::units(&g, &analysis).units;
    let scores = prune::importance::scores(&g, &w, &units, Criterion::L1, &[]).unwrap();
    let target = analysis.macs() - 1;
    let removed = prune::plan::plan(
        &g,
        &w,
        &units,
        &scores,
        Ranking::Global,
        Resource::Macs,
        target,
        0.25,
    )
    .unwrap();
    let rows: Vec<(usize, usize)> = removed.iter().map(|&u| units[u].rows[0]).collect();
    assert_eq!(rows.len(), 1, "one unit meets a target one MAC below");
    assert!(
        [(node(&g, "a"), 2), (node(&g, "mix"), 4)].contains(&rows[0]),
        "{rows:?}"
    );
}
