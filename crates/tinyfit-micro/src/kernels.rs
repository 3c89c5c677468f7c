//! int8 kernels with TFLite's arithmetic, on channels-last (`[H, W, C]`) tensors of batch 1.
//!
//! Each kernel is a plain function over slices; the caller ([`crate::interpreter`]) has checked
//! every length against the shapes, so indexing cannot fail. Accumulation is int32 and wraps like
//! the C kernels would on overflow (which a well-quantised model never reaches). Requantisation is
//! [`QuantizedMultiplier::apply`], TFLite's double rounding.

use crate::fixed_point::{self, QuantizedMultiplier};

/// Defines a kernel. On x86-64 hosts built with the `std` feature the body is compiled a second
/// time for AVX2 and that copy runs when the CPU has it (decided per call, not per element); on
/// a microcontroller, or without `std`, there is one portable copy. Integer results are the same
/// either way: only instruction selection changes.
macro_rules! kernel {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn portable($($arg: $ty),*) $body
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    portable($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}

/// Spatial shape of a channels-last tensor: height, width, channels (batch is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Whether the tensor holds no element.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Output clamp of a fused activation, in the output's quantised domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamp {
    /// Smallest output value.
    pub min: i32,
    /// Largest output value.
    pub max: i32,
}

impl Clamp {
    /// No activation: the full int8 range.
    pub const NONE: Clamp = Clamp {
        min: -128,
        max: 127,
    };

    fn apply(self, x: i32) -> i8 {
        x.clamp(self.min, self.max) as i8
    }
}

/// Geometry of a sliding window (convolution or pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Vertical dilation.
    pub dilation_h: usize,
    /// Horizontal dilation.
    pub dilation_w: usize,
    /// Rows of padding above the input.
    pub pad_top: usize,
    /// Columns of padding left of the input.
    pub pad_left: usize,
}

/// Quantisation of a convolution or fully connected layer.
#[derive(Debug, Clone, Copy)]
pub struct Requant<'a> {
    /// Input zero point (subtracted from every input value).
    pub input_zero_point: i32,
    /// Output zero point (added after requantisation).
    pub output_zero_point: i32,
    /// One multiplier per output channel, or a single one for all.
    pub multipliers: &'a [QuantizedMultiplier],
    /// Fused activation.
    pub clamp: Clamp,
}

impl Requant<'_> {
    /// The int8 output of `channel` from its accumulator: bias added (when the layer has one),
    /// requantised, shifted by the output zero point and clamped by the fused activation.
    #[inline(always)]
    fn output(&self, acc: i32, bias: &[i32], channel: usize) -> i8 {
        let acc = acc.wrapping_add(bias.get(channel).copied().unwrap_or(0));
        let m = if self.multipliers.len() == 1 {
            self.multipliers[0]
        } else {
            self.multipliers[channel]
        };
        self.clamp
            .apply(m.apply(acc).wrapping_add(self.output_zero_point))
    }
}

