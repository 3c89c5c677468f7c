//! Lowering rules no single kernel shows: values that pass through a layer unchanged keep
//! what the layers after them rely on.

use tinyfit_deploy::lower;
use tinyfit_graph::{Graph, Node, Op};

mod common;
use common::{Rng, WEIGHT_SCALES, quantised_plain, seeded_inputs};

/// A dropout between a flatten and a linear layer (as DiTMoS's selector has) passes the
/// flattened map through: the linear layer still reads it in the channels-first order the
/// float model flattened, so the int8 outputs equal those without the dropout, and the
/// dropout costs no copy.
#[test]
fn a_dropout_after_flatten_keeps_the_linear_layers_column_order() {
    let plain = Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [3, 12]}],
        "nodes": [
            {"name": "conv", "op": "conv1d", "out_channels": 4, "kernel": 3},
            {"name": "flatten", "op": "flatten"},
            {"name": "fc", "op": "linear", "out_features": 5}
        ]
    }))
    .unwrap();
    let q = quantised_plain(plain, &mut Rng(0xd209_0a7f), WEIGHT_SCALES);
    let mut with_dropout = q.clone();
    let graph = &mut with_dropout.graph;
    let at = graph.nodes.iter().position(|n| n.name == "fc").unwrap();
    graph.nodes.insert(
        at,
        Node::new(
            "drop",
            serde_json::from_value::<Op>(serde_json::json!({"op": "dropout", "p": 0.5})).unwrap(),
        ),
    );
    let flattened = q.activations["flatten"];
    with_dropout.activations.insert("drop".into(), flattened);
    let (a, b) = (lower(&q).unwrap(), lower(&with_dropout).unwrap());
    assert_eq!(a.memory().arena_bytes, b.memory().arena_bytes);
    let n = a.input(0).unwrap().shape.len();
    for x in seeded_inputs(n * 50, 3).chunks(n) {
        assert_eq!(a.run(&[x]).unwrap(), b.run(&[x]).unwrap());
    }
}
