//! `.tflite` → [`QuantGraph`]: TFLite's int8 operators become graph nodes with PyTorch layouts.
//!
//! TFLite tensors are channels-last (`[1, H, W, C]`); graph values are channels-first
//! (`[C, H, W]`). Filters are transposed to PyTorch's layouts, a fused activation becomes a
//! `relu`/`relu6` node sharing its producer's quantisation, and a fully connected layer that
//! reads a flattened feature map has its weight columns reordered from TFLite's HWC flattening
//! to the graph's CHW flattening. Every shape is re-inferred and compared with the file's.

use std::collections::BTreeMap;

use tinyfit_graph::quant::{Affine, Interface, QuantGraph, QuantTensor};
use tinyfit_graph::{Concat, Conv, Extent, Graph, Input, Linear, Node, Op, PadMode, Padding, Pool};

use super::TfliteError;
use super::schema::tflite as fb;
use crate::layout::{flattening_reorders, transpose_blocks};

type Result<T> = std::result::Result<T, TfliteError>;

/// Reads a `.tflite` flatbuffer into a quantised graph.
pub fn import(bytes: &[u8]) -> Result<QuantGraph> {
    use planus::ReadAsRoot;
    let model = fb::ModelRef::read_as_root(bytes).map_err(TfliteError::format)?;
    Importer::new(model)?.run()
}

/// A tensor of the file, read once.
struct FileTensor {
    name: String,
    shape: Vec<usize>,
    kind: fb::TensorType,
    data: Option<Vec<u8>>,
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    quantized_dimension: usize,
}

impl FileTensor {
    fn affine(&self) -> Result<Affine> {
        match (self.scales.first(), self.zero_points.first()) {
            (Some(&scale), Some(&zp))
                if scale > 0.0 && scale.is_finite() && (-128..=127).contains(&zp) =>
            {
                Ok(Affine {
                    scale,
                    zero_point: zp as i32,
                })
            }
            _ => Err(self.bad("an int8 quantisation (positive scale, zero point in -128..=127)")),
        }
    }

    fn bad(&self, expected: &str) -> TfliteError {
        TfliteError::Tensor {
            tensor: self.name.clone(),
            message: format!("expected {expected}"),
        }
    }

    fn constant(&self) -> Result<&[u8]> {
        self.data
            .as_deref()
            .ok_or_else(|| self.bad("constant data in a buffer"))
    }

    /// The constant bytes of a tensor of type `kind` (`name` in TFLite's spelling) with
    /// `width` bytes per value, checked against its shape.
    fn typed_constant(&self, kind: fb::TensorType, name: &str, width: usize) -> Result<&[u8]> {
        if self.kind != kind {
            return Err(self.bad(&format!("type {name}, found {:?}", self.kind)));
        }
        let data = self.constant()?;
        let expected = numel(&self.shape).saturating_mul(width);
        if data.len() != expected {
            return Err(self.bad(&format!(
                "{expected} bytes for shape {:?}, found {}",
                self.shape,
                data.len()
            )));
        }
        Ok(data)
    }

    fn int8_values(&self) -> Result<Vec<i8>> {
        let data = self.typed_constant(fb::TensorType::Int8, "INT8", 1)?;
        Ok(data.iter().map(|&b| b as i8).collect())
    }

