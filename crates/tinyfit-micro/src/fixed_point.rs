//! TFLite's fixed-point requantisation.
//!
//! A real multiplier `M` (e.g. `s_in · s_w / s_out`) is stored as a Q31 mantissa in
//! `[2^30, 2^31)` and a power-of-two exponent; applying it to an int32 accumulator is a
//! saturating rounding doubling high multiply followed by a rounding right shift — gemmlowp's
//! two roundings, which TFLite's reference kernels, TFLite Micro and CMSIS-NN all use. Written
//! here because the runtime must be `no_std` and bit-exact; there is no crate for it.

/// A real multiplier as TFLite stores it: `M ≈ multiplier · 2^(shift − 31)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantizedMultiplier {
    /// Q31 mantissa in `[2^30, 2^31)`, or 0 for `M = 0`.
    pub multiplier: i32,
    /// Power-of-two exponent: positive shifts left before the multiply, negative right after.
    pub shift: i32,
}

impl QuantizedMultiplier {
    /// TFLite's `QuantizeMultiplier`: splits `m` into a Q31 mantissa and an exponent, rounding the
    /// mantissa to nearest (half away from zero) and renormalising when it rounds up to 2^31.
    /// Multipliers below 2^-31 become 0, as in TFLite.
    pub fn new(m: f64) -> Self {
        if m == 0.0 || !m.is_finite() {
            return QuantizedMultiplier {
                multiplier: 0,
                shift: 0,
            };
        }
        let (mantissa, mut shift) = frexp(m);
        let mut q = round_half_away(mantissa * (1u64 << 31) as f64) as i64;
        if q == 1i64 << 31 {
            q /= 2;
            shift += 1;
        }
        if shift < -31 {
            return QuantizedMultiplier {
                multiplier: 0,
                shift: 0,
            };
        }
        QuantizedMultiplier {
            multiplier: q as i32,
            shift,
        }
    }

    /// TFLite's `MultiplyByQuantizedMultiplier(x, multiplier, shift)`. For `shift > 0` the left
    /// shift happens first and wraps on overflow, as in TFLite.
    pub fn apply(self, x: i32) -> i32 {
        let left = self.shift.max(0);
        let right = (-self.shift).max(0);
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(x.wrapping_mul(1 << left), self.multiplier),
            right,
        )
    }
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: `round(a · b / 2^31)` with the nudge of
/// gemmlowp (ties toward +∞ after C's truncating division), saturating the one overflow case.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Rust's `/` truncates toward zero, as C++'s does.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent));
    let mask: i32 = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT`: `x · 2^exponent`, saturating when shifting
/// left and rounding to nearest when shifting right.
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let threshold = (1i32 << (31 - exponent)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << exponent
        }
    } else {
        rounding_divide_by_pot(x, -exponent)
    }
}

/// Product of two fixed-point numbers (gemmlowp's `FixedPoint` multiplication).
fn mul(a: i32, b: i32) -> i32 {
    saturating_rounding_doubling_high_mul(a, b)
}

/// gemmlowp's `exp_on_interval_between_negative_one_quarter_and_0_excl`: a Taylor expansion
/// around −1/8, on Q0.31 values.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668;
    const ONE_THIRD: i32 = 715_827_883;
    let x = a.wrapping_add(1 << 28);
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let poly = saturating_rounding_multiply_by_pot(
        mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        -1,
    );
    EXP_MINUS_ONE_EIGHTH.wrapping_add(mul(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(poly)))
}

/// gemmlowp's `exp_on_negative_values` for a Q5.26 input (`kScaledDiffIntegerBits = 5`, as
/// TFLite's softmax uses): returns `exp(a)` in Q0.31.
pub fn exp_on_negative_values_q5(a: i32) -> i32 {
    const INTEGER_BITS: i32 = 5;
    const FRACTIONAL_BITS: i32 = 31 - INTEGER_BITS;
    let one_quarter = 1i32 << (FRACTIONAL_BITS - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, INTEGER_BITS),
    );
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(−2^k) for k = −2..=4, in Q0.31: the barrel shifter over the integer part.
    const MULTIPLIERS: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (exponent, multiplier) in MULTIPLIERS {
        if remainder & (1 << (FRACTIONAL_BITS + exponent)) != 0 {
            result = mul(result, multiplier);
        }
    }
    if a == 0 { i32::MAX } else { result }
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + x)` for Q0.31 `x` in `[0, 1)` by
/// three Newton–Raphson steps; the result is Q0.31.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    // RoundingHalfSum(a, One) with One = i32::MAX in Q0.31.
    let sum = a as i64 + i32::MAX as i64;
    let half_denominator = ((sum + if sum >= 0 { 1 } else { -1 }) / 2) as i32;
    const C48_OVER_17: i32 = 1_515_870_810; // Q2.29
    const CNEG32_OVER_17: i32 = -1_010_580_540; // Q2.29
    const ONE_Q2: i32 = 1 << 29;
    let mut x = C48_OVER_17.wrapping_add(mul(half_denominator, CNEG32_OVER_17));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x);
        let one_minus = ONE_Q2.wrapping_sub(half_denominator_times_x);
        // x · (1 − d·x) is Q4.27; rescale to Q2.29.
        x = x.wrapping_add(saturating_rounding_multiply_by_pot(mul(x, one_minus), 2));
    }
    // ExactMulByPot<−1> reinterprets Q2.29 as Q1.30; Rescale<0> shifts left by one.
    saturating_rounding_multiply_by_pot(x, 1)
}

