//! The grouped network computes what the m classifiers compute, forward and backward, and its
//! weights map back to theirs unchanged (synthetic inputs: a test of the construction, not of
//! accuracy).

mod common;

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use tinyfit_ditmos::classifiers::Classifiers;
use tinyfit_ditmos::grouped::{GroupError, Grouping};
use tinyfit_graph::{Graph, Weights};
use tinyfit_train::{GraphModel, Value, cpu, init};

use common::example_graph;

/// `m` classifiers of `graph`, differently initialised, on `device`.
fn classifiers(graph: &Graph, m: usize, device: &Device) -> Vec<GraphModel> {
    let analysis = graph.analyze().unwrap();
    (0..m)
        .map(|k| {
            let w = init::pytorch_default(graph, &analysis, 11 + k as u64);
            GraphModel::new(graph, &w, device).unwrap()
        })
        .collect()
}

/// A batch of `n` deterministic pseudo-random samples for each of `graph`'s inputs.
fn inputs(graph: &Graph, n: usize, device: &Device) -> Vec<Value> {
    graph
        .inputs
        .iter()
        .enumerate()
        .map(|(j, input)| {
            let size: usize = input.shape.iter().product();
            let values: Vec<f32> = (0..n * size)
                .map(|i| (((i * 37 + j * 11) % 101) as f32 - 50.0) / 25.0)
                .collect();
            Value::R2(Tensor::<2>::from_data(
                TensorData::new(values, [n, size]),
                device,
            ))
            .reshape(&input.shape)
        })
        .collect()
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tolerance: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a
        .iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
        .fold(0.0f32, f32::max);
    assert!(
        worst < tolerance,
        "{what}: worst relative difference {worst}"
    );
}

/// Inference logits of the grouped network and of the classifiers one by one agree.
fn agrees_in_inference(graph_file: &str, m: usize) {
    let graph = example_graph(graph_file);
    let device = cpu();
    let models = classifiers(&graph, m, &device);
    let (grouped, why) = Classifiers::new(&models);
    assert!(why.is_none(), "{graph_file} has a grouped form: {why:?}");
    assert!(matches!(grouped, Classifiers::Grouped(_)));
    let x = inputs(&graph, 5, &device);
    let together = grouped.logits(x[0].clone(), &x[1..]);
    for (k, (model, logits)) in models.iter().zip(&together).enumerate() {
        let alone = model.forward(x.clone()).remove(0).to_vec();
        let got = Value::R2(logits.clone()).to_vec();
        assert_close(&format!("{graph_file} classifier {k}"), &got, &alone, 1e-5);
    }
}

#[test]
fn grouped_logits_equal_each_classifiers_on_the_example_graphs() {
    agrees_in_inference("hapt_ditmos_classifier.json", 4);
    agrees_in_inference("hapt_ditmos_classifier_noagg.json", 3);
    agrees_in_inference("stress_ditmos_classifier.json", 2);
    agrees_in_inference("kws_ditmos_classifier.json", 3);
    agrees_in_inference("ditmos_classifier.json", 2);
}

#[test]
fn stacking_and_unstacking_weights_is_the_identity() {
    let graph = example_graph("kws_ditmos_classifier.json");
    let grouping = Grouping::new(&graph, 3).unwrap();
    let analysis = graph.analyze().unwrap();
    let weights: Vec<Weights> = (0..3)
        .map(|k| init::pytorch_default(&graph, &analysis, k))
        .collect();
    let stacked = grouping.stack(&weights);
    stacked
        .check(
            &grouping.graph,
            &grouping.graph.analyze().unwrap(),
            Path::new("(stacked)"),
        )
        .unwrap();
    assert_eq!(grouping.unstack(&stacked), weights);
}

/// Training mode (batch statistics, no dropout): the gradients of a loss over every
/// classifier's logits, taken through the grouped network and mapped back, equal the
/// gradients through the m networks; so do the running statistics the step leaves.
#[test]
fn grouped_training_gives_each_classifiers_gradients() {
    let mut graph = example_graph("hapt_ditmos_classifier.json");
    graph
        .nodes
        .retain(|n| !matches!(n.op, tinyfit_graph::Op::Dropout(_)));
    let device = cpu().autodiff();
    let m = 3;
    let models = classifiers(&graph, m, &device);
    let x = inputs(&graph, 6, &device);
    // A loss that weighs each classifier's logits differently.
    let loss = |logits: Vec<Tensor<2>>| {
        logits
            .into_iter()
            .enumerate()
            .map(|(k, l)| (l.clone() * l).sum().mul_scalar(1.0 + k as f64))
            .reduce(|a, b| a + b)
            .unwrap()
    };
    // Built first: the grouped network copies the weights and running statistics, which the
    // separate networks' training-mode forward then moves (their clones share them).
    let (grouped, _) = Classifiers::new(&models);
    let separate = Classifiers::Separate(models.clone());
    let grads = GradientsParams::from_grads(
        loss(separate.logits(x[0].clone(), &x[1..])).backward(),
        &separate,
    );
    let expected: Vec<Weights> = models.iter().map(|c| c.gradients(&grads)).collect();

    let grads = GradientsParams::from_grads(
        loss(grouped.logits(x[0].clone(), &x[1..])).backward(),
        &grouped,
    );
    let Classifiers::Grouped(g) = &grouped else {
        panic!("the HAPT classifier has a grouped form")
    };
    let got = g.gradients(&grads);
    let after_separate: Vec<Weights> = match separate {
        Classifiers::Separate(models) => models.iter().map(GraphModel::weights).collect(),
        Classifiers::Grouped(_) => unreachable!(),
    };
    let after_grouped: Vec<Weights> = grouped
        .into_models()
        .iter()
        .map(GraphModel::weights)
        .collect();
    for k in 0..m {
        for (name, want) in &expected[k].tensors {
            assert_close(
                &format!("classifier {k} gradient {name}"),
                &got[k].tensors[name].data,
                &want.data,
                1e-4,
            );
        }
        assert_eq!(got[k].tensors.len(), expected[k].tensors.len());
        for (name, want) in &after_separate[k].tensors {
            assert_close(
                &format!("classifier {k} state {name}"),
                &after_grouped[k].tensors[name].data,
                &want.data,
                1e-5,
            );
        }
    }
}

#[test]
fn graphs_without_a_grouped_form_are_refused_with_the_node() {
    // A residual sum of the shared input and a classifier's own feature map: the input would
    // have to be added to every classifier's copy.
    let graph = Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [2, 8]}],
        "nodes": [
            {"name": "conv", "op": "conv1d", "out_channels": 2, "kernel": 3, "padding": 1},
            {"name": "res", "op": "add", "inputs": ["conv", "x"]},
            {"name": "flat", "op": "flatten"},
            {"name": "fc", "op": "linear", "out_features": 3}
        ]
    }))
    .unwrap();
    match Grouping::new(&graph, 2) {
        Err(GroupError::Unsupported { node, .. }) => assert_eq!(node, "res"),
        other => panic!("expected a refusal naming res, got {other:?}"),
    }
    let device = cpu();
    let models = classifiers(&graph, 2, &device);
    let (fallback, why) = Classifiers::new(&models);
    assert!(matches!(fallback, Classifiers::Separate(_)));
    assert!(why.unwrap().contains("res"));
}
