//! DiTMoS's training phases on real HAPT windows (a subset, a few epochs): pre-training on
//! clusters, selector training (both targets) and the adversarial classifier step run, and the
//! system routes better than chance with union accuracy at least the routed accuracy.

use std::path::Path;

use burn::module::Module;
use serde_json::json;
use tinyfit_data::{DataConfig, Dataset};
use tinyfit_ditmos::model::Ditmos;
use tinyfit_ditmos::split::{SplitConfig, cluster};
use tinyfit_ditmos::train::{
    LossWeights, Phase, SelectorTarget, evaluate, pretrain_classifier, train_classifiers,
    train_selector,
};
use tinyfit_graph::Graph;

/// Every `step`-th window of `data`.
fn every(data: &Dataset, step: usize) -> Dataset {
    let len = data.sample_len();
    let keep: Vec<usize> = (0..data.len()).step_by(step).collect();
    Dataset {
        sample_shape: data.sample_shape.clone(),
        x: keep
            .iter()
            .flat_map(|&i| data.x[i * len..(i + 1) * len].iter().copied())
            .collect(),
        y: keep.iter().map(|&i| data.y[i]).collect(),
        groups: keep.iter().map(|&i| data.groups[i]).collect(),
        class_names: data.class_names.clone(),
    }
}

fn graphs(m: usize) -> (Graph, Graph) {
    let block = |name: &str, out: usize, k: usize| {
        vec![
            json!({"name": format!("{name}_conv"), "op": "conv1d", "out_channels": out, "kernel": k}),
            json!({"name": format!("{name}_bn"), "op": "batch_norm"}),
            json!({"name": format!("{name}_relu"), "op": "relu"}),
            json!({"name": name, "op": "max_pool1d", "kernel": 2}),
        ]
    };
    let mut s: Vec<serde_json::Value> = Vec::new();
    s.extend(block("f1", 8, 7));
    s.extend(block("f2", 8, 5));
    s.extend(block("f3", 4, 5));
    s.push(json!({"name": "flat", "op": "flatten"}));
    s.push(json!({"name": "route", "op": "linear", "out_features": m}));
    let selector = Graph::from_value(json!({
        "name": "HAPT selector",
        "inputs": [{"name": "x", "shape": [6, 128]}],
        "nodes": s,
        "outputs": ["route", "f1", "f2"]
    }))
    .unwrap();
    let mut c: Vec<serde_json::Value> = Vec::new();
    c.extend(block("c1", 8, 7));
    c.push(json!({"name": "cat1", "op": "concat", "inputs": ["c1", "f1"]}));
    c.extend(block("c2", 8, 5));
    c.push(json!({"name": "cat2", "op": "concat", "inputs": ["c2", "f2"]}));
    c.extend(block("c3", 4, 5));
    c.push(json!({"name": "flat", "op": "flatten"}));
    c.push(json!({"name": "fc", "op": "linear", "out_features": 6}));
    let classifier = Graph::from_value(json!({
        "name": "HAPT classifier with feature aggregation",
        "inputs": [
            {"name": "x", "shape": [6, 128]},
            {"name": "f1", "shape": [8, 61]},
            {"name": "f2", "shape": [8, 28]}
        ],
        "nodes": c
    }))
    .unwrap();
    (selector, classifier)
}

#[test]
fn phases_train_a_selector_and_diverse_classifiers_on_hapt() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config: DataConfig = toml::from_str(&format!(
        "kind = \"hapt\"\npath = {:?}\n",
        root.join("../shared/data/hapt")
    ))
    .unwrap();
    let splits = config.load(None).unwrap();
    let (train, val) = (every(&splits.train, 4), every(&splits.val, 2));
    let m = 3;
    let (selector, classifier) = graphs(m);
    let device = tinyfit_train::cpu().autodiff();
    let mut model = Ditmos::new(&selector, &classifier, m, (None, &[]), 0, &device).unwrap();

    // Clusters of the raw windows stand in for a strong model's features here.
    let raw = ndarray::Array2::from_shape_vec((train.len(), train.sample_len()), train.x.clone())
        .unwrap();
    let empty = ndarray::Array2::zeros((0, train.sample_len()));
    let split = cluster(
        &raw,
        &empty,
        &SplitConfig {
            clusters: m,
            feature_layer: String::new(),
            restarts: 2,
            seed: 0,
        },
    )
    .unwrap();
    let pretrain = Phase {
        epochs: 2,
        lr: 0.01,
        halve_every: 6,
    };
    for i in 0..m {
        model = pretrain_classifier(model, i, &train, &split.members(i), &pretrain, 0, 32, 0);
    }
    let before = evaluate(&model.valid(), &val, 256);
    let phase = Phase {
        epochs: 1,
        lr: 0.01,
        halve_every: 8,
    };
    model = train_selector(model, &train, &phase, 0, SelectorTarget::SingleLabel, 32, 0);
    model = train_selector(model, &train, &phase, 1, SelectorTarget::MultiLabel, 32, 0);
    let routed = evaluate(&model.valid(), &val, 256);
    model = train_classifiers(model, &train, &phase, 0, &LossWeights::default(), 32, 0);
    let after = evaluate(&model.valid(), &val, 256);
    println!(
        "validation: pre-trained {before:?}\nselector trained {routed:?}\nadversarial {after:?}"
    );
    for metrics in [&before, &routed, &after] {
        assert!(metrics.union_accuracy >= metrics.accuracy);
        assert_eq!(metrics.correct_histogram.iter().sum::<usize>(), val.len());
        assert!((metrics.routed_share.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    // Six classes, the largest 19 % of the windows: well above chance once trained.
    assert!(after.accuracy > 0.5, "{after:?}");
}