kernel! {
/// Grouped 2-D convolution (TFLite `CONV_2D`).
///
/// `filter` is `[out_c, kh, kw, in_c / groups]` (OHWI); `bias` is empty or one int32 per output
/// channel with scale `s_in · s_w[c]`. Without groups and dilation, the taps of one kernel row
/// that fall inside the input are contiguous in both the input and the filter, so each row is
/// one dot product.
pub fn conv2d(
    input: &[i8],
    in_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    groups: usize,
    q: &Requant,
    output: &mut [i8],
    out_shape: Shape,
) {
    let in_per_group = in_shape.c / groups;
    let out_per_group = out_shape.c / groups;
    let filter_stride = window.kh * window.kw * in_per_group;
    let in_offset = -q.input_zero_point;
    // A 1×1 convolution without padding is a matrix-vector product per pixel.
    if window.kh == 1 && window.kw == 1 && groups == 1 && window.pad_top == 0 && window.pad_left == 0 {
        for oy in 0..out_shape.h {
            for ox in 0..out_shape.w {
                let x0 = (oy * window.stride_h * in_shape.w + ox * window.stride_w) * in_shape.c;
                let y0 = (oy * out_shape.w + ox) * out_shape.c;
                matrix_vector(
                    &input[x0..x0 + in_shape.c],
                    filter,
                    bias,
                    q,
                    &mut output[y0..y0 + out_shape.c],
                );
            }
        }
        return;
    }
    let contiguous_rows = groups == 1 && window.dilation_w == 1;
    for oy in 0..out_shape.h {
        let rows = window.valid_taps(oy, Axis::H, in_shape.h);
        for ox in 0..out_shape.w {
            let out_base = (oy * out_shape.w + ox) * out_shape.c;
            let cols = window.valid_taps(ox, Axis::W, in_shape.w);
            let mut oc = 0;
            if contiguous_rows && !cols.is_empty() {
                // The in-bounds taps of a kernel row are one contiguous run of the input and of
                // each filter: four output channels share each pass over it.
                let n = cols.len() * in_shape.c;
                let ix0 = ox * window.stride_w + cols.start - window.pad_left;
                while oc + 4 <= out_shape.c {
                    let mut acc = [0i32; 4];
                    for ky in rows.clone() {
                        let iy = oy * window.stride_h + ky * window.dilation_h - window.pad_top;
                        let x0 = (iy * in_shape.w + ix0) * in_shape.c;
                        let f0 = (ky * window.kw + cols.start) * in_per_group;
                        let w = |j: usize| {
                            let start = (oc + j) * filter_stride + f0;
                            &filter[start..start + n]
                        };
                        let part = dot4_offset(&input[x0..x0 + n], [w(0), w(1), w(2), w(3)], in_offset);
                        for (a, p) in acc.iter_mut().zip(part) {
                            *a = a.wrapping_add(p);
                        }
                    }
                    for (j, a) in acc.into_iter().enumerate() {
                        output[out_base + oc + j] = q.output(a, bias, oc + j);
                    }
                    oc += 4;
                }
            }
            for oc in oc..out_shape.c {
                let first_in = (oc / out_per_group) * in_per_group;
                let f = &filter[oc * filter_stride..(oc + 1) * filter_stride];
                let mut acc: i32 = 0;
                for ky in rows.clone() {
                    let iy = oy * window.stride_h + ky * window.dilation_h - window.pad_top;
                    for kx in cols.clone() {
                        let ix = ox * window.stride_w + kx * window.dilation_w - window.pad_left;
                        let x0 = (iy * in_shape.w + ix) * in_shape.c + first_in;
                        let f0 = (ky * window.kw + kx) * in_per_group;
                        acc = acc.wrapping_add(dot_offset(
                            &input[x0..x0 + in_per_group],
                            &f[f0..f0 + in_per_group],
                            in_offset,
                        ));
                    }
                }
                output[out_base + oc] = q.output(acc, bias, oc);
            }
        }
    }
}
}

/// Channels processed together by [`depthwise_conv2d`] (its accumulators live on the stack).
const DEPTHWISE_BLOCK: usize = 64;

kernel! {
/// Depthwise 2-D convolution (TFLite `DEPTHWISE_CONV_2D`): output channel `c` reads input
/// channel `c / multiplier`.
///
/// `filter` is `[kh, kw, out_c]` (TFLite's layout without its leading 1), so for each tap the
/// weights of neighbouring channels are contiguous, like the input pixel they multiply: the
/// kernel accumulates a block of channels per tap instead of one channel at a time.
pub fn depthwise_conv2d(
    input: &[i8],
    in_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    multiplier: usize,
    q: &Requant,
    output: &mut [i8],
    out_shape: Shape,
) {
    let in_offset = -q.input_zero_point as i16;
    let mut acc = [0i32; DEPTHWISE_BLOCK];
    for oy in 0..out_shape.h {
        let rows = window.valid_taps(oy, Axis::H, in_shape.h);
        for ox in 0..out_shape.w {
            let cols = window.valid_taps(ox, Axis::W, in_shape.w);
            let out_base = (oy * out_shape.w + ox) * out_shape.c;
            let mut c0 = 0;
            while c0 < out_shape.c {
                let n = DEPTHWISE_BLOCK.min(out_shape.c - c0);
                let acc = &mut acc[..n];
                acc.fill(0);
                for ky in rows.clone() {
                    let iy = oy * window.stride_h + ky * window.dilation_h - window.pad_top;
                    for kx in cols.clone() {
                        let ix = ox * window.stride_w + kx * window.dilation_w - window.pad_left;
                        let pixel = &input[(iy * in_shape.w + ix) * in_shape.c..][..in_shape.c];
                        let f0 = (ky * window.kw + kx) * out_shape.c + c0;
                        let ws = &filter[f0..f0 + n];
                        if multiplier == 1 {
                            for ((a, &x), &w) in acc.iter_mut().zip(&pixel[c0..c0 + n]).zip(ws) {
                                *a = a.wrapping_add(
                                    i32::from(x as i16 + in_offset) * i32::from(w as i16),
                                );
                            }
                        } else {
                            for (j, (a, &w)) in acc.iter_mut().zip(ws).enumerate() {
                                let x = pixel[(c0 + j) / multiplier];
                                *a = a.wrapping_add(
                                    i32::from(x as i16 + in_offset) * i32::from(w as i16),
                                );
                            }
                        }
                    }
                }
                for (j, &a) in acc.iter().enumerate() {
                    output[out_base + c0 + j] = q.output(a, bias, c0 + j);
                }
                c0 += n;
            }
        }
    }
}
}

