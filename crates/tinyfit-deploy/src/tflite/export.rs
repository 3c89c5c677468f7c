//! [`QuantGraph`] → `.tflite`: the lowered program written as TFLite builtin operators.
//!
//! Export goes through [`crate::lower`], so the file holds exactly what tinyfit's runtime runs:
//! channels-last tensors, fused activations, OHWI filters (depthwise `[1, kh, kw, C·M]`),
//! per-channel weight scales and int32 biases. Graph values of rank 1 become `[1, N]`, `[C, L]`
//! becomes `[1, 1, L, C]` and `[C, H, W]` becomes `[1, H, W, C]`.

use tinyfit_graph::quant::QuantGraph;
use tinyfit_micro::kernels::{Shape, Window};
use tinyfit_micro::{Constants, Kernel, TensorInfo};

use super::schema::tflite as fb;
use crate::program::{Activation, Program};

/// Why a quantised graph cannot be written as TFLite.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The graph does not lower onto the int8 runtime.
    #[error(transparent)]
    Lower(#[from] crate::LowerError),
    /// A node TFLite's builtin operators cannot express.
    #[error("node '{node}': {message}")]
    Node {
        /// Node name.
        node: String,
        /// What cannot be expressed.
        message: String,
    },
}

/// How fully connected layers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullyConnectedAs {
    /// As 1×1 `CONV_2D` between reshapes (the default). TFLite Micro, CMSIS-NN and LiteRT's
    /// convolution all round twice, as tinyfit does, while LiteRT 2.3's reference
    /// `FULLY_CONNECTED` rounds once; written as a convolution, the layer gives the same
    /// integers in all of them.
    #[default]
    Conv1x1,
    /// As `FULLY_CONNECTED`, for toolchains with faster dedicated kernels (LiteRT 2.3 then
    /// differs in the last bit on some outputs).
    FullyConnected,
}

/// Export choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportOptions {
    /// How fully connected layers are written.
    pub fully_connected: FullyConnectedAs,
}

/// Writes `q` as a `.tflite` flatbuffer that LiteRT and TFLite Micro load (default options).
pub fn export(q: &QuantGraph) -> Result<Vec<u8>, ExportError> {
    export_with(q, ExportOptions::default())
}

/// Writes `q` as a `.tflite` flatbuffer with the given options.
pub fn export_with(q: &QuantGraph, options: ExportOptions) -> Result<Vec<u8>, ExportError> {
    export_lowered(q, &crate::lower(q)?, options)
}

/// Writes `q`, already lowered to `program` (by [`crate::lower`]), as a `.tflite` flatbuffer.
pub fn export_lowered(
    q: &QuantGraph,
    program: &Program,
    options: ExportOptions,
) -> Result<Vec<u8>, ExportError> {
    Writer::new(program, q, options).write()
}

struct Writer<'a> {
    program: &'a Program,
    q: &'a QuantGraph,
    options: ExportOptions,
    tensors: Vec<fb::Tensor>,
    buffers: Vec<fb::Buffer>,
    codes: Vec<fb::BuiltinOperator>,
    operators: Vec<fb::Operator>,
}

impl<'a> Writer<'a> {
    fn new(program: &'a Program, q: &'a QuantGraph, options: ExportOptions) -> Self {
        Writer {
            program,
            q,
            options,
            tensors: Vec::new(),
            // Buffer 0 is TFLite's empty sentinel for tensors without data.
            buffers: vec![fb::Buffer::default()],
            codes: Vec::new(),
            operators: Vec::new(),
        }
    }

