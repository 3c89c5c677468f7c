//! Per-channel requantisation tables in the form the vector kernels apply them.

use tinyfit_micro::fixed_point::QuantizedMultiplier;
use tinyfit_micro::{Constants, Model};

use super::Aligned;

/// Output channels per vector block: one 512-bit register of int32 accumulators.
pub(super) const LANES: usize = 16;

/// A multiplier split into the shifts TFLite applies around its Q31 mantissa.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rescale {
    pub(super) multiplier: i32,
    pub(super) left_shift: i32,
    pub(super) right_shift: i32,
}

impl Rescale {
    /// `None` when the mantissa is negative or a shift reaches 32: the runtime's kernels handle
    /// those (TFLite's quantizer never produces them), the vector code does not.
    pub(super) fn new(m: QuantizedMultiplier) -> Option<Self> {
        let (left_shift, right_shift) = (m.shift.max(0), (-m.shift).max(0));
        (m.multiplier >= 0 && left_shift < 32 && right_shift < 32).then_some(Rescale {
            multiplier: m.multiplier,
            left_shift,
            right_shift,
        })
    }
}

/// Bias and requantisation of one block of [`LANES`] output channels, each table one aligned
/// cache line.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BlockRequant {
    pub(super) bias: Aligned<[i32; LANES]>,
    pub(super) multiplier: Aligned<[i32; LANES]>,
    pub(super) left_shift: Aligned<[i32; LANES]>,
    pub(super) right_shift: Aligned<[i32; LANES]>,
}

/// A layer's bias and requantisation per output channel in blocks of [`LANES`] (zeros beyond
/// the last channel), plus its output zero point and fused clamp.
#[derive(Debug, Clone)]
pub(super) struct ChannelRequant {
    pub(super) blocks: Vec<BlockRequant>,
    pub(super) output_zero_point: i32,
    pub(super) clamp: (i32, i32),
}

impl ChannelRequant {
    /// The tables of a layer with `channels` outputs (validated constants), or `None` when a
    /// multiplier is outside what [`Rescale`] handles.
    pub(super) fn new(
        model: &Model,
        c: &Constants,
        channels: usize,
        output_zero_point: i32,
    ) -> Option<Self> {
        let multipliers = c.multipliers.of(model.multipliers)?;
        let bias = c.bias.of(model.biases)?;
        let mut r = ChannelRequant {
            blocks: vec![BlockRequant::default(); channels.div_ceil(LANES)],
            output_zero_point,
            clamp: (c.clamp.min, c.clamp.max),
        };
        for o in 0..channels {
            let m = if multipliers.len() == 1 {
                multipliers[0]
            } else {
                *multipliers.get(o)?
            };
            let rescale = Rescale::new(m)?;
            let (block, lane) = (&mut r.blocks[o / LANES], o % LANES);
            block.bias.0[lane] = bias.get(o).copied().unwrap_or(0);
            block.multiplier.0[lane] = rescale.multiplier;
            block.left_shift.0[lane] = rescale.left_shift;
            block.right_shift.0[lane] = rescale.right_shift;
        }
        Some(r)
    }

    /// Subtracts `shift · sums[o]` from the bias of each channel `o`: folds a constant added to
    /// every input value (`Σ (x + shift)·w = Σ x·w + shift·Σ w`) out of the accumulators.
    pub(super) fn fold_input_shift(&mut self, shift: i32, sums: impl IntoIterator<Item = i32>) {
        for (o, sum) in sums.into_iter().enumerate() {
            let bias = &mut self.blocks[o / LANES].bias.0[o % LANES];
            *bias = bias.wrapping_sub(shift.wrapping_mul(sum));
        }
    }
}
