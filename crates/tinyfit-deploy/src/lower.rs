//! [`QuantGraph`] → [`Program`]: channels-last tensors, fused activations, TFLite's
//! requantisation constants, and a static arena plan.
//!
//! The constants are computed exactly as TFLite's `Prepare` functions do (double-precision
//! multipliers from float scales, float activation bounds), so the integers that come out match
//! LiteRT and TFLite Micro.

use std::collections::HashMap;

use tinyfit_graph::quant::{Affine, QuantGraph};
use tinyfit_graph::shape::resolve_padding;
use tinyfit_graph::{Conv, Op, Pool, ValueRef};
use tinyfit_micro::fixed_point::QuantizedMultiplier;
use tinyfit_micro::kernels::{AddParams, Clamp, Shape, SoftmaxParams, Window};
use tinyfit_micro::{Constants, Kernel, Operation, Span, TensorInfo};

use crate::host::Engine;
use crate::layout::{flattening_reorders, transpose_blocks};
use crate::program::{Activation, OpReport, Program};

/// Arena offsets are multiples of this many bytes (word loads on Cortex-M).
pub const ARENA_ALIGNMENT: usize = 4;

/// Why a quantised graph cannot be lowered, naming the node.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// The graph itself does not check.
    #[error(transparent)]
    Graph(#[from] tinyfit_graph::GraphError),
    /// A node the int8 runtime cannot run as it stands.
    #[error("node '{node}' ({kind}): {message}")]
    Node {
        /// Node name.
        node: String,
        /// Op kind.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Lowers `q` to a planned program for the int8 runtime.
pub fn lower(q: &QuantGraph) -> Result<Program, LowerError> {
    Lowering::new(q)?.run()
}

/// Channels-last runtime shape of a channels-first graph shape.
pub fn runtime_shape(shape: &[usize]) -> Shape {
    match *shape {
        [n] => Shape { h: 1, w: 1, c: n },
        [c, l] => Shape { h: 1, w: l, c },
        [c, h, w] => Shape { h, w, c },
        _ => Shape { h: 0, w: 0, c: 0 },
    }
}

/// TFLite's `CalculateActivationRangeQuantized` for a fused relu/relu6 on output `a`.
fn activation_clamp(op: &Op, a: Affine) -> Clamp {
    let quantize = |f: f32| a.zero_point + (f / a.scale).round() as i32;
    match op {
        Op::Relu => Clamp {
            min: quantize(0.0).max(-128),
            max: 127,
        },
        Op::Relu6 => Clamp {
            min: quantize(0.0).max(-128),
            max: quantize(6.0).min(127),
        },
        _ => Clamp::NONE,
    }
}

/// Whether a tensor already has quantisation `a` (ops that cannot rescale require it).
fn same_quantisation(a: Affine, t: &TensorInfo) -> bool {
    a.scale == t.scale && a.zero_point == t.zero_point
}

/// `s_in · s_w / s_out`, in double precision from the float scales, as TFLite computes it.
fn conv_multiplier(s_in: f32, s_w: f32, s_out: f32) -> QuantizedMultiplier {
    QuantizedMultiplier::new(s_in as f64 * s_w as f64 / s_out as f64)
}

/// What [`Lowering::constants`] needs to know of a layer with weights.
#[derive(Clone, Copy)]
struct Layer<'n> {
    name: &'n str,
    channels: usize,
    s_in: f32,
    s_out: f32,
    has_bias: bool,
    clamp: Clamp,
}

struct Lowering<'q> {
    q: &'q QuantGraph,
    analysis: tinyfit_graph::Analysis,
    program: Program,
    /// Runtime tensor of each graph value (inputs by name, nodes by name).
    tensor_of: HashMap<String, u32>,
    /// For each node, the activation fused into it.
    fused_activation: Vec<Option<usize>>,
    /// Activation nodes folded into their producer.
    fused: Vec<bool>,
    /// Channels-first shape a flattened value came from, when flattening reordered it.
    flattened_from: HashMap<String, Vec<usize>>,
}

impl<'q> Lowering<'q> {
    fn new(q: &'q QuantGraph) -> Result<Self, LowerError> {
        let analysis = q.graph.analyze()?;
        let fused_activation = analysis.fused_activations(&q.graph);
        let mut fused = vec![false; q.graph.nodes.len()];
        for &j in fused_activation.iter().flatten() {
            fused[j] = true;
        }
        let program = Program::empty();
        Ok(Lowering {
            q,
            analysis,
            program,
            tensor_of: HashMap::new(),
            fused_activation,
            fused,
            flattened_from: HashMap::new(),
        })
    }

