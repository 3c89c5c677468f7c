/* tinyfit's int8 kernels in C99: a line-by-line counterpart of tinyfit-micro's Rust kernels, so
 * that a model gives the same integers here, in tinyfit and in LiteRT. Sums wrap like the Rust
 * code's (computed in unsigned arithmetic, which C defines); no operation has undefined
 * behaviour for any int8 input. */
#include "tinyfit_kernels.h"

#include <string.h>
#if TINYFIT_DSP
#include <arm_acle.h>

/* Bytes 1 and 3 of x, sign-extended into two halfwords (SXTB16 with ROR #8). */
static inline int32_t sxtb16_odd(int32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#endif

/* Wrapping int32 sum. */
static inline int32_t wrap_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t clamp_i32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* gemmlowp's SaturatingRoundingDoublingHighMul. Its nudge (2^30, or 1 - 2^30 below zero)
 * followed by C's truncating division by 2^31 equals flooring (ab + 2^30) / 2^31 in both
 * cases, an arithmetic shift: no 64-bit division on the microcontroller. */
static inline int32_t high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp's RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero, for
 * 0 ≤ e ≤ 31. Written as adding half (less one below zero, so ties go down there) and
 * shifting: above zero the sum is taken unsigned, where it cannot overflow, and shifted
 * logically; below zero it cannot overflow at all. The same integers as gemmlowp's
 * mask-and-threshold form, in fewer instructions. */
static inline int32_t divide_by_pot(int32_t x, int32_t e) {
    if (e == 0) {
        return x;
    }
    const uint32_t half = 1u << (e - 1);
    if (x >= 0) {
        return (int32_t)(((uint32_t)x + half) >> e);
    }
    return (int32_t)((uint32_t)x + half - 1u) >> e;
}

/* high_mul for a multiplier in [0, 2^31), which TFLite's QuantizeMultiplier guarantees and
 * tinyfit's generator checks: the saturating case (both operands INT32_MIN) cannot occur. */
static inline int32_t high_mul_by_multiplier(int32_t a, int32_t multiplier) {
    int64_t ab = (int64_t)a * (int64_t)multiplier;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

/* TFLite's MultiplyByQuantizedMultiplier; the left shift wraps. */
static inline int32_t rescale(int32_t x, tf_multiplier m) {
    if (m.shift > 0) {
        return high_mul_by_multiplier((int32_t)((uint32_t)x << m.shift), m.multiplier);
    }
    return divide_by_pot(high_mul_by_multiplier(x, m.multiplier), -m.shift);
}

/* The int8 output of an accumulator with its channel's bias and multiplier. */
static inline int8_t requant_value(int32_t acc, int32_t bias, tf_multiplier m,
                                   int32_t zero_point, int32_t act_min, int32_t act_max) {
    int32_t y = wrap_add(rescale(wrap_add(acc, bias), m), zero_point);
    return (int8_t)clamp_i32(y, act_min, act_max);
}

/* (a · b + 2^31) >> 32, the rounded high word of a 64-bit product: one SMMULR on cores with
 * the DSP extension. */
static inline int32_t rounded_high_word(int32_t a, int32_t b) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* x saturated to int8: one SSAT on cores with the DSP extension. */
static inline int32_t saturate_int8(int32_t x) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x));
    return r;
#else
    return clamp_i32(x, -128, 127);
#endif
}

/* requant_value for a channel of a layer whose constants the generator checked
 * (tf_requant.short_stages): |acc + bias| < 2^30 for every input, the shift divides (in
 * [−31, −1]) and the activation range is all of int8. Then the same integers come from fewer
 * instructions:
 * - 2a fits in int32, so high_mul's (a·m + 2^30) >> 31 is (2a·m + 2^31) >> 32, one SMMULR;
 * - |t| ≤ 2^30, so divide_by_pot's sum t + 2^(e−1) − [t < 0] cannot overflow and needs no
 *   sign test: t >> 31 is −1 exactly below zero;
 * - the clamp is a saturation, one SSAT. */
static inline int8_t requant_bounded(int32_t acc, int32_t bias, tf_short_stage s,
                                     int32_t zero_point) {
    const int32_t t = rounded_high_word(2 * (acc + bias), s.multiplier);
    const int32_t half = (int32_t)(1u << (s.right_shift - 1)); /* right_shift ≥ 1 */
    return (int8_t)saturate_int8(((t + half + (t >> 31)) >> s.right_shift) + zero_point);
}

/* The int8 output of `channel` from its accumulator. */
static inline int8_t requant_output(const tf_requant *q, int32_t acc, const int32_t *bias,
                                    int32_t channel) {
    return requant_value(acc, bias[channel], q->multipliers[channel], q->output_zero_point,
                         q->act_min, q->act_max);
}

/* GCC would turn the loops below back into calls of memcpy and memset. */
#if defined(__GNUC__) && !defined(__clang__)
#define TINYFIT_NO_LIBC_PATTERNS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TINYFIT_NO_LIBC_PATTERNS
#endif

/* Copies n bytes between ranges that do not overlap, four at a time (unaligned word accesses,
 * which Armv7-M allows; byte accesses on cores without). By hand because microcontroller C
 * libraries often copy byte by byte (picolibc's size-optimised memcpy does), and the kernels
 * copy short runs often. */
static TINYFIT_NO_LIBC_PATTERNS void copy_bytes(int8_t *dst, const int8_t *src, int32_t n) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v;
        memcpy(&v, src + i, 4);
        memcpy(dst + i, &v, 4);
    }
    for (; i < n; i++) {
        dst[i] = src[i];
    }
}

/* Sets n bytes to `value`, four at a time (see copy_bytes). */
static TINYFIT_NO_LIBC_PATTERNS void fill_bytes(int8_t *dst, int32_t value, int32_t n) {
    const uint32_t v = 0x01010101u * (uint8_t)value;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        memcpy(dst + i, &v, 4);
    }
    for (; i < n; i++) {
        dst[i] = (int8_t)value;
    }
}

#define TINYFIT_ALWAYS_INLINE static inline __attribute__((always_inline))
/* An instantiated kernel loop: out of line, and without GCC's scheduling before register
 * allocation, which hoists loads ahead of their uses until the loop needs more than the
 * core's registers and spills inside it. */
#if defined(__GNUC__) && !defined(__clang__)
#define TINYFIT_KERNEL_LOOP static __attribute__((noinline, optimize("no-schedule-insns")))
#else
#define TINYFIT_KERNEL_LOOP static __attribute__((noinline))
#endif

/* What the output stage of a layer with weights needs, held in locals by the kernels. */
typedef struct {
    const tf_short_stage *short_stages; /* NULL: the general path */
    const tf_multiplier *multipliers;
    int32_t zero_point, act_min, act_max;
} output_stage;

static inline output_stage output_stage_of(const tf_requant *q) {
    const output_stage o = {q->short_stages, q->multipliers, q->output_zero_point, q->act_min,
                            q->act_max};
    return o;
}

/* Channel c's int8 output: requant_bounded for a layer with short stages, requant_value
 * otherwise. The DSP kernels are each written once, as an always-inlined body taking a
 * constant `bounded`, and instantiated twice, so that neither copy tests it per output. */
TINYFIT_ALWAYS_INLINE int8_t requant_channel(const int bounded, int32_t acc, int32_t bias,
                                             int32_t c, const output_stage *o) {
    return bounded ? requant_bounded(acc, bias, o->short_stages[c], o->zero_point)
                   : requant_value(acc, bias, o->multipliers[c], o->zero_point, o->act_min,
                                   o->act_max);
}

