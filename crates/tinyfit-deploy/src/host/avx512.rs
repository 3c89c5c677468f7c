//! The host kernels on AVX-512: sixteen int32 lanes per register, TFLite's integer arithmetic
//! lane by lane.
//!
//! The matrix product uses `VPDPBUSD` (AVX-512 VNNI), which accumulates four unsigned × signed
//! byte products into each lane. A tile is [`ROWS_PER_TILE`] output pixels × up to four blocks
//! of [`LANES`] output channels: 24 accumulators, four weight registers and one broadcast input
//! fit the 32 vector registers, so each weight load feeds six multiply-accumulates and nothing
//! spills. Requantisation runs on the accumulators in registers.

use std::arch::x86_64::*;
use std::ops::Range;

use tinyfit_micro::kernels::AddParams;

use super::Aligned;
use super::depthwise::PackedDepthwise;
use super::gemm::{PackedGemm, ROWS_PER_TILE};
use super::image::Padded;
use super::requant::{ChannelRequant, LANES, Rescale};

/// Computes `g`'s layer: builds the padded image in `image`, multiplies, requantises.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI ([`super::avx512_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn gemm(g: &PackedGemm, input: &[i8], image: &mut [u8], output: &mut [i8]) {
    let image = fill_image(&g.padded, input, g.padding_byte, image);
    let blocks = g.channels.div_ceil(LANES);
    for block in (0..blocks).step_by(4) {
        // A single pixel (a fully connected layer) gets one-row tiles: no discarded rows.
        match (g.origins.len() == 1, blocks - block) {
            (false, 1) => panel::<ROWS_PER_TILE, 1>(g, image, block, output),
            (false, 2) => panel::<ROWS_PER_TILE, 2>(g, image, block, output),
            (false, 3) => panel::<ROWS_PER_TILE, 3>(g, image, block, output),
            (false, _) => panel::<ROWS_PER_TILE, 4>(g, image, block, output),
            (true, 1) => panel::<1, 1>(g, image, block, output),
            (true, 2) => panel::<1, 2>(g, image, block, output),
            (true, 3) => panel::<1, 3>(g, image, block, output),
            (true, _) => panel::<1, 4>(g, image, block, output),
        }
    }
}