    fn write(mut self) -> Result<Vec<u8>, ExportError> {
        // Activation tensors keep the program's indices.
        for (t, info) in self.program.tensors.iter().enumerate() {
            let shape = tflite_shape(&self.program.graph_shapes[t], info.shape);
            self.tensors.push(fb::Tensor {
                shape: Some(shape),
                type_: fb::TensorType::Int8,
                buffer: 0,
                name: Some(format!("t{t}")),
                quantization: Some(Box::new(quantization(
                    vec![info.scale],
                    vec![info.zero_point as i64],
                    0,
                ))),
                ..Default::default()
            });
        }
        // A float interface: QUANTIZE the float inputs first, DEQUANTIZE the outputs last.
        let interface = self.q.interface;
        let mut model_inputs: Vec<i32> = self.program.inputs.iter().map(|&t| t as i32).collect();
        if interface.float_inputs {
            for input in &mut model_inputs {
                let float = self.float_twin(*input, "float_input");
                self.push_operator(fb::BuiltinOperator::Quantize, vec![float], *input, None);
                *input = float;
            }
        }
        for (k, op) in self.program.operations.iter().enumerate() {
            let report = &self.program.report[k];
            let node = report.node.clone();
            let fail = |message: String| ExportError::Node {
                node: node.clone(),
                message,
            };
            let inputs: Vec<i32> = op
                .inputs
                .of(&self.program.operands)
                .unwrap_or(&[])
                .iter()
                .map(|&t| t as i32)
                .collect();
            let x = self.program.tensors[inputs[0] as usize];
            let out = self.program.tensors[op.output as usize];
            let act = activation(report.activation);
            if let Kernel::FullyConnected { constants } = op.kernel
                && self.options.fully_connected == FullyConnectedAs::Conv1x1
            {
                self.fully_connected_as_conv(&node, inputs[0], op.output as i32, &constants, act);
                continue;
            }
            let (code, mut ins, options) = match op.kernel {
                Kernel::Conv {
                    window,
                    groups,
                    constants,
                } => {
                    if groups > 1 {
                        return Err(fail(format!(
                            "grouped convolution ({groups} groups) has no TFLite builtin"
                        )));
                    }
                    let (input, padding) = self
                        .padded(&node, inputs[0], &window, x, out.shape)
                        .map_err(fail)?;
                    let shape = vec![
                        out.shape.c as i32,
                        window.kh as i32,
                        window.kw as i32,
                        x.shape.c as i32,
                    ];
                    let (f, b) = self.layer_tensors(&node, &constants, shape, 0, x.scale, None);
                    let options = fb::BuiltinOptions::Conv2DOptions(Box::new(fb::Conv2DOptions {
                        padding,
                        stride_w: window.stride_w as i32,
                        stride_h: window.stride_h as i32,
                        fused_activation_function: act,
                        dilation_w_factor: window.dilation_w as i32,
                        dilation_h_factor: window.dilation_h as i32,
                    }));
                    (
                        fb::BuiltinOperator::Conv2d,
                        vec![input, f, b],
                        Some(options),
                    )
                }
                Kernel::DepthwiseConv {
                    window,
                    multiplier,
                    constants,
                } => {
                    let (input, padding) = self
                        .padded(&node, inputs[0], &window, x, out.shape)
                        .map_err(fail)?;
                    // The runtime's [kh, kw, C·M] is TFLite's [1, kh, kw, C·M].
                    let shape = vec![1, window.kh as i32, window.kw as i32, out.shape.c as i32];
                    let (f, b) = self.layer_tensors(&node, &constants, shape, 3, x.scale, None);
                    let options = fb::BuiltinOptions::DepthwiseConv2DOptions(Box::new(
                        fb::DepthwiseConv2DOptions {
                            padding,
                            stride_w: window.stride_w as i32,
                            stride_h: window.stride_h as i32,
                            depth_multiplier: multiplier as i32,
                            fused_activation_function: act,
                            dilation_w_factor: window.dilation_w as i32,
                            dilation_h_factor: window.dilation_h as i32,
                        },
                    ));
                    (
                        fb::BuiltinOperator::DepthwiseConv2d,
                        vec![input, f, b],
                        Some(options),
                    )
                }
                Kernel::FullyConnected { constants } => {
                    let shape = vec![out.shape.len() as i32, x.shape.len() as i32];
                    let (f, b) = self.layer_tensors(&node, &constants, shape, 0, x.scale, None);
                    let options = fb::BuiltinOptions::FullyConnectedOptions(Box::new(
                        fb::FullyConnectedOptions {
                            fused_activation_function: act,
                            ..Default::default()
                        },
                    ));
                    (
                        fb::BuiltinOperator::FullyConnected,
                        vec![inputs[0], f, b],
                        Some(options),
                    )
                }
                Kernel::AvgPool { window, .. } | Kernel::MaxPool { window, .. } => {
                    let padding = padding(&window, x.shape, out.shape).map_err(fail)?;
                    let options = fb::BuiltinOptions::Pool2DOptions(Box::new(fb::Pool2DOptions {
                        padding,
                        stride_w: window.stride_w as i32,
                        stride_h: window.stride_h as i32,
                        filter_width: window.kw as i32,
                        filter_height: window.kh as i32,
                        fused_activation_function: act,
                    }));
                    let code = if matches!(op.kernel, Kernel::AvgPool { .. }) {
                        fb::BuiltinOperator::AveragePool2d
                    } else {
                        fb::BuiltinOperator::MaxPool2d
                    };
                    (code, vec![inputs[0]], Some(options))
                }
                Kernel::Add(_) => {
                    let options = fb::BuiltinOptions::AddOptions(Box::new(fb::AddOptions {
                        fused_activation_function: act,
                        pot_scale_int16: true,
                    }));
                    (fb::BuiltinOperator::Add, inputs.clone(), Some(options))
                }
                Kernel::Mean { .. } => {
                    let axes = self.constant_i32(&format!("{node}.axes"), vec![2], &[1, 2], None);
                    let keep_dims = self.program.graph_shapes[op.output as usize].len() > 1;
                    let options =
                        fb::BuiltinOptions::ReducerOptions(Box::new(fb::ReducerOptions {
                            keep_dims,
                        }));
                    (
                        fb::BuiltinOperator::Mean,
                        vec![inputs[0], axes],
                        Some(options),
                    )
                }
                Kernel::Concat => {
                    let options = fb::BuiltinOptions::ConcatenationOptions(Box::new(
                        fb::ConcatenationOptions {
                            axis: -1,
                            fused_activation_function: act,
                        },
                    ));
                    (
                        fb::BuiltinOperator::Concatenation,
                        inputs.clone(),
                        Some(options),
                    )
                }
                Kernel::Reshape => {
                    let new_shape = self.tensors[op.output as usize]
                        .shape
                        .clone()
                        .unwrap_or_default();
                    let s = self.constant_i32(
                        &format!("{node}.shape"),
                        vec![new_shape.len() as i32],
                        &new_shape,
                        None,
                    );
                    let options =
                        fb::BuiltinOptions::ReshapeOptions(Box::new(fb::ReshapeOptions {
                            new_shape: Some(new_shape),
                        }));
                    (
                        fb::BuiltinOperator::Reshape,
                        vec![inputs[0], s],
                        Some(options),
                    )
                }
                Kernel::Softmax(_) => {
                    let options =
                        fb::BuiltinOptions::SoftmaxOptions(Box::new(fb::SoftmaxOptions {
                            beta: 1.0,
                        }));
                    (fb::BuiltinOperator::Softmax, vec![inputs[0]], Some(options))
                }
                Kernel::Pad { top, left } => {
                    let (bottom, right) = (
                        out.shape.h - x.shape.h - top as usize,
                        out.shape.w - x.shape.w - left as usize,
                    );
                    let pads = [
                        0,
                        0,
                        top as i32,
                        bottom as i32,
                        left as i32,
                        right as i32,
                        0,
                        0,
                    ];
                    let p = self.constant_i32(&format!("{node}.paddings"), vec![4, 2], &pads, None);
                    (
                        fb::BuiltinOperator::Pad,
                        vec![inputs[0], p],
                        Some(fb::BuiltinOptions::PadOptions(Box::default())),
                    )
                }
                Kernel::Requantize { .. } => (fb::BuiltinOperator::Quantize, vec![inputs[0]], None),
                Kernel::ChannelShuffle { .. } => {
                    return Err(fail(
                        "channel shuffle has no TFLite builtin (it would take RESHAPE, TRANSPOSE, \
                         RESHAPE); it runs in tinyfit's runtime and C packages only"
                            .into(),
                    ));
                }
            };
            ins.shrink_to_fit();
            let output = op.output as i32;
            // Pooling writes 4-D tensors; a global average pool's vector output gets them
            // through a reshape.
            let pooled_vector =
                matches!(op.kernel, Kernel::AvgPool { .. } | Kernel::MaxPool { .. })
                    && self.program.graph_shapes[op.output as usize].len() == 1;
            if pooled_vector {
                let mut four_d = self.tensors[op.output as usize].clone();
                four_d.shape = Some(vec![1, 1, 1, out.shape.c as i32]);
                four_d.name = Some(format!("{node}.pooled"));
                self.tensors.push(four_d);
                let pooled = (self.tensors.len() - 1) as i32;
                self.push_operator(code, ins, pooled, options);
                self.reshape_into(&node, pooled, output);
            } else {
                self.push_operator(code, ins, output, options);
            }
        }
        let mut model_outputs: Vec<i32> = self.program.outputs.iter().map(|&t| t as i32).collect();
        if interface.float_outputs {
            for output in &mut model_outputs {
                let float = self.float_twin(*output, "float_output");
                self.push_operator(fb::BuiltinOperator::Dequantize, vec![*output], float, None);
                *output = float;
            }
        }
        let model = fb::Model {
            version: 3,
            operator_codes: Some(
                self.codes
                    .iter()
                    .map(|&c| fb::OperatorCode {
                        deprecated_builtin_code: (c as i32).min(127) as i8,
                        builtin_code: c,
                        version: op_version(c),
                        ..Default::default()
                    })
                    .collect(),
            ),
            subgraphs: Some(vec![fb::SubGraph {
                tensors: Some(self.tensors),
                inputs: Some(model_inputs),
                outputs: Some(model_outputs),
                operators: Some(self.operators),
                name: Some("main".into()),
            }]),
            description: Some(format!("tinyfit {}", env!("CARGO_PKG_VERSION"))),
            buffers: Some(self.buffers),
            ..Default::default()
        };
        Ok(with_file_identifier(
            planus::Builder::new().finish(&model, None),
        ))
    }