/* The taps along one axis that land inside an input of `size` for output coordinate `out`. */
static void valid_taps(int32_t out, int32_t k, int32_t stride, int32_t pad, int32_t dilation,
                       int32_t size, int32_t *first, int32_t *end) {
    int32_t origin = out * stride;
    int32_t before = pad > origin ? pad - origin : 0;
    int32_t inside = pad + size > origin ? pad + size - origin : 0;
    int32_t f, e;
    if (dilation == 1) {
        f = before;
        e = inside;
    } else {
        f = (before + dilation - 1) / dilation;
        e = (inside + dilation - 1) / dilation;
    }
    if (e > k) {
        e = k;
    }
    *first = f < e ? f : e;
    *end = e;
}

/* The plain convolution: any groups, any core. */
static void conv2d_plain(const int8_t *input, tf_shape in, const int8_t *filter,
                         const int32_t *bias, const tf_window *w, int32_t groups,
                         const tf_requant *q, int8_t *output, tf_shape out) {
    const int32_t in_per_group = in.c / groups;
    const int32_t out_per_group = out.c / groups;
    const int32_t filter_stride = w->kh * w->kw * in_per_group;
    const int32_t offset = -q->input_zero_point;
    for (int32_t oy = 0; oy < out.h; oy++) {
        int32_t ky0, ky1;
        valid_taps(oy, w->kh, w->stride_h, w->pad_top, w->dilation_h, in.h, &ky0, &ky1);
        for (int32_t ox = 0; ox < out.w; ox++) {
            int32_t kx0, kx1;
            valid_taps(ox, w->kw, w->stride_w, w->pad_left, w->dilation_w, in.w, &kx0, &kx1);
            int8_t *y = output + (oy * out.w + ox) * out.c;
            for (int32_t oc = 0; oc < out.c; oc++) {
                const int32_t first_in = (oc / out_per_group) * in_per_group;
                const int8_t *f = filter + oc * filter_stride;
                uint32_t acc = 0;
                for (int32_t ky = ky0; ky < ky1; ky++) {
                    int32_t iy = oy * w->stride_h + ky * w->dilation_h - w->pad_top;
                    for (int32_t kx = kx0; kx < kx1; kx++) {
                        int32_t ix = ox * w->stride_w + kx * w->dilation_w - w->pad_left;
                        const int8_t *x = input + (iy * in.w + ix) * in.c + first_in;
                        const int8_t *fw = f + (ky * w->kw + kx) * in_per_group;
                        for (int32_t i = 0; i < in_per_group; i++) {
                            acc += (uint32_t)((x[i] + offset) * fw[i]);
                        }
                    }
                }
                y[oc] = requant_output(q, (int32_t)acc, bias, oc);
            }
        }
    }
}

/* The plain depthwise convolution: any channel multiplier, any core. */
static void depthwise_plain(const int8_t *input, tf_shape in, const int8_t *filter,
                            const int32_t *bias, const tf_window *w, int32_t multiplier,
                            const tf_requant *q, int8_t *output, tf_shape out) {
    const int32_t offset = -q->input_zero_point;
    for (int32_t oy = 0; oy < out.h; oy++) {
        int32_t ky0, ky1;
        valid_taps(oy, w->kh, w->stride_h, w->pad_top, w->dilation_h, in.h, &ky0, &ky1);
        for (int32_t ox = 0; ox < out.w; ox++) {
            int32_t kx0, kx1;
            valid_taps(ox, w->kw, w->stride_w, w->pad_left, w->dilation_w, in.w, &kx0, &kx1);
            int8_t *y = output + (oy * out.w + ox) * out.c;
            for (int32_t c = 0; c < out.c; c++) {
                uint32_t acc = 0;
                for (int32_t ky = ky0; ky < ky1; ky++) {
                    int32_t iy = oy * w->stride_h + ky * w->dilation_h - w->pad_top;
                    for (int32_t kx = kx0; kx < kx1; kx++) {
                        int32_t ix = ox * w->stride_w + kx * w->dilation_w - w->pad_left;
                        int32_t x = input[(iy * in.w + ix) * in.c + c / multiplier];
                        acc += (uint32_t)((x + offset) * filter[(ky * w->kw + kx) * out.c + c]);
                    }
                }
                y[c] = requant_output(q, (int32_t)acc, bias, c);
            }
        }
    }
}

/* The plain fully connected layer. */
static void fully_connected_plain(const int8_t *input, int32_t in_len, const int8_t *filter,
                                  const int32_t *bias, const tf_requant *q, int8_t *output,
                                  int32_t out_len) {
    const int32_t offset = -q->input_zero_point;
    for (int32_t o = 0; o < out_len; o++) {
        const int8_t *f = filter + o * in_len;
        uint32_t acc = 0;
        for (int32_t i = 0; i < in_len; i++) {
            acc += (uint32_t)((input[i] + offset) * f[i]);
        }
        output[o] = requant_output(q, (int32_t)acc, bias, o);
    }
}

/* Gathers output pixel (oy, ox)'s receptive field (OHWI order) into `dst`; taps outside the
 * input read the input zero point, which the offset turns into zero. The in-bounds taps of an
 * undilated kernel row are one run of the input row: one copy. */
static void gather(const int8_t *input, tf_shape in, const tf_window *w, int32_t zero_point,
                   int32_t oy, int32_t ox, int8_t *dst) {
    int32_t kx0, kx1;
    valid_taps(ox, w->kw, w->stride_w, w->pad_left, w->dilation_w, in.w, &kx0, &kx1);
    const int32_t row_bytes = w->kw * in.c;
    for (int32_t ky = 0; ky < w->kh; ky++, dst += row_bytes) {
        int32_t iy = oy * w->stride_h + ky * w->dilation_h - w->pad_top;
        if (iy < 0 || iy >= in.h || kx0 == kx1) {
            fill_bytes(dst, zero_point, row_bytes);
            continue;
        }
        if (kx0 > 0) {
            fill_bytes(dst, zero_point, kx0 * in.c);
        }
        if (kx1 < w->kw) {
            fill_bytes(dst + kx1 * in.c, zero_point, (w->kw - kx1) * in.c);
        }
        const int8_t *src = input + (iy * in.w + ox * w->stride_w - w->pad_left) * in.c;
        if (w->dilation_w == 1) {
            copy_bytes(dst + kx0 * in.c, src + kx0 * in.c, (kx1 - kx0) * in.c);
        } else {
            for (int32_t kx = kx0; kx < kx1; kx++) {
                copy_bytes(dst + kx * in.c, src + kx * w->dilation_w * in.c, in.c);
            }
        }
    }
}


/* The sum over one filter row of the products of its non-zero weights with `x`: bit 31 − k
 * of the row's mask word j says whether weight 32j + k is stored, `*values` walks the stored
 * weights and is left at the next row's. Counting leading zeros finds the next stored weight
 * in one instruction, so the loop runs once per stored weight (about seven instructions), not
 * once per weight. */
static int32_t sparse_row_dot(const int8_t *x, const uint32_t *mask, int32_t words,
                              const int8_t **values) {
    const int8_t *v = *values;
    uint32_t acc = 0;
    for (int32_t j = 0; j < words; j++, x += 32) {
        uint32_t bits = mask[j];
        while (bits != 0) {
            const int32_t k = __builtin_clz(bits);
            acc += (uint32_t)(x[k] * *v++);
            bits &= ~(0x80000000u >> k);
        }
    }
    *values = v;
    return (int32_t)acc;
}

