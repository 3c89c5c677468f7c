/* tinyfit's int8 kernels in C99: a line-by-line counterpart of tinyfit-micro's Rust kernels, so
 * that a model gives the same integers here, in tinyfit and in LiteRT. Sums wrap like the Rust
 * code's (computed in unsigned arithmetic, which C defines); no operation has undefined
 * behaviour for any int8 input. */
#include "tinyfit_kernels.h"

#include <string.h>

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

/* gemmlowp's RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero. */
static inline int32_t divide_by_pot(int32_t x, int32_t e) {
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* TFLite's MultiplyByQuantizedMultiplier; the left shift wraps. */
static inline int32_t rescale(int32_t x, tf_multiplier m) {
    int32_t left = m.shift > 0 ? m.shift : 0;
    int32_t right = m.shift > 0 ? 0 : -m.shift;
    return divide_by_pot(high_mul((int32_t)((uint32_t)x << left), m.multiplier), right);
}

/* The int8 output of `channel` from its accumulator. */
static inline int8_t requant_output(const tf_requant *q, int32_t acc, const int32_t *bias,
                                    int32_t channel) {
    if (bias) {
        acc = wrap_add(acc, bias[channel]);
    }
    tf_multiplier m = q->multipliers[q->per_channel ? channel : 0];
    return (int8_t)clamp_i32(wrap_add(rescale(acc, m), q->output_zero_point), q->act_min,
                             q->act_max);
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

void tf_conv2d(const int8_t *input, tf_shape in, const int8_t *filter, const int32_t *bias,
               const tf_window *w, int32_t groups, const tf_requant *q, int8_t *output,
               tf_shape out) {
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

void tf_depthwise_conv2d(const int8_t *input, tf_shape in, const int8_t *filter,
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

void tf_fully_connected(const int8_t *input, int32_t in_len, const int8_t *filter,
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
        memcpy(output + p * out_c + first, part + p * c, (size_t)c);
    }
}

void tf_pad(const int8_t *input, tf_shape in, int32_t top, int32_t left, int8_t value,
            int8_t *output, tf_shape out) {
    memset(output, value, (size_t)(out.h * out.w * out.c));
    const int32_t row = in.w * in.c;
    for (int32_t y = 0; y < in.h; y++) {
        memcpy(output + ((y + top) * out.w + left) * out.c, input + y * row, (size_t)row);
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