    /// `y = W·x + b` as reshape `[1, N]` → `[1, 1, 1, N]`, 1×1 convolution, reshape back.
    fn fully_connected_as_conv(
        &mut self,
        node: &str,
        input: i32,
        output: i32,
        constants: &Constants,
        act: fb::ActivationFunctionType,
    ) {
        let x = self.program.tensors[input as usize];
        let y = self.program.tensors[output as usize];
        let (n, m) = (x.shape.len() as i32, y.shape.len() as i32);
        let x4 = self.reshaped(node, "input", input, vec![1, 1, 1, n]);
        let (f, b) = self.layer_tensors(
            node,
            constants,
            vec![m, 1, 1, n],
            0,
            x.scale,
            Some(m as usize),
        );
        let mut y4 = self.tensors[output as usize].clone();
        y4.shape = Some(vec![1, 1, 1, m]);
        y4.name = Some(format!("{node}.conv"));
        self.tensors.push(y4);
        let y4 = (self.tensors.len() - 1) as i32;
        let options = fb::BuiltinOptions::Conv2DOptions(Box::new(fb::Conv2DOptions {
            padding: fb::Padding::Valid,
            stride_w: 1,
            stride_h: 1,
            fused_activation_function: act,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
        }));
        self.push_operator(
            fb::BuiltinOperator::Conv2d,
            vec![x4, f, b],
            y4,
            Some(options),
        );
        self.reshape_into(node, y4, output);
    }

