//! PyTorch's default initialisation, computed from a seed into [`Weights`].
//!
//! Done here rather than with burn's initialisers so that a model's initial weights depend only
//! on the graph and the seed (not on the order in which burn lazily materialises parameters),
//! and so that they follow PyTorch exactly: `kaiming_uniform_(a = √5)` for weights, which is
//! `U(-1/√fan_in, 1/√fan_in)`, the same bound for biases, γ = 1, β = 0, running mean 0 and
//! running variance 1.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyfit_graph::{Analysis, Graph, Tensor, Weights};

/// Initial weights of `graph` for `seed`.
pub fn pytorch_default(graph: &Graph, analysis: &Analysis, seed: u64) -> Weights {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut weights = Weights::default();
    for (node, info) in graph.nodes.iter().zip(&analysis.nodes) {
        let tensors = &info.shape.tensors;
        // fan_in of a conv/linear weight [out, in/groups, k...] is everything but the first axis.
        let fan_in = tensors
            .iter()
            .find(|t| t.name == "weight" && t.shape.len() >= 2)
            .map(|t| t.shape[1..].iter().product::<usize>());
        for t in tensors {
            let n: usize = t.shape.iter().product();
            let data = match (t.name, fan_in) {
                ("weight" | "bias", Some(fan_in)) => {
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                }
                ("weight" | "running_var", None) => vec![1.0; n],
                _ => vec![0.0; n],
            };
            weights.tensors.insert(
                format!("{}.{}", node.name, t.name),
                Tensor {
                    shape: t.shape.clone(),
                    data,
                },
            );
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds_and_constants_follow_pytorch() {
        let graph = Graph::from_value(json!({
            "inputs": [{"name": "x", "shape": [4, 16]}],
            "nodes": [
                {"name": "c", "op": "conv1d", "out_channels": 8, "kernel": 5},
                {"name": "bn", "op": "batch_norm"},
                {"name": "f", "op": "flatten"},
                {"name": "fc", "op": "linear", "out_features": 3}
            ]
        }))
        .unwrap();
        let analysis = graph.analyze().unwrap();
        let w = pytorch_default(&graph, &analysis, 7);
        let bound = 1.0 / 20f32.sqrt();
        assert!(w.tensors["c.weight"].data.iter().all(|v| v.abs() <= bound));
        assert!(w.tensors["c.bias"].data.iter().all(|v| v.abs() <= bound));
        let spread = w.tensors["c.weight"]
            .data
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            spread > 0.8 * bound,
            "weights should fill the range, max {spread}"
        );
        assert!(w.tensors["bn.weight"].data.iter().all(|&v| v == 1.0));
        assert!(w.tensors["bn.running_var"].data.iter().all(|&v| v == 1.0));
        assert!(w.tensors["bn.bias"].data.iter().all(|&v| v == 0.0));
        assert!(
            w.tensors["fc.weight"]
                .data
                .iter()
                .all(|v| v.abs() <= 1.0 / 96f32.sqrt())
        );
        assert_eq!(w, pytorch_default(&graph, &analysis, 7));
        assert_ne!(w, pytorch_default(&graph, &analysis, 8));
    }
}
