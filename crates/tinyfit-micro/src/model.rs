//! The runtime's model format: flat arrays of plain data, so a model can live in flash as
//! `const` items and be described without a heap.
//!
//! Every operation refers to its tensors by index and to its constants by [`Span`]s into the
//! shared pools (`weights`, `biases`, `multipliers`, `tables`). [`Model::validate`] checks every
//! index, span, offset and shape once; after it succeeds [`crate::interpreter::invoke`] cannot
//! index out of bounds.

use crate::fixed_point::QuantizedMultiplier;
use crate::kernels::{AddParams, Clamp, Shape, SoftmaxParams, Window};

/// A run of `len` elements starting at `start` in one of the model's constant pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First element.
    pub start: u32,
    /// Number of elements.
    pub len: u32,
}

impl Span {
    /// The elements of `pool` this span covers, if it lies inside it.
    pub fn of<'a, T>(&self, pool: &'a [T]) -> Option<&'a [T]> {
        let start = self.start as usize;
        pool.get(start..start.checked_add(self.len as usize)?)
    }
}

/// An activation tensor: int8, channels-last, at a fixed offset in the arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorInfo {
    /// Shape (batch 1).
    pub shape: Shape,
    /// Byte offset in the arena.
    pub offset: usize,
    /// Real value of one quantisation step.
    pub scale: f32,
    /// Quantised value of real zero.
    pub zero_point: i32,
}

impl TensorInfo {
    /// Byte range in the arena.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset + self.shape.len()
    }
}

/// What an operation computes, with its constants.
/// The constants of a layer with weights: where its filter, bias and requantisation live in
/// the model's pools, and its fused activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constants {
    /// Filter in `weights`.
    pub filter: Span,
    /// Bias in `biases` (empty for none).
    pub bias: Span,
    /// Per-output-channel (or single) requantisation in `multipliers`.
    pub multipliers: Span,
    /// Fused activation.
    pub clamp: Clamp,
}

/// What an operation computes, with its constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// Grouped 2-D convolution; filter OHWI (`[out_c, kh, kw, in_c / groups]`).
    Conv {
        /// Window geometry.
        window: Window,
        /// Channel groups.
        groups: u32,
        /// Filter, bias, requantisation, activation.
        constants: Constants,
    },
    /// Depthwise 2-D convolution; filter `[kh, kw, out_c]`, output channel `c` reads input
    /// channel `c / multiplier`.
    DepthwiseConv {
        /// Window geometry.
        window: Window,
        /// Output channels per input channel.
        multiplier: u32,
        /// Filter, bias, requantisation, activation.
        constants: Constants,
    },
    /// Fully connected layer on the flattened input; filter `[out, in]`.
    FullyConnected {
        /// Filter, bias, requantisation, activation.
        constants: Constants,
    },
    /// Average pooling.
    AvgPool {
        /// Window geometry.
        window: Window,
        /// Fused activation.
        clamp: Clamp,
    },
    /// Max pooling.
    MaxPool {
        /// Window geometry.
        window: Window,
        /// Fused activation.
        clamp: Clamp,
    },
    /// Element-wise sum of two tensors.
    Add(AddParams),
    /// Mean of each channel over every pixel, rescaled by `s_in / (s_out · pixels)`.
    Mean {
        /// The rescaling multiplier.
        multiplier: QuantizedMultiplier,
    },
    /// Concatenation along the channel axis of inputs sharing the output's quantisation.
    Concat,
    /// Same bytes, new shape (a copy unless the planner aliased input and output).
    Reshape,
    /// Constant padding of the spatial axes with the output zero point.
    Pad {
        /// Rows added above.
        top: u32,
        /// Columns added to the left.
        left: u32,
    },
    /// ShuffleNet's channel shuffle: in every pixel, output channel `j · groups + g` is input
    /// channel `g · (C / groups) + j`.
    ChannelShuffle {
        /// Groups the channels are split into.
        groups: u32,
    },
    /// Softmax over the channel axis.
    Softmax(SoftmaxParams),
    /// Rescaling to another scale and zero point.
    Requantize {
        /// `s_in / s_out`.
        multiplier: QuantizedMultiplier,
    },
}

/// One step of the program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Operation {
    /// What it computes.
    pub kernel: Kernel,
    /// Input tensor indices, a span of `operands`.
    pub inputs: Span,
    /// Output tensor index.
    pub output: u32,
}