    /// A new tensor holding `input` reshaped to `shape` (same quantisation), via a RESHAPE.
    fn reshaped(&mut self, node: &str, what: &str, input: i32, shape: Vec<i32>) -> i32 {
        let mut t = self.tensors[input as usize].clone();
        t.shape = Some(shape);
        t.name = Some(format!("{node}.{what}"));
        self.tensors.push(t);
        let out = (self.tensors.len() - 1) as i32;
        self.reshape_into(node, input, out);
        out
    }

    /// A RESHAPE from `input` to the existing tensor `output`.
    fn reshape_into(&mut self, node: &str, input: i32, output: i32) {
        let new_shape = self.tensors[output as usize]
            .shape
            .clone()
            .unwrap_or_default();
        let s = self.constant_i32(
            &format!("{node}.shape{output}"),
            vec![new_shape.len() as i32],
            &new_shape,
            None,
        );
        let options = fb::BuiltinOptions::ReshapeOptions(Box::new(fb::ReshapeOptions {
            new_shape: Some(new_shape),
        }));
        self.push_operator(
            fb::BuiltinOperator::Reshape,
            vec![input, s],
            output,
            Some(options),
        );
    }

    /// A FLOAT32 tensor of the same shape as int8 tensor `t`, for the model's interface.
    fn float_twin(&mut self, t: i32, what: &str) -> i32 {
        let mut twin = self.tensors[t as usize].clone();
        twin.type_ = fb::TensorType::Float32;
        twin.quantization = None;
        twin.name = Some(format!("{what}{t}"));
        self.tensors.push(twin);
        (self.tensors.len() - 1) as i32
    }

