//! Batch-norm folding: `y = γ · (conv(x) − μ) / √(σ² + ε) + β` becomes one convolution with
//! scaled weights and a shifted bias, which is what an int8 runtime executes.

use tinyfit_graph::{Graph, Op, Tensor, ValueRef, Weights};

use crate::ptq::PtqError;

/// Folds every batch norm that alone reads a convolution or linear layer into it; returns the
/// graph without those batch norms and the matching weights. A batch norm that cannot be folded
/// (its input is not a lone convolution) is an error naming it.
pub fn fold_batch_norms(graph: &Graph, weights: &Weights) -> Result<(Graph, Weights), PtqError> {
    let analysis = graph.analyze()?;
    let readers = analysis.readers();
    let mut weights = weights.clone();
    let mut removed = vec![false; graph.nodes.len()];
    // Values renamed by a removed batch norm: its readers now read the convolution.
    let mut renamed: Vec<(String, String)> = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let Op::BatchNorm(bn) = &node.op else {
            continue;
        };
        let fail = |message: &str| PtqError::Node {
            node: node.name.clone(),
            message: message.to_string(),
        };
        let [ValueRef::Node(p)] = analysis.nodes[i].inputs[..] else {
            return Err(fail("reads a graph input, not a convolution"));
        };
        let producer = &graph.nodes[p];
        let (channels, has_bias) = match &producer.op {
            Op::Conv1d(c) | Op::Conv2d(c) => (c.out_channels, c.bias),
            Op::Linear(l) => (l.out_features, l.bias),
            _ => return Err(fail("follows a layer it cannot be folded into")),
        };
        if readers[p] != 1 {
            return Err(fail("its convolution has other readers"));
        }
        let get = |name: &str| -> Result<Tensor, PtqError> {
            weights
                .tensors
                .get(&format!("{}.{name}", node.name))
                .cloned()
                .ok_or_else(|| fail(&format!("has no '{name}' tensor")))
        };
        let (gamma, beta, mean, var) = (
            get("weight")?,
            get("bias")?,
            get("running_mean")?,
            get("running_var")?,
        );
        let w_name = format!("{}.weight", producer.name);
        let b_name = format!("{}.bias", producer.name);
        let w = weights
            .tensors
            .get_mut(&w_name)
            .ok_or_else(|| fail("its convolution has no weight"))?;
        let per_channel = w.data.len() / channels;
        // y = s·(z − μ) + β with s = γ / √(σ² + ε), z = w·x + b.
        let scale: Vec<f64> = (0..channels)
            .map(|c| gamma.data[c] as f64 / (var.data[c] as f64 + bn.eps).sqrt())
            .collect();
        for (row, s) in w.data.chunks_exact_mut(per_channel).zip(&scale) {
            for v in row {
                *v = (*v as f64 * s) as f32;
            }
        }
        let old_bias = match weights.tensors.get(&b_name) {
            Some(b) if has_bias => b.data.clone(),
            None if has_bias => return Err(fail("its convolution has no bias")),
            _ => vec![0.0; channels],
        };
        let bias: Vec<f32> = (0..channels)
            .map(|c| {
                (scale[c] * (old_bias[c] as f64 - mean.data[c] as f64) + beta.data[c] as f64) as f32
            })
            .collect();
        weights.tensors.insert(
            b_name,
            Tensor {
                shape: vec![channels],
                data: bias,
            },
        );
        for name in ["weight", "bias", "running_mean", "running_var"] {
            weights.tensors.remove(&format!("{}.{name}", node.name));
        }
        removed[i] = true;
        renamed.push((node.name.clone(), producer.name.clone()));
    }
    let mut nodes = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if removed[i] {
            continue;
        }
        let mut node = node.clone();
        match &mut node.op {
            Op::Conv1d(c) | Op::Conv2d(c) if renamed.iter().any(|(_, p)| *p == node.name) => {
                c.bias = true
            }
            Op::Linear(l) if renamed.iter().any(|(_, p)| *p == node.name) => l.bias = true,
            _ => {}
        }
        // A node that read "the previous node", and that was a removed batch norm, now reads
        // the convolution by name.
        if node.inputs.is_empty() && i > 0 && removed[i - 1] {
            node.inputs.push(graph.nodes[i - 1].name.clone());
        }
        for input in &mut node.inputs {
            if let Some((_, to)) = renamed.iter().find(|(from, _)| from == input) {
                *input = to.clone();
            }
        }
        nodes.push(node);
    }
    let outputs = graph
        .outputs
        .iter()
        .map(|o| {
            renamed
                .iter()
                .find(|(from, _)| from == o)
                .map(|(_, to)| to.clone())
                .unwrap_or_else(|| o.clone())
        })
        .collect();
    let folded = Graph {
        name: graph.name.clone(),
        inputs: graph.inputs.clone(),
        nodes,
        outputs,
    };
    folded.analyze()?;
    Ok((folded, weights))
}