/// A whole int8 model as the runtime sees it.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    /// Activation tensors (inputs, intermediates, outputs).
    pub tensors: &'a [TensorInfo],
    /// Operations in execution order.
    pub operations: &'a [Operation],
    /// Tensor indices referred to by operations' `inputs`.
    pub operands: &'a [u32],
    /// int8 filters.
    pub weights: &'a [i8],
    /// int32 biases.
    pub biases: &'a [i32],
    /// Requantisation multipliers.
    pub multipliers: &'a [QuantizedMultiplier],
    /// Model input tensors.
    pub inputs: &'a [u32],
    /// Model output tensors.
    pub outputs: &'a [u32],
    /// Arena bytes the tensor offsets need.
    pub arena_bytes: usize,
}

/// Why a model or a call is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The arena is smaller than the model needs.
    ArenaTooSmall {
        /// Bytes the model needs.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// A tensor lies outside the arena or has a zero point outside int8.
    BadTensor {
        /// Tensor index.
        tensor: usize,
    },
    /// An operation's wiring, constants or shapes are inconsistent.
    BadOperation {
        /// Operation index.
        operation: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A model input or output index is out of range.
    BadIo,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::ArenaTooSmall { needed, given } => {
                write!(
                    f,
                    "arena of {given} bytes is smaller than the {needed} the model needs"
                )
            }
            Error::BadTensor { tensor } => {
                write!(
                    f,
                    "tensor {tensor} lies outside the arena or has a non-int8 zero point"
                )
            }
            Error::BadOperation { operation, reason } => {
                write!(f, "operation {operation}: {reason}")
            }
            Error::BadIo => write!(f, "a model input or output names no tensor"),
        }
    }
}

