"""``thne aggregate``: one variant's test metrics, mean and std over seeds."""

from __future__ import annotations

import argparse
import sys

COMMAND = "aggregate"
HELP = "mean and std over seeds -> metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="per-run metrics.json files")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--variant", default="thne")


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.aggregate import aggregate_runs

    r = aggregate_runs(args.runs, args.out, dataset=args.dataset, variant=args.variant)
    print(" ".join(f"{k} {v:.4f}±{r['std'][k]:.4f}" for k, v in r["mean"].items()), file=sys.stderr)