/* Packed rows of 2 or 4 bits go in groups of G = 32 / bits weights to a word: byte j holds, in
 * field m (bits m · bits..), weight 4m + j of the group. Shifting a word left so that field m
 * tops every byte, and masking the rest, leaves per byte the weights that meet input word m of
 * the group, times 2^(8 − bits); SXTB16 splits them into the pairs that meet the word's even
 * and odd values, and SMLAD takes two products at a time. Elsewhere, and for a last partial
 * group, one weight at a time, sign-extended from its field. */
TINYFIT_ALWAYS_INLINE int32_t grouped_row_dot(const int8_t *x, int32_t depth,
                                              const uint8_t *row, const int32_t bits) {
    const int32_t group = 32 / bits;
    int32_t k = 0;
    uint32_t acc = 0;
#if TINYFIT_DSP
    const uint32_t tops = bits == 4 ? 0xf0f0f0f0u : 0xc0c0c0c0u;
    int32_t scaled = 0;
    for (; k + group <= depth; k += group, row += 4) {
        uint32_t w;
        memcpy(&w, row, 4);
        for (int32_t m = 0; m < 8 / bits; m++) {
            uint32_t xm;
            memcpy(&xm, x + k + 4 * m, 4);
            const uint32_t f = (w << (8 - bits * (m + 1))) & tops;
            scaled = __smlad(__sxtb16((int32_t)f), __sxtb16((int32_t)xm), scaled);
            scaled = __smlad(sxtb16_odd((int32_t)f), sxtb16_odd((int32_t)xm), scaled);
        }
    }
    acc = (uint32_t)(scaled >> (8 - bits));
#endif
    for (; k < depth; k++) {
        const int32_t r = k % group;
        const uint32_t byte = row[r & 3];
        acc += (uint32_t)(x[k] * ((int32_t)(byte << (32 - bits * ((r >> 2) + 1))) >> (32 - bits)));
        if (r == group - 1) {
            row += 4;
        }
    }
    return (int32_t)acc;
}

/* Every row of a 2- or 4-bit filter on `x`, instantiated per width. */
#define TINYFIT_GROUPED_ROWS(bits)                                                                \
    static void grouped_rows_##bits(const int8_t *x, int32_t depth, const uint8_t *packed,        \
                                    const int32_t *folded_bias, const tf_requant *q, int8_t *y,   \
                                    int32_t rows) {                                               \
        const int32_t row_bytes = 4 * ((depth + 32 / (bits) - 1) / (32 / (bits)));               \
        for (int32_t r = 0; r < rows; r++) {                                                      \
            const int32_t acc = grouped_row_dot(x, depth, packed + r * row_bytes, (bits));        \
            y[r] = requant_output(q, acc, folded_bias, r);                                        \
        }                                                                                         \
    }
TINYFIT_GROUPED_ROWS(2)
TINYFIT_GROUPED_ROWS(4)

/* Σ (x[k] + 128) over the weights of a binary row whose bit is set (the +1 weights). With
 * weights w = 2b − 1, Σ x·w = 2 · this − 256 · (set bits) − Σ x; the generator folds the
 * constant −256 · (set bits) of each row into its bias. On cores with the DSP extension four
 * values at a time: the inputs offset to unsigned bytes (XOR 0x80), the weights' nibble turned
 * into a byte mask by a table, and USADA8 summing the masked bytes. */
static int32_t binary_set_sum(const int8_t *x, int32_t depth, const uint8_t *row) {
    uint32_t sum = 0;
    int32_t k = 0;
#if TINYFIT_DSP
    static const uint32_t nibble_bytes[16] = {
        0x00000000u, 0x000000ffu, 0x0000ff00u, 0x0000ffffu, 0x00ff0000u, 0x00ff00ffu,
        0x00ffff00u, 0x00ffffffu, 0xff000000u, 0xff0000ffu, 0xff00ff00u, 0xff00ffffu,
        0xffff0000u, 0xffff00ffu, 0xffffff00u, 0xffffffffu};
    for (; k + 8 <= depth; k += 8) {
        const uint32_t bits = *row++;
        uint32_t lo, hi;
        memcpy(&lo, x + k, 4);
        memcpy(&hi, x + k + 4, 4);
        sum = __usada8((lo ^ 0x80808080u) & nibble_bytes[bits & 15u], 0, sum);
        sum = __usada8((hi ^ 0x80808080u) & nibble_bytes[bits >> 4], 0, sum);
    }
#endif
    for (int32_t j = 0; k < depth; k++, j++) {
        if (j == 8) {
            row++;
            j = 0;
        }
        if ((*row >> j) & 1u) {
            sum += (uint32_t)(x[k] + 128);
        }
    }
    return (int32_t)sum;
}

/* Every row of a binary filter on `x` (see binary_set_sum for the arithmetic). */
static void binary_rows(const int8_t *x, int32_t depth, const uint8_t *packed,
                        const int32_t *folded_bias, const tf_requant *q, int8_t *y,
                        int32_t rows) {
    const int32_t row_bytes = (depth + 7) / 8;
    uint32_t sum_x = 0;
    for (int32_t k = 0; k < depth; k++) {
        sum_x += (uint32_t)x[k];
    }
    for (int32_t r = 0; r < rows; r++) {
        const uint32_t set = (uint32_t)binary_set_sum(x, depth, packed + r * row_bytes);
        y[r] = requant_output(q, (int32_t)(2u * set - sum_x), folded_bias, r);
    }
}

/* Every output channel of a compact filter on one input vector `x` of `depth` values. */
static void compact_rows(const int8_t *x, int32_t depth, const tf_compact_filter *f,
                         const int32_t *folded_bias, const tf_requant *q, int8_t *y,
                         int32_t rows) {
    if (f->bits == 0) {
        const int32_t words = (depth + 31) / 32;
        const int8_t *values = (const int8_t *)f->values;
        for (int32_t r = 0; r < rows; r++) {
            const int32_t acc = sparse_row_dot(x, f->mask + r * words, words, &values);
            y[r] = requant_output(q, acc, folded_bias, r);
        }
    } else if (f->bits == 1) {
        binary_rows(x, depth, (const uint8_t *)f->values, folded_bias, q, y, rows);
    } else if (f->bits == 2) {
        grouped_rows_2(x, depth, (const uint8_t *)f->values, folded_bias, q, y, rows);
    } else {
        grouped_rows_4(x, depth, (const uint8_t *)f->values, folded_bias, q, y, rows);
    }
}

void tf_conv2d_compact(const int8_t *input, tf_shape in, const tf_compact_filter *f,
                       const int32_t *folded_bias, const tf_window *w, const tf_requant *q,
                       int8_t *output, tf_shape out, int8_t *field) {
    const int32_t depth = w->kh * w->kw * in.c;
    for (int32_t oy = 0; oy < out.h; oy++) {
        for (int32_t ox = 0; ox < out.w; ox++) {
            gather(input, in, w, q->input_zero_point, oy, ox, field);
            compact_rows(field, depth, f, folded_bias, q, output + (oy * out.w + ox) * out.c,
                         out.c);
        }
    }
}

void tf_fully_connected_compact(const int8_t *input, int32_t in_len,
                                const tf_compact_filter *f, const int32_t *folded_bias,
                                const tf_requant *q, int8_t *output, int32_t out_len) {
    compact_rows(input, in_len, f, folded_bias, q, output, out_len);
}

#if TINYFIT_DSP

