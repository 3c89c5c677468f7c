//! Network slimming's L1 penalty on batch-norm scales: with `bn_gamma_l1` the trained γ are
//! smaller in sum than without it, from the same seed on the same (synthetic) data.

use serde_json::json;
use tinyfit_data::{ChannelNorm, Dataset, Splits};
use tinyfit_graph::Graph;
use tinyfit_train::{Observer, TrainConfig, TrainOptions, train};

struct Quiet;
impl Observer for Quiet {}

fn data(n: usize, seed: u32) -> Dataset {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let y: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
    // Class 1 carries an offset on channel 0.
    let x: Vec<f32> = y
        .iter()
        .flat_map(|&c| (0..2 * 16).map(move |k| (c, k)))
        .map(|(c, k)| next() + if c == 1 && k < 16 { 0.8 } else { 0.0 })
        .collect();
    Dataset {
        sample_shape: vec![2, 16],
        x,
        y,
        groups: (0..n as u32).collect(),
        class_names: vec!["a".into(), "b".into()],
    }
}

fn gamma_sum(l1: f64) -> f64 {
    let graph = Graph::from_value(json!({
        "inputs": [{"name": "x", "shape": [2, 16]}],
        "nodes": [
            {"name": "conv", "op": "conv1d", "out_channels": 8, "kernel": 3},
            {"name": "bn", "op": "batch_norm"},
            {"name": "relu", "op": "relu"},
            {"name": "gap", "op": "global_avg_pool"},
            {"name": "fc", "op": "linear", "out_features": 2}
        ]
    }))
    .unwrap();
    let config: TrainConfig = toml::from_str(&format!(
        "epochs = 3\nbatch_size = 16\nseed = 1\nbn_gamma_l1 = {l1:?}\n\
         [optimizer]\nkind = \"sgd\"\nlr = 0.05\n"
    ))
    .unwrap();
    let splits = Splits {
        train: data(64, 1),
        val: data(32, 2),
        test: data(32, 3),
        norm: ChannelNorm {
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let outcome = train(
        &graph,
        &splits,
        &config,
        dir.path(),
        false,
        TrainOptions::default(),
        &mut Quiet,
    )
    .unwrap();
    let last = outcome.history.len() - 1;
    assert_eq!(outcome.history[last].epoch, 2);
    outcome.best.tensors["bn.weight"]
        .data
        .iter()
        .map(|g| f64::from(g.abs()))
        .sum()
}

#[test]
fn l1_on_batch_norm_scales_shrinks_them() {
    let (plain, slimmed) = (gamma_sum(0.0), gamma_sum(0.5));
    assert!(
        slimmed < 0.9 * plain,
        "Σ|γ| {slimmed} with the penalty, {plain} without"
    );
}
