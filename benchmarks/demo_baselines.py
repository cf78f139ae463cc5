"""Demo test-split MAE of t-HNE against two baselines, averaged over the configured seeds.

Baselines: the train-mean predictor (every test clip gets the mean train label) and the
`text_only` variant of the same trainer. Run the workflow for both variants first:

    snakemake --cores 2 results/demo/metrics.json \
        results/demo/runs/text_only/seed{1,2,3}/metrics.json
    python benchmarks/demo_baselines.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from thne.evaluate.metrics import regression_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args()
    manifest = pd.read_csv(args.root / f"data/{args.dataset}/manifest.tsv", sep="\t")
    train, test = manifest[manifest.split == "train"], manifest[manifest.split == "test"]
    mean_pred = np.full(len(test), train.label.mean())
    rows = [("train-mean predictor", [regression_metrics(mean_pred, test.label)["mae"]])]
    for variant in ("text_only", "thne"):
        runs = sorted(
            (args.root / f"results/{args.dataset}/runs/{variant}").glob("seed*/metrics.json")
        )
        if not runs:
            raise SystemExit(f"no runs of variant {variant}: run the workflow first (see --help)")
        rows.append((variant, [json.loads(p.read_text())["mae"] for p in runs]))
    print(f"{'model':24s} {'test MAE (mean over seeds)':>28s}  per seed")
    for name, maes in rows:
        print(f"{name:24s} {np.mean(maes):28.4f}  {' '.join(f'{m:.4f}' for m in maes)}")


if __name__ == "__main__":
    main()
