//! Helpers shared by the integration tests: seeded random data and random quantisations.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeMap;

use tinyfit_graph::Graph;
use tinyfit_graph::quant::{Affine, QuantGraph, QuantTensor};

/// Per-channel weight scales giving requantisation multipliers below one, as trained models
/// have.
pub const WEIGHT_SCALES: (f32, f32) = (0.002, 0.01);

/// xorshift64: deterministic test data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn i8(&mut self) -> i8 {
        self.next() as i8
    }

    /// Uniform in [lo, hi).
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// Random quantisation of a graph: activations share their producer's
/// parameters, pooling, padding and flattening keep their input's; weight scales are drawn
/// per channel from `weight_scales`.
pub fn quantised_plain(graph: Graph, rng: &mut Rng, weight_scales: (f32, f32)) -> QuantGraph {
    let analysis = graph.analyze().expect("checks");
    let mut q = QuantGraph {
        activations: BTreeMap::new(),
        weights: BTreeMap::new(),
        biases: BTreeMap::new(),
        graph: graph.clone(),
        interface: Default::default(),
    };
    let fresh = |rng: &mut Rng| Affine {
        scale: rng.f32(0.02, 0.08),
        zero_point: (rng.next() % 60) as i32 - 30,
    };
    q.activations
        .insert(graph.inputs[0].name.clone(), fresh(rng));
    for (node, a) in graph.nodes.iter().zip(&analysis.nodes) {
        let input = match a.inputs[0] {
            tinyfit_graph::ValueRef::Input(i) => graph.inputs[i].name.clone(),
            tinyfit_graph::ValueRef::Node(j) => graph.nodes[j].name.clone(),
        };
        let own = match node.op.kind() {
            "relu" | "relu6" | "max_pool1d" | "max_pool2d" | "avg_pool1d" | "avg_pool2d"
            | "global_avg_pool" | "flatten" | "pad" => q.activations[&input],
            _ => fresh(rng),
        };
        q.activations.insert(node.name.clone(), own);
        if let Some(w) = a.shape.tensors.iter().find(|t| t.name == "weight") {
            let channels = w.shape[0];
            q.weights.insert(
                node.name.clone(),
                QuantTensor {
                    shape: w.shape.clone(),
                    data: (0..w.shape.iter().product::<usize>())
                        .map(|_| rng.i8())
                        .collect(),
                    scales: (0..channels)
                        .map(|_| rng.f32(weight_scales.0, weight_scales.1))
                        .collect(),
                },
            );
            q.biases.insert(
                node.name.clone(),
                (0..channels)
                    .map(|_| (rng.next() % 2001) as i32 - 1000)
                    .collect(),
            );
        }
    }
    // A fused relu's producer writes the relu's value: one set of parameters for both.
    for (node, a) in graph.nodes.iter().zip(&analysis.nodes) {
        if let ("relu" | "relu6", [tinyfit_graph::ValueRef::Node(p)]) =
            (node.op.kind(), &a.inputs[..])
        {
            let affine = q.activations[&graph.nodes[*p].name];
            q.activations.insert(node.name.clone(), affine);
        }
    }
    q
}

/// `len` deterministic int8 values covering the whole range (the high byte of a linear
/// congruential sequence started at `seed`).
pub fn seeded_inputs(len: usize, seed: u64) -> Vec<i8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as i8
        })
        .collect()
}