impl Model<'_> {
    /// Checks every index, span, offset and shape, so that running cannot fail.
    pub fn validate(&self) -> Result<(), Error> {
        for (i, t) in self.tensors.iter().enumerate() {
            let end = t.offset.checked_add(t.shape.len());
            let zero_point_ok = (-128..=127).contains(&t.zero_point);
            if end.is_none_or(|end| end > self.arena_bytes) || !zero_point_ok {
                return Err(Error::BadTensor { tensor: i });
            }
        }
        let n = self.tensors.len() as u32;
        if self.inputs.iter().chain(self.outputs).any(|&t| t >= n) {
            return Err(Error::BadIo);
        }
        for (i, op) in self.operations.iter().enumerate() {
            self.validate_operation(op)
                .map_err(|reason| Error::BadOperation {
                    operation: i,
                    reason,
                })?;
        }
        Ok(())
    }

    fn validate_operation(&self, op: &Operation) -> Result<(), &'static str> {
        let inputs = op
            .inputs
            .of(self.operands)
            .ok_or("inputs outside the operand list")?;
        let tensor = |t: u32| self.tensors.get(t as usize).ok_or("names a missing tensor");
        let out = tensor(op.output)?;
        let ins = |k: usize| -> Result<&TensorInfo, &'static str> {
            tensor(*inputs.get(k).ok_or("has too few inputs")?)
        };
        // An output may share its input's bytes only where the kernel allows it: a reshape, or
        // an element-wise sum computed in place over one of its two inputs.
        let mut aliases = 0;
        for &t in inputs {
            let r = tensor(t)?.range();
            let o = out.range();
            let aliased = r == o && !o.is_empty();
            let disjoint = r.end <= o.start || o.end <= r.start || r.is_empty() || o.is_empty();
            let in_place = aliased && matches!(op.kernel, Kernel::Reshape | Kernel::Add(_));
            if !(disjoint || in_place) {
                return Err("output overlaps an input in the arena");
            }
            aliases += usize::from(aliased);
        }
        if aliases > 1 {
            return Err("output shares its bytes with more than one input");
        }
        let expect = |ok: bool, why: &'static str| if ok { Ok(()) } else { Err(why) };
        match op.kernel {
            Kernel::Conv {
                window,
                groups,
                constants,
            } => {
                let (x, y) = (ins(0)?.shape, out.shape);
                let g = groups as usize;
                expect(
                    g > 0 && x.c % g == 0 && y.c % g == 0,
                    "groups do not divide the channels",
                )?;
                expect(window_ok(&window), "zero-sized window, stride or dilation")?;
                self.check_constants(&constants, y.c * window.kh * window.kw * (x.c / g), y.c)
            }
            Kernel::DepthwiseConv {
                window,
                multiplier,
                constants,
            } => {
                let (x, y) = (ins(0)?.shape, out.shape);
                expect(
                    multiplier > 0 && y.c == x.c * multiplier as usize,
                    "output channels are not input channels × multiplier",
                )?;
                expect(window_ok(&window), "zero-sized window, stride or dilation")?;
                self.check_constants(&constants, window.kh * window.kw * y.c, y.c)
            }
            Kernel::FullyConnected { constants } => {
                let (depth, outs) = (ins(0)?.shape.len(), out.shape.len());
                self.check_constants(&constants, depth * outs, outs)
            }
            Kernel::AvgPool { window, .. } | Kernel::MaxPool { window, .. } => {
                let x = ins(0)?.shape;
                expect(window_ok(&window), "zero-sized window, stride or dilation")?;
                expect(x.c == out.shape.c, "input and output channels differ")
            }
            Kernel::Add(p) => {
                let ms = [
                    p.input_multipliers[0],
                    p.input_multipliers[1],
                    p.output_multiplier,
                ];
                expect(ms.iter().all(shift_ok), "multiplier shift out of range")?;
                let (a, b) = (ins(0)?.shape, ins(1)?.shape);
                expect(
                    a == b && a == out.shape,
                    "inputs and output differ in shape",
                )
            }
            Kernel::Mean { multiplier } => {
                expect(shift_ok(&multiplier), "multiplier shift out of range")?;
                expect(
                    out.shape.len() == ins(0)?.shape.c,
                    "output holds one value per channel",
                )
            }
            Kernel::Concat => {
                let mut c = 0;
                for k in 0..inputs.len() {
                    let s = ins(k)?.shape;
                    expect(
                        s.h == out.shape.h && s.w == out.shape.w,
                        "inputs differ in spatial shape",
                    )?;
                    c += s.c;
                }
                expect(
                    c == out.shape.c && !inputs.is_empty(),
                    "channels do not add up",
                )
            }
            Kernel::Requantize { multiplier } => {
                expect(shift_ok(&multiplier), "multiplier shift out of range")?;
                expect(
                    ins(0)?.shape.len() == out.shape.len(),
                    "element counts differ",
                )
            }
            Kernel::Reshape => expect(
                ins(0)?.shape.len() == out.shape.len(),
                "element counts differ",
            ),
            Kernel::Pad { top, left } => {
                let x = ins(0)?.shape;
                let y = out.shape;
                expect(
                    x.c == y.c && x.h + top as usize <= y.h && x.w + left as usize <= y.w,
                    "padded shape",
                )
            }
            Kernel::ChannelShuffle { groups } => {
                let x = ins(0)?.shape;
                expect(
                    x == out.shape && groups > 0 && x.c % groups as usize == 0,
                    "shuffle groups",
                )
            }
            Kernel::Softmax(p) => {
                expect(
                    (0..=31).contains(&p.input_left_shift),
                    "softmax shift out of range",
                )?;
                expect(ins(0)?.shape == out.shape && out.shape.c > 0, "shape")
            }
        }
    }

    /// A layer's filter holds `filter_len` weights, its bias and multipliers fit `channels`.
    fn check_constants(
        &self,
        c: &Constants,
        filter_len: usize,
        channels: usize,
    ) -> Result<(), &'static str> {
        let f = c
            .filter
            .of(self.weights)
            .ok_or("filter outside the weights")?;
        if f.len() != filter_len {
            return Err("filter size");
        }
        let b = c.bias.of(self.biases).ok_or("bias outside the biases")?;
        if !(b.is_empty() || b.len() == channels) {
            return Err("bias length");
        }
        let m = c
            .multipliers
            .of(self.multipliers)
            .ok_or("multipliers outside the pool")?;
        if !(m.len() == 1 || m.len() == channels) {
            return Err("multiplier count");
        }
        if !m.iter().all(shift_ok) {
            return Err("multiplier shift out of range");
        }
        Ok(())
    }
}

/// Whether a window has non-zero size, strides and dilations.
fn window_ok(w: &Window) -> bool {
    [
        w.kh,
        w.kw,
        w.stride_h,
        w.stride_w,
        w.dilation_h,
        w.dilation_w,
    ]
    .iter()
    .all(|&v| v > 0)
}

/// Whether a multiplier's shift is one the fixed-point routines accept.
fn shift_ok(m: &QuantizedMultiplier) -> bool {
    (-31..=30).contains(&m.shift)
}