/// Output channel blocks `first .. first + C` for every pixel, `R` pixels a tile; the last
/// tile repeats its last pixel where pixels run out (computed, not stored).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn panel<const R: usize, const C: usize>(
    g: &PackedGemm,
    image: &[u8],
    first: usize,
    output: &mut [i8],
) {
    let steps = g.steps();
    let segment_steps = g.segment_len / 4;
    let blocks: [&[Aligned<[i8; 64]>]; C] =
        core::array::from_fn(|c| &g.weights[(first + c) * steps..(first + c + 1) * steps]);
    let pixels = g.origins.len();
    for p0 in (0..pixels).step_by(R) {
        let origins: [usize; R] = core::array::from_fn(|r| g.origins[(p0 + r).min(pixels - 1)]);
        let mut acc = [[_mm512_setzero_si512(); C]; R];
        for (j, &segment) in g.segments.iter().enumerate() {
            // Each tile pixel's segment as groups of four bytes.
            let rows: [&[[u8; 4]]; R] = core::array::from_fn(|r| {
                let at = origins[r] + segment;
                image[at..at + g.segment_len].as_chunks::<4>().0
            });
            let weights: [&[Aligned<[i8; 64]>]; C] =
                core::array::from_fn(|c| &blocks[c][j * segment_steps..(j + 1) * segment_steps]);
            for s in 0..segment_steps {
                let mut w = [_mm512_setzero_si512(); C];
                for (w, block) in w.iter_mut().zip(&weights) {
                    *w = load_line(&block[s]);
                }
                for (acc, row) in acc.iter_mut().zip(&rows) {
                    let x = _mm512_set1_epi32(i32::from_le_bytes(row[s]));
                    for c in 0..C {
                        acc[c] = _mm512_dpbusd_epi32(acc[c], x, w[c]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(pixels - p0) {
            for (c, &acc) in acc.iter().enumerate() {
                let channel = (first + c) * LANES;
                let at = (p0 + r) * g.channels + channel;
                let lanes = LANES.min(g.channels - channel);
                store_i8x16(
                    &mut output[at..at + lanes],
                    requantize(&g.requant, acc, channel),
                );
            }
        }
    }
}

/// Writes `p`'s padded image of `input` into the start of `image` and returns all of
/// `image` (bytes past the image are left as they were: readers multiply them by zero).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn fill_image<'a>(p: &Padded, input: &[i8], padding_byte: u8, image: &'a mut [u8]) -> &'a [u8] {
    let (c, image_w) = (p.input.c, p.size.1);
    image[..p.bytes()].fill(padding_byte);
    for (y, x) in input.chunks_exact(p.input.w * c).enumerate() {
        let at = ((p.window.pad_top + y) * image_w + p.window.pad_left) * c;
        copy_shifted(&mut image[at..at + x.len()], x);
    }
    image
}

/// `dst = src + 128` as unsigned bytes, 64 at a time.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn copy_shifted(dst: &mut [u8], src: &[i8]) {
    let flip = _mm512_set1_epi8(i8::MIN);
    for (d, s) in dst.chunks_mut(64).zip(src.chunks(64)) {
        let mask = byte_mask(d.len().min(s.len()));
        // SAFETY: the mask reads and writes at most the length of both chunks.
        unsafe {
            let x = _mm512_maskz_loadu_epi8(mask, s.as_ptr());
            _mm512_mask_storeu_epi8(d.as_mut_ptr().cast(), mask, _mm512_xor_si512(x, flip));
        }
    }
}

/// A mask of the first `n` ≤ 64 bytes.
fn byte_mask(n: usize) -> __mmask64 {
    assert!(n <= 64);
    if n == 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Computes a depthwise convolution: for each output pixel and block of sixteen channels, one
/// widening multiply-add per tap, over the padded image built in `image`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI ([`super::avx512_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn depthwise(
    d: &PackedDepthwise,
    input: &[i8],
    image: &mut [u8],
    output: &mut [i8],
) {
    let p = &d.padded;
    let image = fill_image(p, input, d.padding_byte, image);
    let c = p.input.c;
    let blocks = c.div_ceil(LANES);
    let span = d.taps.last().map_or(0, |last| last + c);
    let mut out = output.chunks_exact_mut(c);
    for oy in 0..p.out.0 {
        for ox in 0..p.out.1 {
            let origin = p.window_offset(oy, ox);
            let window = &image[origin..origin + span];
            let Some(out) = out.next() else { return };
            for first in (0..blocks).step_by(4) {
                match blocks - first {
                    1 => depthwise_pass::<1>(d, window, first, out),
                    2 => depthwise_pass::<2>(d, window, first, out),
                    3 => depthwise_pass::<3>(d, window, first, out),
                    _ => depthwise_pass::<4>(d, window, first, out),
                }
            }
        }
    }
}

/// Channel blocks `first .. first + B` of one output pixel, whose window starts `window`:
/// the blocks share each tap's loop step, and each accumulates in its own register.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn depthwise_pass<const B: usize>(
    d: &PackedDepthwise,
    window: &[u8],
    first: usize,
    out: &mut [i8],
) {
    let c = out.len();
    let blocks = c.div_ceil(LANES);
    let lanes: [usize; B] = core::array::from_fn(|j| LANES.min(c - (first + j) * LANES));
    let mut acc = [_mm512_setzero_si512(); B];
    for (&tap, weights) in d.taps.iter().zip(d.weights.chunks_exact(blocks)) {
        for j in 0..B {
            let at = tap + (first + j) * LANES;
            let x = _mm512_cvtepu8_epi32(load_u8x16(&window[at..at + lanes[j]]));
            let w = load_line(&weights[first + j]);
            acc[j] = _mm512_add_epi32(acc[j], _mm512_mullo_epi32(x, w));
        }
    }
    for (j, acc) in acc.into_iter().enumerate() {
        let c0 = (first + j) * LANES;
        store_i8x16(&mut out[c0..c0 + lanes[j]], requantize(&d.requant, acc, c0));
    }
}

/// The rescalings of an element-wise sum, in the form [`add`] applies.
#[derive(Debug, Clone, Copy)]
pub(super) struct AddRescale {
    inputs: [Rescale; 2],
    output: Rescale,
}

impl AddRescale {
    /// `None` when a multiplier is outside what the vector code handles.
    pub(super) fn new(p: &AddParams) -> Option<Self> {
        Some(AddRescale {
            inputs: [
                Rescale::new(p.input_multipliers[0])?,
                Rescale::new(p.input_multipliers[1])?,
            ],
            output: Rescale::new(p.output_multiplier)?,
        })
    }
}

/// TFLite's int8 `ADD` of the arena bytes `a` and `b` into `out`, sixteen at a time; `out`
/// may be `a` or `b` itself, or disjoint from both (each block is read before it is written).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI ([`super::avx512_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn add(
    p: &AddParams,
    r: &AddRescale,
    arena: &mut [i8],
    a: Range<usize>,
    b: Range<usize>,
    out: Range<usize>,
) {
    assert!(a.len() == out.len() && b.len() == out.len());
    let scaled = |x: &[i8], i: usize| {
        let x = _mm512_cvtepi8_epi32(load_i8x16(x));
        let x = _mm512_sub_epi32(x, _mm512_set1_epi32(p.input_zero_points[i]));
        rescale(
            _mm512_slli_epi32(x, AddParams::LEFT_SHIFT as u32),
            broadcast(r.inputs[i]),
        )
    };
    for i in (0..out.len()).step_by(LANES) {
        let n = LANES.min(out.len() - i);
        let xa = scaled(&arena[a.start + i..a.start + i + n], 0);
        let xb = scaled(&arena[b.start + i..b.start + i + n], 1);
        let y = rescale(_mm512_add_epi32(xa, xb), broadcast(r.output));
        let y = _mm512_add_epi32(y, _mm512_set1_epi32(p.output_zero_point));
        let y = _mm512_max_epi32(y, _mm512_set1_epi32(p.clamp.min));
        let y = _mm512_min_epi32(y, _mm512_set1_epi32(p.clamp.max));
        store_i8x16(
            &mut arena[out.start + i..out.start + i + n],
            _mm512_cvtepi32_epi8(y),
        );
    }
}

/// Bias, rescaling, output zero point and clamp of the sixteen channels from `channel`,
/// narrowed to int8.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn requantize(q: &ChannelRequant, acc: __m512i, channel: usize) -> __m128i {
    let q_block = &q.blocks[channel / LANES];
    let x = _mm512_add_epi32(acc, load_line(&q_block.bias));
    let m = [
        load_line(&q_block.multiplier),
        load_line(&q_block.left_shift),
        load_line(&q_block.right_shift),
    ];
    let y = _mm512_add_epi32(rescale(x, m), _mm512_set1_epi32(q.output_zero_point));
    let y = _mm512_max_epi32(y, _mm512_set1_epi32(q.clamp.0));
    let y = _mm512_min_epi32(y, _mm512_set1_epi32(q.clamp.1));
    _mm512_cvtepi32_epi8(y)
}

