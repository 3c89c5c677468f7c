#!/usr/bin/env python3
"""DiTMoS sweep: m classifiers x seeds, and the ablations, then one table.

Runs `tinyfit ditmos` for every (m, seed) that has no `ditmos.json` yet (an interrupted run
resumes from its checkpoint), then prints a Markdown table of the test figures (mean and sample
standard deviation over seeds; every checkpoint chosen on validation) and writes it beside the
runs as `table.md`.

    python3 scripts/ditmos_sweep.py --config examples/hapt/ditmos.toml --out runs/sweep/hapt \
        --ms 2,4,6,8 --seeds 0,1,2 \
        --ablate-graphs examples/graphs/hapt_ditmos_selector_noagg.json \
                        examples/graphs/hapt_ditmos_classifier_noagg.json
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

TINYFIT = Path(__file__).resolve().parent.parent / "target" / "release" / "tinyfit"


def run(tinyfit, config, out, m, seed, extra):
    """One DiTMoS run into `out`, unless it already finished."""
    if (out / "ditmos.json").exists():
        return
    cmd = [str(tinyfit), "ditmos", "--config", config, "--out", str(out),
           "--classifiers", str(m), "--seed", str(seed), "--resume", *extra]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def spread(values):
    """`mean ± sd` in percent (sd over seeds; a single run has none)."""
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def row(name, reports):
    r0 = reports[0]
    return "| {} | {} | {:,} | {:,} | {} | {} | {} | {} |".format(
        name,
        len(reports),
        r0["params"],
        r0["macs_per_inference"],
        spread([r["test"]["accuracy"] for r in reports]),
        spread([r["int8"]["test_accuracy"] for r in reports]),
        spread([r["test"]["union_accuracy"] for r in reports]),
        spread([r["test"]["routing_accuracy"] for r in reports]),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--ms", default="2,4,6,8")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--ablation-m", type=int, default=4, help="m of the ablation runs")
    p.add_argument("--ablation-seeds", help="seeds of the ablation runs (default: --seeds)")
    p.add_argument("--ablate-graphs", nargs=2, metavar=("SELECTOR", "CLASSIFIER"),
                   help="graphs without feature aggregation (else that ablation is skipped)")
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument("--tinyfit", type=Path, default=TINYFIT,
                   help="the tinyfit binary (a copy keeps a long sweep on one build)")
    args = p.parse_args()
    ms = [int(m) for m in args.ms.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    ablation_seeds = [int(s) for s in (args.ablation_seeds or args.seeds).split(",")]
    variants = [(f"DiTMoS m = {m}", f"m{m}", m, [], seeds) for m in ms]
    if not args.no_ablations:
        a = args.ablation_m
        variants.append((f"m = {a}, random split (no k-means)", f"m{a}-random", a,
                         ["--splitting", "random"], ablation_seeds))
        variants.append((f"m = {a}, no adversarial rounds", f"m{a}-noadv", a, ["--rounds", "0"],
                         ablation_seeds))
        if args.ablate_graphs:
            variants.append((f"m = {a}, no feature aggregation", f"m{a}-noagg", a,
                             ["--graphs", *args.ablate_graphs], ablation_seeds))
    lines = [
        "| model | seeds | params | MACs / inference | test acc. % (float) | test acc. % (int8) "
        "| test union % | routing % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    strong = None
    for name, folder, m, extra, runs_seeds in variants:
        reports = []
        for seed in runs_seeds:
            out = args.out / f"{folder}-s{seed}"
            run(args.tinyfit, args.config, out, m, seed, extra)
            reports.append(json.loads((out / "ditmos.json").read_text()))
        strong = reports[0]["strong_test_accuracy"]
        lines.append(row(name, reports))
    table = "\n".join(lines)
    table += f"\n\nStrong model (the splitting's feature source): test {100 * strong:.2f} %.\n"
    print(table)
    (args.out / "table.md").write_text(table)


if __name__ == "__main__":
    sys.exit(main())