    fn int32_values(&self) -> Result<Vec<i32>> {
        let data = self.typed_constant(fb::TensorType::Int32, "INT32", 4)?;
        Ok(data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Per-channel symmetric weight scales along `axis`, with zero points 0.
    fn weight_scales(&self, axis: usize, channels: usize) -> Result<Vec<f32>> {
        let ok_scales = self.scales.iter().all(|s| *s > 0.0 && s.is_finite());
        let symmetric = self.zero_points.iter().all(|&z| z == 0);
        let per_tensor = self.scales.len() == 1;
        let per_channel = self.scales.len() == channels && self.quantized_dimension == axis;
        if ok_scales && symmetric && (per_tensor || per_channel) {
            Ok(self.scales.clone())
        } else {
            Err(self.bad(&format!(
                "symmetric int8 weights with 1 or {channels} scales along axis {axis} (found {} scales along axis {}, zero points {:?})",
                self.scales.len(),
                self.quantized_dimension,
                &self.zero_points[..self.zero_points.len().min(4)]
            )))
        }
    }
}

/// Element count, saturating (a corrupt file can declare absurd shapes).
fn numel(shape: &[usize]) -> usize {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .unwrap_or(usize::MAX)
}

struct Importer<'a> {
    subgraph: fb::SubGraphRef<'a>,
    opcodes: Vec<fb::BuiltinOperator>,
    tensors: Vec<FileTensor>,
    nodes: Vec<Node>,
    activations: BTreeMap<String, Affine>,
    weights: BTreeMap<String, QuantTensor>,
    biases: BTreeMap<String, Vec<i32>>,
    /// Graph value holding each file tensor, once produced.
    values: BTreeMap<usize, String>,
    /// Model outputs written by a DEQUANTIZE op, and the int8 tensor it reads.
    dequantized_outputs: BTreeMap<i32, i32>,
    /// Float or int8 model inputs and outputs.
    interface: Interface,
    /// Channels-last shape `[H, W, C]` of a flattened value's source, where TFLite's flattening
    /// order (HWC) differs from the graph's (CHW).
    flattened_from: BTreeMap<String, [usize; 3]>,
}

impl<'a> Importer<'a> {
    fn new(model: fb::ModelRef<'a>) -> Result<Self> {
        let e = TfliteError::format;
        let subgraphs = model
            .subgraphs()
            .map_err(e)?
            .ok_or_else(|| TfliteError::Unsupported("a model without subgraphs".into()))?;
        if subgraphs.len() != 1 {
            return Err(TfliteError::Unsupported(format!(
                "{} subgraphs (tinyfit runs models with one)",
                subgraphs.len()
            )));
        }
        let subgraph = subgraphs.iter().next().expect("one subgraph").map_err(e)?;
        let mut opcodes = Vec::new();
        for code in model.operator_codes().map_err(e)?.into_iter().flatten() {
            let code = code.map_err(e)?;
            // TFLite's rule: the larger of the two fields (the old one saturates at 127).
            let deprecated = code.deprecated_builtin_code().map_err(e)? as i32;
            let builtin = code.builtin_code().map_err(e)?;
            let op = if (builtin as i32) < deprecated {
                fb::BuiltinOperator::try_from(deprecated)
                    .map_err(|_| TfliteError::Unsupported(format!("operator code {deprecated}")))?
            } else {
                builtin
            };
            opcodes.push(op);
        }
        let buffers: Vec<Option<Vec<u8>>> = match model.buffers().map_err(e)? {
            Some(buffers) => buffers
                .iter()
                .map(|b| Ok(b.map_err(e)?.data().map_err(e)?.map(|d| d.to_vec())))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        let mut tensors = Vec::new();
        for (i, t) in subgraph
            .tensors()
            .map_err(e)?
            .into_iter()
            .flatten()
            .enumerate()
        {
            let t = t.map_err(e)?;
            let name = t
                .name()
                .map_err(e)?
                .map(str::to_string)
                .unwrap_or_else(|| format!("tensor {i}"));
            let shape = t
                .shape()
                .map_err(e)?
                .map(|s| {
                    s.iter()
                        .map(|d| usize::try_from(d).ok())
                        .collect::<Option<Vec<_>>>()
                })
                .unwrap_or(Some(Vec::new()))
                .ok_or_else(|| TfliteError::Tensor {
                    tensor: name.clone(),
                    message: "negative dimension".into(),
                })?;
            let buffer = t.buffer().map_err(e)? as usize;
            let data = match buffers.get(buffer) {
                Some(d) => d.clone().filter(|d| !d.is_empty()),
                None => {
                    return Err(TfliteError::Tensor {
                        tensor: name,
                        message: format!(
                            "buffer {buffer} does not exist ({} buffers)",
                            buffers.len()
                        ),
                    });
                }
            };
            let (mut scales, mut zero_points, mut quantized_dimension) =
                (Vec::new(), Vec::new(), 0);
            if let Some(q) = t.quantization().map_err(e)? {
                scales = q
                    .scale()
                    .map_err(e)?
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                zero_points = q
                    .zero_point()
                    .map_err(e)?
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                quantized_dimension = q.quantized_dimension().map_err(e)?.max(0) as usize;
            }
            tensors.push(FileTensor {
                name,
                shape,
                kind: t.type_().map_err(e)?,
                data,
                scales,
                zero_points,
                quantized_dimension,
            });
        }
        Ok(Importer {
            subgraph,
            opcodes,
            tensors,
            nodes: Vec::new(),
            activations: BTreeMap::new(),
            weights: BTreeMap::new(),
            biases: BTreeMap::new(),
            values: BTreeMap::new(),
            dequantized_outputs: BTreeMap::new(),
            interface: Interface::default(),
            flattened_from: BTreeMap::new(),
        })
    }

    fn tensor(&self, index: i32) -> Result<&FileTensor> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.tensors.get(i))
            .ok_or_else(|| {
                TfliteError::format_msg(format!(
                    "tensor index {index} out of range ({} tensors)",
                    self.tensors.len()
                ))
            })
    }