/* Four int8 values as one word (unaligned loads are fine on Armv7-M). */
static inline int32_t load_word(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* `offset` in both halfwords. */
static inline int32_t pair(int32_t offset) {
    return (int32_t)(((uint32_t)offset & 0xffffu) | ((uint32_t)offset << 16));
}

/* Four int8 values (one word) + offset as int16, in the order (x0, x2, x1, x3) in which SXTB16
 * unpacks a word of weights, into d[0..4). */
static inline void widen_group(int32_t x, int32_t offsets, int16_t *d) {
    const int32_t even = __sadd16(__sxtb16(x), offsets);
    const int32_t odd = __sadd16(sxtb16_odd(x), offsets);
    memcpy(d, &even, 4);
    memcpy(d + 2, &odd, 4);
}

/* dst[i] = src[i] + offset as int16, each group of four in widen_group's order, so one SMLAD
 * pairs each weight with its input. A tail of fewer than four stays in natural order. */
static void widen_reordered(const int8_t *src, int32_t n, int32_t offset, int16_t *dst) {
    const int32_t offsets = pair(offset);
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        widen_group(load_word(src + i), offsets, dst + i);
    }
    for (; i < n; i++) {
        dst[i] = (int16_t)(src[i] + offset);
    }
}

/* What widening a layer's receptive fields needs: −z_in in both halfwords, z_in in every byte. */
typedef struct {
    int32_t offsets;
    uint32_t zero_points;
} widen_constants;

/* The receptive fields of `n` (1 or 2, a constant) output pixels, `rows` kernel rows of
 * `row_bytes` int8 values each, `stride` bytes apart from src[c], widened (+ offset) into
 * columns col..col + n − 1 of an interleaved pair of columns, in the order of the DSP filter
 * rows: each kernel row's whole words in turn, then the rows' leftover values together,
 * padded with the input zero point to a word. A group of four values takes eight halfwords, column 0's then column 1's, so that one
 * pointer walks both columns. */
TINYFIT_ALWAYS_INLINE void widen_fields(const int8_t *const src[], const int32_t n,
                                        int32_t stride, int32_t rows, int32_t row_bytes,
                                        const widen_constants *k, int16_t *cols, int32_t col) {
    const int32_t offsets = k->offsets;
    const int32_t words = row_bytes >> 2, leftover = row_bytes & 3;
    int16_t *d = cols + col * 4;
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *s0 = src[0] + r * stride, *s1 = n == 2 ? src[1] + r * stride : s0;
        for (int32_t g = words; g > 0; g--, s0 += 4, s1 += 4, d += 8) {
            widen_group(load_word(s0), offsets, d);
            if (n == 2) {
                widen_group(load_word(s1), offsets, d + 4);
            }
        }
    }
    if (leftover == 0) {
        return;
    }
    /* The leftover values, four to a word, gathered in registers. */
    uint32_t w0 = 0, w1 = 0;
    int32_t shift = 0;
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *s0 = src[0] + r * stride + 4 * words;
        const int8_t *s1 = n == 2 ? src[1] + r * stride + 4 * words : s0;
        for (int32_t k = 0; k < leftover; k++) {
            w0 |= (uint32_t)(uint8_t)s0[k] << shift;
            if (n == 2) {
                w1 |= (uint32_t)(uint8_t)s1[k] << shift;
            }
            shift += 8;
            if (shift == 32) {
                widen_group((int32_t)w0, offsets, d);
                if (n == 2) {
                    widen_group((int32_t)w1, offsets, d + 4);
                }
                d += 8;
                w0 = w1 = 0;
                shift = 0;
            }
        }
    }
    if (shift > 0) {
        const uint32_t pad = k->zero_points << shift;
        widen_group((int32_t)(w0 | pad), offsets, d);
        if (n == 2) {
            widen_group((int32_t)(w1 | pad), offsets, d + 4);
        }
    }
}

/* One pixel's receptive field into column `col` (see widen_fields). */
static void widen_field(const int8_t *src, int32_t stride, int32_t rows, int32_t row_bytes,
                        const widen_constants *k, int16_t *cols, int32_t col) {
    const int8_t *const one[1] = {src};
    widen_fields(one, 1, stride, rows, row_bytes, k, cols, col);
}

/* Two pixels' receptive fields into both columns (see widen_fields). */
static void widen_field_pair(const int8_t *src0, const int8_t *src1, int32_t stride,
                             int32_t rows, int32_t row_bytes, const widen_constants *k,
                             int16_t *cols) {
    const int8_t *const two[2] = {src0, src1};
    widen_fields(two, 2, stride, rows, row_bytes, k, cols, 0);
}

/* Runs group() once for each whole group of four of `depth` values: two a loop iteration, to
 * halve the loop's overhead, then the odd one. */
#define TINYFIT_EACH_GROUP(depth, group)                                                          \
    do {                                                                                          \
        for (int32_t pairs_left = (depth) >> 3; pairs_left > 0; pairs_left--) {                   \
            group();                                                                              \
            group();                                                                              \
        }                                                                                         \
        if ((depth) & 4) {                                                                        \
            group();                                                                              \
        }                                                                                         \
    } while (0)

/* Two consecutive words of the 4-byte aligned scratch at *p, in one LDRD that also advances
 * *p past them (GCC neither pairs these loads by itself nor folds the step). */
static inline void load_word_pair(const int16_t **p, int32_t *first, int32_t *second) {
    __asm__("ldrd %0, %1, [%2], #8"
            : "=r"(*first), "=r"(*second), "+r"(*p)
            : "m"(*(const int16_t(*)[4]) * p));
}

/* b_r + Σ w·x for two filter rows (w0, w1) and the two interleaved columns of `x` (4-byte
 * aligned), `depth` a multiple of four; the sums start from the rows' biases (wrapping, so the
 * same integers as adding them after): each word of weights and each pair of input words feed four
 * SMLADs, in an order that keeps at most six temporaries alive; two groups of four per
 * iteration, to halve the loop's overhead. acc[r][c] is row r, column c. */
TINYFIT_ALWAYS_INLINE void dot_2x2(const int8_t *w0, const int8_t *w1, const int16_t *x,
                                   int32_t depth, int32_t b0, int32_t b1, int32_t acc[2][2]) {
    int32_t a00 = b0, a01 = b0, a10 = b1, a11 = b1;
    /* Four values of both rows and both columns; advances the pointers. */
#define TINYFIT_DOT_GROUP()                                                                       \
    do {                                                                                          \
        int32_t wa = load_word(w0), x_even, x_odd;                                                \
        int32_t wa_even = __sxtb16(wa), wa_odd = sxtb16_odd(wa);                                  \
        load_word_pair(&x, &x_even, &x_odd);                                                      \
        a00 = __smlad(wa_even, x_even, a00);                                                      \
        a00 = __smlad(wa_odd, x_odd, a00);                                                        \
        int32_t wb = load_word(w1);                                                               \
        int32_t wb_even = __sxtb16(wb), wb_odd = sxtb16_odd(wb);                                  \
        a10 = __smlad(wb_even, x_even, a10);                                                      \
        a10 = __smlad(wb_odd, x_odd, a10);                                                        \
        load_word_pair(&x, &x_even, &x_odd);                                                      \
        a01 = __smlad(wa_even, x_even, a01);                                                      \
        a01 = __smlad(wa_odd, x_odd, a01);                                                        \
        a11 = __smlad(wb_even, x_even, a11);                                                      \
        a11 = __smlad(wb_odd, x_odd, a11);                                                        \
        w0 += 4;                                                                                  \
        w1 += 4;                                                                                  \
    } while (0)
    TINYFIT_EACH_GROUP(depth, TINYFIT_DOT_GROUP);
#undef TINYFIT_DOT_GROUP
    acc[0][0] = a00;
    acc[0][1] = a01;
    acc[1][0] = a10;
    acc[1][1] = a11;
}

