//! The SN-Net module runs each anchor as the anchor runs alone, keeps the stitches whose
//! activations line up, and its least-squares layers map the front anchor's activations
//! closer to what the end anchor expects than PyTorch's default initialisation does
//! (synthetic inputs and untrained anchors: tests of the wiring and the algebra, not of
//! accuracy). Each route as a standalone model computes what the SN-Net computes for it and
//! costs the parts it runs; quantised together, the routes share every layer's int8 constants.

use tinyfit_compress::PtqConfig;
use tinyfit_compress::ptq::quantize_together;
use tinyfit_graph::Graph;
use tinyfit_stitch::anchor::{Anchor, AnchorError};
use tinyfit_stitch::model::SnNet;
use tinyfit_stitch::space::Route;
use tinyfit_train::{GraphModel, cpu};

mod common;

use common::{window_dataset, windows};

fn snnet() -> SnNet {
    common::snnet(7, &cpu())
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

#[test]
fn each_route_as_a_model_computes_what_the_snnet_computes_for_it() {
    let net = snnet().init_least_squares(windows(100)).unwrap();
    let x = windows(5);
    let models = net.route_models();
    assert_eq!(models.len(), net.routes().len());
    for (r, m) in models.iter().enumerate() {
        let alone = GraphModel::new(&m.graph, &m.weights, &cpu())
            .unwrap()
            .logits(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let routed = net
            .forward(r, x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let worst = alone
            .iter()
            .zip(&routed)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "route {r}: logits differ by up to {worst}");
        assert_eq!(m.stands_in_for.is_some(), r >= 3);
    }
}

#[test]
fn a_stitched_route_costs_its_front_its_stitching_layer_and_its_end() {
    let net = snnet();
    let models = net.route_models();
    let anchors = net.anchor_blocks();
    for a in 0..3 {
        let analysis = models[a].graph.analyze().unwrap();
        assert_eq!(analysis.macs(), anchors[a].analysis().macs());
        assert_eq!(analysis.params(), anchors[a].analysis().params());
    }
    // S through block 3 (its relu4, node 13), a 16 → 32 channel map over 32 positions, then M
    // from block 3 (conv4, node 11) on.
    let r = net
        .routes()
        .iter()
        .position(|r| {
            matches!(r, Route::Stitched { pair: 0, stitch, .. } if (stitch.front, stitch.end) == (3, 3))
        })
        .unwrap();
    let nodes = |a: usize, range: std::ops::Range<usize>| -> u64 {
        anchors[a].analysis().nodes[range]
            .iter()
            .map(|n| n.shape.macs)
            .sum()
    };
    let analysis = models[r].graph.analyze().unwrap();
    assert_eq!(
        analysis.macs(),
        nodes(0, 0..14) + 16 * 32 * 32 + nodes(1, 11..17)
    );
    let (layer, replaced) = models[r].stands_in_for.clone().unwrap();
    assert!(layer.starts_with("layer"));
    assert_eq!(replaced, "anchor1/pool3");
}

#[test]
fn routes_quantised_together_share_every_layer_and_stitches_take_the_quantisation_they_stand_in_for()
 {
    let net = snnet().init_least_squares(windows(100)).unwrap();
    let models = net.route_models();
    let data = window_dataset(64);
    let pairs: Vec<_> = models.iter().map(|m| (&m.graph, &m.weights)).collect();
    let q = quantize_together(&pairs, &data, &PtqConfig::default()).unwrap();
    let mut shared_layers = 0;
    for a in &q {
        for b in &q {
            for (name, w) in &a.weights {
                if let Some(other) = b.weights.get(name) {
                    assert_eq!(w, other, "{name}: int8 weights differ between routes");
                    assert_eq!(
                        a.biases.get(name),
                        b.biases.get(name),
                        "{name}: biases differ"
                    );
                    shared_layers += 1;
                }
            }
            for (name, affine) in &a.activations {
                if let Some(other) = b.activations.get(name) {
                    assert_eq!(affine, other, "{name}: quantisation differs between routes");
                }
            }
        }
    }
    assert!(shared_layers > q.len() * 4);
    for (r, m) in models.iter().enumerate() {
        let Some((layer, replaced)) = &m.stands_in_for else {
            continue;
        };
        let Route::Stitched { end, .. } = net.routes()[r] else {
            unreachable!("only stitched routes stand in")
        };
        assert_eq!(
            q[r].activations[layer], q[end].activations[replaced],
            "route {r}: {layer} is quantised otherwise than {replaced}"
        );
    }
}
