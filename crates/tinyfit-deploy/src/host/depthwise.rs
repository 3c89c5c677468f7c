//! Depthwise convolutions packed for the host kernels: weights widened to int32 per tap and
//! channel, so each tap of sixteen channels is one multiply-add of sixteen lanes, reading the
//! padded image ([`Padded`]) so no tap needs a bounds test.
//!
//! The image holds `x + 128`, and padding taps hold `z_in + 128`, so with `Σ_t` over a
//! channel's taps, `Σ (x − z_in)·w + b = Σ (x + 128)·w + (b − (128 + z_in)·Σ_t w)`: the bias
//! absorbs the shift once per channel, exactly in wrapping int32 arithmetic.

use tinyfit_micro::{Kernel, Model, Operation};

use super::image::Padded;
use super::requant::{ChannelRequant, LANES};
use super::{Aligned, with_scratch};

/// One depthwise convolution (channel multiplier 1) packed for the host kernels.
#[derive(Debug, Clone)]
pub(crate) struct PackedDepthwise {
    pub(super) padded: Padded,
    /// Offset of each tap from its window's first byte in the image.
    pub(super) taps: Vec<usize>,
    /// `[taps][channel blocks]` rows of [`LANES`] widened weights, zero beyond the channels.
    pub(super) weights: Vec<Aligned<[i32; LANES]>>,
    /// Requantisation, its bias with the input shift folded in.
    pub(super) requant: ChannelRequant,
    /// The shifted input zero point: what padding taps read.
    pub(super) padding_byte: u8,
}

impl PackedDepthwise {
    /// Packs `op` of a validated `model`, or `None` when it is not a depthwise convolution
    /// with multiplier 1 or its requantisation is outside what the vector code handles.
    pub(crate) fn new(model: &Model, op: &Operation) -> Option<Self> {
        let Kernel::DepthwiseConv {
            window,
            multiplier: 1,
            constants,
        } = op.kernel
        else {
            return None;
        };
        let input = &model.tensors[*model.operands.get(op.inputs.start as usize)? as usize];
        let output = &model.tensors[op.output as usize];
        let channels = output.shape.c;
        let blocks = channels.div_ceil(LANES);
        let filter = constants.filter.of(model.weights)?;
        let taps = window.kh * window.kw;
        if channels == 0 || filter.len() != taps * channels || input.shape.c != channels {
            return None;
        }
        let mut weights = vec![Aligned([0; LANES]); taps * blocks];
        for (tap, row) in filter.chunks_exact(channels).enumerate() {
            for (c, &w) in row.iter().enumerate() {
                weights[tap * blocks + c / LANES].0[c % LANES] = i32::from(w);
            }
        }
        let mut requant = ChannelRequant::new(model, &constants, channels, output.zero_point)?;
        let sums = (0..channels).map(|c| {
            filter
                .iter()
                .skip(c)
                .step_by(channels)
                .map(|&w| i32::from(w))
                .sum()
        });
        requant.fold_input_shift(128 + input.zero_point, sums);
        let padded = Padded::new(input.shape, &window, output.shape);
        Some(PackedDepthwise {
            taps: padded.tap_offsets(),
            padded,
            weights,
            requant,
            padding_byte: (input.zero_point as i8 as u8) ^ 0x80,
        })
    }

    /// Computes the layer's output from its input (both int8, channels last).
    pub(crate) fn run(&self, input: &[i8], output: &mut [i8]) {
        let (out_h, out_w) = self.padded.out;
        assert_eq!(
            output.len(),
            out_h * out_w * self.padded.input.c,
            "output size"
        );
        with_scratch(self.padded.bytes(), |image| {
            #[cfg(target_arch = "x86_64")]
            {
                assert!(super::avx512_available(), "packed layers need AVX-512");
                // SAFETY: the CPU has the AVX-512 extensions, checked just above.
                unsafe { super::avx512::depthwise(self, input, image, output) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!(
                "layers are packed only on x86-64 ({input:?}, {:?})",
                scratch.image
            )
        })
    }
}
