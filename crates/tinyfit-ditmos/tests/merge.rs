//! The merged graph computes what the selector and classifiers compute: its first output is
//! the selector's routing logits, output k + 1 classifier k's logits (synthetic inputs: a test
//! of the wiring, not of accuracy).

mod common;

use burn::tensor::{Tensor, TensorData};
use tinyfit_ditmos::checkpoint::SavedWeights;
use tinyfit_ditmos::merge::merged;
use tinyfit_ditmos::model::Ditmos;
use tinyfit_train::{GraphModel, Value, cpu};

use common::example_graph;

#[test]
fn the_merged_graph_computes_the_selector_and_every_classifier() {
    let m = 3;
    let mut selector = example_graph("hapt_ditmos_selector.json");
    if let Some(route) = selector.nodes.iter_mut().find(|n| n.name == "route")
        && let tinyfit_graph::Op::Linear(l) = &mut route.op
    {
        l.out_features = m;
    }
    let classifier = example_graph("hapt_ditmos_classifier.json");
    let device = cpu();
    let system = Ditmos::new(&selector, &classifier, m, (None, &[]), 5, &device).unwrap();
    let weights = SavedWeights {
        selector: system.selector.weights(),
        classifiers: system.classifiers.iter().map(|c| c.weights()).collect(),
    };
    let (graph, merged_weights) = merged(&selector, &classifier, &weights).unwrap();
    assert_eq!(graph.outputs.len(), 1 + m);
    assert!(graph.nodes.iter().all(|n| n.name.starts_with("selector/")
        || (0..m).any(|k| n.name.starts_with(&format!("classifier{k}/")))));

    let n = 4;
    let values: Vec<f32> = (0..n * 6 * 128)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let x = || {
        Value::R2(Tensor::<2>::from_data(
            TensorData::new(values.clone(), [n, 6 * 128]),
            &device,
        ))
        .reshape(&[6, 128])
    };
    let whole = GraphModel::new(&graph, &merged_weights, &device).unwrap();
    let outputs: Vec<Vec<f32>> = whole.forward(vec![x()]).iter().map(Value::to_vec).collect();
    let selection = system.select(x());
    let close = |a: &[f32], b: &[f32]| {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-5)
    };
    assert!(close(
        &outputs[0],
        &Value::R2(selection.logits.clone()).to_vec()
    ));
    for k in 0..m {
        let logits = Value::R2(system.classify(k, x(), &selection.features)).to_vec();
        assert!(close(&outputs[1 + k], &logits), "classifier {k}");
    }
    // The classifiers differ, so a wiring mix-up would show.
    assert!(!close(&outputs[1], &outputs[2]));
}