/// A spatial axis of a [`Window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Rows.
    H,
    /// Columns.
    W,
}

impl Window {
    /// A `kh × kw` window with stride 1, no dilation and no padding (a global pool over a
    /// `kh × kw` input, or a 1×1 convolution).
    pub const fn dense(kh: usize, kw: usize) -> Self {
        Window {
            kh,
            kw,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        }
    }

    /// The kernel taps along `axis` that land inside an input of `size` for output coordinate
    /// `out`: a contiguous range, since taps move monotonically.
    pub fn valid_taps(&self, out: usize, axis: Axis, size: usize) -> core::ops::Range<usize> {
        let (k, stride, pad, dilation) = match axis {
            Axis::H => (self.kh, self.stride_h, self.pad_top, self.dilation_h),
            Axis::W => (self.kw, self.stride_w, self.pad_left, self.dilation_w),
        };
        let origin = out * stride;
        // First tap with origin + k·dilation >= pad; last with origin + k·dilation < pad + size.
        let (before, inside) = (
            pad.saturating_sub(origin),
            (pad + size).saturating_sub(origin),
        );
        let (first, end) = if dilation == 1 {
            // No division: it runs per output pixel, and some cores divide slowly (or not at all).
            (before, inside.min(k))
        } else {
            (before.div_ceil(dilation), inside.div_ceil(dilation).min(k))
        };
        first.min(end)..end
    }
}

/// `Σ (x + offset) · w` in int32.
///
/// `x + offset` fits in i16 (zero points are int8), so the products are i16 × i16 → i32, the
/// shape compilers turn into multiply-add instructions (`pmaddwd`, `SMLAD`).
#[inline(always)]
fn dot_offset(xs: &[i8], ws: &[i8], offset: i32) -> i32 {
    let off = offset as i16;
    xs.iter().zip(ws).fold(0i32, |acc, (&x, &w)| {
        acc.wrapping_add(i32::from(x as i16 + off) * i32::from(w as i16))
    })
}

/// Four dot products `Σ (x + offset) · w_j` sharing one pass over `xs` (each input value is
/// loaded once for four multiply-accumulates).
#[inline(always)]
fn dot4_offset(xs: &[i8], ws: [&[i8]; 4], offset: i32) -> [i32; 4] {
    let off = offset as i16;
    let [w0, w1, w2, w3] = ws;
    let mut acc = [0i32; 4];
    for ((((&x, &a), &b), &c), &d) in xs.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
        let x = i32::from(x as i16 + off);
        acc[0] = acc[0].wrapping_add(x * i32::from(a));
        acc[1] = acc[1].wrapping_add(x * i32::from(b));
        acc[2] = acc[2].wrapping_add(x * i32::from(c));
        acc[3] = acc[3].wrapping_add(x * i32::from(d));
    }
    acc
}

kernel! {
/// Fully connected layer (TFLite `FULLY_CONNECTED`): `filter` is `[out, in]`, `input` holds
/// `in` values, `output` gets `out` values.
pub fn fully_connected(input: &[i8], filter: &[i8], bias: &[i32], q: &Requant, output: &mut [i8]) {
    matrix_vector(input, filter, bias, q, output);
}
}

