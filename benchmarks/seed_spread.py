"""Each trained seed of each variant: is it a model or a constant?

For every run folder ``results/{ds}/runs/{variant}/seed{n}`` (or ``--runs tuned``), prints the
epoch chosen on validation MAE and how many were trained, the test MAE beside the train-mean
predictor's, the spread of the test predictions as a share of the labels' (standard deviation
over standard deviation), Corr, and whether the run clears the bar issue 27 set for MMIM: a
spread of at least 0.3 of the labels' and an MAE below the train mean's. Runs whose spread is
under ``thne.evaluate.metrics.CONSTANT_SHARE`` are the ones the tables warn about.

Train the runs first, e.g. ten demo seeds of MMIM and t-HNE:

    printf 'datasets:\\n  demo:\\n    train:\\n      seeds: [1,2,3,4,5,6,7,8,9,10]\\n' > seeds.yaml
    snakemake --cores 2 results/demo/runs/{mmim,thne}/seed{1..10}/metrics.json \\
        --configfile seeds.yaml
    python benchmarks/seed_spread.py --dataset demo --variants mmim,thne
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from thne.evaluate.metrics import CONSTANT_SHARE, pearson, spread_share

SPREAD_BAR = 0.3


def seed_number(path: Path) -> int:
    return int(path.name.removeprefix("seed"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--variants", default="mmim,thne")
    parser.add_argument("--runs", default="runs", help="runs (default) or tuned")
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args()
    manifest = pd.read_csv(args.root / f"data/{args.dataset}/manifest.tsv", sep="\t")
    train_mean = float(manifest.loc[manifest.split == "train", "label"].mean())
    print(
        f"{'variant':9s} {'seed':>4s} {'epoch':>7s} {'test MAE':>8s} {'train mean':>10s} "
        f"{'spread':>6s} {'Corr':>5s}  verdict"
    )
    for variant in args.variants.split(","):
        folder = args.root / f"results/{args.dataset}/{args.runs}/{variant}"
        runs = sorted(folder.glob("seed*/predictions.tsv"), key=lambda p: seed_number(p.parent))
        if not runs:
            raise SystemExit(f"no runs under {folder}: train them first (see --help)")
        maes, shares = [], []
        for path in runs:
            pred = pd.read_csv(path, sep="\t")
            chosen = json.loads((path.parent / "valid_metrics.json").read_text())
            p, y = pred["prediction"].to_numpy(), pred["label"].to_numpy()
            mae = float(np.abs(p - y).mean())
            constant = float(np.abs(train_mean - y).mean())
            share = spread_share(p, y)
            if share < CONSTANT_SHARE:
                verdict = "constant"
            elif share >= SPREAD_BAR and mae < constant:
                verdict = "model"
            else:
                verdict = "below the bar"
            maes.append(mae)
            shares.append(share)
            print(
                f"{variant:9s} {seed_number(path.parent):4d} "
                f"{chosen['best_epoch']:3d}/{chosen['epochs']:<3d} {mae:8.3f} {constant:10.3f} "
                f"{share:6.2f} {pearson(p, y):5.2f}  {verdict}"
            )
        std = float(np.std(maes, ddof=1)) if len(maes) > 1 else 0.0
        print(
            f"{variant:9s} mean test MAE {np.mean(maes):.3f} ± {std:.3f}, spread "
            f"{min(shares):.2f} to {max(shares):.2f}"
        )


if __name__ == "__main__":
    main()