    /// The input and TFLite padding mode for a convolution window: SAME or VALID when one of
    /// them matches, else the input zero-padded by a PAD op and VALID (PyTorch-style symmetric
    /// padding under a stride, for instance).
    fn padded(
        &mut self,
        node: &str,
        input: i32,
        w: &Window,
        x: TensorInfo,
        y: Shape,
    ) -> Result<(i32, fb::Padding), String> {
        if let Ok(p) = padding(w, x.shape, y) {
            return Ok((input, p));
        }
        let span = |k: usize, d: usize| (k - 1) * d + 1;
        let (span_h, span_w) = (span(w.kh, w.dilation_h), span(w.kw, w.dilation_w));
        let bottom = ((y.h - 1) * w.stride_h + span_h).saturating_sub(x.shape.h + w.pad_top);
        let right = ((y.w - 1) * w.stride_w + span_w).saturating_sub(x.shape.w + w.pad_left);
        let padded = Shape {
            h: x.shape.h + w.pad_top + bottom,
            w: x.shape.w + w.pad_left + right,
            c: x.shape.c,
        };
        if (padded.h - span_h) / w.stride_h + 1 != y.h
            || (padded.w - span_w) / w.stride_w + 1 != y.w
        {
            return Err(format!(
                "padding (top {}, left {}) cannot be written as PAD + VALID",
                w.pad_top, w.pad_left
            ));
        }
        let mut t = self.tensors[input as usize].clone();
        t.shape = Some(vec![1, padded.h as i32, padded.w as i32, padded.c as i32]);
        t.name = Some(format!("{node}.padded"));
        self.tensors.push(t);
        let out = (self.tensors.len() - 1) as i32;
        let pads = [
            0,
            0,
            w.pad_top as i32,
            bottom as i32,
            w.pad_left as i32,
            right as i32,
            0,
            0,
        ];
        let p = self.constant_i32(&format!("{node}.paddings"), vec![4, 2], &pads, None);
        self.push_operator(
            fb::BuiltinOperator::Pad,
            vec![input, p],
            out,
            Some(fb::BuiltinOptions::PadOptions(Box::default())),
        );
        Ok((out, fb::Padding::Valid))
    }

    fn push_operator(
        &mut self,
        code: fb::BuiltinOperator,
        inputs: Vec<i32>,
        output: i32,
        options: Option<fb::BuiltinOptions>,
    ) {
        let opcode_index = self.opcode(code);
        self.operators.push(fb::Operator {
            opcode_index,
            inputs: Some(inputs),
            outputs: Some(vec![output]),
            builtin_options: options,
            ..Default::default()
        });
    }

    fn opcode(&mut self, code: fb::BuiltinOperator) -> u32 {
        match self.codes.iter().position(|&c| c == code) {
            Some(i) => i as u32,
            None => {
                self.codes.push(code);
                (self.codes.len() - 1) as u32
            }
        }
    }

    fn constant(
        &mut self,
        name: &str,
        shape: Vec<i32>,
        kind: fb::TensorType,
        data: Vec<u8>,
        quant: Option<fb::QuantizationParameters>,
    ) -> i32 {
        self.buffers.push(fb::Buffer { data: Some(data) });
        self.tensors.push(fb::Tensor {
            shape: Some(shape),
            type_: kind,
            buffer: (self.buffers.len() - 1) as u32,
            name: Some(name.to_string()),
            quantization: quant.map(Box::new),
            ..Default::default()
        });
        (self.tensors.len() - 1) as i32
    }

    fn constant_i8(
        &mut self,
        name: &str,
        shape: Vec<i32>,
        data: &[i8],
        scales: &[f32],
        axis: i32,
    ) -> i32 {
        let quant = quantization(scales.to_vec(), vec![0; scales.len()], axis);
        self.constant(
            name,
            shape,
            fb::TensorType::Int8,
            data.iter().map(|&v| v as u8).collect(),
            Some(quant),
        )
    }

    fn constant_i32(
        &mut self,
        name: &str,
        shape: Vec<i32>,
        data: &[i32],
        quant: Option<fb::QuantizationParameters>,
    ) -> i32 {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(name, shape, fb::TensorType::Int32, bytes, quant)
    }