    /// The graph value of file tensor `index`, which must already be produced.
    fn value(&self, index: i32) -> Result<String> {
        let t = self.tensor(index)?;
        self.values
            .get(&(index as usize))
            .cloned()
            .ok_or_else(|| TfliteError::Tensor {
                tensor: t.name.clone(),
                message:
                    "read before any operator writes it (constant activations are not supported)"
                        .into(),
            })
    }

    fn run(mut self) -> Result<QuantGraph> {
        let e = TfliteError::format;
        let indices = |v: Option<planus::Vector<'a, i32>>| {
            v.map(|v| v.iter().collect::<Vec<i32>>())
                .unwrap_or_default()
        };
        let operators: Vec<_> = self
            .subgraph
            .operators()
            .map_err(e)?
            .into_iter()
            .flatten()
            .collect();
        // Float model inputs must be quantised by a QUANTIZE op, float outputs dequantised by a
        // DEQUANTIZE op: those ops become the interface, the graph starts and ends in int8.
        let model_inputs = indices(self.subgraph.inputs().map_err(e)?);
        let model_outputs = indices(self.subgraph.outputs().map_err(e)?);
        let mut quantized_input: BTreeMap<i32, i32> = BTreeMap::new();
        let mut boundary_ops = Vec::new();
        for (k, op) in operators.iter().enumerate() {
            let op = (*op).map_err(e)?;
            let code = op.opcode_index().map_err(e)? as usize;
            let ins = indices(op.inputs().map_err(e)?);
            let outs = indices(op.outputs().map_err(e)?);
            match (self.opcodes.get(code), &ins[..], &outs[..]) {
                (Some(fb::BuiltinOperator::Quantize), [x], [y])
                    if model_inputs.contains(x)
                        && self.tensor(*x)?.kind == fb::TensorType::Float32 =>
                {
                    quantized_input.insert(*x, *y);
                    boundary_ops.push(k);
                }
                (Some(fb::BuiltinOperator::Dequantize), [x], [y]) if model_outputs.contains(y) => {
                    self.dequantized_outputs.insert(*y, *x);
                    boundary_ops.push(k);
                }
                _ => {}
            }
        }
        let mut inputs = Vec::new();
        for &index in &model_inputs {
            let t = self.tensor(index)?;
            let (q, float) = match quantized_input.get(&index) {
                Some(&q) => (self.tensor(q)?, true),
                None => (t, false),
            };
            if q.kind != fb::TensorType::Int8 {
                return Err(t.bad(&format!(
                    "an INT8 model input (or FLOAT32 quantised by a QUANTIZE op), found {:?}",
                    t.kind
                )));
            }
            if float != self.interface.float_inputs && !inputs.is_empty() {
                return Err(TfliteError::Unsupported(
                    "a mix of float and int8 model inputs".into(),
                ));
            }
            let name = sanitize(&t.name);
            let (affine, shape) = (q.affine()?, channels_first(q)?);
            self.interface.float_inputs = float;
            self.activations.insert(name.clone(), affine);
            inputs.push(Input {
                name: name.clone(),
                shape,
            });
            self.values.insert(index as usize, name.clone());
            if let Some(&q) = quantized_input.get(&index) {
                self.values.insert(q as usize, name);
            }
        }
        for (k, op) in operators.into_iter().enumerate() {
            if boundary_ops.contains(&k) {
                continue;
            }
            let op = op.map_err(e)?;
            let code = op.opcode_index().map_err(e)? as usize;
            let kind = *self.opcodes.get(code).ok_or_else(|| {
                TfliteError::format_msg(format!("operator {k}: opcode index {code} out of range"))
            })?;
            let ins = indices(op.inputs().map_err(e)?);
            let outs = indices(op.outputs().map_err(e)?);
            let [out] = outs[..] else {
                return Err(TfliteError::Operator {
                    index: k,
                    op: kind,
                    message: format!("{} outputs, expected 1", outs.len()),
                });
            };
            self.operator(k, kind, &ins, out, op.builtin_options().map_err(e)?)
                .map_err(|err| match err {
                    TfliteError::Message(message) => TfliteError::Operator {
                        index: k,
                        op: kind,
                        message,
                    },
                    other => other,
                })?;
        }
        let mut outputs = Vec::new();
        for (n, &index) in model_outputs.iter().enumerate() {
            let float = self.dequantized_outputs.contains_key(&index);
            if n > 0 && float != self.interface.float_outputs {
                return Err(TfliteError::Unsupported(
                    "a mix of float and int8 model outputs".into(),
                ));
            }
            self.interface.float_outputs = float;
            let index = self
                .dequantized_outputs
                .get(&index)
                .copied()
                .unwrap_or(index);
            let value = self.value(index)?;
            if self.flattened_from.contains_key(&value) {
                return Err(TfliteError::Unsupported(format!(
                    "model output '{}' is a flattened feature map (its element order is channels-last)",
                    self.tensor(index)?.name
                )));
            }
            outputs.push(value);
        }
        let graph = Graph {
            name: String::new(),
            inputs,
            nodes: self.nodes,
            outputs,
        };
        let analysis = graph.analyze().map_err(|err| {
            TfliteError::format_msg(format!("the imported graph does not check: {err}"))
        })?;
        // Every node's inferred shape must be the file's (catches padding or layout mistakes).
        for (node, a) in graph.nodes.iter().zip(&analysis.nodes) {
            if let Some((&index, _)) = self.values.iter().find(|(_, v)| **v == node.name) {
                let t = &self.tensors[index];
                let expected = channels_first(t)?;
                if a.shape.output != expected {
                    return Err(TfliteError::Tensor {
                        tensor: t.name.clone(),
                        message: format!(
                            "tinyfit infers shape {:?} for node '{}', the file says {:?}",
                            a.shape.output, node.name, t.shape
                        ),
                    });
                }
            }
        }
        Ok(QuantGraph {
            graph,
            activations: self.activations,
            weights: self.weights,
            biases: self.biases,
            interface: self.interface,
        })
    }

    fn operator(
        &mut self,
        k: usize,
        kind: fb::BuiltinOperator,
        ins: &[i32],
        out: i32,
        options: Option<fb::BuiltinOptionsRef<'a>>,
    ) -> Result<()> {
        use fb::BuiltinOperator as B;
        use fb::BuiltinOptionsRef as O;
        let e = TfliteError::format;
        let msg = |m: String| TfliteError::Message(m);
        let arg = |i: usize| {
            ins.get(i).copied().ok_or_else(|| {
                msg(format!(
                    "has {} inputs, expected at least {}",
                    ins.len(),
                    i + 1
                ))
            })
        };
        let out_tensor = self.tensor(out)?;
        if out_tensor.kind != fb::TensorType::Int8 {
            return Err(out_tensor.bad(&format!("an INT8 activation, found {:?}", out_tensor.kind)));
        }
        let out_affine = out_tensor.affine()?;
        let out_shape = out_tensor.shape.clone();
        let (name, op, reads, activation) = match (kind, options) {
            (B::Conv2d, Some(O::Conv2DOptions(o))) => {
                let name = format!("conv{k}");
                let x = self.tensor(arg(0)?)?;
                let cin = *x.shape.last().unwrap_or(&0);
                let f = self.tensor(arg(1)?)?;
                let [o_, kh, kw, i_] = f.shape[..] else {
                    return Err(f.bad("a 4-D OHWI filter"));
                };
                if i_ == 0 || cin % i_ != 0 {
                    return Err(f.bad(&format!("input channels dividing {cin}")));
                }
                let data = f.int8_values()?;
                let scales = f.weight_scales(0, o_)?;
                // OHWI → OIHW: per output channel, [kh·kw][I] → [I][kh·kw].
                let mut w = transpose_blocks(&data, kh * kw, i_);
                let input_value = self.value(arg(0)?)?;
                if let Some([fh, fw, fc]) = self.flattened_from.get(&input_value).copied()
                    && kh * kw == 1
                {
                    if fh * fw * fc != i_ {
                        return Err(msg(format!(
                            "a 1x1 convolution of depth {i_} over a flattened [{fh}, {fw}, {fc}] map"
                        )));
                    }
                    w = transpose_blocks(&w, fh * fw, fc);
                }
                let geometry = conv_geometry!(o);
                let weight = QuantTensor {
                    shape: vec![o_, i_, kh, kw],
                    data: w,
                    scales,
                };
                let op = self.conv_op(&name, ins, weight, geometry, cin / i_)?;
                (
                    name,
                    op,
                    vec![arg(0)?],
                    o.fused_activation_function().map_err(e)?,
                )
            }
            (B::DepthwiseConv2d, Some(O::DepthwiseConv2DOptions(o))) => {
                let name = format!("dwconv{k}");
                let x = self.tensor(arg(0)?)?;
                let cin = *x.shape.last().unwrap_or(&0);
                let f = self.tensor(arg(1)?)?;
                let [1, kh, kw, o_] = f.shape[..] else {
                    return Err(f.bad("a [1, kh, kw, C·M] depthwise filter"));
                };
                if cin == 0 || o_ % cin != 0 {
                    return Err(f.bad(&format!(
                        "output channels a multiple of the {cin} input channels"
                    )));
                }
                let data = f.int8_values()?;
                let scales = f.weight_scales(3, o_)?;
                // 1HWO → O1HW: [kh·kw][O] → [O][kh·kw].
                let w = transpose_blocks(&data, kh * kw, o_);
                let geometry = conv_geometry!(o);
                let weight = QuantTensor {
                    shape: vec![o_, 1, kh, kw],
                    data: w,
                    scales,
                };
                let op = self.conv_op(&name, ins, weight, geometry, cin)?;
                (
                    name,
                    op,
                    vec![arg(0)?],
                    o.fused_activation_function().map_err(e)?,
                )
            }
            (B::FullyConnected, Some(O::FullyConnectedOptions(o))) => {
                if o.weights_format().map_err(e)? != fb::FullyConnectedOptionsWeightsFormat::Default
                {
                    return Err(msg("shuffled weights are not supported".into()));
                }
                let name = format!("fc{k}");
                let f = self.tensor(arg(1)?)?;
                let [outs, depth] = f.shape[..] else {
                    return Err(f.bad("a 2-D [out, in] filter"));
                };
                let mut data = f.int8_values()?;
                let scales = f.weight_scales(0, outs)?;
                let x = self.tensor(arg(0)?)?;
                let (x_shape, x_affine) = (x.shape.clone(), x.affine()?);
                if numel(&x_shape) != depth {
                    return Err(msg(format!(
                        "input {x_shape:?} does not hold the filter's {depth} features"
                    )));
                }
                let mut value = self.value(arg(0)?)?;
                if x_shape.len() != 2 {
                    // TFLite flattens implicitly; the graph says so with a node.
                    let flat = format!("{name}_flatten");
                    self.nodes
                        .push(Node::with_inputs(flat.clone(), Op::Flatten, &[&value]));
                    self.activations.insert(flat.clone(), x_affine);
                    if let [1, h, w, c] = x_shape[..]
                        && flattening_reorders(c, h * w)
                    {
                        self.flattened_from.insert(flat.clone(), [h, w, c]);
                    }
                    value = flat;
                }
                if let Some([h, w, c]) = self.flattened_from.get(&value).copied() {
                    if numel(&[h, w, c]) != depth {
                        return Err(msg(format!(
                            "reads a flattened [{h}, {w}, {c}] map with a filter of depth {depth}"
                        )));
                    }
                    // HWC → CHW columns.
                    data = transpose_blocks(&data, h * w, c);
                }
                self.weights.insert(
                    name.clone(),
                    QuantTensor {
                        shape: vec![outs, depth],
                        data,
                        scales,
                    },
                );
                let bias = self.bias(ins, &name, outs)?;
                let op = Op::Linear(Linear {
                    out_features: outs,
                    bias,
                });
                let act = o.fused_activation_function().map_err(e)?;
                self.nodes
                    .push(Node::with_inputs(name.clone(), op, &[&value]));
                return self.finish(name, out, out_affine, act);
            }
            (B::AveragePool2d | B::MaxPool2d, Some(O::Pool2DOptions(o))) => {
                let pool = Pool {
                    kernel: Extent::PerAxis(vec![
                        o.filter_height().map_err(e)?.max(0) as usize,
                        o.filter_width().map_err(e)?.max(0) as usize,
                    ]),
                    stride: Some(Extent::PerAxis(vec![
                        o.stride_h().map_err(e)?.max(0) as usize,
                        o.stride_w().map_err(e)?.max(0) as usize,
                    ])),
                    padding: padding(o.padding().map_err(e)?),
                    count_include_pad: false,
                };
                let x = self.tensor(arg(0)?)?;
                if x.affine()? != out_affine {
                    return Err(msg(
                        "input and output quantisation differ (TFLite requires them equal)".into(),
                    ));
                }
                let (name, op) = if kind == B::AveragePool2d {
                    (format!("avgpool{k}"), Op::AvgPool2d(pool))
                } else {
                    (format!("maxpool{k}"), Op::MaxPool2d(pool))
                };
                (
                    name,
                    op,
                    vec![arg(0)?],
                    o.fused_activation_function().map_err(e)?,
                )
            }
            (B::Add, Some(O::AddOptions(o))) => {
                let (a, b) = (self.tensor(arg(0)?)?, self.tensor(arg(1)?)?);
                if a.shape != b.shape {
                    return Err(msg(format!(
                        "broadcasting {:?} + {:?} is not supported",
                        a.shape, b.shape
                    )));
                }
                (
                    format!("add{k}"),
                    Op::Add,
                    vec![arg(0)?, arg(1)?],
                    o.fused_activation_function().map_err(e)?,
                )
            }
            (B::Concatenation, Some(O::ConcatenationOptions(o))) => {
                let rank = out_shape.len() as i32;
                let axis = o.axis().map_err(e)?;
                let axis = if axis < 0 { axis + rank } else { axis };
                // Channels-last axis → channels-first axis (batch excluded).
                let graph_axis = match (rank, axis) {
                    (4, 3) | (2, 1) => 0,
                    (4, 1) => 1,
                    (4, 2) => 2,
                    _ => {
                        return Err(msg(format!(
                            "concatenation along axis {axis} of a rank-{rank} tensor"
                        )));
                    }
                };
                (
                    format!("concat{k}"),
                    Op::Concat(Concat { axis: graph_axis }),
                    ins.to_vec(),
                    o.fused_activation_function().map_err(e)?,
                )
            }
            (B::Reshape, _) => {
                let x = self.tensor(arg(0)?)?;
                let (x_shape, x_affine) = (x.shape.clone(), x.affine()?);
                let value = self.value(arg(0)?)?;
                if x_affine != out_affine {
                    return Err(msg("input and output quantisation differ".into()));
                }
                let name = format!("reshape{k}");
                if numel(&x_shape) != numel(&out_shape) {
                    return Err(msg(format!(
                        "reshape {x_shape:?} → {out_shape:?} changes the element count"
                    )));
                }
                match (&x_shape[..], &out_shape[..]) {
                    (from, [1, _]) => {
                        self.nodes
                            .push(Node::with_inputs(name.clone(), Op::Flatten, &[&value]));
                        if let [1, h, w, c] = *from
                            && flattening_reorders(c, h * w)
                        {
                            self.flattened_from.insert(name.clone(), [h, w, c]);
                        } else if let Some(src) = self.flattened_from.get(&value).copied() {
                            self.flattened_from.insert(name.clone(), src);
                        }
                    }
                    (from, to) if from == to => {
                        self.nodes
                            .push(Node::with_inputs(name.clone(), Op::Identity, &[&value]))
                    }
                    (_, [1, h, w, c]) => {
                        let shape = vec![*c, *h, *w];
                        if let Some(src) = self.flattened_from.get(&value).copied() {
                            if *h * *w != 1 {
                                return Err(msg(format!(
                                    "a channels-last flattening reshaped to {out_shape:?}"
                                )));
                            }
                            self.flattened_from.insert(name.clone(), src);
                        }
                        self.nodes.push(Node::with_inputs(
                            name.clone(),
                            Op::Reshape(tinyfit_graph::Reshape { shape }),
                            &[&value],
                        ))
                    }
                    (from, to) => {
                        return Err(msg(format!(
                            "reshape {from:?} → {to:?} (tinyfit reshapes to [1, N] or [1, H, W, C])"
                        )));
                    }
                }
                self.activations.insert(name.clone(), out_affine);
                self.values.insert(out as usize, name);
                return Ok(());
            }
            (B::Quantize, _) => {
                let x = self.tensor(arg(0)?)?;
                if x.kind != fb::TensorType::Int8 {
                    return Err(msg(format!(
                        "quantising a {:?} tensor inside the model (only int8 → int8 and float model inputs)",
                        x.kind
                    )));
                }
                (
                    format!("requantize{k}"),
                    Op::Identity,
                    vec![arg(0)?],
                    fb::ActivationFunctionType::None,
                )
            }
            (B::Mean, Some(O::ReducerOptions(o))) => {
                let x = self.tensor(arg(0)?)?;
                let mut axes = self.tensor(arg(1)?)?.int32_values()?;
                axes.sort_unstable();
                if !(x.shape.len() == 4 && axes == [1, 2]) {
                    return Err(msg(format!(
                        "mean over axes {axes:?} of a {:?} tensor (tinyfit averages height and width of 4-D tensors)",
                        x.shape
                    )));
                }
                let keep_dims = o.keep_dims().map_err(e)?;
                (
                    format!("mean{k}"),
                    Op::Mean(tinyfit_graph::Mean { keep_dims }),
                    vec![arg(0)?],
                    fb::ActivationFunctionType::None,
                )
            }
            (B::Pad, _) => {
                let x = self.tensor(arg(0)?)?;
                if x.affine()? != out_affine {
                    return Err(msg("input and output quantisation differ".into()));
                }
                let pads = self.tensor(arg(1)?)?;
                let values = pads.int32_values()?;
                let padding = match (&x.shape[..], &values[..]) {
                    ([1, _, _, _], [0, 0, t, b, l, r, 0, 0]) => {
                        vec![[*t as usize, *b as usize], [*l as usize, *r as usize]]
                    }
                    _ => {
                        return Err(msg(format!(
                            "padding {values:?} of a {:?} tensor (tinyfit pads the spatial axes of 4-D tensors)",
                            x.shape
                        )));
                    }
                };
                if padding.iter().flatten().any(|&p| p > 1 << 16) {
                    return Err(msg(format!("padding {values:?}")));
                }
                (
                    format!("pad{k}"),
                    Op::Pad(tinyfit_graph::Pad { padding }),
                    vec![arg(0)?],
                    fb::ActivationFunctionType::None,
                )
            }
            (B::Softmax, Some(O::SoftmaxOptions(o))) => {
                let beta = o.beta().map_err(e)?;
                if beta != 1.0 {
                    return Err(msg(format!(
                        "softmax with beta {beta} (only 1 is supported)"
                    )));
                }
                (
                    format!("softmax{k}"),
                    Op::Softmax,
                    vec![arg(0)?],
                    fb::ActivationFunctionType::None,
                )
            }
            (op, _) => return Err(TfliteError::UnsupportedOp { index: k, op }),
        };
        let mut values = Vec::new();
        for &r in &reads {
            values.push(self.value(r)?);
        }
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        self.nodes.push(Node::with_inputs(name.clone(), op, &refs));
        self.finish(name, out, out_affine, activation)
    }

    /// Records a node's output quantisation and appends its fused activation, if any.
    fn finish(
        &mut self,
        name: String,
        out: i32,
        affine: Affine,
        act: fb::ActivationFunctionType,
    ) -> Result<()> {
        self.activations.insert(name.clone(), affine);
        let value = match act {
            fb::ActivationFunctionType::None => name,
            fb::ActivationFunctionType::Relu | fb::ActivationFunctionType::Relu6 => {
                let relu = format!(
                    "{name}_{}",
                    if act == fb::ActivationFunctionType::Relu {
                        "relu"
                    } else {
                        "relu6"
                    }
                );
                let op = if act == fb::ActivationFunctionType::Relu {
                    Op::Relu
                } else {
                    Op::Relu6
                };
                self.nodes
                    .push(Node::with_inputs(relu.clone(), op, &[&name]));
                self.activations.insert(relu.clone(), affine);
                relu
            }
            other => {
                return Err(TfliteError::Message(format!(
                    "fused activation {other:?} is not supported"
                )));
            }
        };
        self.values.insert(out as usize, value);
        Ok(())
    }

    /// A conv2d node from its int8 weights (PyTorch layout), the file's geometry and its bias.
    fn conv_op(
        &mut self,
        name: &str,
        ins: &[i32],
        weight: QuantTensor,
        geometry: ConvGeometry,
        groups: usize,
    ) -> Result<Op> {
        let (out_channels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3]);
        self.weights.insert(name.to_string(), weight);
        let bias = self.bias(ins, name, out_channels)?;
        let per_axis =
            |v: [i32; 2]| Extent::PerAxis(v.iter().map(|&d| d.max(0) as usize).collect());
        Ok(Op::Conv2d(Conv {
            out_channels,
            kernel: Extent::PerAxis(vec![kh, kw]),
            stride: per_axis(geometry.stride),
            padding: padding(geometry.padding),
            dilation: per_axis(geometry.dilation),
            groups,
            bias,
        }))
    }

    /// Reads the optional int32 bias (third input) of node `name` with `channels` values.
    fn bias(&mut self, ins: &[i32], name: &str, channels: usize) -> Result<bool> {
        match ins.get(2) {
            None | Some(-1) => Ok(false),
            Some(&b) => {
                let t = self.tensor(b)?;
                let values = t.int32_values()?;
                if values.len() != channels {
                    return Err(t.bad(&format!("{channels} bias values, found {}", values.len())));
                }
                self.biases.insert(name.to_string(), values);
                Ok(true)
            }
        }
    }
}