/* Channel c of both columns of a tile from sums that include the bias, both values worked out
 * before either is stored (an int8 store could alias the constants, which would be loaded
 * again); the second column
 * stored first, so that with `y1 == y0` (a lone last pixel, whose second column is stale) the
 * first column's value is what stays. */
#define TINYFIT_STORE_CHANNEL(c, acc0, acc1)                                                      \
    do {                                                                                          \
        const int8_t v1 = requant_channel(bounded, acc1, 0, c, &stage);                           \
        const int8_t v0 = requant_channel(bounded, acc0, 0, c, &stage);                           \
        y1[c] = v1;                                                                               \
        y0[c] = v0;                                                                               \
    } while (0)

/* Every output channel of one or two output pixels (`n`) whose receptive fields are the
 * interleaved columns `cols`: two filter rows at a time, requantised with the constants held
 * in locals. Instantiated out of line (below), with few live values, so nothing spills. */
TINYFIT_ALWAYS_INLINE void conv_columns(const int8_t *filter, int32_t depth, const int16_t *cols,
                                        int32_t n, const int32_t *bias, const tf_requant *q,
                                        int8_t *y0, int32_t channels, const int bounded) {
    const output_stage stage = output_stage_of(q);
    int8_t *y1 = n == 2 ? y0 + channels : y0;
    int32_t acc[2][2];
    int32_t oc = 0;
    for (; oc + 2 <= channels; oc += 2) {
        const int8_t *f0 = filter + oc * depth;
        dot_2x2(f0, f0 + depth, cols, depth, bias[oc], bias[oc + 1], acc);
        TINYFIT_STORE_CHANNEL(oc, acc[0][0], acc[0][1]);
        TINYFIT_STORE_CHANNEL(oc + 1, acc[1][0], acc[1][1]);
    }
    if (oc < channels) {
        const int8_t *f0 = filter + oc * depth;
        dot_2x2(f0, f0, cols, depth, bias[oc], bias[oc], acc);
        TINYFIT_STORE_CHANNEL(oc, acc[0][0], acc[0][1]);
    }
}

/* Convolution without groups: two output pixels at a time are widened to int16 (im2col) and
 * multiplied with two filter rows at a time. A pixel whose taps are all in bounds is widened
 * straight from the input (undilated rows); one at an edge is gathered first, padded with the
 * input zero point. The filter rows are in widen_field's order, padded with zeros to a word
 * (the generator lays them out so). */
TINYFIT_ALWAYS_INLINE void conv2d_dsp(const int8_t *input, tf_shape in, const int8_t *filter,
                                      const int32_t *bias, const tf_window *w,
                                      const tf_requant *requant, int8_t *output, tf_shape out,
                                      int16_t *scratch, const int bounded) {
    /* A local copy: int8 stores could alias the caller's struct, forcing reloads. */
    const tf_requant local = *requant, *q = &local;
    const int32_t row_bytes = w->kw * in.c;
    const int32_t depth = (w->kh * row_bytes + 3) & ~3;
    /* Scratch: the gathered field, then the two columns. */
    int8_t *gathered = (int8_t *)scratch;
    int16_t *cols = scratch + depth / 2;
    const int32_t pixels = out.h * out.w;
    const int32_t input_row = in.w * in.c, tap_row = w->dilation_h * input_row;
    /* The extent of the taps beyond the first, along each axis. */
    const int32_t span_h = (w->kh - 1) * w->dilation_h, span_w = (w->kw - 1) * w->dilation_w;
    /* Kernel rows are runs of the input only without horizontal dilation. */
    const int undilated = w->dilation_w == 1;
    const widen_constants widen = {pair(-q->input_zero_point),
                                   0x01010101u * (uint8_t)q->input_zero_point};
    /* The next output pixel, walked in order. */
    int32_t oy = 0, ox = 0;
    for (int32_t p = 0; p < pixels; p += 2) {
        /* A lone last pixel leaves column 1 stale: computed, overwritten (conv_columns). */
        const int32_t n = pixels - p >= 2 ? 2 : 1;
        /* Where each pixel's field starts in the input, if all its taps are in bounds. */
        const int8_t *inside[2] = {NULL, NULL};
        for (int32_t j = 0; j < n; j++) {
            const int32_t iy = oy * w->stride_h - w->pad_top, ix = ox * w->stride_w - w->pad_left;
            if (undilated && iy >= 0 && iy + span_h < in.h && ix >= 0 && ix + span_w < in.w) {
                inside[j] = input + iy * input_row + ix * in.c;
            }
            if (++ox == out.w) {
                ox = 0;
                oy++;
            }
        }
        if (n == 2 && inside[0] != NULL && inside[1] != NULL) {
            widen_field_pair(inside[0], inside[1], tap_row, w->kh, row_bytes, &widen, cols);
        } else {
            for (int32_t j = 0; j < n; j++) {
                if (inside[j] != NULL) {
                    widen_field(inside[j], tap_row, w->kh, row_bytes, &widen, cols, j);
                } else {
                    gather(input, in, w, q->input_zero_point, (p + j) / out.w, (p + j) % out.w,
                           gathered);
                    widen_field(gathered, row_bytes, w->kh, row_bytes, &widen, cols, j);
                }
            }
        }
        conv_columns(filter, depth, cols, n, bias, q, output + p * out.c, out.c, bounded);
    }
}

typedef void (*conv2d_fn)(const int8_t *, tf_shape, const int8_t *, const int32_t *,
                          const tf_window *, const tf_requant *, int8_t *, tf_shape, int16_t *);

/* conv2d_dsp instantiated for one requantisation. */
#define TINYFIT_CONV2D(name, bounded)                                                             \
    TINYFIT_KERNEL_LOOP void name(const int8_t *input, tf_shape in, const int8_t *filter,         \
                                  const int32_t *bias, const tf_window *w, const tf_requant *q,   \
                                  int8_t *output, tf_shape out, int16_t *scratch) {               \
        conv2d_dsp(input, in, filter, bias, w, q, output, out, scratch, bounded);                 \
    }
TINYFIT_CONV2D(conv2d_bounded, 1)
TINYFIT_CONV2D(conv2d_general, 0)
#undef TINYFIT_CONV2D

/* What every pixel of a depthwise convolution shares. The DSP kernel's filter is in blocks of
 * four channels, [channels / 4][kh][kw][4] (the generator lays it out so), so that a block's
 * taps are contiguous. */
typedef struct {
    int32_t x_col, x_row; /* steps between taps in the input */
    int32_t f_row;        /* ... and between rows of taps in a filter block */
    int32_t f_block;      /* bytes of a filter block: kh · kw · 4 */
    int32_t offsets;      /* -input zero point in both halfwords */
    int32_t channels;
    int32_t unrolled; /* a 3×3 kernel with a folded bias: full pixels take the unrolled path */
    const int32_t *bias;
    const int32_t *folded_bias; /* bias − z_in · Σ_taps w, per channel (NULL: none) */
    tf_requant q;
} depthwise_ctx;

/* One tap of four channels: a word of inputs and one of weights, unpacked by SXTB16 (the
 * inputs offset by `offsets` first unless RAW), and four 16×16 multiply-accumulates
 * (SMLABB/SMLATT) into the per-channel sums a0..a3. */