/// `output = requantise(filter · (input − z_in) + bias)` for a row-major `[out, in]` filter:
/// the body of fully connected layers and of 1×1 convolutions, pixel by pixel, four rows at a
/// time.
#[inline(always)]
fn matrix_vector(input: &[i8], filter: &[i8], bias: &[i32], q: &Requant, output: &mut [i8]) {
    let depth = input.len();
    let mut o = 0;
    while o + 4 <= output.len() {
        let w = |j: usize| &filter[(o + j) * depth..(o + j + 1) * depth];
        let acc = dot4_offset(input, [w(0), w(1), w(2), w(3)], -q.input_zero_point);
        for (j, a) in acc.into_iter().enumerate() {
            output[o + j] = q.output(a, bias, o + j);
        }
        o += 4;
    }
    for o in o..output.len() {
        let acc = dot_offset(
            input,
            &filter[o * depth..(o + 1) * depth],
            -q.input_zero_point,
        );
        output[o] = q.output(acc, bias, o);
    }
}

kernel! {
/// Average pooling (TFLite `AVERAGE_POOL_2D`): the divisor counts only taps inside the input,
/// and the mean rounds half away from zero. Input and output share quantisation.
pub fn avg_pool(
    input: &[i8],
    in_shape: Shape,
    window: &Window,
    clamp: Clamp,
    output: &mut [i8],
    out_shape: Shape,
) {
    let (init, add) = (0, |acc: i32, x: i8| acc + i32::from(x));
    pool(input, in_shape, window, output, out_shape, init, add, |sum, count| {
        if count == 0 {
            return clamp.apply(0);
        }
        let half = count / 2;
        clamp.apply(if sum > 0 { (sum + half) / count } else { (sum - half) / count })
    });
}
}

kernel! {
/// Max pooling (TFLite `MAX_POOL_2D`). Input and output share quantisation.
pub fn max_pool(
    input: &[i8],
    in_shape: Shape,
    window: &Window,
    clamp: Clamp,
    output: &mut [i8],
    out_shape: Shape,
) {
    let (init, max) = (i32::from(i8::MIN), |acc: i32, x: i8| acc.max(i32::from(x)));
    pool(input, in_shape, window, output, out_shape, init, max, |m, _| clamp.apply(m));
}
}

/// Channels reduced together by [`pool`] (its accumulators live on the stack).
const POOL_BLOCK: usize = 64;

/// For every output position, folds the in-bounds taps of each channel into an accumulator
/// (`fold`, from `init`) and writes `finish(accumulator, taps)`. Channels are the inner loop,
/// so each tap is one contiguous run of the input.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pool(
    input: &[i8],
    in_shape: Shape,
    window: &Window,
    output: &mut [i8],
    out_shape: Shape,
    init: i32,
    fold: impl Fn(i32, i8) -> i32,
    finish: impl Fn(i32, i32) -> i8,
) {
    let mut acc = [0i32; POOL_BLOCK];
    for oy in 0..out_shape.h {
        let rows = window.valid_taps(oy, Axis::H, in_shape.h);
        for ox in 0..out_shape.w {
            let cols = window.valid_taps(ox, Axis::W, in_shape.w);
            let count = (rows.len() * cols.len()) as i32;
            let out_base = (oy * out_shape.w + ox) * out_shape.c;
            for c0 in (0..out_shape.c).step_by(POOL_BLOCK) {
                let n = POOL_BLOCK.min(out_shape.c - c0);
                let acc = &mut acc[..n];
                acc.fill(init);
                for ky in rows.clone() {
                    let iy = oy * window.stride_h + ky * window.dilation_h - window.pad_top;
                    for kx in cols.clone() {
                        let ix = ox * window.stride_w + kx * window.dilation_w - window.pad_left;
                        let at = (iy * in_shape.w + ix) * in_shape.c + c0;
                        for (a, &x) in acc.iter_mut().zip(&input[at..at + n]) {
                            *a = fold(*a, x);
                        }
                    }
                }
                for (o, &a) in output[out_base + c0..out_base + c0 + n]
                    .iter_mut()
                    .zip(acc.iter())
                {
                    *o = finish(a, count);
                }
            }
        }
    }
}

/// Mean of each channel over every pixel (TFLite `MEAN` over height and width, as LiteRT's
/// reference kernel computes it with or without `keep_dims`): `Σ (x − z_in)` rescaled by
/// `multiplier` = `s_in / (s_out · pixels)`, plus `z_out`.
pub fn mean(
    input: &[i8],
    in_shape: Shape,
    multiplier: QuantizedMultiplier,
    input_zero_point: i32,
    output_zero_point: i32,
    output: &mut [i8],
) {
    let pixels = (in_shape.h * in_shape.w) as i32;
    for (c, out) in output.iter_mut().enumerate().take(in_shape.c) {
        let sum: i32 = input
            .iter()
            .skip(c)
            .step_by(in_shape.c)
            .map(|&x| x as i32)
            .sum();
        let value = multiplier.apply(sum - pixels * input_zero_point) + output_zero_point;
        *out = Clamp::NONE.apply(value);
    }
}