    /// A layer's int8 filter tensor (`shape`, per-channel scales along `axis`; replicated to
    /// `channels` scales when given) and int32 bias tensor (scale `s_in · s_w[c]`, −1 for none).
    fn layer_tensors(
        &mut self,
        node: &str,
        c: &Constants,
        shape: Vec<i32>,
        axis: i32,
        s_in: f32,
        channels: Option<usize>,
    ) -> (i32, i32) {
        let scales = &self.q.weights[node].scales;
        let scales: Vec<f32> = match channels {
            Some(m) if scales.len() == 1 => vec![scales[0]; m],
            _ => scales.clone(),
        };
        let data = c.filter.of(&self.program.weights).unwrap_or(&[]).to_vec();
        let f = self.constant_i8(&format!("{node}.weight"), shape, &data, &scales, axis);
        let values = c.bias.of(&self.program.biases).unwrap_or(&[]).to_vec();
        if values.is_empty() {
            return (f, -1);
        }
        let bias_scales: Vec<f32> = scales.iter().map(|&s| s_in * s).collect();
        let quant = quantization(bias_scales.clone(), vec![0; bias_scales.len()], 0);
        let b = self.constant_i32(
            &format!("{node}.bias"),
            vec![values.len() as i32],
            &values,
            Some(quant),
        );
        (f, b)
    }
}

/// Adds TFLite's `TFL3` file identifier after the root offset.
///
/// planus 1.3's `finish(.., Some(id))` writes the identifier before the root offset (its builder
/// prepends), which no reader accepts, so the identifier is spliced in here: 16 bytes are
/// inserted after the root offset (identifier and padding, keeping every 16-byte alignment) and
/// the root offset grows by as much. All other flatbuffer offsets are relative and unaffected.
fn with_file_identifier(bytes: &[u8]) -> Vec<u8> {
    let root = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) + 16;
    let mut out = Vec::with_capacity(bytes.len() + 16);
    out.extend_from_slice(&root.to_le_bytes());
    out.extend_from_slice(b"TFL3");
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&bytes[4..]);
    out
}

fn quantization(scale: Vec<f32>, zero_point: Vec<i64>, axis: i32) -> fb::QuantizationParameters {
    fb::QuantizationParameters {
        scale: Some(scale),
        zero_point: Some(zero_point),
        quantized_dimension: axis,
        ..Default::default()
    }
}

fn activation(a: Activation) -> fb::ActivationFunctionType {
    match a {
        Activation::None => fb::ActivationFunctionType::None,
        Activation::Relu => fb::ActivationFunctionType::Relu,
        Activation::Relu6 => fb::ActivationFunctionType::Relu6,
    }
}

/// TFLite shape of a tensor whose channels-first graph shape is `graph`.
fn tflite_shape(graph: &[usize], s: Shape) -> Vec<i32> {
    match graph.len() {
        1 => vec![1, s.c as i32],
        _ => vec![1, s.h as i32, s.w as i32, s.c as i32],
    }
}

/// The TFLite padding mode equivalent to the window's padding and output size.
fn padding(w: &Window, x: Shape, y: Shape) -> Result<fb::Padding, String> {
    let axis = |size: usize, k: usize, stride: usize, dil: usize, pad: usize, out: usize| {
        let span = (k - 1) * dil + 1;
        let same_out = size.div_ceil(stride);
        let same_total = ((same_out - 1) * stride + span).saturating_sub(size);
        let valid_out = if size >= span {
            (size - span) / stride + 1
        } else {
            0
        };
        (
            pad == same_total / 2 && out == same_out,
            pad == 0 && out == valid_out,
        )
    };
    let (same_h, valid_h) = axis(x.h, w.kh, w.stride_h, w.dilation_h, w.pad_top, y.h);
    let (same_w, valid_w) = axis(x.w, w.kw, w.stride_w, w.dilation_w, w.pad_left, y.w);
    if valid_h && valid_w {
        Ok(fb::Padding::Valid)
    } else if same_h && same_w {
        Ok(fb::Padding::Same)
    } else {
        Err(format!(
            "padding (top {}, left {}) is neither TFLite's SAME nor VALID for a {}x{} window over {}x{}",
            w.pad_top, w.pad_left, w.kh, w.kw, x.h, x.w
        ))
    }
}

/// The operator version TFLite assigns to the int8 form of each builtin.
fn op_version(code: fb::BuiltinOperator) -> i32 {
    use fb::BuiltinOperator as B;
    match code {
        B::Conv2d | B::DepthwiseConv2d => 3,
        B::FullyConnected => 4,
        B::AveragePool2d
        | B::MaxPool2d
        | B::Add
        | B::Concatenation
        | B::Softmax
        | B::Pad
        | B::Quantize
        | B::Dequantize
        | B::Mean => 2,
        _ => 1,
    }
}
