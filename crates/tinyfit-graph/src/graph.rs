//! The graph: named inputs, a list of nodes in execution order, named outputs.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::op::Op;
use crate::shape::{self, OpShape};

/// A model as data: a DAG of layers listed in execution order.
///
/// Each node reads earlier nodes or graph inputs by name; a node that names no input reads the
/// node before it (or the first graph input), so plain stacks need no wiring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// Human-readable model name.
    #[serde(default)]
    pub name: String,
    /// Graph inputs with their per-sample shapes.
    pub inputs: Vec<Input>,
    /// Layers in execution order.
    pub nodes: Vec<Node>,
    /// Names of the values the model returns; the last node when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
}

/// A graph input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The name nodes use to read it.
    pub name: String,
    /// Shape of one sample, channels first (`[C, L]` or `[C, H, W]`).
    pub shape: Vec<usize>,
}

/// One layer and its wiring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique name; also the prefix of the node's weight tensors.
    pub name: String,
    /// Names of the values it reads; the previous value when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The layer.
    #[serde(flatten)]
    pub op: Op,
}

impl Node {
    /// A node that reads the previous value.
    pub fn new(name: impl Into<String>, op: Op) -> Self {
        Node {
            name: name.into(),
            inputs: Vec::new(),
            op,
        }
    }

    /// A node that reads the named values.
    pub fn with_inputs(name: impl Into<String>, op: Op, inputs: &[&str]) -> Self {
        Node {
            name: name.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            op,
        }
    }
}

/// Where a node reads a value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef {
    /// Graph input by index.
    Input(usize),
    /// Output of the node with this index.
    Node(usize),
}

/// Shape inference results for a whole graph.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Per node, in execution order.
    pub nodes: Vec<NodeAnalysis>,
    /// Resolved graph outputs.
    pub outputs: Vec<ValueRef>,
}

/// Shape inference results for one node.
#[derive(Debug, Clone)]
pub struct NodeAnalysis {
    /// Resolved inputs.
    pub inputs: Vec<ValueRef>,
    /// Input shapes.
    pub input_shapes: Vec<Vec<usize>>,
    /// Output shape, weights and MACs.
    pub shape: OpShape,
}

impl Analysis {
    /// Total trainable parameters.
    pub fn params(&self) -> u64 {
        self.nodes.iter().map(|n| n.shape.params()).sum()
    }

    /// Total multiply-accumulates per sample.
    pub fn macs(&self) -> u64 {
        self.nodes.iter().map(|n| n.shape.macs).sum()
    }

    /// How often each node's output is read: by later nodes, and once more if it is a graph
    /// output. A value read once can be rewritten in place of its producer (fusion, folding).
    pub fn readers(&self) -> Vec<usize> {
        let mut readers = vec![0; self.nodes.len()];
        let reads = self
            .nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .chain(&self.outputs);
        for v in reads {
            if let ValueRef::Node(j) = v {
                readers[*j] += 1;
            }
        }
        readers
    }

    /// For each node, the `relu`/`relu6` node fused into it, if any: the activation that alone
    /// reads the output of a convolution, linear layer or sum. Quantised runtimes compute such a
    /// pair as one operation whose output is clamped, so both values share one quantisation.
    pub fn fused_activations(&self, graph: &Graph) -> Vec<Option<usize>> {
        let readers = self.readers();
        let mut fused = vec![None; self.nodes.len()];
        for (j, (node, info)) in graph.nodes.iter().zip(&self.nodes).enumerate() {
            if let (Op::Relu | Op::Relu6, [ValueRef::Node(p)]) = (&node.op, &info.inputs[..]) {
                let fusable = matches!(
                    graph.nodes[*p].op,
                    Op::Conv1d(_) | Op::Conv2d(_) | Op::Linear(_) | Op::Add
                );
                if fusable && readers[*p] == 1 {
                    fused[*p] = Some(j);
                }
            }
        }
        fused
    }
}