/// Graphs aimed at the kernels' edge cases, each with the number of its operations the host
/// kernels take: channel counts that leave partial blocks of four and sixteen, depths that are
/// not multiples of four, strides, dilation along both axes, padding on every side, 1×1
/// convolutions read in place, one-row and many-row fully connected layers, in-place sums; with
/// large weight scales, requantisation multipliers above one (left shifts) as well as below.
pub fn edge_case_graphs() -> Vec<(Graph, usize)> {
    // Each graph with the number of operations the host kernels take.
    let two_d = serde_json::json!({
        "inputs": [{"name": "x", "shape": [3, 17, 19]}],
        "nodes": [
            {"name": "c1", "op": "conv2d", "out_channels": 33, "kernel": 3, "stride": 2, "padding": "same"},
            {"name": "r1", "op": "relu6"},
            {"name": "dw", "op": "conv2d", "out_channels": 33, "kernel": 3, "groups": 33, "dilation": 2, "padding": "same"},
            {"name": "r2", "op": "relu"},
            {"name": "pw", "op": "conv2d", "out_channels": 40, "kernel": 1},
            {"name": "pw2", "op": "conv2d", "out_channels": 40, "kernel": 1, "inputs": ["r1"]},
            {"name": "sum", "op": "add", "inputs": ["pw", "pw2"]},
            {"name": "c3", "op": "conv2d", "out_channels": 20, "kernel": [2, 5], "stride": [1, 2], "padding": [1, 3], "dilation": [2, 2]},
            {"name": "dw2", "op": "conv2d", "out_channels": 20, "kernel": [3, 2], "groups": 20, "stride": 2, "padding": 1},
            {"name": "gap", "op": "global_avg_pool"},
            {"name": "squeeze", "op": "linear", "out_features": 3},
            {"name": "fc", "op": "linear", "out_features": 70}
        ]
    });
    let one_d = serde_json::json!({
        "inputs": [{"name": "x", "shape": [5, 50]}],
        "nodes": [
            {"name": "c1", "op": "conv1d", "out_channels": 24, "kernel": 5, "stride": 2, "padding": 2},
            {"name": "r1", "op": "relu"},
            {"name": "dw", "op": "conv1d", "out_channels": 24, "kernel": 3, "groups": 24, "padding": 1},
            {"name": "flat", "op": "flatten"},
            {"name": "fc", "op": "linear", "out_features": 17}
        ]
    });
    [(two_d, 9), (one_d, 3)]
        .into_iter()
        .map(|(json, host)| (Graph::from_value(json).expect("valid graph"), host))
        .collect()
}

/// Two branches concatenated along channels, then a convolution and a fully connected layer:
/// under [`quantised_plain`] the branches and the concatenation are quantised differently.
pub fn concat_graph() -> Graph {
    Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [4, 40]}],
        "nodes": [
            {"name": "a", "op": "conv1d", "out_channels": 6, "kernel": 3, "padding": 1},
            {"name": "b", "op": "conv1d", "out_channels": 5, "kernel": 5, "padding": 2, "inputs": ["x"]},
            {"name": "cat", "op": "concat", "inputs": ["a", "b"]},
            {"name": "c", "op": "conv1d", "out_channels": 7, "kernel": 3},
            {"name": "flat", "op": "flatten"},
            {"name": "fc", "op": "linear", "out_features": 5}
        ]
    }))
    .expect("valid graph")
}

/// A selector and two classifiers in one graph, as DiTMoS deploys them: the selector's pooled
/// feature map `f1` feeds its routing head and both classifiers (concatenated with their own
/// first block). Outputs: the two routing scores, then each classifier's three logits.
pub fn routed_graph() -> Graph {
    let mut nodes = vec![
        serde_json::json!({"name": "s1", "op": "conv1d", "out_channels": 6, "kernel": 3, "padding": 1}),
        serde_json::json!({"name": "s1_relu", "op": "relu"}),
        serde_json::json!({"name": "f1", "op": "max_pool1d", "kernel": 2}),
        serde_json::json!({"name": "s2", "op": "conv1d", "out_channels": 4, "kernel": 3}),
        serde_json::json!({"name": "s_flat", "op": "flatten"}),
        serde_json::json!({"name": "route", "op": "linear", "out_features": 2}),
    ];
    for k in 0..2 {
        let n = |s: &str| format!("c{k}_{s}");
        nodes.extend([
            serde_json::json!({"name": n("a"), "op": "conv1d", "out_channels": 16, "kernel": 3, "padding": 1, "inputs": ["x"]}),
            serde_json::json!({"name": n("pool"), "op": "max_pool1d", "kernel": 2}),
            serde_json::json!({"name": n("cat"), "op": "concat", "inputs": [n("pool"), "f1"]}),
            serde_json::json!({"name": n("b"), "op": "conv1d", "out_channels": 5, "kernel": 3}),
            serde_json::json!({"name": n("flat"), "op": "flatten"}),
            serde_json::json!({"name": n("fc"), "op": "linear", "out_features": 3}),
        ]);
    }
    Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [4, 32]}],
        "nodes": nodes,
        "outputs": ["route", "c0_fc", "c1_fc"]
    }))
    .expect("valid graph")
}
