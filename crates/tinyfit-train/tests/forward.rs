//! The burn executor computes what PyTorch's layers compute, checked against direct loops.

use burn::tensor::{Tensor, TensorData};
use serde_json::json;
use tinyfit_graph::{Graph, Weights};
use tinyfit_train::{GraphModel, Value, cpu, init};

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Random weights (and BN statistics with positive variance) for every tensor of the graph.
fn random_weights(graph: &Graph) -> Weights {
    let analysis = graph.analyze().unwrap();
    let mut w = init::pytorch_default(graph, &analysis, 0);
    for (i, (name, t)) in w.tensors.iter_mut().enumerate() {
        t.data = values(t.data.len(), i as u32 + 11);
        if name.ends_with("running_var") {
            t.data.iter_mut().for_each(|v| *v = v.abs() + 0.5);
        }
    }
    w
}

/// Reference 2-D convolution on one sample `[C, H, W]` with PyTorch semantics.
#[allow(clippy::too_many_arguments)]
fn conv2d_ref(
    x: &[f32],
    (c, h, wd): (usize, usize, usize),
    weight: &[f32],
    bias: &[f32],
    out_c: usize,
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (ph, pw): (usize, usize),
    groups: usize,
) -> (Vec<f32>, usize, usize) {
    let oh = (h + 2 * ph - kh) / sh + 1;
    let ow = (wd + 2 * pw - kw) / sw + 1;
    let cg = c / groups;
    let og = out_c / groups;
    let mut y = vec![0f32; out_c * oh * ow];
    for o in 0..out_c {
        let g = o / og;
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = bias[o];
                for ci in 0..cg {
                    for a in 0..kh {
                        for b in 0..kw {
                            let (yy, xx) = (
                                (i * sh + a) as isize - ph as isize,
                                (j * sw + b) as isize - pw as isize,
                            );
                            if yy < 0 || xx < 0 || yy >= h as isize || xx >= wd as isize {
                                continue;
                            }
                            let xin = x[(g * cg + ci) * h * wd + yy as usize * wd + xx as usize];
                            acc += xin * weight[((o * cg + ci) * kh + a) * kw + b];
                        }
                    }
                }
                y[(o * oh + i) * ow + j] = acc;
            }
        }
    }
    (y, oh, ow)
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "element {i}: {g} vs {w}"
        );
    }
}

#[test]
fn conv1d_bn_relu_pool_linear_matches_reference() {
    let graph = Graph::from_value(json!({
        "inputs": [{"name": "x", "shape": [2, 9]}],
        "nodes": [
            {"name": "conv", "op": "conv1d", "out_channels": 4, "kernel": 3, "stride": 2, "padding": 1},
            {"name": "bn", "op": "batch_norm"},
            {"name": "relu", "op": "relu"},
            {"name": "pool", "op": "max_pool1d", "kernel": 2},
            {"name": "flat", "op": "flatten"},
            {"name": "fc", "op": "linear", "out_features": 3}
        ]
    }))
    .unwrap();
    let w = random_weights(&graph);
    let device = cpu();
    let model = GraphModel::new(&graph, &w, &device).unwrap();
    let batch = 2;
    let x = values(batch * 18, 5);
    let input = Value::R3(Tensor::from_data(
        TensorData::new(x.clone(), [batch, 2, 9]),
        &device,
    ));
    let out = model.logits(input).into_data();
    let got = out.as_slice::<f32>().unwrap();

    let t = |n: &str| &w.tensors[n].data;
    let mut want = Vec::new();
    for s in 0..batch {
        let (y, _, ol) = conv2d_ref(
            &x[s * 18..(s + 1) * 18],
            (2, 1, 9),
            t("conv.weight"),
            t("conv.bias"),
            4,
            (1, 3),
            (1, 2),
            (0, 1),
            1,
        );
        // Eval-mode batch norm, ReLU, max pool 2.
        let mut pooled = Vec::new();
        for c in 0..4 {
            let norm = |v: f32| {
                let z = (v - t("bn.running_mean")[c]) / (t("bn.running_var")[c] + 1e-5).sqrt();
                (z * t("bn.weight")[c] + t("bn.bias")[c]).max(0.0)
            };
            for p in 0..ol / 2 {
                pooled.push(norm(y[c * ol + 2 * p]).max(norm(y[c * ol + 2 * p + 1])));
            }
        }
        for o in 0..3 {
            let row = &t("fc.weight")[o * pooled.len()..(o + 1) * pooled.len()];
            want.push(t("fc.bias")[o] + row.iter().zip(&pooled).map(|(a, b)| a * b).sum::<f32>());
        }
    }
    assert_close(got, &want);
    // Exported weights are the imported ones (linear transposed back to PyTorch's layout).
    assert_eq!(model.weights(), w);
}