/// Quantisation of an element-wise sum (TFLite's int8 `ADD`): both inputs are shifted left by
/// 20 bits, rescaled to twice the larger input scale, summed and rescaled to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddParams {
    /// Zero points of the two inputs.
    pub input_zero_points: [i32; 2],
    /// `s_i / (2 · max(s_1, s_2))` for each input.
    pub input_multipliers: [QuantizedMultiplier; 2],
    /// `2 · max(s_1, s_2) / (2^20 · s_out)`.
    pub output_multiplier: QuantizedMultiplier,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Fused activation.
    pub clamp: Clamp,
}

impl AddParams {
    /// Left shift TFLite applies to int8 inputs before rescaling.
    pub const LEFT_SHIFT: i32 = 20;

    /// The sum of one pair of elements.
    #[inline(always)]
    pub fn add(&self, a: i8, b: i8) -> i8 {
        let scaled = |x: i8, i: usize| {
            let shifted = (x as i32 - self.input_zero_points[i]) * (1 << Self::LEFT_SHIFT);
            self.input_multipliers[i].apply(shifted)
        };
        let sum = scaled(a, 0).wrapping_add(scaled(b, 1));
        self.clamp.apply(
            self.output_multiplier
                .apply(sum)
                .wrapping_add(self.output_zero_point),
        )
    }
}

/// Element-wise sum of two tensors of equal shape.
pub fn add(a: &[i8], b: &[i8], params: &AddParams, output: &mut [i8]) {
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *o = params.add(x, y);
    }
}

/// Which operand of a sum already sits in the output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// The first (`a` of `a + b`).
    First,
    /// The second.
    Second,
}

/// Element-wise sum written over one of its operands (`acc`), which holds operand `which`.
pub fn add_in_place(acc: &mut [i8], other: &[i8], params: &AddParams, which: Operand) {
    for (o, &y) in acc.iter_mut().zip(other) {
        *o = match which {
            Operand::First => params.add(*o, y),
            Operand::Second => params.add(y, *o),
        };
    }
}

/// Constants of TFLite's int8 softmax (from the input scale and β, see `tinyfit-deploy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxParams {
    /// Q31 multiplier of `β · s_in · 2^26`.
    pub input_multiplier: i32,
    /// Its left shift (non-negative).
    pub input_left_shift: i32,
    /// Differences to the row maximum below this contribute nothing.
    pub diff_min: i32,
}

/// TFLite's int8 softmax over rows of `row` values (the reference kernel of LiteRT and TFLite
/// Micro): differences to the row maximum are rescaled to Q5.26, exponentiated in fixed point,
/// summed in Q12.19 and divided through a fixed-point reciprocal. The output has scale 1/256 and
/// zero point −128, as TFLite requires.
pub fn softmax(input: &[i8], row: usize, p: &SoftmaxParams, output: &mut [i8]) {
    let scaled_exp = |diff: i32| {
        let rescaled = fixed_point::saturating_rounding_doubling_high_mul(
            diff.wrapping_mul(1 << p.input_left_shift),
            p.input_multiplier,
        );
        fixed_point::exp_on_negative_values_q5(rescaled)
    };
    for (x, y) in input.chunks_exact(row).zip(output.chunks_exact_mut(row)) {
        let max = x.iter().copied().max().unwrap_or(0) as i32;
        let mut sum: i32 = 0;
        for &v in x {
            let diff = v as i32 - max;
            if diff >= p.diff_min {
                sum = sum.wrapping_add(fixed_point::rounding_divide_by_pot(scaled_exp(diff), 12));
            }
        }
        let headroom_plus_one = (sum as u32).leading_zeros() as i32;
        let bits_over_unit = 12 - headroom_plus_one;
        let shifted_sum_minus_one = (sum as u32)
            .checked_shl(headroom_plus_one as u32)
            .unwrap_or(0)
            .wrapping_sub(1 << 31) as i32;
        let reciprocal = fixed_point::one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
        let exponent = (bits_over_unit + 31 - 8).clamp(0, 31);
        for (&v, o) in x.iter().zip(y.iter_mut()) {
            let diff = v as i32 - max;
            *o = if diff >= p.diff_min {
                let prob = fixed_point::saturating_rounding_doubling_high_mul(
                    reciprocal,
                    scaled_exp(diff),
                );
                (fixed_point::rounding_divide_by_pot(prob, exponent) - 128).clamp(-128, 127) as i8
            } else {
                -128
            };
        }
    }
}