    fn value_name(&self, v: ValueRef) -> &'q str {
        match v {
            ValueRef::Input(i) => &self.q.graph.inputs[i].name,
            ValueRef::Node(i) => &self.q.graph.nodes[i].name,
        }
    }

    fn affine(&self, value: &str) -> Option<Affine> {
        self.q.activations.get(value).copied()
    }

    fn new_tensor(&mut self, shape: &[usize], a: Affine) -> u32 {
        self.program.graph_shapes.push(shape.to_vec());
        self.program.tensors.push(TensorInfo {
            shape: runtime_shape(shape),
            offset: 0,
            scale: a.scale,
            zero_point: a.zero_point,
        });
        (self.program.tensors.len() - 1) as u32
    }

    fn run(mut self) -> Result<Program, LowerError> {
        let q = self.q;
        for input in &q.graph.inputs {
            let a = self.affine(&input.name).ok_or_else(|| LowerError::Node {
                node: input.name.clone(),
                kind: "input",
                message: "has no quantisation".into(),
            })?;
            let t = self.new_tensor(&input.shape, a);
            self.tensor_of.insert(input.name.clone(), t);
            self.program.inputs.push(t);
        }
        for i in 0..q.graph.nodes.len() {
            let node = &q.graph.nodes[i];
            self.node(i).map_err(|message| LowerError::Node {
                node: node.name.clone(),
                kind: node.op.kind(),
                message,
            })?;
        }
        for v in self.analysis.outputs.clone() {
            let name = self.value_name(v);
            let t = self.tensor_of[name];
            self.program.outputs.push(t);
        }
        crate::plan::plan(&mut self.program);
        self.program.host = Engine::new(&self.program.model());
        Ok(self.program)
    }

    /// Lowers node `i`.
    fn node(&mut self, i: usize) -> Result<(), String> {
        let q = self.q;
        let node = &q.graph.nodes[i];
        let a = self.analysis.nodes[i].clone();
        let in_names: Vec<&str> = a.inputs.iter().map(|&v| self.value_name(v)).collect();
        let mut in_tensors: Vec<u32> = in_names.iter().map(|n| self.tensor_of[*n]).collect();
        let out_shape = a.shape.output.clone();
        match &node.op {
            Op::Identity | Op::Dropout(_) => {
                // A flattened map stays flattened: the linear layer after it reorders its
                // columns from the channels-first order either way.
                if let Some(src) = self.flattened_from.get(in_names[0]).cloned() {
                    self.flattened_from.insert(node.name.clone(), src);
                }
                // Same quantisation: the same bytes. Another: a requantisation.
                let x = self.program.tensors[in_tensors[0] as usize];
                let same = self
                    .affine(&node.name)
                    .is_none_or(|a| same_quantisation(a, &x));
                if same {
                    self.tensor_of.insert(node.name.clone(), in_tensors[0]);
                    return Ok(());
                }
            }
            Op::Relu | Op::Relu6 if self.fused[i] => return Ok(()),
            Op::Relu | Op::Relu6 => {
                return Err("an activation the int8 runtime can only fuse into the convolution, linear layer or sum before it".into());
            }
            Op::BatchNorm(_) => {
                return Err(
                    "batch norms must be folded into the convolution before quantising".into(),
                );
            }
            _ => {}
        }
        // A fused relu/relu6: this node writes the activation's value directly, clamped to its
        // range.
        let mut value = node.name.clone();
        let mut clamp = Clamp::NONE;
        let mut activation = Activation::None;
        if let Some(j) = self.fused_activation[i] {
            value = q.graph.nodes[j].name.clone();
            let act_affine = self
                .affine(&value)
                .ok_or("its activation has no quantisation")?;
            clamp = activation_clamp(&q.graph.nodes[j].op, act_affine);
            activation = match q.graph.nodes[j].op {
                Op::Relu6 => Activation::Relu6,
                _ => Activation::Relu,
            };
        }
        let out_affine = self
            .affine(&value)
            .ok_or_else(|| format!("value '{value}' has no quantisation"))?;
        let x = in_tensors[0];
        let x_info = self.program.tensors[x as usize];
        let in_shape = &a.input_shapes[0];
        let op = match &node.op {
            Op::Conv1d(c) | Op::Conv2d(c) => self.conv(
                in_names[0],
                &node.name,
                c,
                in_shape,
                &x_info,
                out_affine,
                clamp,
            )?,
            Op::Linear(_) => self.linear(&node.name, in_names[0], &x_info, out_affine, clamp)?,
            Op::MaxPool1d(p) | Op::MaxPool2d(p) | Op::AvgPool1d(p) | Op::AvgPool2d(p) => {
                if !same_quantisation(out_affine, &x_info) {
                    return Err("pooling must keep its input's quantisation".into());
                }
                let (window, padded) = pool_window(p, in_shape)?;
                let avg = matches!(node.op, Op::AvgPool1d(_) | Op::AvgPool2d(_));
                if avg && p.count_include_pad && padded {
                    return Err("average pooling that counts padding (PyTorch's default) has no int8 kernel; set count_include_pad = false".into());
                }
                if avg {
                    Kernel::AvgPool { window, clamp }
                } else {
                    Kernel::MaxPool { window, clamp }
                }
            }
            Op::GlobalAvgPool => {
                let s = runtime_shape(in_shape);
                let window = Window::dense(s.h, s.w);
                if !same_quantisation(out_affine, &x_info) {
                    return Err("global average pooling must keep its input's quantisation".into());
                }
                Kernel::AvgPool { window, clamp }
            }
            Op::Flatten => {
                if in_shape.len() > 1
                    && flattening_reorders(in_shape[0], in_shape[1..].iter().product())
                {
                    self.flattened_from
                        .insert(node.name.clone(), in_shape.clone());
                }
                Kernel::Reshape
            }
            Op::Mean(_) => {
                // LiteRT's int8 mean over height and width (with or without keep_dims): the sum
                // of `x − z_in` rescaled by `s_in / (s_out · pixels)`, plus `z_out`.
                let pixels = x_info.shape.h * x_info.shape.w;
                Kernel::Mean {
                    multiplier: QuantizedMultiplier::new(
                        x_info.scale as f64 / out_affine.scale as f64 / pixels as f64,
                    ),
                }
            }
            Op::Pad(p) => {
                if !same_quantisation(out_affine, &x_info) {
                    return Err(
                        "padding must keep its input's quantisation (it pads with the zero point)"
                            .into(),
                    );
                }
                let (top, left) = match p.padding[..] {
                    [[l, _]] => (0, l),
                    [[t, _], [l, _]] => (t, l),
                    _ => return Err("pads one or two spatial axes".into()),
                };
                Kernel::Pad {
                    top: top as u32,
                    left: left as u32,
                }
            }
            Op::ChannelShuffle(s) => {
                if !same_quantisation(out_affine, &x_info) {
                    return Err("a channel shuffle must keep its input's quantisation".into());
                }
                Kernel::ChannelShuffle {
                    groups: s.groups as u32,
                }
            }
            Op::Reshape(r) => {
                // Channels-last bytes equal channels-first ones only when a tensor has one
                // channel or one pixel.
                let neutral = |s: &[usize]| {
                    s.len() == 1 || s[0] == 1 || s[1..].iter().product::<usize>() == 1
                };
                if !(neutral(in_shape) && neutral(&r.shape)) {
                    return Err(format!(
                        "reshaping {in_shape:?} to {:?} reorders channels-last bytes; only reshapes between vectors, single-pixel and single-channel maps run in int8",
                        r.shape
                    ));
                }
                if let Some(src) = self.flattened_from.get(in_names[0]).cloned() {
                    self.flattened_from.insert(node.name.clone(), src);
                }
                Kernel::Reshape
            }
            Op::Add => {
                if in_tensors.len() != 2 {
                    return Err(format!(
                        "the int8 runtime adds two tensors, not {}",
                        in_tensors.len()
                    ));
                }
                let (s1, s2) = (
                    x_info.scale,
                    self.program.tensors[in_tensors[1] as usize].scale,
                );
                let twice_max = 2.0 * s1.max(s2) as f64;
                let shifted_out =
                    ((1i64 << AddParams::LEFT_SHIFT) as f32 * out_affine.scale) as f64;
                Kernel::Add(AddParams {
                    input_zero_points: [
                        x_info.zero_point,
                        self.program.tensors[in_tensors[1] as usize].zero_point,
                    ],
                    input_multipliers: [
                        QuantizedMultiplier::new(s1 as f64 / twice_max),
                        QuantizedMultiplier::new(s2 as f64 / twice_max),
                    ],
                    output_multiplier: QuantizedMultiplier::new(twice_max / shifted_out),
                    output_zero_point: out_affine.zero_point,
                    clamp,
                })
            }
            Op::Concat(c) => {
                if c.axis != 0 {
                    return Err(format!(
                        "the int8 runtime concatenates along channels (axis 0), not axis {}",
                        c.axis
                    ));
                }
                // The runtime concatenates bytes: an input quantised otherwise is rescaled to
                // the output's quantisation first (as TFLite's converter does).
                for t in &mut in_tensors {
                    let info = self.program.tensors[*t as usize];
                    if !same_quantisation(out_affine, &info) {
                        let shape = self.program.graph_shapes[*t as usize].clone();
                        let rescaled = self.new_tensor(&shape, out_affine);
                        let kernel = Kernel::Requantize {
                            multiplier: QuantizedMultiplier::new(
                                info.scale as f64 / out_affine.scale as f64,
                            ),
                        };
                        let report = OpReport {
                            node: format!("{}/requantize", node.name),
                            kind: kernel_kind(&kernel),
                            window: None,
                            activation: Activation::None,
                            output: runtime_shape(&shape),
                            macs: 0,
                            const_bytes: 0,
                            live_bytes: 0,
                        };
                        self.push_operation(kernel, &[*t], rescaled, report);
                        *t = rescaled;
                    }
                }
                Kernel::Concat
            }
            Op::Softmax => {
                if out_affine.scale != 1.0 / 256.0 || out_affine.zero_point != -128 {
                    return Err(format!(
                        "int8 softmax output must have scale 1/256 and zero point -128 (TFLite's rule), found {} and {}",
                        out_affine.scale, out_affine.zero_point
                    ));
                }
                Kernel::Softmax(softmax_params(x_info.scale))
            }
            Op::Identity | Op::Dropout(_) => Kernel::Requantize {
                multiplier: QuantizedMultiplier::new(x_info.scale as f64 / out_affine.scale as f64),
            },
            Op::Relu | Op::Relu6 | Op::BatchNorm(_) => unreachable!("handled above"),
        };
        let out = self.new_tensor(&out_shape, out_affine);
        match op {
            Kernel::Reshape => self.program.aliases.push((x, out)),
            // A sum may overwrite an input that dies with it (the first that can).
            Kernel::Add(_) if in_tensors[0] != in_tensors[1] => {
                self.program.aliases.push((in_tensors[0], out));
                self.program.aliases.push((in_tensors[1], out));
            }
            _ => {}
        }
        self.tensor_of.insert(node.name.clone(), out);
        if value != node.name {
            self.tensor_of.insert(value, out);
        }
        let report = OpReport {
            node: node.name.clone(),
            kind: kernel_kind(&op),
            window: match op {
                Kernel::Conv { window, .. }
                | Kernel::DepthwiseConv { window, .. }
                | Kernel::AvgPool { window, .. }
                | Kernel::MaxPool { window, .. } => Some((window.kh, window.kw)),
                _ => None,
            },
            activation,
            output: runtime_shape(&out_shape),
            macs: a.shape.macs,
            const_bytes: const_bytes(&op),
            live_bytes: 0,
        };
        self.push_operation(op, &in_tensors, out, report);
        Ok(())
    }

    /// Appends an operation reading `inputs` and writing `output`, with its report line.
    fn push_operation(&mut self, kernel: Kernel, inputs: &[u32], output: u32, report: OpReport) {
        let start = self.program.operands.len() as u32;
        self.program.operands.extend(inputs);
        self.program.operations.push(Operation {
            kernel,
            inputs: Span {
                start,
                len: inputs.len() as u32,
            },
            output,
        });
        self.program.report.push(report);
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        input: &str,
        name: &str,
        c: &Conv,
        in_shape: &[usize],
        x: &TensorInfo,
        out: Affine,
        clamp: Clamp,
    ) -> Result<Kernel, String> {
        let w = self.q.weights.get(name).ok_or("has no int8 weights")?;
        let spatial = &in_shape[1..];
        let axes = spatial.len();
        let kernel = c.kernel.expand(axes).ok_or("kernel rank")?;
        let stride = c.stride.expand(axes).ok_or("stride rank")?;
        let dilation = c.dilation.expand(axes).ok_or("dilation rank")?;
        let span: Vec<usize> = (0..axes)
            .map(|i| (kernel[i] - 1) * dilation[i] + 1)
            .collect();
        let pad = resolve_padding(&c.padding, spatial, &span, &stride)?;
        // 1-D convolutions run as 2-D ones of height 1.
        let (kh, kw, sh, sw, dh, dw, ph, pw) = if axes == 1 {
            (1, kernel[0], 1, stride[0], 1, dilation[0], 0, pad[0].0)
        } else {
            (
                kernel[0],
                kernel[1],
                stride[0],
                stride[1],
                dilation[0],
                dilation[1],
                pad[0].0,
                pad[1].0,
            )
        };
        let per_group = in_shape[0] / c.groups;
        let expected = [c.out_channels, per_group, kh, kw];
        if w.data.len() != expected.iter().product::<usize>() {
            return Err(format!(
                "int8 weights of shape {:?}, expected {:?}",
                w.shape, expected
            ));
        }
        // OIHW → OHWI: per output channel, [I][kh·kw] → [kh·kw][I].
        let mut filter = transpose_blocks(&w.data, per_group, kh * kw);
        // A 1×1 convolution over a single-pixel view of a flattened map reads channels-last
        // bytes, like a linear layer: reorder its input channels from CHW to HWC.
        if let Some(src) = self.flattened_from.get(input)
            && kh * kw == 1
            && c.groups == 1
        {
            filter = chw_columns_to_hwc(&filter, src);
        }
        let window = Window {
            kh,
            kw,
            stride_h: sh,
            stride_w: sw,
            dilation_h: dh,
            dilation_w: dw,
            pad_top: ph,
            pad_left: pw,
        };
        let layer = Layer {
            name,
            channels: c.out_channels,
            s_in: x.scale,
            s_out: out.scale,
            has_bias: c.bias,
            clamp,
        };
        if per_group == 1 && c.groups == in_shape[0] && c.groups > 1 {
            // Depthwise: OHWI with I = 1 is [O][kh·kw]; the kernel wants [kh·kw][O].
            let hwo = transpose_blocks(&filter, c.out_channels, kh * kw);
            return Ok(Kernel::DepthwiseConv {
                window,
                multiplier: (c.out_channels / c.groups) as u32,
                constants: self.constants(&layer, hwo)?,
            });
        }
        Ok(Kernel::Conv {
            window,
            groups: c.groups as u32,
            constants: self.constants(&layer, filter)?,
        })
    }

    fn linear(
        &mut self,
        name: &str,
        input: &str,
        x: &TensorInfo,
        out: Affine,
        clamp: Clamp,
    ) -> Result<Kernel, String> {
        let w = self.q.weights.get(name).ok_or("has no int8 weights")?;
        let [outs, depth] = w.shape[..] else {
            return Err(format!(
                "int8 weights of shape {:?}, expected [out, in]",
                w.shape
            ));
        };
        if depth != x.shape.len() || w.data.len() != outs * depth {
            return Err(format!(
                "int8 weights of shape {:?} for {} input features",
                w.shape,
                x.shape.len()
            ));
        }
        // The runtime flattens channels-last; reorder the columns from CHW to HWC.
        let filter = match self.flattened_from.get(input) {
            Some(src) => chw_columns_to_hwc(&w.data, src),
            None => w.data.clone(),
        };
        let layer = Layer {
            name,
            channels: outs,
            s_in: x.scale,
            s_out: out.scale,
            has_bias: self.q.biases.contains_key(name),
            clamp,
        };
        Ok(Kernel::FullyConnected {
            constants: self.constants(&layer, filter)?,
        })
    }

    fn push_weights(&mut self, data: Vec<i8>) -> Span {
        let start = self.program.weights.len() as u32;
        let len = data.len() as u32;
        self.program.weights.extend(data);
        Span { start, len }
    }

    /// Stores a layer's filter, bias and per-channel multipliers in the program's pools.
    fn constants(&mut self, layer: &Layer, filter: Vec<i8>) -> Result<Constants, String> {
        let Layer {
            name,
            channels,
            s_in,
            s_out,
            has_bias,
            clamp,
        } = *layer;
        let w = &self.q.weights[name];
        if !(w.scales.len() == 1 || w.scales.len() == channels) {
            return Err(format!(
                "{} weight scales for {channels} output channels",
                w.scales.len()
            ));
        }
        let bias = if has_bias {
            let b = self
                .q
                .biases
                .get(name)
                .ok_or("declares a bias but has no int32 bias")?;
            if b.len() != channels {
                return Err(format!(
                    "{} bias values for {channels} output channels",
                    b.len()
                ));
            }
            let start = self.program.biases.len() as u32;
            self.program.biases.extend(b);
            Span {
                start,
                len: channels as u32,
            }
        } else {
            Span::default()
        };
        let start = self.program.multipliers.len() as u32;
        for &s_w in &w.scales {
            self.program
                .multipliers
                .push(conv_multiplier(s_in, s_w, s_out));
        }
        let multipliers = Span {
            start,
            len: w.scales.len() as u32,
        };
        Ok(Constants {
            filter: self.push_weights(filter),
            bias,
            multipliers,
            clamp,
        })
    }
}

