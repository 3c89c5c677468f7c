//! The DiTMoS system as one graph, for quantisation and deployment: the selector's nodes, then
//! each classifier's, reading the input and the selector's feature maps; outputs
//! `[routing logits, classifier 0 logits, ..., classifier m-1 logits]`.
//!
//! Quantised as one graph, the shared feature maps get one quantisation, so a classifier
//! reads the selector's int8 bytes as they are. Lowered, the graph is a routed program
//! (`tinyfit_deploy::Program::routed`): the selector's operations come first and each
//! classifier's together, so only the routed classifier runs.

use tinyfit_graph::{Graph, Input, Node, ValueRef, Weights};

use crate::checkpoint::SavedWeights;
use crate::model::ModelError;

/// The merged graph and its weights. Node `n` of the selector becomes `selector/n`, of
/// classifier `k` `classifier{k}/n`.
pub fn merged(
    selector: &Graph,
    classifier: &Graph,
    weights: &SavedWeights,
) -> Result<(Graph, Weights), ModelError> {
    let m = weights.classifiers.len();
    crate::model::check_interface(selector, classifier, m)?;
    let (s, c) = (selector.analyze()?, classifier.analyze()?);
    let input = &selector.inputs[0];
    let mut graph = Graph {
        name: format!("{} + {m} x {}", selector.name, classifier.name),
        inputs: vec![Input {
            name: input.name.clone(),
            shape: input.shape.clone(),
        }],
        nodes: Vec::new(),
        outputs: Vec::new(),
    };
    let mut merged_weights = Weights::default();

    // The selector: its input is the merged graph's.
    let selector_names = rename(
        selector,
        &s,
        "selector",
        std::slice::from_ref(&input.name),
        &mut graph,
    );
    copy_weights(&weights.selector, "selector", &mut merged_weights);
    let shared: Vec<String> = s
        .outputs
        .iter()
        .map(|&v| value_name(selector, v, &selector_names))
        .collect();
    graph.outputs.push(shared[0].clone());

    // Each classifier reads the input, then the selector's outputs after the routing logits.
    let mut reads = vec![input.name.clone()];
    reads.extend(shared[1..].iter().cloned());
    for (k, w) in weights.classifiers.iter().enumerate() {
        let prefix = format!("classifier{k}");
        let names = rename(classifier, &c, &prefix, &reads, &mut graph);
        copy_weights(w, &prefix, &mut merged_weights);
        graph
            .outputs
            .push(value_name(classifier, c.outputs[0], &names));
    }
    graph.analyze()?;
    Ok((graph, merged_weights))
}

/// Appends `g`'s nodes to `out` as `prefix/name`, every input wired explicitly, `g`'s inputs
/// read as `inputs`; returns the new name of each node.
fn rename(
    g: &Graph,
    analysis: &tinyfit_graph::Analysis,
    prefix: &str,
    inputs: &[String],
    out: &mut Graph,
) -> Vec<String> {
    let names: Vec<String> = g
        .nodes
        .iter()
        .map(|n| format!("{prefix}/{}", n.name))
        .collect();
    for (node, a) in g.nodes.iter().zip(&analysis.nodes) {
        let reads = a
            .inputs
            .iter()
            .map(|&v| match v {
                ValueRef::Input(i) => inputs[i].clone(),
                ValueRef::Node(j) => names[j].clone(),
            })
            .collect();
        out.nodes.push(Node {
            name: format!("{prefix}/{}", node.name),
            inputs: reads,
            op: node.op.clone(),
        });
    }
    names
}

fn value_name(g: &Graph, v: ValueRef, names: &[String]) -> String {
    match v {
        ValueRef::Input(i) => g.inputs[i].name.clone(),
        ValueRef::Node(j) => names[j].clone(),
    }
}

/// Copies `from`'s `node.param` tensors as `prefix/node.param`.
fn copy_weights(from: &Weights, prefix: &str, to: &mut Weights) {
    for (name, t) in &from.tensors {
        to.tensors.insert(format!("{prefix}/{name}"), t.clone());
    }
}
