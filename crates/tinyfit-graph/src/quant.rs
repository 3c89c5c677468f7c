//! The quantised form of a graph: the same [`Graph`], plus TFLite-style int8 parameters.
//!
//! Activations are asymmetric int8 with one scale and zero point per value (graph input or node
//! output); weights are symmetric int8 with one scale per output channel (axis 0 of PyTorch's
//! layout); biases are int32 with scale `s_in · s_w[c]`. A fused activation (a `relu` or `relu6`
//! node right after a convolution, linear layer or sum) shares its producer's quantisation, as
//! in TFLite. The layout stays the graph's (channels first); runtimes that want channels last
//! convert when they lower the graph.

use std::collections::BTreeMap;

use crate::graph::Graph;

/// Affine quantisation of one tensor: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Real value of one step.
    pub scale: f32,
    /// Quantised value of real zero.
    pub zero_point: i32,
}

/// A symmetric int8 weight tensor with per-output-channel scales.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantTensor {
    /// Dimensions, PyTorch layout (`[out, in/groups, k...]`, `[out, in]`).
    pub shape: Vec<usize>,
    /// Row-major int8 values.
    pub data: Vec<i8>,
    /// One scale per output channel, or one for the whole tensor.
    pub scales: Vec<f32>,
}

impl QuantTensor {
    /// The scale of output channel `c`.
    pub fn scale(&self, c: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[c]
        }
    }
}

/// A graph with int8 weights and quantised activations.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantGraph {
    /// The model structure.
    pub graph: Graph,
    /// Quantisation of every value, by name (graph inputs and node names).
    pub activations: BTreeMap<String, Affine>,
    /// int8 weights by node name.
    pub weights: BTreeMap<String, QuantTensor>,
    /// int32 biases by node name.
    pub biases: BTreeMap<String, Vec<i32>>,
    /// Where the model meets its caller: int8 tensors, or float ones quantised on the way in
    /// and dequantised on the way out (TFLite's QUANTIZE/DEQUANTIZE at the boundary).
    pub interface: Interface,
}

/// The element type of a quantised model's inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interface {
    /// Inputs arrive as float and are quantised with the input's parameters.
    pub float_inputs: bool,
    /// Outputs leave as float, dequantised with the output's parameters.
    pub float_outputs: bool,
}