/// One [`Rescale`] in every lane: multiplier, left shift, right shift.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn broadcast(r: Rescale) -> [__m512i; 3] {
    [
        _mm512_set1_epi32(r.multiplier),
        _mm512_set1_epi32(r.left_shift),
        _mm512_set1_epi32(r.right_shift),
    ]
}

/// TFLite's `MultiplyByQuantizedMultiplier` per lane, with per-lane `[multiplier, left shift,
/// right shift]`: the left shift wraps, the saturating rounding doubling high multiply (the one
/// saturating case needs a multiplier of `i32::MIN`, which [`Rescale`] refuses), then the
/// rounding divide by a power of two, ties away from zero.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn rescale(x: __m512i, [m, left, right]: [__m512i; 3]) -> __m512i {
    let one = _mm512_set1_epi32(1);
    let x = _mm512_sllv_epi32(x, left);
    let even = high_half_rounded(_mm512_mul_epi32(x, m));
    let odd = high_half_rounded(_mm512_mul_epi32(
        _mm512_srli_epi64(x, 32),
        _mm512_srli_epi64(m, 32),
    ));
    let high = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
    let remainder = _mm512_and_si512(high, mask);
    let threshold = _mm512_add_epi32(_mm512_srai_epi32(mask, 1), _mm512_srli_epi32(high, 31));
    let shifted = _mm512_srav_epi32(high, right);
    let round_up = _mm512_cmpgt_epi32_mask(remainder, threshold);
    _mm512_mask_add_epi32(shifted, round_up, shifted, one)
}

/// gemmlowp's `(ab + nudge) / 2^31` per 64-bit lane, the low 32 bits holding the result.
///
/// The nudge is `2^30` for `ab ≥ 0` and `1 − 2^30` below, and the division truncates toward
/// zero; for `ab < 0`, `ab + 1 − 2^30` is negative, so truncating equals flooring after adding
/// `2^31 − 1`, and both cases become `⌊(ab + 2^30) / 2^31⌋`: one add and one arithmetic shift.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn high_half_rounded(ab: __m512i) -> __m512i {
    _mm512_srai_epi64(_mm512_add_epi64(ab, _mm512_set1_epi64(1 << 30)), 31)
}

/// One aligned cache line of constants.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn load_line<T>(line: &Aligned<T>) -> __m512i {
    const { assert!(size_of::<Aligned<T>>() == 64) };
    // SAFETY: `line` is 64 bytes, aligned to 64.
    unsafe { _mm512_load_si512((line as *const Aligned<T>).cast()) }
}

/// Up to sixteen unsigned bytes (all of `v`), zero beyond.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn load_u8x16(v: &[u8]) -> __m128i {
    let mask = lane_mask(v.len());
    // SAFETY: the mask reads `v.len()` ≤ 16 bytes, all inside `v`.
    unsafe { _mm_maskz_loadu_epi8(mask, v.as_ptr().cast()) }
}

/// Up to sixteen bytes (all of `v`), zero beyond.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn load_i8x16(v: &[i8]) -> __m128i {
    let mask = lane_mask(v.len());
    // SAFETY: the mask reads `v.len()` ≤ 16 bytes, all inside `v`.
    unsafe { _mm_maskz_loadu_epi8(mask, v.as_ptr()) }
}

/// Stores the first `v.len()` ≤ 16 bytes of `y` into `v`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn store_i8x16(v: &mut [i8], y: __m128i) {
    let mask = lane_mask(v.len());
    // SAFETY: the mask writes `v.len()` ≤ 16 bytes, all inside `v`.
    unsafe { _mm_mask_storeu_epi8(v.as_mut_ptr(), mask, y) }
}

/// A mask of the first `n` ≤ 16 lanes.
fn lane_mask(n: usize) -> __mmask16 {
    assert!(n <= LANES);
    ((1u32 << n) - 1) as __mmask16
}
