//! Batch-norm folding keeps the float function; PTQ yields a graph the int8 runtime runs.

use tinyfit_compress::fold::fold_batch_norms;
use tinyfit_compress::ptq::affine_for_range;
use tinyfit_graph::{Graph, Tensor};
use tinyfit_train::{GraphModel, Value, cpu, init};

fn graph() -> Graph {
    Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [3, 20]}],
        "nodes": [
            {"name": "c1", "op": "conv1d", "out_channels": 4, "kernel": 3, "padding": 1, "bias": false},
            {"name": "bn1", "op": "batch_norm"},
            {"name": "r1", "op": "relu"},
            {"name": "c2", "op": "conv1d", "out_channels": 5, "kernel": 3},
            {"name": "bn2", "op": "batch_norm", "eps": 0.001},
            {"name": "gap", "op": "global_avg_pool"},
            {"name": "fc", "op": "linear", "out_features": 2}
        ]
    }))
    .unwrap()
}

#[test]
fn folding_batch_norms_keeps_the_function() {
    let g = graph();
    let mut w = init::pytorch_default(&g, &g.analyze().unwrap(), 3);
    // Non-trivial statistics, so folding has something to fold.
    for (bn, c) in [("bn1", 4), ("bn2", 5)] {
        let ramp = |a: f32, b: f32| Tensor {
            shape: vec![c],
            data: (0..c).map(|i| a + b * i as f32).collect(),
        };
        w.tensors.insert(format!("{bn}.weight"), ramp(0.5, 0.3));
        w.tensors.insert(format!("{bn}.bias"), ramp(-0.2, 0.1));
        w.tensors
            .insert(format!("{bn}.running_mean"), ramp(0.1, -0.05));
        w.tensors
            .insert(format!("{bn}.running_var"), ramp(0.4, 0.2));
    }
    let (folded, fw) = fold_batch_norms(&g, &w).unwrap();
    assert!(folded.nodes.iter().all(|n| n.op.kind() != "batch_norm"));
    assert_eq!(folded.nodes.len(), g.nodes.len() - 2);
    let device = cpu();
    let x: Vec<f32> = (0..2 * 60)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let input = || {
        let t = burn::tensor::Tensor::<2>::from_data(
            burn::tensor::TensorData::new(x.clone(), [2, 60]),
            &device,
        );
        Value::R2(t).reshape(&[3, 20])
    };
    let a = GraphModel::new(&g, &w, &device)
        .unwrap()
        .forward(vec![input()]);
    let b = GraphModel::new(&folded, &fw, &device)
        .unwrap()
        .forward(vec![input()]);
    let (a, b) = (a[0].to_vec(), b[0].to_vec());
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-5 * (1.0 + p.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn activation_ranges_include_zero_and_use_the_int8_range() {
    let a = affine_for_range(0.5, 2.0);
    assert_eq!(a.zero_point, -128, "a positive range starts at real zero");
    assert!((a.scale - 2.0 / 255.0).abs() < 1e-9);
    let b = affine_for_range(-1.0, 1.0);
    assert!((b.scale * (127 - b.zero_point) as f32 - 1.0).abs() < 0.01);
    assert!((b.scale * (-128 - b.zero_point) as f32 + 1.0).abs() < 0.01);
}
