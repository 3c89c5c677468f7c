/* Checks the C kernels' rounding helpers against gemmlowp's formulations, on edge values and a
 * pseudo-random sweep: RoundingDivideByPOT (mask and threshold) and
 * SaturatingRoundingDoublingHighMul (nudge and truncating division); and the short
 * requantisation of bounded layers against the general one within its bounds
 * (|acc + bias| < 2^30, shift in [−31, −1], the activation range all of int8). Prints the number of mismatches and exits
 * non-zero on any. */
#include <stdio.h>

#include "tinyfit_kernels.c"

static int32_t reference_divide(int32_t x, int32_t e) {
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

static int32_t reference_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int main(void) {
    static const int32_t edges[] = {0, 1, -1, 2, -2, 3, -3, 127, -128, 65535, -65536,
                                    INT32_MAX, INT32_MAX - 1, INT32_MIN, INT32_MIN + 1,
                                    1 << 30, -(1 << 30), (1 << 30) + 1, -(1 << 30) - 1};
    long mismatches = 0, checks = 0;
    uint64_t state = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 2000000; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        int32_t x = i < (int)(sizeof edges / sizeof edges[0]) ? edges[i] : (int32_t)state;
        int32_t m = (int32_t)((state >> 33) | (1u << 30)) & INT32_MAX; /* [2^30, 2^31) */
        int32_t e = (int32_t)(state >> 58) & 31;
        for (int32_t k = 0; k < 32; k += (i < 64 ? 1 : 31)) {
            int32_t ek = i < 64 ? k : e;
            mismatches += divide_by_pot(x, ek) != reference_divide(x, ek);
            checks++;
        }
        mismatches += high_mul_by_multiplier(x, m) != reference_high_mul(x, m);
        mismatches += high_mul(x, (int32_t)state) != reference_high_mul(x, (int32_t)state);
        checks += 2;
        /* A bounded sum of any magnitude (so that outputs often land in the int8 range, ties
         * included), split into accumulator and bias; a dividing shift; any zero point. */
        int32_t a = ((int32_t)(state % ((1u << 31) - 1)) - ((1 << 30) - 1)) >> ((state >> 8) % 31);
        if (i < (int)(sizeof edges / sizeof edges[0])) {
            a = x >= (1 << 30) ? (1 << 30) - 1 : (x <= -(1 << 30) ? -(1 << 30) + 1 : x);
        }
        int32_t bias = (int32_t)(state >> 40) % 100000;
        tf_multiplier mult = {m, -1 - (int32_t)((state >> 20) % 31)};
        tf_short_stage stage = {m, -mult.shift};
        int32_t zero_point = (int32_t)((state >> 50) % 256) - 128;
        mismatches += requant_bounded(a - bias, bias, stage, zero_point) !=
                      requant_value(a - bias, bias, mult, zero_point, -128, 127);
        checks++;
    }
    printf("%ld of %ld checks differ\n", mismatches, checks);
    return mismatches != 0;
}