/// C's `round` for quantize (core has no `f32::round` without std).
fn round_half_away(x: f32) -> i32 {
    let t = x as i32;
    let frac = x - t as f32;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// int8 → int8 requantisation (TFLite `QUANTIZE` between int8 tensors).
pub fn requantize(
    input: &[i8],
    input_zero_point: i32,
    m: QuantizedMultiplier,
    output_zero_point: i32,
    output: &mut [i8],
) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = Clamp::NONE.apply(
            m.apply(x as i32 - input_zero_point)
                .wrapping_add(output_zero_point),
        );
    }
}

/// float → int8 (TFLite `QUANTIZE`): `round(x / scale) + zero_point`, saturated.
pub fn quantize(input: &[f32], scale: f32, zero_point: i32, output: &mut [i8]) {
    for (o, &x) in output.iter_mut().zip(input) {
        let q = x / scale;
        // Saturate before converting so huge values cannot wrap.
        let q = if q.is_nan() {
            0
        } else {
            round_half_away(q.clamp(-1e9, 1e9))
        };
        *o = Clamp::NONE.apply(q.saturating_add(zero_point));
    }
}

/// int8 → float (TFLite `DEQUANTIZE`): `scale · (q − zero_point)`.
pub fn dequantize(input: &[i8], scale: f32, zero_point: i32, output: &mut [f32]) {
    for (o, &q) in output.iter_mut().zip(input) {
        *o = scale * (q as i32 - zero_point) as f32;
    }
}

/// Constant padding of the two spatial axes with `value` (the output zero point, TFLite `PAD`).
pub fn pad(
    input: &[i8],
    in_shape: Shape,
    top: usize,
    left: usize,
    value: i8,
    output: &mut [i8],
    out_shape: Shape,
) {
    output.fill(value);
    let row = in_shape.w * in_shape.c;
    for y in 0..in_shape.h {
        let dst = ((y + top) * out_shape.w + left) * out_shape.c;
        output[dst..dst + row].copy_from_slice(&input[y * row..(y + 1) * row]);
    }
}