#[test]
fn depthwise_concat_add_avgpool_gap_match_reference() {
    let graph = Graph::from_value(json!({
        "inputs": [{"name": "x", "shape": [3, 5, 4]}],
        "nodes": [
            {"name": "dw", "op": "conv2d", "out_channels": 3, "kernel": 3, "padding": "same", "groups": 3},
            {"name": "cat", "op": "concat", "inputs": ["dw", "x"]},
            {"name": "pw", "op": "conv2d", "out_channels": 3, "kernel": 1, "bias": false},
            {"name": "sum", "op": "add", "inputs": ["pw", "x"]},
            {"name": "six", "op": "relu6"},
            {"name": "avg", "op": "avg_pool2d", "kernel": 2, "stride": 1},
            {"name": "gap", "op": "global_avg_pool"}
        ]
    }))
    .unwrap();
    let w = random_weights(&graph);
    let device = cpu();
    let model = GraphModel::new(&graph, &w, &device).unwrap();
    let x: Vec<f32> = values(60, 9).iter().map(|v| v * 8.0).collect();
    let input = Value::R4(Tensor::from_data(
        TensorData::new(x.clone(), [1, 3, 5, 4]),
        &device,
    ));
    let got = model
        .forward(vec![input])
        .swap_remove(0)
        .into_r2()
        .into_data();

    let t = |n: &str| &w.tensors[n].data;
    let (dw, _, _) = conv2d_ref(
        &x,
        (3, 5, 4),
        t("dw.weight"),
        t("dw.bias"),
        3,
        (3, 3),
        (1, 1),
        (1, 1),
        3,
    );
    let cat: Vec<f32> = dw.iter().chain(&x).copied().collect();
    let (pw, _, _) = conv2d_ref(
        &cat,
        (6, 5, 4),
        t("pw.weight"),
        &[0.0; 3],
        3,
        (1, 1),
        (1, 1),
        (0, 0),
        1,
    );
    let six: Vec<f32> = pw
        .iter()
        .zip(&x)
        .map(|(a, b)| (a + b).clamp(0.0, 6.0))
        .collect();
    let mut want = Vec::new();
    for c in 0..3 {
        let at = |i: usize, j: usize| six[c * 20 + i * 4 + j];
        let mut sum = 0.0;
        for i in 0..4 {
            for j in 0..3 {
                sum += (at(i, j) + at(i + 1, j) + at(i, j + 1) + at(i + 1, j + 1)) / 4.0;
            }
        }
        want.push(sum / 12.0);
    }
    assert_close(got.as_slice::<f32>().unwrap(), &want);
}

#[test]
fn training_batch_norm_updates_running_variance_unbiased() {
    let graph = Graph::from_value(json!({
        "inputs": [{"name": "x", "shape": [1, 2]}],
        "nodes": [{"name": "bn", "op": "batch_norm"}]
    }))
    .unwrap();
    let analysis = graph.analyze().unwrap();
    let device = cpu().autodiff();
    let model = GraphModel::new(
        &graph,
        &init::pytorch_default(&graph, &analysis, 0),
        &device,
    )
    .unwrap();
    // Batch of 2 samples x 2 positions: values 1, 3, 5, 7 → mean 4, biased var 5, unbiased 20/3.
    let x = Value::R3(Tensor::from_data(
        TensorData::new(vec![1f32, 3.0, 5.0, 7.0], [2, 1, 2]),
        &device,
    ));
    let y = model.forward(vec![x]).swap_remove(0);
    let Value::R3(y) = y else {
        panic!("rank 3 expected")
    };
    let y = y.into_data();
    let s = 5f32.sqrt();
    assert_close(
        y.as_slice::<f32>().unwrap(),
        &[-3.0 / s, -1.0 / s, 1.0 / s, 3.0 / s],
    );
    let w = model.weights();
    assert_close(&w.tensors["bn.running_mean"].data, &[0.4]);
    assert_close(&w.tensors["bn.running_var"].data, &[0.9 + 0.1 * 20.0 / 3.0]);
}

#[test]
fn frozen_batch_norm_trains_with_the_running_statistics_and_keeps_them() {
    let graph = Graph::from_value(json!({
        "inputs": [{"name": "x", "shape": [1, 2]}],
        "nodes": [{"name": "bn", "op": "batch_norm"}]
    }))
    .unwrap();
    let analysis = graph.analyze().unwrap();
    let mut weights = init::pytorch_default(&graph, &analysis, 0);
    weights.tensors.get_mut("bn.running_mean").unwrap().data = vec![2.0];
    weights.tensors.get_mut("bn.running_var").unwrap().data = vec![4.0];
    let device = cpu().autodiff();
    let model = GraphModel::new(&graph, &weights, &device)
        .unwrap()
        .with_frozen_batch_norms();
    let x = Value::R3(Tensor::from_data(
        TensorData::new(vec![1f32, 3.0, 5.0, 7.0], [2, 1, 2]),
        &device,
    ));
    let Value::R3(y) = model.forward(vec![x]).swap_remove(0) else {
        panic!("rank 3 expected")
    };
    let s = (4f32 + 1e-5).sqrt();
    assert_close(
        y.into_data().as_slice::<f32>().unwrap(),
        &[-1.0 / s, 1.0 / s, 3.0 / s, 5.0 / s],
    );
    let w = model.weights();
    assert_close(&w.tensors["bn.running_mean"].data, &[2.0]);
    assert_close(&w.tensors["bn.running_var"].data, &[4.0]);
}
