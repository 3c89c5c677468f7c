//! The host kernels (AVX-512 VNNI matrix products, depthwise and add) give the same integers
//! as tinyfit-micro's portable kernels, which the LiteRT parity tests pin to LiteRT.
//!
//! The graphs aim at the host kernels' edge cases: channel counts that leave partial blocks of
//! sixteen, depths that are not multiples of four, strides, dilation, padding on every side,
//! 1×1 convolutions read in place, one-row fully connected layers, in-place sums, and
//! requantisation multipliers above one (left shifts) as well as below. On a CPU without the
//! host kernels both runs are portable and the test says so.

use tinyfit_deploy::{host_kernels, lower};
use tinyfit_graph::Graph;

mod common;
use common::{Rng, WEIGHT_SCALES, quantised_plain};

fn graphs() -> Vec<(Graph, usize)> {
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
            {"name": "c3", "op": "conv2d", "out_channels": 20, "kernel": [2, 5], "stride": [1, 2], "padding": [1, 3]},
            {"name": "dw2", "op": "conv2d", "out_channels": 20, "kernel": [3, 2], "groups": 20, "stride": 2, "padding": 1},
            {"name": "gap", "op": "global_avg_pool"},
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
    [(two_d, 8), (one_d, 3)]
        .into_iter()
        .map(|(json, host)| (Graph::from_value(json).expect("valid graph"), host))
        .collect()
}

#[test]
fn host_kernels_match_portable_kernels() {
    let mut rng = Rng(0x5eed_0f40_57ca_fe00);
    if host_kernels().is_none() {
        eprintln!("host kernels do not run on this CPU: both runs below are portable");
    }
    // Small weight scales give multipliers below one; large ones push some above one (the
    // 2-D graph only: the 1-D one then saturates nearly every output).
    for (weight_scales, graphs) in [
        (WEIGHT_SCALES, graphs()),
        ((0.01, 0.6), graphs()[..1].to_vec()),
    ] {
        for (graph, host) in graphs {
            let q = quantised_plain(graph, &mut rng, weight_scales);
            let program = lower(&q).expect("lowers");
            if host_kernels().is_some() {
                assert_eq!(
                    program.host_operations(),
                    host,
                    "operations on host kernels"
                );
            }
            let portable = program.portable();
            assert_eq!(portable.host_operations(), 0);
            let n = program.input(0).expect("input").shape.len();
            let mut distinct = std::collections::BTreeSet::new();
            for _ in 0..30 {
                let x: Vec<i8> = (0..n).map(|_| rng.i8()).collect();
                let fast = program.run(&[&x]).expect("runs");
                let reference = portable.run(&[&x]).expect("runs");
                assert_eq!(fast, reference);
                distinct.extend(fast[0].iter().copied());
            }
            assert!(distinct.len() > 10, "degenerate outputs: {distinct:?}");
        }
    }
}
