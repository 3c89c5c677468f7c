//! Convolutions and fully connected layers as int8 matrix products with packed weights.
//!
//! Each output pixel is a row of the left matrix (its receptive field in OHWI order: the
//! im2col layout), each output channel a column of the packed right matrix. The product uses
//! unsigned × signed byte dot products (x86's `VPDPBUSD`), so the left matrix holds `x + 128`
//! as unsigned bytes and the bias absorbs the difference: with `Σ_k` over one output channel's
//! weights,
//!
//! `Σ (x − z_in)·w + b = Σ (x + 128)·w + (b − (128 + z_in)·Σ w)`,
//!
//! an identity in wrapping int32 arithmetic, so every accumulator equals the reference
//! kernel's and requantisation (TFLite's double rounding) gives the same int8 outputs.

use tinyfit_micro::kernels::{Shape, Window};
use tinyfit_micro::{Kernel, Model, Operation};

use super::image::Padded;
use super::requant::{ChannelRequant, LANES};
use super::{Aligned, with_scratch};
/// Output pixels computed together; the left-matrix scratch is padded to a multiple of it.
pub(super) const ROWS_PER_TILE: usize = 6;

/// How the left matrix's rows come from the input tensor.
#[derive(Debug, Clone)]
pub(super) enum Rows {
    /// Row `r` is input values `r·k .. (r+1)·k` (fully connected layers, and 1×1 convolutions
    /// with stride 1 and no padding).
    Direct,
    /// Row `r` gathers output pixel `r`'s receptive field (im2col) from the padded image.
    Im2col(Padded),
}

/// One layer packed for the host kernels.
#[derive(Debug, Clone)]
pub(crate) struct PackedGemm {
    pub(super) rows: Rows,
    /// Output pixels.
    pub(super) pixels: usize,
    /// Values per receptive field.
    pub(super) depth: usize,
    /// `depth` rounded up to whole groups of four (one `VPDPBUSD` step).
    pub(super) depth4: usize,
    /// Output channels.
    pub(super) channels: usize,
    /// `[blocks][depth4 / 4]` lines of `[LANES][4]` int8 weights, zero beyond `channels` and
    /// `depth`.
    pub(super) weights: Vec<Aligned<[i8; 64]>>,
    /// Requantisation, its bias with the `+128` input shift folded in.
    pub(super) requant: ChannelRequant,
    /// The shifted input zero point: the byte a padding tap contributes.
    pub(super) padding_byte: u8,
}

impl PackedGemm {
    /// Packs `op` of a validated `model`, or `None` when it is not a convolution without
    /// groups or a fully connected layer, or its requantisation is outside what the vector
    /// code handles.
    pub(crate) fn new(model: &Model, op: &Operation) -> Option<Self> {
        let input = &model.tensors[*model.operands.get(op.inputs.start as usize)? as usize];
        let output = &model.tensors[op.output as usize];
        let (rows, constants) = match op.kernel {
            Kernel::Conv {
                window,
                groups: 1,
                constants,
            } => (Rows::new(input.shape, &window, output.shape), constants),
            Kernel::FullyConnected { constants } => (Rows::Direct, constants),
            _ => return None,
        };
        let channels = output.shape.c;
        let pixels = output.shape.h * output.shape.w;
        let filter = constants.filter.of(model.weights)?;
        let depth = filter.len() / channels.max(1);
        if channels == 0 || depth * channels != filter.len() {
            return None;
        }
        if matches!(rows, Rows::Direct) && input.shape.len() != pixels * depth {
            return None;
        }
        let mut requant = ChannelRequant::new(model, &constants, channels, output.zero_point)?;
        let depth4 = depth.div_ceil(4) * 4;
        let blocks = channels.div_ceil(LANES);
        let steps = depth4 / 4;
        let mut weights = vec![Aligned([0i8; 64]); blocks * steps];
        for (o, row) in filter.chunks_exact(depth).enumerate() {
            let (block, lane) = (o / LANES, o % LANES);
            for (k, &w) in row.iter().enumerate() {
                weights[block * steps + k / 4].0[lane * 4 + k % 4] = w;
            }
        }
        let sums = filter
            .chunks_exact(depth)
            .map(|row| row.iter().map(|&w| i32::from(w)).sum());
        requant.fold_input_shift(128 + input.zero_point, sums);
        Some(PackedGemm {
            rows,
            pixels,
            depth,
            depth4,
            channels,
            weights,
            requant,
            padding_byte: (input.zero_point as i8 as u8) ^ 0x80,
        })
    }
}

impl Rows {
    /// The rows of a convolution from `input` to `output` through `window`.
    fn new(input: Shape, window: &Window, output: Shape) -> Self {
        let unit = window.kh == 1
            && window.kw == 1
            && window.stride_h == 1
            && window.stride_w == 1
            && window.pad_top == 0
            && window.pad_left == 0;
        if unit && (input.h, input.w) == (output.h, output.w) {
            return Rows::Direct;
        }
        Rows::Im2col(Padded::new(input, window, output))
    }
}

impl PackedGemm {
    /// Computes the layer's output from its input (both int8, channels last).
    pub(crate) fn run(&self, input: &[i8], output: &mut [i8]) {
        assert_eq!(output.len(), self.pixels * self.channels, "output size");
        let image = match &self.rows {
            Rows::Im2col(padded) => padded.bytes(),
            Rows::Direct => 0,
        };
        let rows = self.pixels.div_ceil(ROWS_PER_TILE) * ROWS_PER_TILE * self.depth4;
        with_scratch(rows, image, |scratch| {
            #[cfg(target_arch = "x86_64")]
            {
                assert!(super::avx512_available(), "packed layers need AVX-512 VNNI");
                // SAFETY: the CPU has the AVX-512 extensions, checked just above.
                unsafe { super::avx512::gemm(self, input, scratch, output) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("layers are packed only on x86-64 ({input:?})")
        })
    }
}
