#!/usr/bin/env python3
"""Compares search strategies at equal trial counts from their trial logs.

Reads DIR/<strategy>-<seed>/trials.jsonl for every strategy and seed found (the runs of
`tinyfit search --strategy S --seed N --out DIR/S-N`) and prints, per strategy, the best
reward and the best validation accuracy within the latency target found after k trials,
for several k, per seed and as mean ± sample sd over seeds.

    python3 scripts/nas_compare.py runs/hapt-nas
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path


def read(log):
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def best_after(trials, k, key):
    values = [key(t) for t in trials if t["index"] < k and t["val_accuracy"] is not None]
    values = [v for v in values if v is not None]
    return max(values) if values else float("nan")


def spread(values):
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, sd


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path, help="folder of <strategy>-<seed> search runs")
    p.add_argument("--target-ms", type=float, default=None,
                   help="latency target for the accuracy column (default: none)")
    args = p.parse_args()
    runs = {}
    for log in sorted(args.dir.glob("*-*/trials.jsonl")):
        m = re.fullmatch(r"(.+)-(\d+)", log.parent.name)
        if m:
            runs.setdefault(m.group(1), {})[int(m.group(2))] = read(log)
    if not runs:
        sys.exit(f"no <strategy>-<seed>/trials.jsonl under {args.dir}")
    trials = min(len(t) for seeds in runs.values() for t in seeds.values())
    checkpoints = sorted({k for k in (10, 20, 30, 40, 60, 80, 100) if k < trials} | {trials})
    target = args.target_ms

    def accuracy(t):
        if target is not None and t["cost"]["latency_ms"] > target:
            return None
        return t["val_accuracy"]

    for title, key in [("best reward", lambda t: t["reward"]),
                       ("best validation accuracy %" + (f" within {target} ms" if target else ""),
                        accuracy)]:
        print(f"\n{title} after k trials (equal trial counts; mean ± sd over seeds):")
        print("| strategy | seeds | " + " | ".join(f"k = {k}" for k in checkpoints) + " |")
        print("|---|---|" + "---|" * len(checkpoints))
        scale = 100.0 if "accuracy" in title else 1.0
        for strategy, seeds in sorted(runs.items()):
            cells = []
            for k in checkpoints:
                values = [scale * best_after(t, k, key) for t in seeds.values()]
                mean, sd = spread(values)
                per_seed = " / ".join(f"{v:.4g}" for v in values)
                cells.append(f"{mean:.4g} ± {sd:.2g} ({per_seed})")
            print(f"| {strategy} | {','.join(map(str, sorted(seeds)))} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
