#!/usr/bin/env python3
"""SN-Net against independently trained models of intermediate size.

Trains (unless finished) the anchors' design at intermediate widths — the graph `--graph`
with every convolution's channels scaled to each of `--widths` first-layer channels — with
the training recipe of `--train`, then compares with a finished `tinyfit stitch` run: for
each intermediate model's MACs, the most accurate route on the stitch run's validation
frontier that costs no more. Writes `comparison.md` in the stitch run's folder.

    python3 scripts/stitch_baselines.py --stitch runs/stitch/hapt-ls \\
        --graph examples/graphs/har_cnn.json --train examples/hapt/train.toml \\
        --widths 10,12,14,20,24,28 --out runs/stitch-baselines/hapt
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINYFIT = ROOT / "target" / "release" / "tinyfit"


def scaled(graph, first):
    """`graph` with channels scaled so that its first convolution has `first`."""
    base = next(n["out_channels"] for n in graph["nodes"] if "out_channels" in n)
    out = json.loads(json.dumps(graph))
    out["name"] = f"{graph.get('name', 'model')} at {first}/{base} of its channels"
    for n in out["nodes"]:
        if "out_channels" in n:
            n["out_channels"] = max(1, round(n["out_channels"] * first / base))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stitch", required=True, type=Path, help="a finished tinyfit stitch run")
    p.add_argument("--graph", required=True, type=Path, help="the anchors' design")
    p.add_argument("--train", required=True, type=Path, help="the anchors' training config")
    p.add_argument("--widths", required=True, help="first-layer channels, comma-separated")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tinyfit", type=Path, default=TINYFIT)
    args = p.parse_args()
    graph = json.loads(args.graph.read_text())
    config = args.train.read_text()
    data_path = re.search(r'^path = "(.*?)"', config, re.M).group(1)
    config = config.replace(f'path = "{data_path}"',
                            f'path = "{(args.train.parent / data_path).resolve()}"')
    args.out.mkdir(parents=True, exist_ok=True)

    baselines = []
    for width in [int(w) for w in args.widths.split(",")]:
        run = args.out / f"w{width}"
        graph_file = args.out / f"w{width}.json"
        graph_file.write_text(json.dumps(scaled(graph, width), indent=1))
        toml = args.out / f"w{width}.toml"
        toml.write_text(re.sub(r'^graph = ".*?"', f'graph = "{graph_file.resolve()}"', config,
                               flags=re.M))
        if not (run / "report.json").exists():
            cmd = [str(args.tinyfit), "train", "--config", str(toml), "--out", str(run)]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        report = json.loads((run / "report.json").read_text())
        baselines.append((width, report))

    stitch = json.loads((args.stitch / "stitch.json").read_text())
    frontier = sorted((r for r in stitch["routes"] if r["frontier"]), key=lambda r: r["macs"])
    lines = [
        "| independently trained | MACs | val. % | test % | best frontier route within its MACs "
        "| MACs | val. % | test % | test difference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    wins = 0
    for width, r in baselines:
        fits = [f for f in frontier if f["macs"] <= r["macs"]]
        if not fits:
            lines.append(f"| width {width} | {r['macs']:,} | {100 * r['validation']['accuracy']:.2f} "
                         f"| {100 * r['test']['accuracy']:.2f} | (no route this cheap) | | | | |")
            continue
        f = fits[-1]
        gap = 100 * (f["test_accuracy"] - r["test"]["accuracy"])
        wins += gap >= 0
        lines.append(
            f"| width {width} | {r['macs']:,} | {100 * r['validation']['accuracy']:.2f} "
            f"| {100 * r['test']['accuracy']:.2f} | {f['route']} | {f['macs']:,} "
            f"| {100 * f['validation_accuracy']:.2f} | {100 * f['test_accuracy']:.2f} "
            f"| {gap:+.2f} |")
    table = "\n".join(lines)
    table += (f"\n\nThe stitched frontier matches or beats the independently trained model at "
              f"{wins} of {len(baselines)} intermediate budgets (test accuracy; routes chosen on "
              f"validation).\n")
    print(table)
    (args.stitch / "comparison.md").write_text(table)


if __name__ == "__main__":
    sys.exit(main())