/// Reads the geometry fields that CONV_2D's and DEPTHWISE_CONV_2D's option tables share (two
/// generated types with the same accessors).
macro_rules! conv_geometry {
    ($o:expr) => {
        ConvGeometry {
            padding: $o.padding().map_err(TfliteError::format)?,
            stride: [
                $o.stride_h().map_err(TfliteError::format)?,
                $o.stride_w().map_err(TfliteError::format)?,
            ],
            dilation: [
                $o.dilation_h_factor().map_err(TfliteError::format)?,
                $o.dilation_w_factor().map_err(TfliteError::format)?,
            ],
        }
    };
}
use conv_geometry;

/// The geometry CONV_2D and DEPTHWISE_CONV_2D options share.
struct ConvGeometry {
    padding: fb::Padding,
    stride: [i32; 2],
    dilation: [i32; 2],
}

/// Graph-value name for a file tensor name (graph names must not contain `;` or spaces).
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "input".into() } else { s }
}

/// Channels-first graph shape (batch dropped) of a channels-last file tensor.
fn channels_first(t: &FileTensor) -> Result<Vec<usize>> {
    match t.shape[..] {
        [1, h, w, c] => Ok(vec![c, h, w]),
        [1, l, c] => Ok(vec![c, l]),
        [1, n] => Ok(vec![n]),
        _ => Err(t.bad("shape [1, H, W, C], [1, L, C] or [1, N] (batch 1)")),
    }
}

