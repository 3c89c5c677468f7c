"""Reference outputs of a .tflite model: LiteRT's, and LiteRT's with TFLite Micro's rounding.

usage: litert_reference.py MODEL INPUTS LITERT_OUT REFERENCE_OUT

INPUTS holds N samples of the model's single input back to back (int8, or float32 for a model
with a float interface); the outputs are written in the model's output type. LITERT_OUT receives
LiteRT's outputs (reference kernels, BUILTIN_REF). REFERENCE_OUT receives the outputs tinyfit must
produce: LiteRT's, except that every FULLY_CONNECTED (and the RESHAPE/SOFTMAX ops after one) is
recomputed here in exact integer arithmetic with TFLite's double rounding, which TFLite Micro and
CMSIS-NN use; LiteRT 2.3's reference fully connected kernel rounds once (DESIGN.md). The same code
with single rounding must reproduce LiteRT's outputs exactly, which checks the recomputation.
"""
import math
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

def quantize_multiplier(m):
    """TFLite's QuantizeMultiplier."""
    if m == 0:
        return 0, 0
    frac, exp = math.frexp(m)
    q = int(math.floor(abs(frac) * (1 << 31) + 0.5)) * (1 if frac >= 0 else -1)
    if q == 1 << 31:
        q //= 2
        exp += 1
    return q, exp


def double_rounding(acc, q, shift):
    """MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul + RoundingDivideByPOT."""
    x = acc * (1 << max(shift, 0))
    ab = x * q
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    high = np.where(t >= 0, t // (1 << 31), -((-t) // (1 << 31)))
    e = max(-shift, 0)
    mask = (1 << e) - 1
    rem = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> e) + (rem > threshold)


def single_rounding(acc, q, shift):
    total = 31 - shift
    return (acc * q + (1 << (total - 1))) >> total


def fully_connected(it, details, op, vals, rounding):
    x, w, b = op["inputs"][:3]
    out = op["outputs"][0]
    a = vals[x].astype(np.int64).ravel()
    weights = it.get_tensor(w).astype(np.int64)
    bias = it.get_tensor(b).astype(np.int64) if b >= 0 else 0
    sx, zx = details[x]["quantization"]
    sw = details[w]["quantization_parameters"]["scales"]
    so, zo = details[out]["quantization"]
    acc = weights @ (a - zx) + bias
    res = np.empty_like(acc)
    for o in range(acc.size):
        s = sw[o] if len(sw) > 1 else sw[0]
        q, shift = quantize_multiplier(float(np.float32(sx)) * float(np.float32(s)) / float(np.float32(so)))
        res[o] = rounding(acc[o : o + 1], q, shift)[0]
    res = res + zo
    # The fused activation's range is whatever LiteRT clamped to: recover it from the options.
    lo, hi = activation_range(op, so, zo)
    return np.clip(res, lo, hi).astype(np.int8).reshape(details[out]["shape"])


def activation_range(op, scale, zero_point):
    act = (op.get("builtin_options") or {}).get("fused_activation_function", 0)
    lo, hi = -128, 127
    if act in (1, 3):  # RELU, RELU6
        lo = max(lo, zero_point)
    if act == 3:
        hi = min(hi, zero_point + int(np.round(np.float32(6.0) / np.float32(scale))))
    return lo, hi


def wrap32(x):
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on Python ints."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    t = ab + nudge
    return t // (1 << 31) if t >= 0 else -((-t) // (1 << 31))


def rdbp(x, e):
    mask = (1 << e) - 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def srmbp(x, e):
    """SaturatingRoundingMultiplyByPOT."""
    if e > 0:
        threshold = (1 << (31 - e)) - 1
        return (1 << 31) - 1 if x > threshold else -(1 << 31) if x < -threshold else x << e
    return rdbp(x, -e)


def exp_quarter(a):
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = srmbp(wrap32(srdhm(wrap32(srmbp(x4, -2) + x3), 715827883) + x2), -1)
    return wrap32(1895147668 + srdhm(1895147668, wrap32(x + poly)))