#define TINYFIT_DEPTHWISE_TAP(xw, fw, offset_inputs)                                             \
    do {                                                                                         \
        int32_t x_even = __sxtb16(xw), x_odd = sxtb16_odd(xw);                                   \
        if (offset_inputs) {                                                                     \
            x_even = __sadd16(x_even, offsets);                                                  \
            x_odd = __sadd16(x_odd, offsets);                                                    \
        }                                                                                        \
        const int32_t f_even = __sxtb16(fw), f_odd = sxtb16_odd(fw);                             \
        a0 = __smlabb(x_even, f_even, a0);                                                       \
        a2 = __smlatt(x_even, f_even, a2);                                                       \
        a1 = __smlabb(x_odd, f_odd, a1);                                                         \
        a3 = __smlatt(x_odd, f_odd, a3);                                                         \
    } while (0)

/* One output pixel of a depthwise convolution: `rows` × `cols` in-bounds taps starting at `x`
 * (input) and `f` (the first in-bounds tap of filter block 0). A pixel with every tap of a 3×3
 * kernel in bounds and a folded bias takes an unrolled path without the input offset (its
 * share, −z_in · Σ w, is in the folded bias), walking the filter blocks in order. Instantiated
 * out of line (below), so its loops have the registers to themselves. */
TINYFIT_ALWAYS_INLINE void depthwise_pixel(const int8_t *x, const int8_t *f, int32_t rows,
                                           int32_t cols, const depthwise_ctx *ctx, int8_t *y,
                                           const int bounded) {
    const int32_t x_col = ctx->x_col, offsets = ctx->offsets;
    const int full = ctx->unrolled && rows == 3 && cols == 3;
    const int32_t *bias = full ? ctx->folded_bias : ctx->bias;
    /* Locals: the int8 stores to y could alias ctx, which would force reloads. */
    const output_stage stage = output_stage_of(&ctx->q);
    const int32_t x_row = ctx->x_row, f_row = ctx->f_row, f_block = ctx->f_block;
    const int32_t channels = ctx->channels;
    for (int32_t c = 0; c < channels; c += 4) {
        /* The sums start from the biases (wrapping: the same integers as adding them after). */
        int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
        const int8_t *xr = x + c;
        if (full) {
            /* The block's nine taps are the next 36 filter bytes. */
#define TINYFIT_DEPTHWISE_ROW(first_tap)                                                         \
    do {                                                                                         \
        TINYFIT_DEPTHWISE_TAP(load_word(xr), load_word(f + 4 * (first_tap)), 0);                 \
        TINYFIT_DEPTHWISE_TAP(load_word(xr + x_col), load_word(f + 4 * (first_tap) + 4), 0);     \
        TINYFIT_DEPTHWISE_TAP(load_word(xr + 2 * x_col), load_word(f + 4 * (first_tap) + 8), 0); \
    } while (0)
            TINYFIT_DEPTHWISE_ROW(0);
            xr += x_row;
            TINYFIT_DEPTHWISE_ROW(3);
            xr += x_row;
            TINYFIT_DEPTHWISE_ROW(6);
            f += 36;
#undef TINYFIT_DEPTHWISE_ROW
        } else {
            const int8_t *fr = f + (c / 4) * f_block;
            for (int32_t r = rows; r > 0; r--, xr += x_row, fr += f_row) {
                const int8_t *xp = xr, *fp = fr;
                for (int32_t n = cols; n > 0; n--, xp += x_col, fp += 4) {
                    TINYFIT_DEPTHWISE_TAP(load_word(xp), load_word(fp), 1);
                }
            }
        }
        y[c] = requant_channel(bounded, a0, 0, c, &stage);
        y[c + 1] = requant_channel(bounded, a1, 0, c + 1, &stage);
        y[c + 2] = requant_channel(bounded, a2, 0, c + 2, &stage);
        y[c + 3] = requant_channel(bounded, a3, 0, c + 3, &stage);
    }
}

#undef TINYFIT_DEPTHWISE_TAP

typedef void (*depthwise_pixel_fn)(const int8_t *, const int8_t *, int32_t, int32_t,
                                   const depthwise_ctx *, int8_t *);

TINYFIT_KERNEL_LOOP void depthwise_pixel_bounded(const int8_t *x, const int8_t *f, int32_t rows,
                                              int32_t cols, const depthwise_ctx *ctx, int8_t *y) {
    depthwise_pixel(x, f, rows, cols, ctx, y, 1);
}

TINYFIT_KERNEL_LOOP void depthwise_pixel_general(const int8_t *x, const int8_t *f, int32_t rows,
                                              int32_t cols, const depthwise_ctx *ctx, int8_t *y) {
    depthwise_pixel(x, f, rows, cols, ctx, y, 0);
}

/* Depthwise convolution with multiplier 1 and channels in fours; the filter in blocks of four
 * channels ([channels / 4][kh][kw][4]). */
static void depthwise_dsp(const int8_t *input, tf_shape in, const int8_t *filter,
                          const int32_t *bias, const tf_window *w, const tf_requant *q,
                          int8_t *output, tf_shape out, const int32_t *folded) {
    const depthwise_ctx ctx = {
        w->dilation_w * in.c, w->dilation_h * in.w * in.c, 4 * w->kw, 4 * w->kh * w->kw,
        pair(-q->input_zero_point), out.c, folded != NULL && w->kh == 3 && w->kw == 3, bias,
        folded, *q,
    };
    const depthwise_pixel_fn pixel =
        q->short_stages ? depthwise_pixel_bounded : depthwise_pixel_general;
    for (int32_t oy = 0; oy < out.h; oy++) {
        int32_t ky0, ky1;
        valid_taps(oy, w->kh, w->stride_h, w->pad_top, w->dilation_h, in.h, &ky0, &ky1);
        const int32_t iy0 = oy * w->stride_h + ky0 * w->dilation_h - w->pad_top;
        for (int32_t ox = 0; ox < out.w; ox++) {
            int32_t kx0, kx1;
            valid_taps(ox, w->kw, w->stride_w, w->pad_left, w->dilation_w, in.w, &kx0, &kx1);
            const int32_t ix0 = ox * w->stride_w + kx0 * w->dilation_w - w->pad_left;
            pixel(input + (iy0 * in.w + ix0) * in.c, filter + (ky0 * w->kw + kx0) * 4,
                  ky1 - ky0, kx1 - kx0, &ctx, output + (oy * out.w + ox) * out.c);
        }
    }
}

/* Σ w[k]·x[k] for two filter rows and one column: the input widened once (`widened`: int16
 * with the offset, 4-byte aligned, each pair of words one LDRD), or else unpacked here from
 * int8 and offset with `offsets` (cheaper where few rows share the input). Each word of weights
 * feeds two SMLADs; two groups of four per iteration, to halve the loop's overhead. */