fn padding(p: fb::Padding) -> Padding {
    match p {
        fb::Padding::Same => Padding::Mode(PadMode::Same),
        fb::Padding::Valid => Padding::Mode(PadMode::Valid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int8_tensor(name: &str, shape: Vec<i32>) -> fb::Tensor {
        fb::Tensor {
            shape: Some(shape),
            type_: fb::TensorType::Int8,
            name: Some(name.into()),
            quantization: Some(Box::new(fb::QuantizationParameters {
                scale: Some(vec![0.1]),
                zero_point: Some(vec![0]),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// A one-operator model `x → op → y` with int8 `[1, 4]` tensors.
    fn single_op_model(op: fb::BuiltinOperator) -> Vec<u8> {
        let model = fb::Model {
            version: 3,
            operator_codes: Some(vec![fb::OperatorCode {
                deprecated_builtin_code: (op as i32).min(127) as i8,
                builtin_code: op,
                version: 1,
                ..Default::default()
            }]),
            subgraphs: Some(vec![fb::SubGraph {
                tensors: Some(vec![
                    int8_tensor("x", vec![1, 4]),
                    int8_tensor("y", vec![1, 4]),
                ]),
                inputs: Some(vec![0]),
                outputs: Some(vec![1]),
                operators: Some(vec![fb::Operator {
                    opcode_index: 0,
                    inputs: Some(vec![0]),
                    outputs: Some(vec![1]),
                    ..Default::default()
                }]),
                name: None,
            }]),
            buffers: Some(vec![fb::Buffer::default()]),
            ..Default::default()
        };
        planus::Builder::new().finish(&model, None).to_vec()
    }

    #[test]
    fn unsupported_operator_is_named() {
        let err = import(&single_op_model(fb::BuiltinOperator::Tanh)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("operator 0 is Tanh"), "{text}");
        let err = import(&single_op_model(fb::BuiltinOperator::Logistic)).unwrap_err();
        assert!(err.to_string().contains("Logistic"), "{err}");
    }
}