def exp_negative_q5(a):
    quarter = 1 << 24
    amq = wrap32((a & (quarter - 1)) - quarter)
    result = exp_quarter(srmbp(amq, 5))
    remainder = wrap32(amq - a)
    for e, m in [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242)]:
        if remainder & (1 << (26 + e)):
            result = srdhm(result, m)
    return (1 << 31) - 1 if a == 0 else result


def reciprocal(a):
    s = a + (1 << 31) - 1
    half = (s + (1 if s >= 0 else -1)) // 2 if s >= 0 else -((-s + 1) // 2)
    x = wrap32(1515870810 + srdhm(half, -1010580540))
    for _ in range(3):
        x = wrap32(x + srmbp(srdhm(x, wrap32((1 << 29) - srdhm(half, x))), 2))
    return srmbp(x, 1)


def softmax(details, op, vals):
    """TFLite's reference int8 softmax (gemmlowp fixed point), written independently of tinyfit."""
    x = op["inputs"][0]
    out = op["outputs"][0]
    sx = float(np.float32(details[x]["quantization"][0]))
    q, shift = quantize_multiplier(min(1.0 * sx * (1 << 26), (1 << 31) - 1.0))
    diff_min = -int(math.floor(31.0 * (1 << 26) / (1 << shift)))
    data = vals[x].reshape(-1, vals[x].shape[-1]).astype(np.int64)
    result = np.empty_like(data)
    for r, row in enumerate(data):
        mx = int(row.max())
        exps = [exp_negative_q5(srdhm(wrap32((int(v) - mx) * (1 << shift)), q)) if int(v) - mx >= diff_min else None for v in row]
        total = 0
        for e in exps:
            if e is not None:
                total = wrap32(total + rdbp(e, 12))
        clz = 32 - total.bit_length() if total > 0 else (0 if total < 0 else 32)
        bits_over_unit = 12 - clz
        shifted = wrap32(((total % (1 << 32)) << clz) % (1 << 32) - (1 << 31))
        scale = reciprocal(shifted)
        for j, e in enumerate(exps):
            result[r, j] = -128 if e is None else max(-128, min(127, rdbp(srdhm(scale, e), bits_over_unit + 23) - 128))
    return result.astype(np.int8).reshape(details[out]["shape"])


def recompute(it, details, ops, rounding):
    """Model outputs with FC (and what follows it) recomputed; other ops taken from LiteRT."""
    vals = {}
    recomputed = set()
    for op in ops:
        ins = [i for i in op["inputs"] if i >= 0]
        for i in ins:
            vals.setdefault(i, it.get_tensor(i))
        out = op["outputs"][0]
        name = op["op_name"]
        touched = any(i in recomputed for i in ins)
        if name == "FULLY_CONNECTED":
            vals[out] = fully_connected(it, details, op, vals, rounding)
        elif name == "SOFTMAX" and touched:
            vals[out] = softmax(details, op, vals)
        elif name == "RESHAPE" and touched:
            vals[out] = vals[ins[0]].reshape(details[out]["shape"])
        elif touched:
            sys.exit(f"cannot recompute {name} after a fully connected layer")
        else:
            vals[out] = it.get_tensor(out)
            continue
        recomputed.add(out)
    return vals


def main(model, inputs, litert_out, reference_out):
    it = Interpreter(
        model_path=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]["index"]
    size = int(np.prod(inp["shape"]))
    # int8 models read int8 bytes; models with a float interface read float32 values.
    data = np.fromfile(inputs, dtype=inp["dtype"])
    if data.size % size:
        sys.exit(f"{inputs}: {data.size} bytes is not a multiple of the input size {size}")
    litert, reference = [], []
    for sample in data.reshape(-1, size):
        it.set_tensor(inp["index"], sample.reshape(inp["shape"]))
        it.invoke()
        lit = it.get_tensor(out).copy()
        check = recompute(it, details, ops, single_rounding)[out]
        if not np.array_equal(check, lit):
            sys.exit("the single-rounding recomputation does not reproduce LiteRT; the reference is wrong")
        litert.append(lit.ravel())
        reference.append(recompute(it, details, ops, double_rounding)[out].ravel())
    out_dtype = it.get_output_details()[0]["dtype"]
    np.concatenate(litert).astype(out_dtype).tofile(litert_out)
    np.concatenate(reference).astype(out_dtype).tofile(reference_out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
