#!/usr/bin/env python3
"""Trains the independently trained models of intermediate size that an SN-Net is compared with.

The anchors' design — the graph `--graph` with every convolution's channels scaled so that its
first layer has each of `--widths` channels (depthwise convolutions keep one group per
channel) — trained with the recipe of `--train`, into `OUT/w{width}` (finished runs are kept).
List the runs as `baselines` in the stitching config; `tinyfit stitch` measures them as it
measures the routes (float and int8 accuracy, flash, arena, latency) and compares each with the
stitched frontier at its MACs.

    python3 scripts/stitch_baselines.py --graph examples/graphs/har_cnn.json \\
        --train examples/hapt/train.toml --widths 10,12,14,20,24,28 --out runs/hapt-widths
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
            depthwise = n.get("groups", 1) == n["out_channels"] > 1
            n["out_channels"] = max(1, round(n["out_channels"] * first / base))
            if depthwise:
                n["groups"] = n["out_channels"]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    runs = []
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
        runs.append(str(run))
    print("baselines = [" + ", ".join(json.dumps(r) for r in runs) + "]")


if __name__ == "__main__":
    sys.exit(main())
