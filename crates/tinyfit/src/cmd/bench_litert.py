"""Times LiteRT on one int8 .tflite model, single thread: usage MODEL RUNS WARMUP.

Prints one JSON line: median milliseconds per invoke() for LiteRT's reference kernels
(BUILTIN_REF), its optimised builtin kernels without delegates, and its default setup (optimised
kernels plus the XNNPACK delegate). The input is fixed random int8; only invoke() is timed.
"""
import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def median_ms(model, resolver, runs, warmup):
    it = Interpreter(model_path=model, num_threads=1, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
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
    result = {
        "reference_ms": median_ms(model, OpResolverType.BUILTIN_REF, runs, warmup),
        "optimized_ms": median_ms(model, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, runs, warmup),
        "xnnpack_ms": median_ms(model, OpResolverType.AUTO, runs, warmup),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:4])