/// TFLite's `PreprocessSoftmaxScaling` (β = 1, 5 integer bits for the scaled differences) and
/// the input radius that bounds the differences worth exponentiating.
fn softmax_params(input_scale: f32) -> SoftmaxParams {
    const SCALED_DIFF_INTEGER_BITS: u32 = 5;
    let beta = 1.0f64;
    let real = (beta * input_scale as f64 * (1u64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64)
        .min((1u64 << 31) as f64 - 1.0);
    let m = QuantizedMultiplier::new(real);
    let max_input_rescaled = ((1u64 << SCALED_DIFF_INTEGER_BITS) - 1) as f64
        * (1u64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64
        / (1u64 << m.shift.clamp(0, 62)) as f64;
    SoftmaxParams {
        input_multiplier: m.multiplier,
        input_left_shift: m.shift,
        diff_min: -(max_input_rescaled.floor() as i32),
    }
}

/// The runtime window of a pooling layer, and whether it pads the input on any side.
fn pool_window(p: &Pool, in_shape: &[usize]) -> Result<(Window, bool), String> {
    let spatial = &in_shape[1..];
    let axes = spatial.len();
    let kernel = p.kernel.expand(axes).ok_or("kernel rank")?;
    let stride = match &p.stride {
        Some(s) => s.expand(axes).ok_or("stride rank")?,
        None => kernel.clone(),
    };
    let pad = resolve_padding(&p.padding, spatial, &kernel, &stride)?;
    let padded = pad.iter().any(|&(before, after)| before + after > 0);
    let window = if axes == 1 {
        Window {
            kh: 1,
            kw: kernel[0],
            stride_h: 1,
            stride_w: stride[0],
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: pad[0].0,
        }
    } else {
        Window {
            kh: kernel[0],
            kw: kernel[1],
            stride_h: stride[0],
            stride_w: stride[1],
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad[0].0,
            pad_left: pad[1].0,
        }
    };
    Ok((window, padded))
}

/// Reorders the columns of an `[outs, C·H·W]` matrix from CHW to HWC flattening order (`src` is
/// the channels-first shape that was flattened).
fn chw_columns_to_hwc(data: &[i8], src: &[usize]) -> Vec<i8> {
    transpose_blocks(data, src[0], src[1..].iter().product())
}

fn kernel_kind(k: &Kernel) -> &'static str {
    match k {
        Kernel::Conv { groups: 1, .. } => "conv",
        Kernel::Conv { .. } => "grouped_conv",
        Kernel::DepthwiseConv { .. } => "depthwise_conv",
        Kernel::FullyConnected { .. } => "fully_connected",
        Kernel::AvgPool { .. } => "avg_pool",
        Kernel::MaxPool { .. } => "max_pool",
        Kernel::Add(_) => "add",
        Kernel::Mean { .. } => "mean",
        Kernel::Concat => "concat",
        Kernel::Reshape => "reshape",
        Kernel::Pad { .. } => "pad",
        Kernel::ChannelShuffle { .. } => "channel_shuffle",
        Kernel::Softmax { .. } => "softmax",
        Kernel::Requantize { .. } => "requantize",
    }
}

fn const_bytes(k: &Kernel) -> usize {
    match k {
        Kernel::Conv { constants: c, .. }
        | Kernel::DepthwiseConv { constants: c, .. }
        | Kernel::FullyConnected { constants: c } => {
            c.filter.len as usize + 4 * c.bias.len as usize + 8 * c.multipliers.len as usize
        }
        _ => 0,
    }
}