/// ShuffleNet's channel shuffle of channels-last pixels of `channels` channels: output channel
/// `j · groups + g` of each pixel is input channel `g · (channels / groups) + j`.
pub fn channel_shuffle(input: &[i8], channels: usize, groups: usize, output: &mut [i8]) {
    let per_group = channels / groups;
    for (src, dst) in input
        .chunks_exact(channels)
        .zip(output.chunks_exact_mut(channels))
    {
        for (c, v) in dst.iter_mut().enumerate() {
            *v = src[(c % groups) * per_group + c / groups];
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    /// An undilated window: `(kh, kw)`, `(stride_h, stride_w)`, `(pad_top, pad_left)`.
    fn window(k: (usize, usize), stride: (usize, usize), pad: (usize, usize)) -> Window {
        Window {
            kh: k.0,
            kw: k.1,
            stride_h: stride.0,
            stride_w: stride.1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad.0,
            pad_left: pad.1,
        }
    }

    fn unit() -> [QuantizedMultiplier; 1] {
        // Exactly 1.0: 2^30 · 2^(1-31).
        [QuantizedMultiplier::new(1.0)]
    }

    #[test]
    fn conv_with_padding_and_offsets_matches_direct_sum() {
        // 3x3 single-channel input, 3x3 kernel of ones, "same" padding: each output is the sum
        // of its in-bounds neighbours minus the zero point per tap.
        let input: [i8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let filter = [1i8; 9];
        let shape = Shape { h: 3, w: 3, c: 1 };
        let window = window((3, 3), (1, 1), (1, 1));
        let m = unit();
        let q = Requant {
            input_zero_point: 1,
            output_zero_point: -3,
            multipliers: &m,
            clamp: Clamp::NONE,
        };
        let mut out = [0i8; 9];
        conv2d(
            &input, shape, &filter, &[10; 1], &window, 1, &q, &mut out, shape,
        );
        // Corner (0,0): taps 1,2,4,5 → (0+1+3+4) + 10 − 3 = 15.
        assert_eq!(out[0], 15);
        // Centre: all nine taps → (45 − 9) + 10 − 3 = 43.
        assert_eq!(out[4], 43);
    }

    #[test]
    fn depthwise_is_grouped_conv() {
        // Two channels, each scaled by its own 1x1 weight.
        let input: [i8; 4] = [1, 2, 3, 4];
        let shape = Shape { h: 1, w: 2, c: 2 };
        let window = window((1, 1), (1, 1), (0, 0));
        let m = unit();
        let q = Requant {
            input_zero_point: 0,
            output_zero_point: 0,
            multipliers: &m,
            clamp: Clamp::NONE,
        };
        let mut out = [0i8; 4];
        conv2d(
            &input,
            shape,
            &[2, -1],
            &[],
            &window,
            2,
            &q,
            &mut out,
            shape,
        );
        assert_eq!(out, [2, -2, 6, -4]);
    }

    /// The channels-last depthwise kernel agrees with the per-tap grouped convolution, and the
    /// contiguous-row path of the dense convolution with a direct sum, on padded, strided
    /// windows.
    #[test]
    fn fast_paths_match_per_tap_convolution() {
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as i8
        };
        let (cin, mult) = (5, 2);
        let cout = cin * mult;
        let x_shape = Shape { h: 7, w: 6, c: cin };
        let input: Vec<i8> = (0..x_shape.len()).map(|_| next()).collect();
        let window = window((3, 3), (2, 1), (1, 1));
        let y_shape = Shape {
            h: 4,
            w: 6,
            c: cout,
        };
        let m = [QuantizedMultiplier::new(0.01)];
        let q = Requant {
            input_zero_point: 3,
            output_zero_point: -5,
            multipliers: &m,
            clamp: Clamp::NONE,
        };
        let bias: Vec<i32> = (0..cout as i32).map(|c| c * 100 - 400).collect();
        // Depthwise: OHWI (I = 1) for the grouped kernel, HWO for the depthwise one.
        let ohwi: Vec<i8> = (0..cout * 9).map(|_| next()).collect();
        let mut hwo = vec![0i8; ohwi.len()];
        for o in 0..cout {
            for p in 0..9 {
                hwo[p * cout + o] = ohwi[o * 9 + p];
            }
        }
        let (mut a, mut b) = (vec![0i8; y_shape.len()], vec![0i8; y_shape.len()]);
        conv2d(
            &input, x_shape, &ohwi, &bias, &window, cin, &q, &mut a, y_shape,
        );
        depthwise_conv2d(
            &input, x_shape, &hwo, &bias, &window, mult, &q, &mut b, y_shape,
        );
        assert_eq!(a, b);
        // Dense, contiguous-row path against the convolution written out tap by tap.
        let dense: Vec<i8> = (0..cout * 9 * cin).map(|_| next()).collect();
        conv2d(
            &input, x_shape, &dense, &bias, &window, 1, &q, &mut a, y_shape,
        );
        for oy in 0..y_shape.h {
            for ox in 0..y_shape.w {
                for oc in 0..cout {
                    let mut acc = 0;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox + kx) as isize - 1);
                            if iy < 0 || ix < 0 || iy >= 7 || ix >= 6 {
                                continue;
                            }
                            for ic in 0..cin {
                                let xv =
                                    input[((iy as usize) * 6 + ix as usize) * cin + ic] as i32 - 3;
                                acc += xv * dense[((oc * 3 + ky) * 3 + kx) * cin + ic] as i32;
                            }
                        }
                    }
                    assert_eq!(
                        a[(oy * 6 + ox) * cout + oc],
                        q.output(acc, &bias, oc),
                        "({oy}, {ox}, {oc})"
                    );
                }
            }
        }
    }

    #[test]
    fn avg_pool_rounds_half_away_from_zero() {
        let window = window((1, 2), (1, 2), (0, 0));
        let mut out = [0i8; 2];
        avg_pool(
            &[1, 2, -1, -2],
            Shape { h: 1, w: 4, c: 1 },
            &window,
            Clamp::NONE,
            &mut out,
            Shape { h: 1, w: 2, c: 1 },
        );
        assert_eq!(out, [2, -2]);
    }

    #[test]
    fn quantize_saturates_and_rounds() {
        let mut out = [0i8; 4];
        quantize(&[0.25, -0.25, 1e30, f32::NAN], 0.5, 0, &mut out);
        assert_eq!(out, [1, -1, 127, 0]);
    }
}