impl Graph {
    /// Reads a graph from a `.json` or `.toml` file.
    pub fn load(path: &Path) -> Result<Graph> {
        let text = std::fs::read_to_string(path).map_err(|source| GraphError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_err = |message: String| GraphError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let value: serde_json::Value = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
            Some("json") => serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
            other => {
                return Err(parse_err(format!(
                    "unknown extension {other:?}; expected .json or .toml"
                )));
            }
        };
        let graph = Graph::from_value(value).map_err(|e| match e {
            GraphError::Parse { message, .. } => parse_err(message),
            GraphError::Node { .. } => parse_err(e.to_string()),
            other => other,
        })?;
        graph.analyze().map_err(|e| parse_err(e.to_string()))?;
        Ok(graph)
    }

    /// Builds a graph from a parsed JSON value, reading nodes one by one so that an error names
    /// the node it is in.
    pub fn from_value(mut value: serde_json::Value) -> Result<Graph> {
        let nodes = match value.get_mut("nodes") {
            Some(serde_json::Value::Array(nodes)) => std::mem::take(nodes),
            Some(_) => return Err(structure("`nodes` must be a list of layers")),
            None => return Err(structure("missing field `nodes` (the list of layers)")),
        };
        let mut parsed = Vec::with_capacity(nodes.len());
        for (index, node) in nodes.into_iter().enumerate() {
            let name = node
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_string();
            let node: Node = serde_json::from_value(node).map_err(|e| GraphError::Node {
                index,
                name,
                message: describe_serde(e.to_string()),
            })?;
            parsed.push(node);
        }
        value["nodes"] = serde_json::Value::Array(Vec::new());
        let mut graph: Graph = serde_json::from_value(value).map_err(|e| GraphError::Parse {
            path: Default::default(),
            message: e.to_string(),
        })?;
        graph.nodes = parsed;
        Ok(graph)
    }

    /// Writes the graph as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a graph always serialises")
    }

    /// Checks names and wiring and infers every shape.
    pub fn analyze(&self) -> Result<Analysis> {
        if self.inputs.is_empty() {
            return Err(structure("the graph has no inputs"));
        }
        if self.nodes.is_empty() {
            return Err(structure("the graph has no nodes"));
        }
        let mut names: HashMap<&str, ValueRef> = HashMap::new();
        for (i, input) in self.inputs.iter().enumerate() {
            if input.shape.is_empty() || input.shape.contains(&0) {
                return Err(structure(&format!(
                    "input '{}' has shape {:?}; expected positive dimensions",
                    input.name, input.shape
                )));
            }
            if names.insert(&input.name, ValueRef::Input(i)).is_some() {
                return Err(structure(&format!("two inputs are named '{}'", input.name)));
            }
        }
        let shape_of = |r: ValueRef, nodes: &[NodeAnalysis]| -> Vec<usize> {
            match r {
                ValueRef::Input(i) => self.inputs[i].shape.clone(),
                ValueRef::Node(i) => nodes[i].shape.output.clone(),
            }
        };
        let mut analyzed: Vec<NodeAnalysis> = Vec::with_capacity(self.nodes.len());
        for (index, node) in self.nodes.iter().enumerate() {
            let inputs: Vec<ValueRef> = if node.inputs.is_empty() {
                vec![match index {
                    0 => ValueRef::Input(0),
                    i => ValueRef::Node(i - 1),
                }]
            } else {
                node.inputs
                    .iter()
                    .map(|n| {
                        names.get(n.as_str()).copied().ok_or_else(|| {
                            structure(&format!(
                                "layer '{}' reads '{n}', which is neither a graph input nor an earlier layer",
                                node.name
                            ))
                        })
                    })
                    .collect::<Result<_>>()?
            };
            let input_shapes: Vec<Vec<usize>> =
                inputs.iter().map(|&r| shape_of(r, &analyzed)).collect();
            let refs: Vec<&[usize]> = input_shapes.iter().map(Vec::as_slice).collect();
            let shape = shape::infer(&node.op, &refs).map_err(|message| GraphError::Shape {
                node: node.name.clone(),
                kind: node.op.kind(),
                message,
            })?;
            if names.insert(&node.name, ValueRef::Node(index)).is_some() {
                return Err(structure(&format!(
                    "the name '{}' is used twice",
                    node.name
                )));
            }
            analyzed.push(NodeAnalysis {
                inputs,
                input_shapes,
                shape,
            });
        }
        let outputs = if self.outputs.is_empty() {
            vec![ValueRef::Node(self.nodes.len() - 1)]
        } else {
            self.outputs
                .iter()
                .map(|n| {
                    names
                        .get(n.as_str())
                        .copied()
                        .ok_or_else(|| structure(&format!("output '{n}' is not a layer or input")))
                })
                .collect::<Result<_>>()?
        };
        Ok(Analysis {
            nodes: analyzed,
            outputs,
        })
    }

    /// Shape of a resolved value.
    pub fn value_shape<'a>(&'a self, analysis: &'a Analysis, value: ValueRef) -> &'a [usize] {
        match value {
            ValueRef::Input(i) => &self.inputs[i].shape,
            ValueRef::Node(i) => &analysis.nodes[i].shape.output,
        }
    }
}

