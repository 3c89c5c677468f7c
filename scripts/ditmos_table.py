#!/usr/bin/env python3
"""DiTMoS against its baselines on one dataset: one table, every figure on the test split of
models chosen on validation.

Trains what is missing (a finished run is reused), then writes `comparison.md` in the sweep
folder:

- the strong model (`train.toml`, the run `ditmos.toml` names as `strong`), int8 by PTQ and by
  int8-weight QAT;
- the same-MACs tiny model (`tiny.toml`) and the same model distilled from the strong one
  (`tiny_kd.toml`), over the seeds;
- the strong model structurally pruned to fractions of its flash (`--prune`), fine-tuned, int8;
- DiTMoS for every m of `--ms` over the seeds (`scripts/ditmos_sweep.py`'s runs).

For each m, the same-budget comparison takes the baselines whose int8 constants fit in
DiTMoS's flash and picks the one with the best validation accuracy (int8), then compares test
accuracies. Flash is the constants the generated C stores (weights, biases, multipliers).

    python3 scripts/ditmos_table.py --dataset examples/stress --sweep runs/sweep/stress \\
        --prune 0.75,0.5
"""

import argparse
import json
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINYFIT = ROOT / "target" / "release" / "tinyfit"


def sh(*cmd):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


class Runner:
    """Runs tinyfit steps whose output folder does not hold a finished result yet."""

    def __init__(self, tinyfit):
        self.tinyfit = tinyfit

    def train(self, config, out, seeds=None):
        # `tinyfit train --seed` puts runs in OUT/seed-N only when given several seeds.
        several = seeds and len(seeds) > 1
        runs = [out / f"seed-{s}" for s in seeds] if several else [out]
        if not all((r / "report.json").exists() for r in runs):
            extra = ["--seed", ",".join(map(str, seeds))] if seeds else []
            sh(self.tinyfit, "train", "--config", config, "--out", out, *extra)
        return runs

    def derived(self, step, source, out, *args):
        if not (out / "report.json").exists():
            sh(self.tinyfit, step, source, "--out", out, *args)
        return out

    def quantized(self, run):
        if not (run / "quantization.json").exists():
            sh(self.tinyfit, "quantize", run)
        return json.loads((run / "quantization.json").read_text())


def spread(values):
    """`mean ± sd` in percent (sd over seeds; a single run has none)."""
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def baseline(name, runs, quantized):
    """A row of figures for runs of one model (one per seed)."""
    reports = [json.loads((r / "report.json").read_text()) for r in runs]
    qs = [quantized(r) for r in runs]
    return {
        "name": name,
        "seeds": len(runs),
        "params": reports[0]["params"],
        "macs": reports[0]["macs"],
        "flash": qs[0]["flash_bytes"],
        "test_float": [r["test"]["accuracy"] for r in reports],
        "val_int8": [q["validation"]["int8_accuracy"] for q in qs],
        "test_int8": [q["test"]["int8_accuracy"] for q in qs],
        "union": None,
    }


def ditmos_row(m, reports):
    return {
        "name": f"DiTMoS m = {m}",
        "seeds": len(reports),
        "params": reports[0]["params"],
        "macs": reports[0]["macs_per_inference"],
        "flash": reports[0]["int8"]["const_bytes"],
        "test_float": [r["test"]["accuracy"] for r in reports],
        "val_int8": [r["int8"]["validation_accuracy"] for r in reports],
        "test_int8": [r["int8"]["test_accuracy"] for r in reports],
        "union": [r["test"]["union_accuracy"] for r in reports],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, type=Path,
                   help="folder with train.toml, tiny.toml, tiny_kd.toml and ditmos.toml")
    p.add_argument("--sweep", required=True, type=Path, help="the DiTMoS sweep's folder")
    p.add_argument("--ms", default="2,4,6,8")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--prune", default="0.75,0.5", help="fractions of the strong model's flash")
    p.add_argument("--tinyfit", type=Path, default=TINYFIT)
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    ms = [int(m) for m in args.ms.split(",")]
    run = Runner(args.tinyfit)
    ditmos_toml = args.dataset / "ditmos.toml"
    strong = (ditmos_toml.parent / tomllib.loads(ditmos_toml.read_text())["ditmos"]["strong"])
    strong = strong.resolve().relative_to(Path.cwd().resolve())

    rows = []
    run.train(args.dataset / "train.toml", strong)
    rows.append(baseline("strong, int8 PTQ", [strong], run.quantized))
    qat = run.derived("qat", strong, Path(f"{strong}-qat8"), "--weights", "int8")
    rows.append(baseline("strong, int8-weight QAT", [qat], run.quantized))
    for fraction in [float(f) for f in args.prune.split(",") if f]:
        out = Path(f"{strong}-pruned{round(100 * fraction)}")
        run.derived("prune", strong, out, "--keep-flash", str(fraction))
        rows.append(baseline(f"strong pruned to {fraction:.0%} of its flash, int8", [out],
                             run.quantized))
    tiny = run.train(args.dataset / "tiny.toml", Path(f"{strong}-tiny"), seeds)
    rows.append(baseline("tiny (same MACs), int8", tiny, run.quantized))
    kd = run.train(args.dataset / "tiny_kd.toml", Path(f"{strong}-tiny-kd"), seeds)
    rows.append(baseline("tiny + KD from strong, int8", kd, run.quantized))
    baselines = list(rows)

    sh(sys.executable, ROOT / "scripts" / "ditmos_sweep.py", "--config", ditmos_toml,
       "--out", args.sweep, "--ms", args.ms, "--seeds", args.seeds, "--no-ablations",
       "--tinyfit", args.tinyfit)
    comparisons = []
    for m in ms:
        reports = [json.loads((args.sweep / f"m{m}-s{s}" / "ditmos.json").read_text())
                   for s in seeds]
        row = ditmos_row(m, reports)
        rows.append(row)
        fitting = [b for b in baselines if b["flash"] <= row["flash"]]
        if not fitting:
            comparisons.append(f"- m = {m}: no baseline fits in {row['flash']:,} B")
            continue
        best = max(fitting, key=lambda b: statistics.mean(b["val_int8"]))
        gap = 100 * (statistics.mean(row["test_int8"]) - statistics.mean(best["test_int8"]))
        comparisons.append(
            f"- m = {m} ({row['flash']:,} B): best baseline by validation that fits is "
            f"'{best['name']}' ({best['flash']:,} B): test int8 {spread(best['test_int8'])} % "
            f"against DiTMoS {spread(row['test_int8'])} % ({gap:+.2f} points)")

    lines = [
        "| model | seeds | params | MACs / inference | flash (int8 constants) B "
        "| val. acc. % (int8) | test acc. % (float) | test acc. % (int8) | test union % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| {} | {} | {:,} | {:,} | {:,} | {} | {} | {} | {} |".format(
            r["name"], r["seeds"], r["params"], r["macs"], r["flash"], spread(r["val_int8"]),
            spread(r["test_float"]), spread(r["test_int8"]),
            spread(r["union"]) if r["union"] else "–"))
    table = "\n".join(lines) + "\n\nSame flash budget:\n" + "\n".join(comparisons) + "\n"
    print(table)
    (args.sweep / "comparison.md").write_text(table)


if __name__ == "__main__":
    sys.exit(main())
