//! The SN-Net module runs each anchor as the anchor runs alone, keeps the stitches whose
//! activations line up, and its least-squares layers map the front anchor's activations
//! closer to what the end anchor expects than PyTorch's default initialisation does
//! (synthetic inputs and untrained anchors: tests of the wiring and the algebra, not of
//! accuracy).

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use tinyfit_graph::{Graph, Weights};
use tinyfit_stitch::anchor::{Anchor, AnchorError};
use tinyfit_stitch::model::SnNet;
use tinyfit_stitch::space::{Direction, Route, Space, Window};
use tinyfit_train::{Value, cpu, init};

const BLOCKS: [&str; 4] = ["relu1", "pool2", "pool3", "relu4"];

fn anchor(size: &str) -> Anchor {
    let graph = Graph::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/graphs")
            .join(format!("hapt_anchor_{size}.json")),
    )
    .unwrap();
    let blocks: Vec<String> = BLOCKS.iter().map(|s| s.to_string()).collect();
    Anchor::new(graph, None, &blocks).unwrap()
}

fn weights(anchor: &Anchor, seed: u64) -> Weights {
    init::pytorch_default(&anchor.graph, anchor.analysis(), seed)
}

/// A batch of `n` deterministic pseudo-random 6 × 128 windows.
fn windows(n: usize) -> Value {
    let values: Vec<f32> = (0..n * 6 * 128)
        .map(|i| (((i * 7919) % 1009) as f32 / 504.5) - 1.0)
        .collect();
    Value::R2(Tensor::<2>::from_data(
        TensorData::new(values, [n, 6 * 128]),
        &cpu(),
    ))
    .reshape(&[6, 128])
}

fn snnet() -> SnNet {
    let anchors: Vec<Anchor> = ["s", "m", "l"].iter().map(|s| anchor(s)).collect();
    let w: Vec<Weights> = anchors
        .iter()
        .enumerate()
        .map(|(i, a)| weights(a, i as u64))
        .collect();
    let space = Space::new(&[4, 4, 4], Direction::FastToSlow, Window::default());
    SnNet::new(anchors, &w, &space, 7, &cpu()).unwrap()
}

#[test]
fn only_stitches_whose_activations_line_up_are_kept() {
    let net = snnet();
    // Per pair, the window gives 10 stitches; (0, 0) and (1, 0) would feed the input, and
    // four more join feature maps of different lengths (pooling inside the blocks).
    let stitched: Vec<(usize, usize)> = net
        .routes()
        .iter()
        .filter_map(|r| match *r {
            Route::Stitched {
                stitch, pair: 0, ..
            } => Some((stitch.front, stitch.end)),
            _ => None,
        })
        .collect();
    assert_eq!(stitched, [(0, 1), (1, 2), (2, 3), (3, 3)]);
    assert_eq!(net.routes().len(), 3 + 2 * 4);
    assert_eq!(net.dropped(), 2 * 6);
    // One layer per window (and pair of channel counts): (2, 3) and (3, 3) share theirs, both
    // mapping 16 to 32 channels (S to M) or 32 to 64 (M to L).
    assert_eq!(net.layers.len(), 2 * 3);
}

#[test]
fn anchor_routes_are_the_anchors() {
    let net = snnet();
    let x = windows(3);
    for a in 0..3 {
        let alone = net.anchors[a].logits(x.clone()).into_data();
        let routed = net.forward(a, x.clone()).into_data();
        assert_eq!(alone, routed);
    }
    for r in 3..net.routes().len() {
        assert_eq!(net.forward(r, x.clone()).dims(), [3, 6]);
    }
}

#[test]
fn least_squares_layers_fit_the_end_activations_better_than_default_ones() {
    let net = snnet();
    let x = windows(100);
    let fitted = snnet().init_least_squares(x.clone()).unwrap();
    // Route (0 → 1) of pair 0: S's block 0 output into M's block 1 input.
    let residual = |net: &SnNet| {
        let front = net.anchors[0]
            .forward_span(std::slice::from_ref(&x), Vec::new(), 3)
            .pop()
            .unwrap();
        let target = net.anchors[1]
            .forward_span(std::slice::from_ref(&x), Vec::new(), 3)
            .pop()
            .unwrap();
        let mapped = net.layers[0].forward(front).to_vec();
        let target = target.to_vec();
        mapped
            .iter()
            .zip(&target)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / target.len() as f64
    };
    let (before, after) = (residual(&net), residual(&fitted));
    assert!(
        after < 0.5 * before,
        "mean squared error {after} after least squares against {before} before"
    );
}

#[test]
fn a_block_list_that_does_not_cut_the_graph_is_refused() {
    let graph = Graph::from_value(serde_json::json!({
        "name": "residual",
        "inputs": [{"name": "x", "shape": [2, 8]}],
        "nodes": [
            {"name": "c1", "op": "conv1d", "out_channels": 2, "kernel": 3, "padding": 1},
            {"name": "r1", "op": "relu"},
            {"name": "c2", "op": "conv1d", "out_channels": 2, "kernel": 3, "padding": 1},
            {"name": "sum", "op": "add", "inputs": ["c2", "c1"]},
            {"name": "flat", "op": "flatten"},
            {"name": "fc", "op": "linear", "out_features": 3}
        ]
    }))
    .unwrap();
    let blocks = vec!["r1".to_string(), "sum".to_string()];
    match Anchor::new(graph, None, &blocks) {
        Err(e @ AnchorError::Blocks { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("'sum' reads a value from before 'r1'"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