fn structure(message: &str) -> GraphError {
    GraphError::Structure(message.to_string())
}

/// Rephrases serde's wording where it speaks of Rust rather than of graph files.
fn describe_serde(message: String) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant") {
        format!("unknown layer kind{rest}")
    } else if message.starts_with("missing field `op`") {
        "missing field `op` (the layer kind)".to_string()
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stack(nodes: serde_json::Value) -> serde_json::Value {
        json!({"inputs": [{"name": "x", "shape": [3, 32]}], "nodes": nodes})
    }

    #[test]
    fn unknown_layer_kind_names_the_node() {
        let v = stack(json!([{"name": "c1", "op": "conv3d", "out_channels": 4, "kernel": 3}]));
        let err = Graph::from_value(v).unwrap_err().to_string();
        assert!(err.contains("node #0 'c1'"), "{err}");
        assert!(err.contains("unknown layer kind `conv3d`"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let v = stack(
            json!([{"name": "c1", "op": "conv1d", "out_channels": 4, "kernel": 3, "strid": 2}]),
        );
        let err = Graph::from_value(v).unwrap_err().to_string();
        assert!(err.contains("strid"), "{err}");
    }

    #[test]
    fn mismatched_shapes_name_the_layer() {
        let v = stack(json!([
            {"name": "c1", "op": "conv1d", "out_channels": 4, "kernel": 3},
            {"name": "fc", "op": "linear", "out_features": 2}
        ]));
        let err = Graph::from_value(v)
            .unwrap()
            .analyze()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("layer 'fc' (linear)"), "{err}");
        assert!(err.contains("[4, 30]"), "{err}");
    }

    #[test]
    fn wiring_to_a_later_layer_is_rejected() {
        let v = stack(json!([
            {"name": "a", "op": "relu", "inputs": ["b"]},
            {"name": "b", "op": "relu"}
        ]));
        let err = Graph::from_value(v)
            .unwrap()
            .analyze()
            .unwrap_err()
            .to_string();
        assert!(err.contains("reads 'b'"), "{err}");
    }

    #[test]
    fn json_round_trip() {
        let v = stack(json!([
            {"name": "c1", "op": "conv1d", "out_channels": 4, "kernel": 3, "padding": "same"},
            {"name": "bn", "op": "batch_norm"},
            {"name": "r", "op": "relu"},
            {"name": "cat", "op": "concat", "inputs": ["r", "c1"]},
            {"name": "gap", "op": "global_avg_pool"},
            {"name": "fc", "op": "linear", "out_features": 2}
        ]));
        let g = Graph::from_value(v).unwrap();
        let back = Graph::from_value(serde_json::from_str(&g.to_json()).unwrap()).unwrap();
        assert_eq!(g, back);
        let a = g.analyze().unwrap();
        assert_eq!(a.nodes[3].shape.output, vec![8, 32]);
        assert_eq!(a.params(), 4 * 3 * 3 + 4 + 8 + 8 * 2 + 2);
    }
}
