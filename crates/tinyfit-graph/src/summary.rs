//! Per-layer cost table: shapes, parameters, MACs and activation bytes.

use crate::graph::{Analysis, Graph, ValueRef};
use crate::shape::numel;

/// One row of the per-layer table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// Node name.
    pub name: String,
    /// Op kind.
    pub kind: &'static str,
    /// Input shapes.
    pub inputs: Vec<Vec<usize>>,
    /// Output shape.
    pub output: Vec<usize>,
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates per sample.
    pub macs: u64,
    /// Bytes of the output activation as int8 (one byte per element), the deployed format.
    pub activation_bytes: u64,
}

/// The per-layer table and its totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// One row per node.
    pub rows: Vec<LayerRow>,
    /// Total trainable parameters.
    pub params: u64,
    /// Total MACs per sample.
    pub macs: u64,
    /// Sum of every activation (int8 bytes), inputs included.
    pub activation_bytes: u64,
    /// The largest `inputs + output` of any single layer (int8 bytes): a lower bound on the
    /// activation memory of any layer-by-layer executor.
    pub peak_layer_bytes: u64,
}

impl Summary {
    /// Builds the table of an analysed graph.
    pub fn new(graph: &Graph, analysis: &Analysis) -> Summary {
        let rows: Vec<LayerRow> = graph
            .nodes
            .iter()
            .zip(&analysis.nodes)
            .map(|(node, a)| LayerRow {
                name: node.name.clone(),
                kind: node.op.kind(),
                inputs: a.input_shapes.clone(),
                output: a.shape.output.clone(),
                params: a.shape.params(),
                macs: a.shape.macs,
                activation_bytes: numel(&a.shape.output),
            })
            .collect();
        let input_bytes: u64 = graph.inputs.iter().map(|i| numel(&i.shape)).sum();
        let peak_layer_bytes = analysis
            .nodes
            .iter()
            .map(|a| {
                let ins: u64 = a
                    .inputs
                    .iter()
                    .map(|&r| numel(graph.value_shape(analysis, r)))
                    .sum();
                ins + numel(&a.shape.output)
            })
            .max()
            .unwrap_or(0);
        Summary {
            params: rows.iter().map(|r| r.params).sum(),
            macs: rows.iter().map(|r| r.macs).sum(),
            activation_bytes: input_bytes + rows.iter().map(|r| r.activation_bytes).sum::<u64>(),
            peak_layer_bytes,
            rows,
        }
    }

    /// Output shapes of the graph.
    pub fn output_shapes(graph: &Graph, analysis: &Analysis) -> Vec<Vec<usize>> {
        analysis
            .outputs
            .iter()
            .map(|&r: &ValueRef| graph.value_shape(analysis, r).to_vec())
            .collect()
    }
}
