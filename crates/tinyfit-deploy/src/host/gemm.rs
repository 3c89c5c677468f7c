//! Convolutions and fully connected layers as int8 matrix products with packed weights, read
//! straight from the padded input image ([`Padded`]) without an im2col copy.
//!
//! Output pixel `p`'s receptive field is a few *segments* of the image: one per kernel row
//! when the window is undilated along the width (its `kw · c` values are contiguous), one per
//! tap otherwise. Each segment is read as `segment_len` bytes, rounded up to whole groups of
//! four (one `VPDPBUSD` step); the bytes past its data belong to the next pixel and meet zero
//! weights. Output channels are the columns of the packed weight matrix.
//!
//! The product multiplies unsigned by signed bytes, so the image holds `x + 128` and the bias
//! absorbs the difference: with `Σ` over one output channel's weights,
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

/// Output pixels computed together in the usual tile.
pub(super) const ROWS_PER_TILE: usize = 6;

/// Bytes the image buffer extends past the image: a segment's rounding reads at most three.
pub(super) const IMAGE_SLACK: usize = 4;

/// One layer packed for the host kernels.
#[derive(Debug, Clone)]
pub(crate) struct PackedGemm {
    /// The input image the segments are read from.
    pub(super) padded: Padded,
    /// Offset in the image of each output pixel's window.
    pub(super) origins: Vec<usize>,
    /// Offset of each segment from its pixel's origin.
    pub(super) segments: Vec<usize>,
    /// Bytes read per segment: its data rounded up to a multiple of four.
    pub(super) segment_len: usize,
    /// Output channels.
    pub(super) channels: usize,
    /// `[blocks][segments · segment_len / 4]` lines of `[LANES][4]` int8 weights, zero beyond
    /// `channels` and past each segment's data.
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
        let (padded, constants) = match op.kernel {
            Kernel::Conv {
                window,
                groups: 1,
                constants,
            } => (Padded::new(input.shape, &window, output.shape), constants),
            Kernel::FullyConnected { constants } => {
                // One pixel whose channels are the whole flattened input.
                let flat = |c| Shape { h: 1, w: 1, c };
                let unit = Window::dense(1, 1);
                let padded = Padded::new(flat(input.shape.len()), &unit, flat(output.shape.c));
                (padded, constants)
            }
            _ => return None,
        };
        let (win, c) = (padded.window, padded.input.c);
        let channels = output.shape.c;
        let filter = constants.filter.of(model.weights)?;
        let depth = win.kh * win.kw * c;
        if channels == 0 || depth * channels != filter.len() {
            return None;
        }
        // Segments: kernel rows when a row's taps are contiguous in the image, else taps.
        let taps = padded.tap_offsets();
        let (segments, data): (Vec<usize>, usize) = if win.dilation_w == 1 {
            (taps.iter().step_by(win.kw).copied().collect(), win.kw * c)
        } else {
            (taps, c)
        };
        let segment_len = data.div_ceil(4) * 4;
        let steps = segments.len() * segment_len / 4;
        let blocks = channels.div_ceil(LANES);
        let mut weights = vec![Aligned([0i8; 64]); blocks * steps];
        for (o, row) in filter.chunks_exact(depth).enumerate() {
            let (block, lane) = (o / LANES, o % LANES);
            // OHWI order: segment after segment, `data` values each.
            for (k, &w) in row.iter().enumerate() {
                let at = (k / data) * segment_len + k % data;
                weights[block * steps + at / 4].0[lane * 4 + at % 4] = w;
            }
        }
        let mut requant = ChannelRequant::new(model, &constants, channels, output.zero_point)?;
        let sums = filter
            .chunks_exact(depth)
            .map(|row| row.iter().map(|&w| i32::from(w)).sum());
        requant.fold_input_shift(128 + input.zero_point, sums);
        let (out_h, out_w) = padded.out;
        let origins = (0..out_h)
            .flat_map(|oy| (0..out_w).map(move |ox| (oy, ox)))
            .map(|(oy, ox)| padded.window_offset(oy, ox))
            .collect();
        Some(PackedGemm {
            padded,
            origins,
            segments,
            segment_len,
            channels,
            weights,
            requant,
            padding_byte: (input.zero_point as i8 as u8) ^ 0x80,
        })
    }

    /// `VPDPBUSD` steps per output pixel.
    pub(super) fn steps(&self) -> usize {
        self.segments.len() * self.segment_len / 4
    }

    /// Computes the layer's output from its input (both int8, channels last).
    pub(crate) fn run(&self, input: &[i8], output: &mut [i8]) {
        assert_eq!(
            output.len(),
            self.origins.len() * self.channels,
            "output size"
        );
        with_scratch(self.padded.bytes() + IMAGE_SLACK, |image| {
            #[cfg(target_arch = "x86_64")]
            {
                assert!(super::avx512_available(), "packed layers need AVX-512 VNNI");
                // SAFETY: the CPU has the AVX-512 extensions, checked just above.
                unsafe { super::avx512::gemm(self, input, image, output) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("layers are packed only on x86-64 ({input:?}, {image:?})")
        })
    }
}