/// `(mantissa, exponent)` with `m = mantissa · 2^exponent` and `|mantissa|` in `[0.5, 1)`, as C's
/// `frexp` (core has no `frexp`; this reads the IEEE-754 fields).
fn frexp(m: f64) -> (f64, i32) {
    let bits = m.to_bits();
    let exp_field = ((bits >> 52) & 0x7ff) as i32;
    if exp_field == 0 {
        // Subnormal: scale into the normal range first.
        let (mant, e) = frexp(m * (1u64 << 54) as f64);
        return (mant, e - 54);
    }
    let exponent = exp_field - 1022;
    let mantissa = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (mantissa, exponent)
}

/// C's `round`: to nearest, ties away from zero (core's `f64::round` needs std).
fn round_half_away(x: f64) -> f64 {
    let t = x as i64 as f64;
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_multiplier_matches_tflite() {
        // TFLite: QuantizeMultiplier(0.5) = (2^30, 0), (0.25) = (2^30, -1), (1.0) = (2^30, 1).
        assert_eq!(
            QuantizedMultiplier::new(0.5),
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            QuantizedMultiplier::new(0.25),
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: -1
            }
        );
        assert_eq!(
            QuantizedMultiplier::new(1.0),
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        // 0.75 = 0.75 · 2^0 → round(0.75 · 2^31) = 1610612736.
        assert_eq!(
            QuantizedMultiplier::new(0.75),
            QuantizedMultiplier {
                multiplier: 1_610_612_736,
                shift: 0
            }
        );
        // A mantissa that rounds up to 2^31 renormalises.
        let just_below_one = 1.0 - 1e-12;
        assert_eq!(
            QuantizedMultiplier::new(just_below_one),
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        assert_eq!(QuantizedMultiplier::new(0.0).multiplier, 0);
        assert_eq!(QuantizedMultiplier::new(1e-12).multiplier, 0);
    }

    #[test]
    fn frexp_and_round_follow_c() {
        assert_eq!(frexp(8.0), (0.5, 4));
        assert_eq!(frexp(0.3), (0.6, -1));
        assert_eq!(frexp(-3.0), (-0.75, 2));
        let tiny = f64::from_bits(1); // smallest subnormal = 2^-1074
        assert_eq!(frexp(tiny), (0.5, -1073));
        assert_eq!(round_half_away(2.5), 3.0);
        assert_eq!(round_half_away(-2.5), -3.0);
        assert_eq!(round_half_away(2.4999), 2.0);
    }

    #[test]
    fn rounding_divide_rounds_ties_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 1), 2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
    }

    #[test]
    fn high_mul_nudges_and_saturates() {
        // 3 · 0.5 = 1.5 → 2; −3 · 0.5 = −1.5 → −1 (gemmlowp's nudge then truncation).
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
    }

    /// Against exact rational arithmetic: the two-step rounding lands within one of x·M.
    #[test]
    fn apply_is_within_one_of_the_real_product() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let x = (next() as i32) >> (next() % 16);
            let m =
                (next() % 1_000_000) as f64 / 1_000_000.0 * 4.0 / (1u64 << (next() % 12)) as f64;
            let q = QuantizedMultiplier::new(m);
            if q.multiplier == 0 {
                continue;
            }
            // TFLite shifts left before multiplying; an accumulator that overflows int32 there
            // wraps in TFLite as here, so only the non-overflowing domain has a real answer.
            if (x as i64) << q.shift.max(0) != ((x as i64) << q.shift.max(0)) as i32 as i64 {
                continue;
            }
            let exact = x as f64 * q.multiplier as f64 * 2f64.powi(q.shift - 31);
            let got = q.apply(x) as f64;
            assert!(
                (got - exact).abs() <= 1.0,
                "x {x} m {m} → {got}, exact {exact}"
            );
        }
    }
}
