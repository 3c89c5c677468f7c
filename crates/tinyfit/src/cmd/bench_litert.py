"""Times LiteRT on one int8 .tflite model, single thread: usage MODEL RUNS WARMUP.

Prints one JSON line: median milliseconds per invoke() for LiteRT's reference kernels
(BUILTIN_REF), its optimised builtin kernels without delegates, and its default setup (optimised
kernels plus the XNNPACK delegate); and, over 20 random inputs, how many output values the
optimised setups give that differ from the reference kernels'. The timed input is fixed random
int8; only invoke() is timed.
"""
import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

SETUPS = {
    "reference": OpResolverType.BUILTIN_REF,
    "optimized": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "xnnpack": OpResolverType.AUTO,
}
CHECKED_INPUTS = 20


def interpreter(model, resolver):
    it = Interpreter(model_path=model, num_threads=1, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def run(it, x):
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def median_ms(it, runs, warmup):
    inp = it.get_input_details()[0]
    x = np.random.default_rng(0).integers(-128, 128, size=inp["shape"], dtype=np.int8)
    it.set_tensor(inp["index"], x)
    for _ in range(warmup):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        it.invoke()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(times))


def main(model, runs, warmup):
    runs, warmup = int(runs), int(warmup)
    its = {name: interpreter(model, resolver) for name, resolver in SETUPS.items()}
    result = {f"{name}_ms": median_ms(it, runs, warmup) for name, it in its.items()}
    shape = its["reference"].get_input_details()[0]["shape"]
    rng = np.random.default_rng(1)
    differ = {name: 0 for name in its}
    outputs = 0
    for _ in range(CHECKED_INPUTS):
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        ref = run(its["reference"], x)
        outputs += ref.size
        for name, it in its.items():
            differ[name] += int((run(it, x) != ref).sum())
    result.update({f"{name}_differ": n for name, n in differ.items()})
    result["outputs"] = outputs
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:4])