TINYFIT_ALWAYS_INLINE void dot_two_rows(const int8_t *w0, const int8_t *w1, const void *input,
                                        int32_t offsets, int32_t depth, int32_t acc[2],
                                        const int widened) {
    const int16_t *x = input;
    const int8_t *x8 = input;
    int32_t a0 = 0, a1 = 0;
    /* Four values of both rows; advances the pointers. */
#define TINYFIT_DOT_GROUP()                                                                       \
    do {                                                                                          \
        const int32_t wa = load_word(w0), wb = load_word(w1);                                     \
        int32_t x_even, x_odd;                                                                    \
        if (widened) {                                                                            \
            load_word_pair(&x, &x_even, &x_odd);                                                  \
        } else {                                                                                  \
            const int32_t xw = load_word(x8);                                                     \
            x_even = __sadd16(__sxtb16(xw), offsets);                                             \
            x_odd = __sadd16(sxtb16_odd(xw), offsets);                                            \
            x8 += 4;                                                                              \
        }                                                                                         \
        a0 = __smlad(__sxtb16(wa), x_even, a0);                                                   \
        a0 = __smlad(sxtb16_odd(wa), x_odd, a0);                                                  \
        a1 = __smlad(__sxtb16(wb), x_even, a1);                                                   \
        a1 = __smlad(sxtb16_odd(wb), x_odd, a1);                                                  \
        w0 += 4;                                                                                  \
        w1 += 4;                                                                                  \
    } while (0)
    TINYFIT_EACH_GROUP(depth, TINYFIT_DOT_GROUP);
#undef TINYFIT_DOT_GROUP
    for (int32_t k = 0; k < (depth & 3); k++) {
        /* The low halfword of `offsets` is the offset. */
        const int32_t xk = widened ? x[k] : x8[k] + (int16_t)offsets;
        a0 = wrap_add(a0, w0[k] * xk);
        a1 = wrap_add(a1, w1[k] * xk);
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* Every row of a fully connected layer, two at a time (see dot_two_rows). */
TINYFIT_ALWAYS_INLINE void fully_connected_rows(const void *input, int32_t in_len,
                                                const int8_t *filter, const int32_t *bias,
                                                const tf_requant *q, int8_t *output,
                                                int32_t out_len, const int bounded,
                                                const int widened) {
    const output_stage stage = output_stage_of(q);
    const int32_t offsets = pair(-q->input_zero_point);
    for (int32_t o = 0; o < out_len; o += 2) {
        const int8_t *f0 = filter + o * in_len;
        const int8_t *f1 = o + 1 < out_len ? f0 + in_len : f0;
        int32_t acc[2];
        dot_two_rows(f0, f1, input, offsets, in_len, acc, widened);
        for (int32_t r = 0; r < 2 && o + r < out_len; r++) {
            output[o + r] = requant_channel(bounded, acc[r], bias[o + r], o + r, &stage);
        }
    }
}

typedef void (*fully_connected_rows_fn)(const void *, int32_t, const int8_t *, const int32_t *,
                                        const tf_requant *, int8_t *, int32_t);

/* fully_connected_rows instantiated for one requantisation and one input form. */
#define TINYFIT_FULLY_CONNECTED_ROWS(name, bounded, widened)                                      \
    TINYFIT_KERNEL_LOOP void name(const void *input, int32_t in_len, const int8_t *filter,        \
                                  const int32_t *bias, const tf_requant *q, int8_t *output,       \
                                  int32_t out_len) {                                              \
        fully_connected_rows(input, in_len, filter, bias, q, output, out_len, bounded, widened);  \
    }
TINYFIT_FULLY_CONNECTED_ROWS(fully_connected_bounded_widened, 1, 1)
TINYFIT_FULLY_CONNECTED_ROWS(fully_connected_bounded_int8, 1, 0)
TINYFIT_FULLY_CONNECTED_ROWS(fully_connected_general_widened, 0, 1)
TINYFIT_FULLY_CONNECTED_ROWS(fully_connected_general_int8, 0, 0)
#undef TINYFIT_FULLY_CONNECTED_ROWS

/* Fully connected layer, two rows at a time: with more than four rows sharing it, the input is
 * widened once (its unpacking costs more than the rows' loads would save otherwise). */
static void fully_connected_dsp(const int8_t *input, int32_t in_len, const int8_t *filter,
                                const int32_t *bias, const tf_requant *requant, int8_t *output,
                                int32_t out_len, int16_t *scratch) {
    /* A local copy: int8 stores could alias the caller's struct, forcing reloads. */
    const tf_requant local = *requant, *q = &local;
    const int widen = out_len > 4;
    fully_connected_rows_fn rows;
    if (widen) {
        widen_reordered(input, in_len, -q->input_zero_point, scratch);
        rows = q->short_stages ? fully_connected_bounded_widened : fully_connected_general_widened;
    } else {
        rows = q->short_stages ? fully_connected_bounded_int8 : fully_connected_general_int8;
    }
    rows(widen ? (const void *)scratch : (const void *)input, in_len, filter, bias, q, output,
         out_len);
}
#endif

void tf_conv2d(const int8_t *input, tf_shape in, const int8_t *filter, const int32_t *bias,
               const tf_window *w, int32_t groups, const tf_requant *q, int8_t *output,
               tf_shape out, int16_t *scratch) {
#if TINYFIT_DSP
    if (TINYFIT_CONV_PADDED(groups)) {
        const conv2d_fn conv = q->short_stages ? conv2d_bounded : conv2d_general;
        conv(input, in, filter, bias, w, q, output, out, scratch);
        return;
    }
#endif
    (void)scratch;
    conv2d_plain(input, in, filter, bias, w, groups, q, output, out);
}

void tf_depthwise_conv2d(const int8_t *input, tf_shape in, const int8_t *filter,
                         const int32_t *bias, const int32_t *folded_bias, const tf_window *w,
                         int32_t multiplier, const tf_requant *q, int8_t *output,
                         tf_shape out) {
#if TINYFIT_DSP
    if (TINYFIT_DEPTHWISE_BLOCKED(multiplier, out.c)) {
        depthwise_dsp(input, in, filter, bias, w, q, output, out, folded_bias);
        return;
    }
#endif
    (void)folded_bias;
    depthwise_plain(input, in, filter, bias, w, multiplier, q, output, out);
}

void tf_fully_connected(const int8_t *input, int32_t in_len, const int8_t *filter,
                        const int32_t *bias, const tf_requant *q, int8_t *output,
                        int32_t out_len, int16_t *scratch) {
#if TINYFIT_DSP
    if (scratch != NULL) {
        fully_connected_dsp(input, in_len, filter, bias, q, output, out_len, scratch);
        return;
    }
#endif
    (void)scratch;
    fully_connected_plain(input, in_len, filter, bias, q, output, out_len);
}

/* Folds the in-bounds taps of every output position and channel: sums (average pooling) or
 * maxima. */
static void pool(const int8_t *input, tf_shape in, const tf_window *w, int32_t average,
                 int32_t act_min, int32_t act_max, int8_t *output, tf_shape out) {
    for (int32_t oy = 0; oy < out.h; oy++) {
        int32_t ky0, ky1;
        valid_taps(oy, w->kh, w->stride_h, w->pad_top, w->dilation_h, in.h, &ky0, &ky1);
        for (int32_t ox = 0; ox < out.w; ox++) {
            int32_t kx0, kx1;
            valid_taps(ox, w->kw, w->stride_w, w->pad_left, w->dilation_w, in.w, &kx0, &kx1);
            const int32_t count = (ky1 - ky0) * (kx1 - kx0);
            int8_t *y = output + (oy * out.w + ox) * out.c;
            for (int32_t c = 0; c < out.c; c++) {
                int32_t acc = average ? 0 : -128;
                for (int32_t ky = ky0; ky < ky1; ky++) {
                    int32_t iy = oy * w->stride_h + ky * w->dilation_h - w->pad_top;
                    for (int32_t kx = kx0; kx < kx1; kx++) {
                        int32_t ix = ox * w->stride_w + kx * w->dilation_w - w->pad_left;
                        int32_t x = input[(iy * in.w + ix) * in.c + c];
                        if (average) {
                            acc += x;
                        } else if (x > acc) {
                            acc = x;
                        }
                    }
                }
                if (average) {
                    if (count == 0) {
                        acc = 0;
                    } else {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                }
                y[c] = (int8_t)clamp_i32(acc, act_min, act_max);
            }
        }
    }
}

void tf_avg_pool(const int8_t *input, tf_shape in, const tf_window *w, int32_t act_min,
                 int32_t act_max, int8_t *output, tf_shape out) {
    pool(input, in, w, 1, act_min, act_max, output, out);
}

void tf_max_pool(const int8_t *input, tf_shape in, const tf_window *w, int32_t act_min,
                 int32_t act_max, int8_t *output, tf_shape out) {
    pool(input, in, w, 0, act_min, act_max, output, out);
}

void tf_add(const int8_t *a, const int8_t *b, const tf_add_params *p, int8_t *output, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        int32_t sa = rescale((a[i] - p->input_zero_points[0]) * (1 << 20), p->input_multipliers[0]);
        int32_t sb = rescale((b[i] - p->input_zero_points[1]) * (1 << 20), p->input_multipliers[1]);
        int32_t y = wrap_add(rescale(wrap_add(sa, sb), p->output_multiplier), p->output_zero_point);
        output[i] = (int8_t)clamp_i32(y, p->act_min, p->act_max);
    }
}

void tf_mean(const int8_t *input, tf_shape in, tf_multiplier m, int32_t input_zero_point,
             int32_t output_zero_point, int8_t *output) {
    const int32_t pixels = in.h * in.w;
    for (int32_t c = 0; c < in.c; c++) {
        int32_t sum = 0;
        for (int32_t p = 0; p < pixels; p++) {
            sum += input[p * in.c + c];
        }
        int32_t y = rescale(sum - pixels * input_zero_point, m) + output_zero_point;
        output[c] = (int8_t)clamp_i32(y, -128, 127);
    }
}

void tf_concat_part(const int8_t *part, int32_t pixels, int32_t c, int8_t *output,
                    int32_t out_c, int32_t first) {
    for (int32_t p = 0; p < pixels; p++) {
        copy_bytes(output + p * out_c + first, part + p * c, c);
    }
}

void tf_pad(const int8_t *input, tf_shape in, int32_t top, int32_t left, int8_t value,
            int8_t *output, tf_shape out) {
    fill_bytes(output, value, out.h * out.w * out.c);
    const int32_t row = in.w * in.c;
    for (int32_t y = 0; y < in.h; y++) {
        copy_bytes(output + ((y + top) * out.w + left) * out.c, input + y * row, row);
    }
}

void tf_channel_shuffle(const int8_t *input, int32_t pixels, int32_t c, int32_t groups,
                        int8_t *output) {
    const int32_t per_group = c / groups;
    for (int32_t p = 0; p < pixels; p++) {
        const int8_t *src = input + p * c;
        int8_t *dst = output + p * c;
        for (int32_t g = 0; g < groups; g++) {
            for (int32_t j = 0; j < per_group; j++) {
                dst[j * groups + g] = src[g * per_group + j];
            }
        }
    }
}

/* gemmlowp's SaturatingRoundingMultiplyByPOT. */
static int32_t multiply_by_pot(int32_t x, int32_t exponent) {
    if (exponent > 0) {
        const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1);
        if (x > threshold) {
            return INT32_MAX;
        }
        if (x < -threshold) {
            return INT32_MIN;
        }
        return (int32_t)((uint32_t)x << exponent);
    }
    return divide_by_pot(x, -exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out. */
static int32_t exp_on_quarter(int32_t a) {
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    int32_t x = wrap_add(a, 1 << 28);
    int32_t x2 = high_mul(x, x);
    int32_t x3 = high_mul(x2, x);
    int32_t x4 = high_mul(x2, x2);
    int32_t x4_over_4 = multiply_by_pot(x4, -2);
    int32_t poly =
        multiply_by_pot(wrap_add(high_mul(wrap_add(x4_over_4, x3), one_third), x2), -1);
    return wrap_add(exp_minus_one_eighth, high_mul(exp_minus_one_eighth, wrap_add(x, poly)));
}

/* exp(a) for a ≤ 0 in Q5.26, result Q0.31 (gemmlowp's exp_on_negative_values). */
static int32_t exp_on_negative_values(int32_t a) {
    static const int32_t multipliers[7][2] = {
        {-2, 1672461947}, {-1, 1302514674}, {0, 790015084}, {1, 290630308},
        {2, 39332535},    {3, 720401},      {4, 242},
    };
    const int32_t fractional_bits = 26;
    const int32_t one_quarter = 1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    int32_t a_mod = (int32_t)((uint32_t)(a & mask) - (uint32_t)one_quarter);
    int32_t result = exp_on_quarter(multiply_by_pot(a_mod, 5));
    int32_t remainder = (int32_t)((uint32_t)a_mod - (uint32_t)a);
    for (int i = 0; i < 7; i++) {
        if (remainder & (1 << (fractional_bits + multipliers[i][0]))) {
            result = high_mul(result, multipliers[i][1]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in, Q2.29 out (gemmlowp's Newton–Raphson). */
static int32_t one_over_one_plus(int32_t a) {
    int64_t sum = (int64_t)a + INT32_MAX;
    int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_over_17 = 1515870810;
    const int32_t cneg32_over_17 = -1010580540;
    const int32_t one_q2 = 1 << 29;
    int32_t x = wrap_add(c48_over_17, high_mul(half_denominator, cneg32_over_17));
    for (int i = 0; i < 3; i++) {
        int32_t one_minus = (int32_t)((uint32_t)one_q2 - (uint32_t)high_mul(half_denominator, x));
        x = wrap_add(x, multiply_by_pot(high_mul(x, one_minus), 2));
    }
    return multiply_by_pot(x, 1);
}

static int32_t scaled_exp(int32_t diff, const tf_softmax_params *p) {
    int32_t rescaled =
        high_mul((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
    return exp_on_negative_values(rescaled);
}

void tf_softmax(const int8_t *input, int32_t n, int32_t row, const tf_softmax_params *p,
                int8_t *output) {
    for (int32_t r = 0; r + row <= n; r += row) {
        const int8_t *x = input + r;
        int8_t *y = output + r;
        int32_t max = row > 0 ? x[0] : 0;
        for (int32_t i = 1; i < row; i++) {
            if (x[i] > max) {
                max = x[i];
            }
        }
        int32_t sum = 0;
        for (int32_t i = 0; i < row; i++) {
            int32_t diff = x[i] - max;
            if (diff >= p->diff_min) {
                sum = wrap_add(sum, divide_by_pot(scaled_exp(diff, p), 12));
            }
        }
        int32_t headroom = sum == 0 ? 32 : __builtin_clz((uint32_t)sum);
        int32_t bits_over_unit = 12 - headroom;
        uint32_t shifted = headroom >= 32 ? 0u : ((uint32_t)sum << headroom);
        int32_t reciprocal = one_over_one_plus((int32_t)(shifted - (1u << 31)));
        int32_t exponent = clamp_i32(bits_over_unit + 31 - 8, 0, 31);
        for (int32_t i = 0; i < row; i++) {
            int32_t diff = x[i] - max;
            if (diff >= p->diff_min) {
                int32_t prob = high_mul(reciprocal, scaled_exp(diff, p));
                y[i] = (int8_t)clamp_i32(divide_by_pot(prob, exponent) - 128, -128, 127);
            } else {
                y[i] = -128;
            }
        }
    }
}

void tf_requantize(const int8_t *input, int32_t n, int32_t input_zero_point, tf_multiplier m,
                   int32_t output_zero_point, int8_t *output) {
    for (int32_t i = 0; i < n; i++) {
        int32_t y = wrap_add(rescale(input[i] - input_zero_point, m), output_zero_point);
        output[i] = (int8_t)clamp_i32(y, -128, 127);
    }
}

void tf_copy(const int8_t *input, int32_t n, int8_t *output) {
    memmove(output, input, (size_t)n);
}
